"""The `nudge` command as a merchant meets it: help, documentation, configuration lookup."""

from __future__ import annotations

import datetime as dt
import os
import re
import stat
import subprocess
import sys
import threading
from pathlib import Path
from zoneinfo import ZoneInfo

import click
import pytest
from click.testing import CliRunner

from cli import cli
from engine.storage.db import open_database

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
COMMANDS = sorted(cli.commands)  # type: ignore[attr-defined]


def test_the_contract_s_commands_exist() -> None:
    assert {"check", "import", "simulate", "run", "history"} <= set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_an_example_and_is_in_the_readme(name: str) -> None:
    command = cli.commands[name]  # type: ignore[attr-defined]
    subcommands = getattr(command, "commands", None) or {}
    for sub in [command, *subcommands.values()]:
        with click.Context(sub, info_name=name) as ctx:
            help_text = sub.get_help(ctx)
        assert f"nudge {name}" in help_text, f"no example in the help of {name} {sub.name}"
        assert "--config" in help_text or isinstance(sub, click.Group)
    assert f"nudge {name}" in README


def write_rule_set(folder: Path, country: str | None) -> Path:
    (folder / "templates").mkdir(parents=True)
    (folder / "templates" / "greeting.txt").write_text("hi", encoding="utf-8")
    (folder / "festival.rules").write_text(
        'when holiday "中秋节" - 1d at 10:00 then message "greeting"\n', encoding="utf-8"
    )
    if country:
        (folder / "nudge.yaml").write_text(f"country: {country}\n", encoding="utf-8")
    return folder


