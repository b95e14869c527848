"""The configuration file as an operator meets it: every mistake at its line and spot.

Golden files: tests/golden/config/NAME.yaml is read as a configuration, and what `nudge check`
says of it (the file's error, or each channel's) must equal NAME.txt. Regenerate them with

    NUDGE_UPDATE_GOLDEN=1 python -m pytest tests/test_config.py -k golden

and read the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import cli, main
from engine.channels import channel_diagnostics, channel_errors, check_channels
from engine.config import Channel, Config, load_config
from engine.errors import ConfigError, ConfigErrors, Diagnostic
from engine.render import render_text

GOLDEN = Path(__file__).parent / "golden" / "config"


def diagnostics(path: Path, environ: dict[str, str]) -> list[Diagnostic]:
    try:
        config = load_config(path)
    except ConfigError as exc:
        return [exc.diagnostic()]
    except ConfigErrors as exc:
        return [error.diagnostic() for error in exc.errors]
    return channel_diagnostics(config, environ)


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.yaml")), ids=lambda p: p.stem)
def test_golden_configuration_errors(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    monkeypatch.chdir(GOLDEN)
    rendered = render_text(diagnostics(Path(path.name), environ={})) + "\n"
    expected = path.with_suffix(".txt")
    if os.environ.get("NUDGE_UPDATE_GOLDEN"):
        expected.write_text(rendered, encoding="utf-8")
    assert rendered == expected.read_text(encoding="utf-8")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "nudge.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_an_error_is_at_the_setting_s_value_and_an_unknown_setting_at_its_key(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "timezone: UTC\nmax_attempts: none\n")
    with pytest.raises(ConfigError) as bad:
        load_config(path)
    assert bad.value.span is not None
    assert (bad.value.span.line, bad.value.span.column, bad.value.span.end_column) == (2, 15, 19)
    assert str(bad.value).startswith(f"{path}:2:15: max_attempts:")

    path = write(tmp_path, "timezone: UTC\nchannels:\n  file:\n    paht: out.jsonl\n")
    (error,) = channel_errors(load_config(path), environ={})
    assert error.span is not None and (error.span.line, error.span.column) == (4, 5)
    assert error.help == "did you mean `path`?"


@pytest.mark.parametrize(
    ("text", "code", "line", "column"),
    [
        ("timezone: UTC\nx: 1\x07\n", "E600", 2, 5),  # a character YAML does not allow
        ("\ufeffgrace: soon\n", "E602", 1, 8),  # a byte-order mark takes no column
        ('shop: {name: "a\u2028b"}\ngrace: soon\n', "E602", 2, 8),  # a break for YAML only
        ("null: 3\n", "E601", 1, 1),  # a key YAML would read as something else than its text
        ("? [a, b]\n: 1\n", "E600", 1, 3),  # a key that is not a word
        ("shop:\n  name: a\n  name: b\n", "E604", 3, 3),  # given twice, at any depth
        ("timezone: localtime\n", "E602", 1, 11),  # the zone of the machine Nudge runs on
        ("tick_seconds: 0\n", "E602", 1, 15),  # no time between ticks
        ("tick_seconds: 0.01\n", "E602", 1, 15),  # ticks back to back
        ("retry_base: 0\n", "E602", 1, 13),  # retried again and again at once
        ("country: China\n", "E602", 1, 10),  # a code the holiday calendars know
    ],
)
def test_places_are_counted_as_the_diagnostics_show_lines(
    tmp_path: Path, text: str, code: str, line: int, column: int
) -> None:
    with pytest.raises(ConfigError) as bad:
        load_config(write(tmp_path, text))
    span = bad.value.span
    assert span is not None
    assert (bad.value.code, span.line, span.column) == (code, line, column)


@pytest.mark.parametrize("value", ["0", "0.01", "0.5", "0s"])
def test_a_tick_shorter_than_a_second_is_refused_at_its_value(tmp_path: Path, value: str) -> None:
    """`tick_seconds: 0.01` ran: every step overran its interval, APScheduler warned of each
    run it skipped, many times a second, and the daemon ticked back to back for nothing."""
    path = write(tmp_path, f"timezone: UTC\ntick_seconds: {value}\n")
    with pytest.raises(ConfigError) as bad:
        load_config(path)
    assert str(bad.value).startswith(
        f"{path}:2:15: tick_seconds: the daemon needs at least a second between ticks; got"
    )
    assert bad.value.help is not None and bad.value.help.startswith("30s is the default;")
    assert load_config(write(tmp_path, "tick_seconds: 1\n")).tick_seconds == 1.0


@pytest.mark.parametrize("value", ["0", "0s", "0.5"])
def test_a_retry_base_shorter_than_a_second_is_refused_at_its_value(
    tmp_path: Path, value: str
) -> None:
    """`retry_base: 0` was taken: a batch failing for now was retried at once, claimed again by
    the same step's dispatch and tried again, for half of every tick interval."""
    path = write(tmp_path, f"timezone: UTC\nretry_base: {value}\n")
    with pytest.raises(ConfigError) as bad:
        load_config(path)
    assert str(bad.value).startswith(
        f"{path}:2:13: retry_base: a retry needs at least a second's wait; got"
    )
    assert bad.value.help is not None and "`retry_for: 0`" in bad.value.help
    assert load_config(write(tmp_path, "retry_base: 1s\n")).retry_base_seconds == 1.0


def test_keys_are_read_as_written_and_a_merge_may_give_a_key_again(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors) as unknown:
        load_config(write(tmp_path, "null: 1\nyes: 2\n"))
    told = [e.message for e in unknown.value.errors]
    assert told == ["unknown setting null", "unknown setting yes"]
    config = load_config(
        write(
            tmp_path,
            "channels:\n  hook: &hook\n    type: webhook\n    url: https://a.example\n"
            "  other:\n    <<: *hook\n    url: https://b.example\nshop:\n  1: one\n",
        )
    )
    assert config.channels["other"].options == {"url": "https://b.example"}
    assert config.shop == {"1": "one"}
    # The setting a merge gave and the file gave again is the one given again.
    places = config.places[("channels", "other", "url")]
    assert (places[1].line, places[1].column) == (7, 10)


@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        ("90", 90),
        ('"90"', 90),
        ("30s", 30),
        ("30 seconds", 30),
        ("5 min", 300),
        ("6 hours", 21600),
        ("2d", 172800),
        ("1 day", 86400),
        ("1w", 604800),
        ("2 weeks", 1209600),
    ],
)
def test_durations_are_written_as_in_the_rules_or_in_seconds(
    tmp_path: Path, written: str, seconds: float
) -> None:
    assert load_config(write(tmp_path, f"grace: {written}\n")).grace_seconds == seconds


def test_every_setting_that_cannot_be_used_is_told_in_one_run(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "timezone: Asia/Shangai\ncountry: XX\ntick_seconds: soon\ntimzone: UTC\ngrace: 6h\n",
    )
    with pytest.raises(ConfigErrors) as bad:
        load_config(path)
    assert [(e.span.line, e.code, e.message.split(":")[0]) for e in bad.value.errors] == [
        (1, "E602", "timezone"),
        (2, "E602", "country"),
        (3, "E602", "tick_seconds"),
        (4, "E601", "unknown setting timzone"),
    ]
    result = CliRunner().invoke(cli, ["check", str(tmp_path), "--config", str(path)])
    assert result.exit_code == 1
    assert result.output.count("error[E60") == 4 and "found 4 errors" in result.output


def test_a_channel_in_error_makes_no_error_of_the_channels_named(tmp_path: Path) -> None:
    text = (
        "channels:\n  mail: {type: emial, host: x}\n  hook: {type: webhook, url: https://a.test}\n"
        "default_channel: hook\ntasks_channel: hook\n"
    )
    with pytest.raises(ConfigError) as bad:  # one error, not three
        load_config(write(tmp_path, text))
    assert "emial" in bad.value.message