def test_a_rule_set_s_own_configuration_is_used_when_the_folder_has_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = write_rule_set(tmp_path / "rules", country="CN")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["check", str(rules)])
    assert result.exit_code == 0, result.output
    # A nudge.yaml in the current folder comes first, as LANGUAGE.md section 6 says.
    (tmp_path / "nudge.yaml").write_text("timezone: UTC\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["check", str(rules)])
    assert result.exit_code == 1
    assert "E209" in result.output


def test_bad_input_gets_plain_words_and_exit_1(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(cli, ["check", str(tmp_path / "nowhere")])
    assert missing.exit_code == 1 and "does not exist" in missing.output
    window = runner.invoke(
        cli,
        [
            "simulate",
            str(tmp_path),
            "--from",
            "next week",
            "--to",
            "2026-12-01",
            "--db",
            f"sqlite:///{tmp_path / 'x.db'}",
        ],
    )
    assert window.exit_code != 0 and "not a date or time" in window.output
    far = runner.invoke(
        cli,
        [
            "simulate",
            str(tmp_path),
            *("--from", "9990-01-01", "--to", "9999-12-31"),
            *("--db", f"sqlite:///{tmp_path / 'x.db'}"),
        ],
    )
    assert far.exit_code != 0
    assert "--from and --to must fall between 1900-01-01 and 2200-01-01" in far.output
    (tmp_path / "a.rules").write_text('when a.b then tag "x"\n', encoding="utf-8")
    not_a_folder = runner.invoke(cli, ["fmt", str(tmp_path / "a.rules")])
    assert not_a_folder.exit_code == 1 and "is not a folder" in str(not_a_folder.exception)
    no_days = runner.invoke(cli, ["demo", "--days", "-1", "--db", f"sqlite:///{tmp_path / 'd.db'}"])
    assert no_days.exit_code == 2 and "'--days': -1 is not in the range" in no_days.output
    huge = runner.invoke(
        cli, ["outbox", "--retry", "9" * 20, "--db", f"sqlite:///{tmp_path / 'd.db'}"]
    )
    assert huge.exit_code == 2 and f"'{'9' * 20}' is not an id: ids are whole" in huge.output
    word = runner.invoke(cli, ["tasks", "claim", "abc", "--by", "me", "--db", "sqlite://"])
    assert word.exit_code == 2
    assert "'abc' is not an id: ids are whole numbers, as `nudge tasks` lists them" in word.output
    long = runner.invoke(cli, ["tasks", "claim", "1", "--by", "m" * 201, "--db", "sqlite://"])
    assert long.exit_code == 2
    assert "a name of at most 200 characters; this one has 201" in long.output
    # A mistyped database: said so, and not made, by the commands that read the shop.
    typo = f"sqlite:///{tmp_path / 'typo.db'}"
    no_db = [
        runner.invoke(cli, [*command, "--db", typo])
        for command in (
            ["status"],
            ["history", "--from", "2026-01-01", "--to", "2026-01-02"],
            ["simulate", str(tmp_path), "--from", "2026-01-01", "--to", "2026-01-02"],
            ["tasks"],
            ["outbox"],
        )
    ]
    for result in no_db:
        assert result.exit_code == 1
        assert f"there is no database {tmp_path / 'typo.db'}" in str(result.exception)
    assert not (tmp_path / "typo.db").exists()
    # An output the demo cannot write: said before the shop is made and simulated.
    demo_db = f"sqlite:///{tmp_path / 'demo.db'}"
    bad_output = runner.invoke(
        cli,
        ["demo", "--customers", "5", "--output", str(tmp_path / "no" / "x.jsonl"), "--db", demo_db],
    )
    assert bad_output.exit_code == 2 and "No such file or directory" in bad_output.output
    assert not (tmp_path / "demo.db").exists()
    # As `check` says it, and before a database is made for nothing.
    no_rules = runner.invoke(
        cli, ["run", str(tmp_path / "nosuch"), "--db", f"sqlite:///{tmp_path / 'r.db'}"]
    )
    assert no_rules.exit_code == 1 and "nosuch` does not exist" in str(no_rules.exception)
    assert not (tmp_path / "r.db").exists()
    outputs = (missing, window, far, not_a_folder, no_days, huge, word, bad_output, no_rules)
    assert all("Traceback" not in result.output for result in outputs)


@pytest.mark.parametrize(
    "command",
    [
        ["fmt"],
        ["simulate", "--from", "2026-11-01", "--to", "2026-11-02"],
        ["explain", "--from", "2026-11-01", "--to", "2026-11-02"],
        ["demo", "--rules"],
    ],
)
def test_a_rule_file_given_for_its_folder_is_told_to_give_the_folder(
    tmp_path: Path, command: list[str]
) -> None:
    """As `check` and `run` say it (E001): `simulate` and `explain` said only "Directory
    '…/main.rules' is a file", `fmt` that it "is not a folder", without the folder to give."""
    rule_file = tmp_path / "main.rules"
    rule_file.write_text('when a.b then tag "x"\n', encoding="utf-8")
    db = tmp_path / "shop.db"
    open_database(f"sqlite:///{db}").dispose()
    name, *options = command
    where = [*options, str(rule_file)] + (["c1"] if name == "explain" else [])
    result = CliRunner().invoke(cli, [name, *where, "--db", f"sqlite:///{db}"])
    assert result.exit_code == 1, result.output
    (told,) = result.exception.diagnostics  # type: ignore[union-attr]
    assert (told.code, told.help) == (
        "E001",
        f"give the folder that holds it, `{tmp_path}`: every `*.rules` file of a folder is one"
        " rule set",
    )


def window_error(tmp_path: Path, start: str, end: str, zone: str = "UTC") -> str:
    """What `nudge history` says of the window --from START --to END, in one line."""
    (tmp_path / "nudge.yaml").write_text(f"timezone: {zone}\n", encoding="utf-8")
    result = CliRunner().invoke(
        cli,
        [
            *("history", "--from", start, "--to", end),
            *("--config", str(tmp_path / "nudge.yaml")),
            *("--db", f"sqlite:///{tmp_path / 'none.db'}"),
        ],
    )
    assert result.exit_code == 2, result.output
    return " ".join(result.output.split())


def test_a_window_s_bad_date_names_its_option_and_what_to_write_instead(tmp_path: Path) -> None:
    """A merchant's dates: the option at fault is named, a day the calendar lacks is said so
    (it was "expected YYYY-MM-DD" of a date written so), and a day written as a word or with
    one digit is answered with what to write."""
    assert (
        "Invalid value for --to: '2026-02-30' is not a date: there is no such day"
        " (February 2026 has 28 days)" in window_error(tmp_path, "2026-02-01", "2026-02-30")
    )
    assert "Invalid value for --from: '2026-13-01' is not a date: there is no month 13" in (
        window_error(tmp_path, "2026-13-01", "2027-01-01")
    )
    assert (
        "Invalid value for --from: '2026-12-1': write the month and the day with two digits"
        " each: 2026-12-01"
    ) in window_error(tmp_path, "2026-12-1", "2027-01-01")
    tomorrow = dt.datetime.now(ZoneInfo("Asia/Tokyo")).date() + dt.timedelta(days=1)
    said = window_error(tmp_path, "2026-01-01", "Tomorrow", zone="Asia/Tokyo")
    assert "Invalid value for --to: 'Tomorrow' is not a date or time" in said
    assert f"write it out instead: Tomorrow is {tomorrow.isoformat()} (shop time)" in said
    now = window_error(tmp_path, "now", "2200-01-01", zone="Asia/Tokyo")
    assert re.search(r"write it out instead: now is \d{4}-\d\d-\d\dT\d\d:\d\d \(shop time\)", now)
    assert "write it out instead" not in window_error(tmp_path, "12/01", "2027-01-01")


def test_a_window_that_ends_before_it_starts_shows_both_ends_in_shop_time(tmp_path: Path) -> None:
    """02:30 on the night Berlin's clocks skip from 02:00 to 03:00 is 03:30 (LANGUAGE.md 3.2),
    after 03:00: the message shows it, where it said only "--from must be before --to"."""
    said = window_error(tmp_path, "2026-03-29T02:30", "2026-03-29T03:00", zone="Europe/Berlin")
    assert (
        "Invalid value for --from: must be before --to (here 2026-03-29 03:30 and"
        " 2026-03-29 03:00, shop time)"
    ) in said


def test_an_output_file_that_nudge_reads_or_writes_is_refused_and_left_as_it_was(
    tmp_path: Path,
) -> None:
    """`--output` naming the database (as the merchant's slip `--output shop.db`), the
    configuration, a rule file, a template or the file channel's messages: refused before
    anything is written. Another file takes the output whole."""
    rules = write_rule_set(tmp_path / "rules", country="CN")
    db = tmp_path / "shop.db"
    (rules / "nudge.yaml").write_text(
        f"database: sqlite:///{db}\ncountry: CN\n"
        "channels:\n  file:\n    type: file\n    path: sent.jsonl\n",
        encoding="utf-8",
    )
    (rules / "sent.jsonl").write_text('{"sent": 1}\n', encoding="utf-8")  # then gone
    runner = CliRunner()
    window = ("--from", "2026-01-01", "--to", "2026-01-02")
    open_database(f"sqlite:///{db}").dispose()
    targets = {
        db: "the database",
        rules / "nudge.yaml": "the configuration file",
        rules / "festival.rules": "named as a rule file in the rules folder",
        rules / "new.rules": "named as a rule file in the rules folder",
        rules / "templates" / "greeting.txt": "in the templates folder",
        rules / "templates" / "sim.html": "in the templates folder",
        rules / "sent.jsonl": "where the channel `file` writes its messages",
    }
    # Through a link, and a file channel's messages not written yet.
    (tmp_path / "report.txt").symlink_to(rules / "festival.rules")
    targets[tmp_path / "report.txt"] = "named as a rule file in the rules folder"
    (rules / "sent.jsonl").unlink()
    for target, what in targets.items():
        before = target.read_bytes() if target.exists() else None
        result = runner.invoke(cli, ["simulate", str(rules), *window, "--output", str(target)])
        assert result.exit_code == 2, target
        assert f"{target} is {what}: write the output to another file" in result.output
        assert (target.read_bytes() if target.exists() else None) == before
    assert not (rules / "sent.jsonl").exists()
    # The rule set's own nudge.yaml, while another configuration is given.
    other = tmp_path / "other.yaml"
    other.write_text(f"database: sqlite:///{db}\ncountry: CN\n", encoding="utf-8")
    own = (rules / "nudge.yaml").read_bytes()
    given = ["--config", str(other), "--output", str(rules / "nudge.yaml")]
    result = runner.invoke(cli, ["simulate", str(rules), *window, *given])
    assert result.exit_code == 2
    assert "is the rule set's configuration file: write the output to another" in result.output
    assert (rules / "nudge.yaml").read_bytes() == own
    out = tmp_path / "out.jsonl"
    out.write_text("old\n", encoding="utf-8")
    out.chmod(0o640)
    link = tmp_path / "latest.jsonl"
    link.symlink_to(out)
    result = runner.invoke(cli, ["simulate", str(rules), *window, "--output", str(link)])
    assert result.exit_code == 0 and "old" not in out.read_text(encoding="utf-8")
    assert link.is_symlink() and out.stat().st_mode & 0o777 == 0o640  # written through the link
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_an_output_that_is_a_pipe_is_written_to_and_stays_a_pipe(tmp_path: Path) -> None:
    """`--output` naming a pipe or a device (`/dev/stdout`): written to, not replaced by a file
    of its name, as a file is."""
    rules = write_rule_set(tmp_path / "rules", country="CN")
    db = f"sqlite:///{tmp_path / 'x.db'}"
    open_database(db).dispose()
    fifo = tmp_path / "report"
    os.mkfifo(fifo)
    read: list[str] = []
    reader = threading.Thread(target=lambda: read.append(fifo.read_text("utf-8")), daemon=True)
    reader.start()
    window = ("--from", "2026-01-01", "--to", "2026-01-02")
    given = ("--format", "table", "--output", str(fifo), "--db", db)
    result = CliRunner().invoke(cli, ["simulate", str(rules), *window, *given])
    reader.join(10)
    assert result.exit_code == 0, result.output
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert read and "no rule acted" in read[0]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="a system without /dev/full")
def test_output_that_cannot_be_written_is_said_in_words(tmp_path: Path) -> None:
    """Standard output on a full disk (`> /dev/full`): an error in words, exit status 1."""
    rules = write_rule_set(tmp_path / "rules", country="CN")
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, str(Path(__file__).parents[1] / "cli.py"), "check", str(rules)],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    assert done.returncode == 1
    assert done.stderr == "Error: the output could not be written: No space left on device\n"


@pytest.mark.parametrize("fmt", ["jsonl", "table", "html"])
def test_an_output_file_that_cannot_be_written_is_named(tmp_path: Path, fmt: str) -> None:
    rules = write_rule_set(tmp_path / "rules", country="CN")
    open_database(f"sqlite:///{tmp_path / 'x.db'}").dispose()
    target = tmp_path / "missing" / f"out.{fmt}"
    result = CliRunner().invoke(
        cli,
        [
            "simulate",
            str(rules),
            *("--from", "2026-01-01", "--to", "2026-01-02", "--format", fmt),
            *("--output", str(target), "--db", f"sqlite:///{tmp_path / 'x.db'}"),
        ],
    )
    assert result.exit_code == 2
    assert f"cannot write {target}: No such file or directory" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", ["simulate", "demo"])
def test_an_empty_output_name_is_refused_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """`--output ""` is the current folder, which click's check of a folder passes: the output
    was written beside it and then put in its place, a traceback (IsADirectoryError)."""
    rules = write_rule_set(tmp_path / "rules", country="CN")
    db = f"sqlite:///{tmp_path / 'x.db'}"
    open_database(db).dispose()
    monkeypatch.chdir(tmp_path)
    window = ["simulate", str(rules), "--from", "2026-01-01", "--to", "2026-01-02"]
    arguments = window if command == "simulate" else ["demo", "--customers", "3"]
    result = CliRunner().invoke(cli, [*arguments, "--output", "", "--db", db])
    assert result.exit_code == 2, result.output
    said = "Invalid value for --output: the name is empty: give the name of a file to write"
    assert said in (" ".join(result.output.split()))