def test_retries_last_a_day_from_the_first_failure_and_may_also_be_counted(tmp_path: Path) -> None:
    default = load_config(write(tmp_path, "timezone: UTC\n"))
    assert (default.retry_for_seconds, default.max_attempts) == (86400.0, None)
    config = load_config(write(tmp_path, "retry_for: 12 hours\nmax_attempts: 20\n"))
    assert (config.retry_for_seconds, config.max_attempts) == (43200.0, 20)
    with pytest.raises(ConfigError, match=r":1:12: retry_for: expected seconds or a duration"):
        load_config(write(tmp_path, "retry_for: all night\n"))


@pytest.mark.parametrize(
    ("text", "message", "help"),
    [
        (
            "grace: 3 dys\n",
            "grace: expected seconds or a duration such as 30s, 5m, 6h, 1d, 1w; got `3 dys`",
            "did you mean `days`?",
        ),
        (
            "grace: yes\n",
            "grace: expected seconds or a duration such as 30s, 5m, 6h, 1d, 1w; got yes",
            None,
        ),
        (
            "timezone:\n",
            "timezone: the setting is empty",
            "a name such as Asia/Shanghai or Europe/Berlin (the default is UTC)",
        ),
        (
            "default_channel:\n",
            "default_channel: the setting is empty",
            "name a channel of `channels`, or `file` (JSON Lines on disk, the default)",
        ),
    ],
)
def test_a_setting_s_value_is_shown_as_written(
    tmp_path: Path, text: str, message: str, help: str | None
) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, text))
    assert (error.value.message, error.value.help) == (message, help)


def test_a_file_that_is_not_utf8_is_told_at_its_first_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / "nudge.yaml"
    path.write_bytes("timezone: UTC\nshop:\n  name: 小满\n".encode("gbk"))
    with pytest.raises(ConfigError) as error:
        load_config(path)
    span = error.value.span
    assert (error.value.code, error.value.message, span and (span.line, span.column)) == (
        "E600",
        "not UTF-8 text",
        (3, 10),  # GBK's first two bytes happen to read as a UTF-8 character
    )
    assert error.value.help and error.value.help.startswith("save the file as UTF-8")
    path.write_bytes("timezone: UTC\n".encode("utf-16"))
    with pytest.raises(ConfigError, match="saved as UTF-16, not UTF-8 text"):
        load_config(path)


def test_a_channel_name_longer_than_the_ledger_holds_is_refused(tmp_path: Path) -> None:
    name = "c" * 101
    with pytest.raises(ConfigError) as bad:
        load_config(write(tmp_path, f"channels:\n  {name}: {{type: file, path: o.jsonl}}\n"))
    assert bad.value.span is not None and bad.value.span.line == 2
    assert bad.value.message == "a channel's name holds at most 100 characters; this one has 101"


def test_a_bad_database_url_is_refused_before_connecting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as bad:
        load_config(write(tmp_path, "timezone: UTC\ndatabase: mysql://shop@db/shop\n"))
    assert bad.value.span is not None and (bad.value.span.line, bad.value.span.column) == (2, 11)
    assert "Nudge works with SQLite and PostgreSQL, not mysql" in bad.value.message
    # `--db` is not in the file: its error is not placed there, even where the file has one.
    path = write(tmp_path, "database: sqlite:///shop.db\n")
    with pytest.raises(ConfigError) as bad:
        load_config(path, db="shop.db")
    assert bad.value.span is None and str(bad.value).startswith("--db: not a database URL")
    assert load_config(path, db="postgres://u@h/shop").database == "postgres://u@h/shop"
    # A port that is not a number: SQLAlchemy's ValueError, not a traceback.
    with pytest.raises(ConfigError, match="--db: not a database URL: 'sqlite://:::'"):
        load_config(path, db="sqlite://:::")