@pytest.mark.parametrize(
    "command",
    [
        ["history", "--from", "2026-01-01", "--to", "2026-01-02"],
        ["status"],
        ["outbox"],
        ["tasks"],
        ["tasks", "list"],
    ],
)
def test_a_command_reading_the_shop_without_a_configuration_says_its_times_are_utc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command
) -> None:
    # The shop's nudge.yaml beside its rules is not read by commands given no rules folder: a
    # person is told which database they read and in which zone they show times.
    monkeypatch.chdir(tmp_path)
    open_database("sqlite:///nudge.db").dispose()
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    note = (
        "note: no configuration (nudge.yaml in this folder, or --config FILE): reading"
        " sqlite:///nudge.db, in UTC time"
    )
    with pytest.raises(SystemExit) as done:
        cli.main(command, standalone_mode=True)
    assert done.value.code == 0
    assert capsys.readouterr().err.splitlines() == [note]
    (tmp_path / "shop.yaml").write_text("timezone: Asia/Shanghai\n", encoding="utf-8")
    with pytest.raises(SystemExit):
        cli.main([*command, "--config", "shop.yaml"], standalone_mode=True)
    assert capsys.readouterr().err == ""


def test_a_rules_folder_whose_name_the_ledger_cannot_hold_is_refused_before_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = write_rule_set(tmp_path / ("r" * 201), country="CN")
    monkeypatch.chdir(tmp_path)
    for command in (["check", str(rules)], ["run", str(rules)]):
        result = CliRunner().invoke(cli, command)
        assert result.exit_code == 1, result.output
        told = result.output or str(result.exception)  # `run` raises it for `main` to print
        assert "201 characters long; the daemon keeps a rule set under" in told
    assert not (tmp_path / "nudge.db").exists()
    shorter = rules.rename(tmp_path / ("r" * 200))
    assert CliRunner().invoke(cli, ["check", str(shorter)]).exit_code == 0