def test_a_sqlite_database_in_memory_is_refused(tmp_path: Path) -> None:
    """`--db sqlite:///` (the file's name left out) is a database in memory: `nudge import`
    said "4 customers imported" of a database gone as it ended, and `simulate` found nothing."""
    for url in ("sqlite://", "sqlite:///", "sqlite:///:memory:"):
        with pytest.raises(ConfigError) as bad:
            load_config(None, db=url)
        said = f"--db: {url!r} is a database in memory, gone when the command ends"
        assert bad.value.message == said
        assert bad.value.help == "name the SQLite file after the three slashes: sqlite:///nudge.db"
    with pytest.raises(ConfigError) as bad:
        load_config(write(tmp_path, "database: sqlite:///\n"))
    assert bad.value.span is not None and bad.value.span.line == 1
    shop = tmp_path / "customers.csv"
    shop.write_text("id\nc1\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["import", "customers", str(shop), "--db", "sqlite:///"])
    assert result.exit_code == 1 and "is a database in memory" in str(result.exception)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///file::memory:?uri=true",
        "sqlite:///file::memory:?cache=shared&uri=true",
        "sqlite:///file:shop?mode=memory&uri=true",
    ],
)
def test_a_sqlite_uri_of_a_database_in_memory_is_refused(url: str) -> None:
    """SQLite's own URIs of one (SQLAlchemy's `uri=true`) were taken: gone as `sqlite://` is."""
    with pytest.raises(ConfigError) as bad:
        load_config(None, db=url)
    assert bad.value.message == f"--db: {url!r} is a database in memory, gone when the command ends"


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///file:shop.db?mode=ro&uri=true",  # a file, read only
        "sqlite:///file::memory:",  # no `uri=true`: a file of that name
        "sqlite:///relative/shop.db",
        "sqlite:////srv/shop.db",
    ],
)
def test_a_sqlite_database_on_disk_is_taken(url: str) -> None:
    assert load_config(None, db=url).database == url


def test_a_relative_sqlite_path_is_beside_the_configuration_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As `templates:` and a file channel's `path` are: a daemon started from another folder
    (by cron, say) opens the same database. `--db` is the command line's, from the current
    folder."""
    folder = tmp_path / "shop"
    folder.mkdir()
    path = folder / "nudge.yaml"
    path.write_text("database: sqlite:///data/shop.db\ntemplates: tpl/\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    config = load_config(path)
    assert config.database == f"sqlite:///{folder.resolve() / 'data' / 'shop.db'}"
    assert config.templates == folder.resolve() / "tpl"
    assert load_config(path, db="sqlite:///here.db").database == "sqlite:///here.db"
    for url in (f"sqlite:///{tmp_path / 'x.db'}", "postgresql://h/db"):
        path.write_text(f"database: '{url}'\n", encoding="utf-8")
        assert load_config(path).database == url

    # Where such a path was once taken from the current folder and a database is there, not
    # beside the file: not a new, empty one in its stead.
    (tmp_path / "old.db").write_bytes(b"")
    path.write_text("database: sqlite:///old.db\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="taken from this file's folder, where there is no such"):
        load_config(path)
    (folder / "old.db").write_bytes(b"")
    assert load_config(path).database == f"sqlite:///{folder.resolve() / 'old.db'}"
    path.write_text("database:\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="database: no URL given"):
        load_config(path)


def test_a_missing_channel_setting_is_at_the_channel_s_name(tmp_path: Path) -> None:
    path = write(tmp_path, "channels:\n  alerts:\n    type: webhook\n")
    with pytest.raises(ConfigError, match=r":2:3: channels\.alerts: `url` is required"):
        check_channels(load_config(path), environ={})


def test_every_bad_setting_of_a_channel_is_reported_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "channels:\n  mail:\n    type: email\n    from: nobody\n    port: 0\n"
        "    pasword_env: X\n    usernam_env: Y\n    password_env: NUDGE_TEST_UNSET\n",
    )
    found = [
        (error.code, error.span and error.span.line, error.message.split(": ", 1)[1])
        for error in channel_errors(load_config(path), environ={})
    ]
    assert found == [
        (
            "E601",
            6,
            "unknown setting(s) pasword_env, usernam_env (expected some of ca_file,"
            " from, host, password_env, port, security, timeout, username_env)",
        ),
        ("E603", 8, "environment variable NUDGE_TEST_UNSET (named by `password_env`) is not set"),
        ("E602", 2, "give both `username_env` and `password_env`"),
    ]
    text = "channels:\n  mail:\n    type: email\n    from: nobody\n    port: 0\n"
    found = [error.message for error in channel_errors(load_config(write(tmp_path, text)), {})]
    # A setting the channel needs is missing: what is read after it is not checked.
    assert found == ["channels.mail: `host` is required"]
    text += "    host: smtp.example.com\n"
    found = [error.message for error in channel_errors(load_config(write(tmp_path, text)), {})]
    assert found == [
        "channels.mail: `port` must be a port, a whole number from 1 to 65535; got 0",
        "channels.mail: `from` must hold an email address; got 'nobody'",
    ]
    for url in ("example.com/hook", "http://hooks:99999/x", "https://ho oks.example.com"):
        path = write(tmp_path, f"channels:\n  hook:\n    type: webhook\n    url: '{url}'\n")
        (error,) = channel_errors(load_config(path), environ={})
        assert error.message.endswith(f"must be an http:// or https:// address; got {url!r}")


def test_a_configuration_made_in_code_has_errors_without_a_place() -> None:
    config = Config(channels={"hook": Channel("hook", "webhook", {})})
    with pytest.raises(ConfigError) as bad:
        check_channels(config, environ={})
    assert bad.value.span is None and str(bad.value) == "channels.hook: `url` is required"


def test_check_reports_the_channels_and_fails_on_their_errors(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    (rules / "templates").mkdir(parents=True)
    (rules / "templates" / "hello.txt").write_text("hi", encoding="utf-8")
    (rules / "a.rules").write_text('when order.paid then message "hello"\n', encoding="utf-8")
    config = rules / "nudge.yaml"
    runner = CliRunner()

    config.write_text("channels:\n  file:\n    type: file\n    paht: out.jsonl\n")
    result = runner.invoke(cli, ["check", str(rules)])
    assert result.exit_code == 1
    assert "error[E601]: channels.file: unknown setting(s) paht" in result.output
    assert f"--> {config}:4:5" in result.output

    result = runner.invoke(cli, ["check", str(rules), "--format", "json"])
    assert result.exit_code == 1
    (found,) = json.loads(result.output)
    assert (found["code"], found["line"], found["column"]) == ("E601", 4, 5)

    # A secret's variable unset here is a warning: the rule set still checks.
    config.write_text(
        "channels:\n  hook:\n    type: webhook\n    url: http://x\n"
        "    secret_env: NUDGE_TEST_UNSET_SECRET\n"
    )
    result = runner.invoke(cli, ["check", str(rules)], env={"NUDGE_TEST_UNSET_SECRET": ""})
    assert result.exit_code == 0, result.output
    assert "warning[W603]" in result.output and f"{config}:5:17" in result.output
    # Not "all clear", which it said under the warning.
    assert result.output.endswith(f"{rules}: 1 rule, no errors, 1 warning above\n")

    # An error of the file itself: the rules are not checked without their configuration.
    config.write_text("timezone: Europe/Berln\n")
    result = runner.invoke(cli, ["check", str(rules)])
    assert result.exit_code == 1
    assert "error[E602]: timezone: `Europe/Berln` is not an IANA time zone" in result.output


def test_other_commands_show_the_error_at_its_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "timezone: UTC\ngrace: soon\n")
    with pytest.raises(SystemExit) as ended:
        main(["history", "--config", str(path), "--from", "2026-01-01", "--to", "2026-01-02"])
    assert ended.value.code == 1
    assert capsys.readouterr().err.splitlines()[:5] == [
        "error[E602]: grace: expected seconds or a duration such as 30s, 5m, 6h, 1d, 1w;"
        " got `soon`",
        f" --> {path}:2:8",
        "  |",
        "2 | grace: soon",
        "  |        ^^^^",
    ]


@pytest.mark.parametrize(
    ("channel", "message", "help"),
    [
        (
            "mail: {type: smtp}",
            "channels.mail: unknown type 'smtp' (expected one of file, email, webhook, sms)",
            "`type: email` sends through an SMTP server (`host`, `port`, `from`)",
        ),
        (
            "hook: {type: HTTPS, url: 'https://x.test'}",
            "channels.hook: unknown type 'HTTPS' (expected one of file, email, webhook, sms)",
            "`type: webhook` posts each message as JSON to a `url`",
        ),
        (
            "mail: {host: smtp.example.com}",
            "channels.mail: no `type`, and 'mail' is not the name of one (expected one of file,"
            " email, webhook, sms)",
            "`type: email` sends through an SMTP server (`host`, `port`, `from`)",
        ),
        (
            "fax: {type: fax}",
            "channels.fax: unknown type 'fax' (expected one of file, email, webhook, sms)",
            None,
        ),
    ],
)
def test_a_channel_type_given_in_other_words_is_named(
    tmp_path: Path, channel: str, message: str, help: str | None
) -> None:
    # `type: smtp` got the list of types alone, and a channel without `type` whose name is not
    # a type was said to be of an "unknown type" it was never given.
    with pytest.raises(ConfigError) as bad:
        load_config(write(tmp_path, f"channels:\n  {channel}\n"))
    assert (bad.value.message, bad.value.help) == (message, help)


def test_a_port_or_a_timeout_is_read_as_the_other_settings_are(tmp_path: Path) -> None:
    # `port: "587"` was refused as "must be a port, a whole number from 1 to 65535; got 587",
    # and a `timeout: 10s` as not a number, while `grace: 10s` and `tick_seconds: "30"` are.
    from engine.channels import open_channel

    text = (
        "channels:\n  mail: {type: email, host: h.test, from: s@h.test, port: '587',"
        " timeout: 1m}\n  hook: {type: webhook, url: 'https://h.test', timeout: '10'}\n"
    )
    config = load_config(write(tmp_path, text))
    assert channel_errors(config, environ={}) == []
    with open_channel(config.channel("mail"), tmp_path, {}) as mail:
        assert (mail.port, mail.timeout) == (587, 60.0)
    text = (
        "channels:\n  mail: {type: email, host: h.test, from: s@h.test, port: 'smtp',"
        " timeout: 0s}\n"
    )
    found = [error.message for error in channel_errors(load_config(write(tmp_path, text)), {})]
    assert found == [
        "channels.mail: `port` must be a port, a whole number from 1 to 65535; got `smtp`",
        "channels.mail: `timeout` must be a positive number of seconds or a duration such as"
        " 10s or 1m; got `0s`",
    ]


def test_a_timeout_that_is_no_duration_says_what_it_got_and_the_unit_meant(
    tmp_path: Path,
) -> None:
    # Since a channel's `timeout` takes a duration, "must be a positive number" alone misled:
    # `10 secnds` is a duration with its unit misspelt, as `grace: 10 secnds` says.
    text = "channels:\n  hook: {type: webhook, url: 'https://h.test', timeout: 10 secnds}\n"
    [error] = channel_errors(load_config(write(tmp_path, text)), {})
    assert (error.message, error.help) == (
        "channels.hook: `timeout` must be a positive number of seconds or a duration such as"
        " 10s or 1m; got `10 secnds`",
        "did you mean `seconds`?",
    )
