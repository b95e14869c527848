"""The checker: every problem of a rule set in one run, in plain words, with stable codes.

Golden files: tests/golden/errors/NAME.rules is checked as a rule set of its own and its
rendered diagnostics must equal NAME.txt. Regenerate them all with

    NUDGE_UPDATE_GOLDEN=1 python -m pytest tests/test_check.py -k golden

and read the diff.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import shutil
from pathlib import Path

import pytest
from alembic import command
from click.testing import CliRunner

from cli import cli
from engine.checking.calendar import first_day, knows
from engine.checking.check import evaluation_strata
from engine.checking.ruleset import (
    check_rule_set,
    imported_attributes,
    load_rule_set,
)
from engine.config import Channel, Config
from engine.errors import RuleError
from engine.language import ast
from engine.render import render_json, render_text
from engine.storage import db as storage_db
from engine.storage.db import open_database

GOLDEN = Path(__file__).parent / "golden" / "errors"
CONFIG = Config(country="CN", channels={n: Channel(n, n) for n in ("file", "email")})


def rule_set(tmp_path: Path, files: dict[str, str], config: Config = CONFIG):
    rules = tmp_path / "rules"
    (rules / "templates").mkdir(parents=True, exist_ok=True)
    for name in ("fit_check", "thank_you"):
        (rules / "templates" / f"{name}.txt").write_text("hi")
    for name, text in files.items():
        (rules / name).write_text(text, encoding="utf-8")
    return rules, config


def codes(tmp_path: Path, text: str, **kwargs) -> list[str]:
    rules, config = rule_set(tmp_path, {"a.rules": text})
    _, diagnostics = check_rule_set(rules, config, **kwargs)
    return [d.code for d in diagnostics]


def codes_and_lines(tmp_path: Path, text: str) -> list[tuple[str, int]]:
    rules, config = rule_set(tmp_path, {"a.rules": text})
    _, diagnostics = check_rule_set(rules, config)
    return [(d.code, d.span.line) for d in diagnostics if d.span]


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.rules")), ids=lambda p: p.stem)
def test_golden_diagnostics(tmp_path, monkeypatch, path):
    rules = tmp_path / "rules"
    rules.mkdir()
    shutil.copytree(GOLDEN / "templates", rules / "templates")
    shutil.copy(path, rules / path.name)
    monkeypatch.chdir(tmp_path)
    _, diagnostics = check_rule_set(Path("rules"), CONFIG)
    rendered = render_text(diagnostics) + "\n"
    expected = path.with_suffix(".txt")
    if os.environ.get("NUDGE_UPDATE_GOLDEN"):
        expected.write_text(rendered, encoding="utf-8")
    assert rendered == expected.read_text(encoding="utf-8")


def test_rules_are_named_and_placed_in_file_then_rule_order(tmp_path):
    rules, config = rule_set(
        tmp_path,
        {
            "b.rules": 'rule "late" when order.paid then tag "b"',
            "a.rules": '\n\nwhen order.paid then tag "a"\nrule "x" when order.paid then tag "c"',
        },
    )
    ruleset = load_rule_set(rules, config)
    assert [(r.name, r.position, r.file) for r in ruleset.rules] == [
        ("a.rules:3", 0, "a.rules"),
        ("x", 1, "a.rules"),
        ("late", 2, "b.rules"),
    ]


def test_duplicate_names_across_files(tmp_path):
    rules, config = rule_set(
        tmp_path,
        {"a.rules": 'rule "r" when a.b then tag "x"', "b.rules": 'rule "r" when a.b then tag "y"'},
    )
    with pytest.raises(RuleError) as caught:
        load_rule_set(rules, config)
    (problem,) = caught.value.diagnostics
    assert problem.code == "E202" and problem.span and problem.span.file.endswith("b.rules")


def test_event_names_close_to_known_ones_are_warnings(tmp_path):
    assert codes(tmp_path, 'when order.recieved then tag "x"') == ["W203"]
    assert codes(tmp_path, 'when subscription.renewed then tag "x"') == []
    stored = ["subscription.renewed"]
    assert codes(tmp_path, 'when subscription.renewd then tag "x"', known_events=stored) == ["W203"]


def test_a_misspelt_word_starting_a_line_keeps_the_whole_statement_before_it(tmp_path):
    # The parser knows a statement has ended only at the next word: a misspelt `rule` used to
    # drop the rule before it, and with it that rule's own problems.
    text = (
        'rule "fit check"\n  when order.recieved + 3d\n  then followup "fit_check"\n'
        'rul "two"\n  when order.received + 1d then followup "fit_check"\n'
        'when order.paid then tag "x" and\n'  # unfinished: dropped, as before
        'rul "three" when order.paid then tag "y"\n'
    )
    assert codes_and_lines(tmp_path, text) == [
        ("W203", 2),
        ("E102", 4),
        ("E135", 6),  # at the `and` that needs an action after it
        ("E102", 7),  # and the misspelt word after it, read where a statement starts
    ]
    # Only a misspelt statement word ends the statement: another word may belong to it.
    assert codes(tmp_path, 'segment "cn" = customer.country\n  equals "CN"\n') == ["E100"]


def test_a_stray_character_starting_a_line_keeps_the_whole_statement_before_it(tmp_path):
    text = (
        'rule "fit check"\n  when order.recieved + 3d\n  then tag "x"\n'
        "!oops\n"
        'when order.paid then tag "y" and\n'  # unfinished: dropped
        "  @\n"
        'when order.recieved then tag "z" !\n'  # not at a line's start: dropped, as before
        'rule "four" when order.recieved then tag "y"\n'
    )
    assert codes_and_lines(tmp_path, text) == [
        ("W203", 2),
        ("E101", 4),
        ("E101", 6),
        ("E101", 7),
        ("W203", 8),
    ]


@pytest.mark.parametrize(
    ("when", "warned"),
    [
        ("order.paid at 20:00", True),
        ("order.received + 12h at 10:00", True),  # an event from 10:00 to 12:00
        ("customer.signed_up at 10:00", True),
        ("customer.last_order + 2h at 10:00", True),
        ("order.received + 20h at 09:00", False),  # 09:00 + 20h ends on another day
        ("order.received + 1d at 09:00", False),
        ("order.received + 14h at 10:00", False),
        ("customer.birthday at 09:00", False),  # a date, not an instant
        ("every day at 09:00", False),
        ("order.paid", False),
    ],
)
def test_at_that_can_fall_before_its_event_is_warned_of(tmp_path, when, warned):
    found = codes(tmp_path, f'when {when} then tag "x"')
    assert found == (["W319"] if warned else [])


def test_what_is_named_as_a_rule_file_but_cannot_be_read_is_an_error(tmp_path):
    """A folder or a link to nowhere named `*.rules` used to be passed over in silence, its rules
    missing; a hidden one (an editor's lock file, `.#a.rules`) still is."""
    rules, config = rule_set(tmp_path, {"a.rules": 'when order.paid then tag "x"'})
    (rules / "b.rules").symlink_to(tmp_path / "gone.rules")
    (rules / "c.rules").mkdir()
    (rules / ".#a.rules").symlink_to("root@host.4242:1764000000")
    os.mkfifo(rules / "d.rules")  # not read: it would wait for a writer
    ruleset, diagnostics = check_rule_set(rules, config)
    assert ruleset is None
    assert [(d.code, d.message) for d in diagnostics] == [
        (
            "E003",
            f"cannot read `{rules / 'b.rules'}`: it is a link to `{tmp_path / 'gone.rules'}`,"
            " which does not exist",
        ),
        ("E003", f"cannot read `{rules / 'c.rules'}`: it is a folder"),
        ("E003", f"cannot read `{rules / 'd.rules'}`: not a file"),
    ]


def test_an_editor_s_backup_is_not_offered_as_the_template_meant(tmp_path):
    """A backup (`thanks.txt~`, `thanks.bak`, `thanks.txt.orig`) or a hidden file is no
    template: E206's did-you-mean offers only real ones."""
    rules, config = rule_set(tmp_path, {"a.rules": 'when order.paid then followup "thank"'})
    for backup in ("thanks.txt~", ".thank.txt.swp", "thanks.bak", "thanks.txt.orig"):
        (rules / "templates" / backup).write_text("old")
    _, diagnostics = check_rule_set(rules, config)
    folder = rules / "templates"
    assert [(d.code, d.help) for d in diagnostics] == [
        ("E206", f"a template `thank` is a file `thank.*` (any extension) in `{folder}`")
    ]


def test_a_missing_templates_folder_is_named_in_each_missing_template_s_help(tmp_path):
    """No `templates` folder beside the rules (or a file of that name): E206's help says so,
    rather than that a template is a file in a folder that is not there."""
    rules, config = rule_set(tmp_path, {"a.rules": 'when order.paid then followup "thanks"'})
    shutil.rmtree(rules / "templates")
    folder = rules / "templates"
    _, diagnostics = check_rule_set(rules, config)
    assert [(d.code, d.help) for d in diagnostics] == [
        (
            "E206",
            f"there is no templates folder `{folder}`: make it and put the template `thanks.txt`"
            " in it, or set `templates:` in nudge.yaml to the folder that holds the templates",
        )
    ]
    folder.write_text("not a folder")
    _, diagnostics = check_rule_set(rules, config)
    assert [(d.code, d.help) for d in diagnostics] == [
        (
            "E206",
            f"`{folder}` is a file: templates are files in a folder of its name, or set"
            " `templates:` in nudge.yaml to the folder that holds the templates",
        )
    ]


@pytest.mark.parametrize(
    ("promo", "backups"),
    [
        # An editor's copy in place of the extension (`thanks.bak`) or after it (`promo.txt~`).
        ("promo", {"thanks.bak": "thanks.txt", "promo.txt~": "promo.txt"}),
        # Notepad++'s backup (`thanks.txt.bak`) or a merge's (`promo.html.orig`), the extension
        # kept: the name to give keeps it too.
        ("emails/promo", {"thanks.txt.bak": "thanks.txt", "emails/promo.html.orig": "promo.html"}),
    ],
)
def test_a_template_whose_only_file_is_taken_for_a_backup_is_told_so(tmp_path, promo, backups):
    """A template's only file taken for a backup: the help names the file the merchant sees,
    and the name to give it, not only the rule `thanks.*` that it seems to follow."""
    text = f'when order.paid then followup "thanks" and message "{promo}"'
    rules, config = rule_set(tmp_path, {"a.rules": text})
    for backup in backups:
        (rules / "templates" / backup).parent.mkdir(exist_ok=True)
        (rules / "templates" / backup).write_text("the only one")
    _, diagnostics = check_rule_set(rules, config)
    assert [(d.code, d.help) for d in diagnostics] == [
        (
            "E206",
            f"`{Path(backup).name}` is taken for a copy an editor left, not a template: name the "
            f"file `{name}` (or another extension)",
        )
        for backup, name in backups.items()
    ]


def test_a_template_in_a_folder_that_a_backup_left_is_none(tmp_path):
    """A rule naming a template in `emails.bak/` is E206, the help saying why; a rule naming
    `emails/welcome` when only `emails.bak/welcome.txt` is there is told of that copy, not
    offered it as the name meant (it was: "did you mean `emails.bak/welcome`?")."""
    rules, config = rule_set(tmp_path, {})
    for copy in ("emails.bak", ".git"):
        (rules / "templates" / copy).mkdir()
        (rules / "templates" / copy / "welcome.txt").write_text("hi")
    text = 'when order.paid then message "{}"\n'
    (rules / "a.rules").write_text(
        "".join(text.format(n) for n in ("emails.bak/welcome", "emails/welcome", ".git/welcome"))
    )
    _, diagnostics = check_rule_set(rules, config)
    assert [(d.code, d.help) for d in diagnostics] == [
        (
            "E206",
            "`emails.bak` is taken for a folder that an editor or a backup left, which holds no "
            "templates: rename it to keep templates in it",
        ),
        (
            "E206",
            "`emails.bak/welcome.txt` is in a folder taken for a copy that an editor or a backup "
            "left, which holds no templates: the template is a file `emails/welcome.*`",
        ),
        (
            "E206",
            "`.git` is taken for a folder that an editor or a backup left, which holds no "
            "templates: rename it to keep templates in it",
        ),
    ]
    # The templates folder itself may be named as the merchant likes.
    rules.joinpath("templates").rename(rules / "templates.old")
    (rules / "templates.old" / "emails").mkdir()
    (rules / "templates.old" / "emails" / "welcome.txt").write_text("hi")
    (rules / "a.rules").write_text(text.format("emails/welcome"))
    moved = dataclasses.replace(config, templates=rules / "templates.old")
    assert check_rule_set(rules, moved)[1] == []


def test_once_in_a_rule_without_a_name_is_warned_of(tmp_path):
    """Its `once` is kept under FILE:LINE, which a line added above it changes (W210)."""
    text = (
        "# gifts\n"
        'when order.paid\n  once\n  then gift "mug"\n'
        'when order.paid once every 30d then tag "buyer"\n'
        'rule "named" when order.paid once then tag "first"\n'
        'when order.paid then tag "any"\n'
    )
    rules, config = rule_set(tmp_path, {"a.rules": text})
    _, diagnostics = check_rule_set(rules, config)
    assert [(d.code, d.span.line, d.span.column) for d in diagnostics] == [
        ("W210", 3, 3),
        ("W210", 5, 17),
    ]
    assert "the rule is a.rules:2, and a line added" in diagnostics[0].message


def test_a_rule_set_with_warnings_only_loads(tmp_path):
    rules, config = rule_set(tmp_path, {"a.rules": 'when order.recieved then tag "x"'})
    assert load_rule_set(rules, config).rules[0].name == "a.rules:1"


def test_a_customer_value_counted_or_in_unless_is_told_apart_from_events(tmp_path):
    text = (
        'rule "v"\n  when order.paid\n'
        "  if count(customer.orders) > 0 and sum(customer.last_order.total) > 1\n"
        "  unless customer.first_ordr within 3d\n"
        '  then tag "x"\n'
        'rule "w" when customer.last_ordr + 3d then tag "y"\n'
    )
    rules, config = rule_set(tmp_path, {"a.rules": text})
    _, diagnostics = check_rule_set(rules, config)
    assert [(d.code, d.message, d.help) for d in diagnostics] == [
        (
            "W203",
            "`customer.orders` is a value of the customer, not an event",
            "compare the value itself, such as `customer.orders > 0`; to count or add up events,"
            " name them, such as `count(order.paid)`",
        ),
        (
            "W203",
            "`customer.last_order` is a value of the customer, not an event",
            "compare the value itself, such as `customer.last_order is set`; to count or add up"
            " events, name them, such as `count(order.paid)`",
        ),
        (
            "W203",
            "`customer.first_ordr` names no event; `customer.first_order` is a value of the"
            " customer",
            "compare the value itself, such as `customer.first_order is set`; to count or add up"
            " events, name them, such as `count(order.paid)`",
        ),
        ("W203", "unknown event `customer.last_ordr`", "did you mean `customer.last_order`?"),
    ]


def test_rule_files_that_are_not_read_are_named_and_empty_rule_names_refused(tmp_path):
    rules, config = rule_set(
        tmp_path,
        {"a.rules": 'rule "" when order.paid then tag "a"\nrule " " when order.paid then tag "b"'},
    )
    (rules / "c.RULES").write_text('when order.paid then tag "c"', encoding="utf-8")
    (rules / ".#a.rules").write_text("", encoding="utf-8")
    (rules / "more").mkdir()
    (rules / "more" / "d.rules").write_text('when order.paid then tag "d"', encoding="utf-8")
    _, diagnostics = check_rule_set(rules, config)
    assert [(d.code, d.message, d.span and d.span.line) for d in diagnostics] == [
        ("W005", f"`{rules / 'c.RULES'}` is not read as a rule file", None),
        ("W005", f"`{rules / 'more' / 'd.rules'}` is not read as a rule file", None),
        ("E306", "a rule's name cannot be empty", 1),
        ("E306", "a rule's name cannot be empty", 2),
    ]
    (rules / "a.rules").unlink()
    _, diagnostics = check_rule_set(rules, config)
    assert [d.code for d in diagnostics] == ["E002", "W005", "W005"]


def test_a_misspelt_customer_date_moved_back_is_told_its_name(tmp_path):
    rules, config = rule_set(tmp_path, {"a.rules": 'when customer.birthdate - 1d then tag "x"'})
    _, diagnostics = check_rule_set(rules, config)
    assert [(d.code, d.help) for d in diagnostics] == [
        ("W203", "did you mean `customer.birthday`?"),
        ("E313", "did you mean `customer.birthday - 1d`? (a customer's date may be moved back)"),
    ]


def test_between_with_its_ends_reversed_is_refused(tmp_path):
    rule = 'when order.paid if {} then tag "x"'
    for test in (
        "order.total between 100 and 10",
        "order.total between -5 and -10",
        "customer.signed_up between 2026-05-01 and 2026-01-01",
        "customer.days_since_last_order between 90 and 30",
    ):
        assert codes(tmp_path, rule.format(test)) == ["E321"], test
    for test in ("order.total between 10 and 10", "order.total between -10 and 5"):
        assert codes(tmp_path, rule.format(test)) == [], test


def test_a_duration_compared_with_a_number_or_the_shop_s_data_gets_the_number_to_write(tmp_path):
    """The shop's data holds numbers and text, never durations: `order.delivery_days <= 3 days`
    compared the days with the microseconds of 3 days, and held for no value, without a word.
    It is E301, as a number compared with a duration was; the help gives the plain numbers, in
    days for `customer.days_since_last_order`, and written where the caret is, they check."""
    rule = 'when order.paid if {} then tag "x"'
    helps = {
        "customer.days_since_last_order > 30 days": (
            "`customer.days_since_last_order` is a number of days: write `30`"
        ),
        "customer.days_since_last_order between 30 and 60d": (
            "`customer.days_since_last_order` is a number of days: write `30 and 60`"
        ),
        "customer.days_since_last_order between 2w and 30 days": (
            "`customer.days_since_last_order` is a number of days: write `14 and 30`"
        ),
        "order.delivery_days <= 3 days": (
            "the shop's data holds numbers, not durations: write the number in the unit it "
            "counts in, such as `3` if it counts days"
        ),
        "2h < order.wait": (
            "the shop's data holds numbers, not durations: write the number in the unit it "
            "counts in, such as `2` if it counts hours"
        ),
        "order.delivery_days between 1d and 3d": (
            "the shop's data holds numbers, not durations: write the number in the unit it "
            "counts in, such as `1 and 3` if it counts days"
        ),
        "customer.orders > 2w": "write a plain number, in the unit the value counts in",
        "customer.days_since_last_order > 36h": (
            "write a plain number, in the unit the value counts in"
        ),
    }
    for test, help in helps.items():
        text = rule.format(test)
        rules, config = rule_set(tmp_path, {"a.rules": text})
        _, (problem,) = check_rule_set(rules, config)
        assert (problem.code, problem.help) == ("E301", help), test
        if "write `" in help and "such as" not in help:
            span = problem.span
            instead = help.split("`")[-2]
            mended = text[: span.column - 1] + instead + text[span.end_column - 1 :]
            assert codes(tmp_path, mended) == [], mended
    # A duration with a duration, or a point in time with a date, is no such mistake.
    assert codes(tmp_path, rule.format("3d > 2d")) == []


def test_an_amount_compared_with_weeks_written_w_is_told_it_may_mean_wan(tmp_path):
    """`order.total >= 2w`: a shop owner writes 20,000 as 2w (2万) sooner than compare an amount
    with two weeks. Where the value is an amount (a total, a sum, `customer.total_spent`,
    `customer.points`), E301's help gives the number 2w would be, which written at the caret
    checks; two weeks spelled out, or a value that is no amount, as before."""
    rule = 'when order.paid if {} then tag "x"'
    amounts = ("order.total >= 2w", "customer.total_spent >= 2w", "sum(order.paid.total) > 2w")
    for test in (*amounts, "customer.points < 2w"):
        text = rule.format(test)
        rules, config = rule_set(tmp_path, {"a.rules": text})
        _, (problem,) = check_rule_set(rules, config)
        help = "an amount is a plain number: write `20000` if `2w` means 2万"
        assert (problem.code, problem.help) == ("E301", help), test
        span = problem.span
        mended = text[: span.column - 1] + "20000" + text[span.end_column - 1 :]
        assert codes(tmp_path, mended) == [], mended
    for test in ("order.total >= 2 weeks", "order.delivery_days >= 2w", "customer.orders > 2w"):
        rules, config = rule_set(tmp_path, {"a.rules": rule.format(test)})
        _, (problem,) = check_rule_set(rules, config)
        assert problem.code == "E301" and "万" not in (problem.help or ""), test


def test_a_coupon_worth_less_than_1_in_money_is_warned_of_as_a_percentage_meant(tmp_path):
    """`worth 0.3` is valid, 0.3 off in the shop's currency, but a shop owner writing it almost
    always meant 30% off: W325, a warning (the rule set checks), its help the percentage. A
    worth of 1 or more, or a percentage, is not warned of."""
    rule = 'when order.paid then coupon "thank_you" worth {}'
    for worth, share in (("0.3", "30"), ("0.05 min 100", "5"), ("0.125", "12.5")):
        rules, config = rule_set(tmp_path, {"a.rules": rule.format(worth)})
        _, (problem,) = check_rule_set(rules, config)
        assert (problem.severity, problem.code, problem.help) == (
            "warning",
            "W325",
            f"for {share}% off, write `{share}%`; a coupon's worth without `%` is an amount of "
            "money",
        ), worth
        assert problem.span is not None and problem.span.column == 47
    for worth in ("1", "30", "0.3%", "1.5"):
        assert codes(tmp_path, rule.format(worth)) == [], worth


def test_a_period_of_zero_says_what_it_would_do_and_what_to_write(tmp_path):
    """`once every 0d`, `per 0d`, `within 0h`, `expires 0d`: each is E311 at the zero, saying
    why zero means nothing there (nothing skipped, limited, cancelled or counted; a coupon
    expired as it is issued) and the duration to write. A zero offset is the trigger itself:
    `+ 0d` checks clean."""
    rule = 'rule "r"\n  when order.paid{}\n  then coupon "thank_you" worth 10{}\n'
    cases = {
        rule.format("\n  once every 0 days", ""): ("nothing would be skipped", "`30d`"),
        rule.format("\n  unless order.returned within 0h", ""): ("nothing would cancel", "`7d`"),
        rule.format("\n  if count(order.paid within 0d) > 1", ""): ("always count 0", "`90d`"),
        rule.format("\n  if sum(order.paid.total within 0w) > 1", ""): ("count 0", "`90d`"),
        rule.format("", " expires 0d"): ("expire as it is issued", "`14d`"),
        "limit marketing to 2 per 0m\n": ("nothing would be limited", "`7d`"),
    }
    for text, (label, duration) in cases.items():
        rules, config = rule_set(tmp_path, {"a.rules": text})
        _, (problem,) = check_rule_set(rules, config)
        assert problem.code == "E311", text
        assert label in problem.label and duration in problem.help, text
        assert problem.span is not None
        line = text.split("\n")[problem.span.line - 1]
        assert line[problem.span.column - 1 : problem.span.end_column - 1].startswith("0")
    for offset in ("order.received + 0d", "customer.birthday - 0d at 09:00", "order.paid + 0m"):
        assert codes(tmp_path, f'when {offset} then tag "x"') == [], offset


def test_a_number_with_a_leading_zero_compared_with_the_shop_s_data_is_refused(tmp_path):
    """An import keeps `050` as text, a code: `order.category in [050, 051]` read the numbers 50
    and 51, which that text never equals, and checked clean. It is E324 at each such number,
    the help giving the code in quotes or the plain number; compared with a value known to be
    a number, the zero is harmless."""
    rule = 'when order.paid if {} then tag "x"'
    found = {
        "order.category in [050, 051]": ["E324", "E324"],
        "order.zip == 01234": ["E324"],
        '"007" == order.sku or order.sku == 007': ["E324"],
        "order.skus contains 007": ["E324"],
        "050 in order.codes or 051 not in order.codes": ["E324", "E324"],
        "order.zip between 01000 and 02999": ["E324", "E324"],
        # With a sign, as an import keeps `-05` as text too: it checked clean.
        "order.code == -05 or order.code in [-07, 3]": ["E324", "E324"],
        "customer.orders >= 05 and customer.orders > -05 and order.total > -0.5": [],
        "order.total > 0.5 and order.total != 0 and order.category in [10, 0]": [],
    }
    for test, expected in found.items():
        assert codes(tmp_path, rule.format(test)) == expected, test
    rules, config = rule_set(tmp_path, {"a.rules": rule.format("order.zip == 01234")})
    _, (problem,) = check_rule_set(rules, config)
    assert problem.help == (
        'write `"01234"` in quotes if it is a code (the shop\'s data keeps a number with a '
        "leading zero as text), or `1234` for the number"
    )
    assert problem.span is not None and (problem.span.column, problem.span.end_column) == (33, 38)
    assert codes(tmp_path, rule.format('order.zip == "01234"')) == []
    rules, config = rule_set(tmp_path, {"a.rules": rule.format("order.code == -05")})
    _, (problem,) = check_rule_set(rules, config)
    assert problem.help is not None and problem.help.split("`")[1::2] == ['"-05"', "-5"]


def test_a_number_in_quotes_ordering_a_value_of_unknown_kind_is_warned_of(tmp_path):
    rule = 'when order.paid if {} then tag "x"'
    for test, found in (
        ('order.total > "100"', ["W322"]),
        ('"100" <= customer.level', ["W322"]),
        ('order.total between "1" and "20"', ["W322", "W322"]),
        ('order.total > "-2.5"', ["W322"]),
    ):
        assert codes(tmp_path, rule.format(test)) == found, test
    # Text that Python reads as a number but the rules do not write as one: dropping its quotes
    # would not be valid syntax, so there is nothing to suggest.
    for text in ("1_000", "1e3", "nan", "infinity", "0x10"):
        assert codes(tmp_path, rule.format(f'order.total > "{text}"')) == [], text
    for test in ('order.total == "100"', 'customer.name > "Li"', "order.total > 100"):
        assert codes(tmp_path, rule.format(test)) == [], test


def test_event_properties_belong_to_the_trigger(tmp_path):
    assert codes(tmp_path, 'when review.posted if order.total > 3 then tag "x"') == ["E210"]
    assert codes(tmp_path, 'when review.posted if review.rating < 3 then tag "x"') == []
    assert codes(tmp_path, 'when every day if order.total > 3 then tag "x"') == ["E211"]
    assert codes(tmp_path, 'segment "s" = order.total > 3') == ["E211"]
    assert codes(tmp_path, 'when every day if customer.anything == "x" then tag "x"') == []


def test_event_names_the_triggering_events_values_whatever_its_entity(tmp_path):
    assert codes(tmp_path, 'when review.posted if event.rating < 3 then tag "x"') == []
    assert codes(tmp_path, "when customer.referred then points event.bonus * 2") == []
    assert codes(tmp_path, 'when every day if event.rating < 3 then tag "x"') == ["E211"]
    assert codes(tmp_path, "exclude if event.rating < 3") == ["E211"]
    rules, config = rule_set(tmp_path, {"a.rules": 'when review.posted if order.x then tag "x"'})
    _, diagnostics = check_rule_set(rules, config)
    assert "`review.NAME` or `event.NAME`" in (diagnostics[0].help or "")


def test_a_holiday_s_first_day_is_its_own_date_not_the_day_it_is_observed_on():
    assert first_day("US", "Independence Day", 2026) == dt.date(2026, 7, 4)  # a Saturday
    assert first_day("US", "Christmas Day", 2027) == dt.date(2027, 12, 25)
    assert first_day("CN", "中秋节", 2026) == dt.date(2026, 9, 25)
    assert first_day("CN", "Spring Festival", 2027) == dt.date(2027, 2, 6)
    assert not knows("US", "observed")


def test_holidays_in_english_and_the_countrys_language(tmp_path):
    for name in ("中秋节", "Mid-Autumn Festival", "Spring Festival", "春节"):
        assert codes(tmp_path, f'when holiday "{name}" - 1d then tag "x"') == []
    assert codes(tmp_path, 'when holiday "Mid-Autum Festival" then tag "x"') == ["E208"]
    rules, _ = rule_set(tmp_path, {"a.rules": 'when holiday "春节" then tag "x"'})
    _, diagnostics = check_rule_set(rules, Config())
    assert [d.code for d in diagnostics] == ["E209"]


def test_an_unknown_holiday_s_help_gives_the_names_of_its_stem_or_the_calendar_s(tmp_path):
    """It said only that names are spelt as the `holidays` package spells them, which a
    merchant cannot look up: `Weihnachten` is none of Germany's names, which say which day."""

    def help_for(name: str, country: str) -> str:
        config = dataclasses.replace(CONFIG, country=country)
        rules, _ = rule_set(tmp_path, {"a.rules": f'when holiday "{name}" then tag "x"'})
        (unknown,) = check_rule_set(rules, config)[1]
        assert unknown.code == "E208"
        return unknown.help or ""

    assert help_for("Weihnachten", "DE") == (
        "did you mean `Erster Weihnachtstag` or `Zweiter Weihnachtstag`?"
    )
    listed = help_for("Lunar New Year", "CN")
    assert listed.startswith("the holidays of CN's calendar, as the `holidays` package spells")
    assert "Chinese New Year (Spring Festival), " in listed and "春节" in listed
    assert "Day off" not in listed and "休息日" not in listed  # days moved, not holidays


def test_dependency_cycles_through_tags_points_and_segments(tmp_path):
    text = """
rule "a" when every day if "vip" in customer.tags then points 5
rule "b" when every day if customer in "rich" then tag "vip"
segment "rich" = customer.points > 100
rule "c" when every day if customer.tags contains "other" then tag "x"
"""
    rules, config = rule_set(tmp_path, {"a.rules": text})
    _, diagnostics = check_rule_set(rules, config)
    (cycle,) = diagnostics
    assert cycle.code == "E401" and '"a", "b"' in cycle.message and "once" in (cycle.help or "")


def test_reading_every_tag_depends_on_every_tagging_rule(tmp_path):
    text = 'rule "a" when every day if customer.tags == ["x"] then tag "y"'
    assert codes(tmp_path, text) == ["E401"]


def test_evaluation_strata_put_writers_before_readers(tmp_path):
    text = """
rule "reader" when every day if "vip" in customer.tags then message "thank_you"
rule "other" when every day then tag "new"
rule "writer" when order.paid if customer.points > 10 then tag "vip"
rule "giver" when order.paid then points 5
"""
    rules, config = rule_set(tmp_path, {"a.rules": text})
    strata = evaluation_strata(load_rule_set(rules, config))
    assert [[r.name for r in layer] for layer in strata] == [
        ["other", "giver"],
        ["writer"],
        ["reader"],
    ]


def test_an_amount_of_points_comes_after_the_rules_giving_what_it_reads(tmp_path):
    """`points 0 - customer.points` reads every rule's points as of its due time, its own
    (in rounds: not a cycle) and the earlier rules'."""
    text = """
rule "expire" when every month on 1 then points 0 - customer.points
rule "earn" when order.paid then points order.total
rule "tier" when order.paid if customer.points > 10 then tag "vip"
"""
    rules, config = rule_set(tmp_path, {"a.rules": text})
    assert check_rule_set(rules, config)[1] == []
    strata = evaluation_strata(load_rule_set(rules, config))
    assert [[r.name for r in layer] for layer in strata] == [["earn"], ["expire"], ["tier"]]


def test_amounts_reading_each_other_s_points_are_evaluated_together_not_a_cycle(tmp_path):
    """`bonus` and `expire` read the points each other gives, in their amounts only: they are
    taken in one stratum, in the order of due times. A condition on that path is E401."""
    text = """
rule "bonus" when order.paid + 1h then points customer.points / 10
rule "expire" when every month on 1 then points 0 - customer.points
rule "earn" when order.paid then points order.total
"""
    rules, config = rule_set(tmp_path, {"a.rules": text})
    assert check_rule_set(rules, config)[1] == []
    strata = evaluation_strata(load_rule_set(rules, config))
    assert [[r.name for r in layer] for layer in strata] == [["earn"], ["bonus", "expire"]]
    text += 'rule "gold" when every day if customer.points > 500 then points 0 - customer.points\n'
    rules, config = rule_set(tmp_path, {"a.rules": text})
    (cycle,) = check_rule_set(rules, config)[1]
    assert (cycle.code, cycle.span.line) == ("E401", 5)
    # Its condition reads the points that the others' amounts, reading its own, give.
    assert cycle.message == 'rules "bonus", "expire", "gold" test what each other\'s actions change'


def test_a_condition_reading_a_tag_of_a_rule_whose_amount_reads_points_is_no_cycle(tmp_path):
    """`earn`'s condition reads the tag `expire` gives, and `expire`'s amount the points `earn`
    gives: `earn` depends on `expire` acting, which does not depend on `earn` (an amount
    carries only points). Evaluated together, in the order of due times."""
    text = """
rule "expire" when every month on 1 then tag "expired" and points 0 - customer.points
rule "earn" when order.paid if "expired" not in customer.tags then points 10
"""
    rules, config = rule_set(tmp_path, {"a.rules": text})
    assert check_rule_set(rules, config)[1] == []
    strata = evaluation_strata(load_rule_set(rules, config))
    assert [[r.name for r in layer] for layer in strata] == [["expire", "earn"]]


def test_names_longer_than_the_ledger_holds_are_errors(tmp_path):
    """PostgreSQL refuses a longer value: the daemon's every tick failed on it."""
    text = (
        f'rule "{"r" * 301}" when order.paid then tag "{"t" * 201}"\n'
        f'rule "ok" when order.paid then task "call" for "{"s" * 201}"\n'
        f'rule "{"r" * 300}" when order.paid then message "thank_you" via {"c" * 101}\n'
    )
    rules, config = rule_set(tmp_path, {"a.rules": text})
    _, diagnostics = check_rule_set(rules, config)
    found = [(d.span.line, d.span.column, d.message) for d in diagnostics if d.code == "E320"]
    assert found == [  # each at the name's own opening quote
        (1, 6, "this rule name is 301 characters long; the most is 300"),
        (1, 335, "this tag is 201 characters long; the most is 200"),
        (2, 48, "this team is 201 characters long; the most is 200"),
        (3, 354, "this channel name is 101 characters long; the most is 100"),
    ]


def test_a_task_for_an_empty_team_is_an_error_at_the_team(tmp_path):
    rules, config = rule_set(tmp_path, {"a.rules": 'when order.paid then task "call" for " "'})
    _, diagnostics = check_rule_set(rules, config)
    assert [(d.code, d.message, d.span.column) for d in diagnostics] == [
        ("E306", "`for` needs a team's name", 38)
    ]


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("order.payed", "order.paid"),
        ("order.recieved", "order.received"),
        ("cart.update", "cart.updated"),
    ],
)
def test_a_misspelt_event_name_is_told_the_name_meant(tmp_path, written, meant):
    """The nearest name by difflib's ratio is `order.placed` for `order.payed`: names almost
    as near are told apart by how much of the word they begin with."""
    rules, config = rule_set(tmp_path, {"a.rules": f'rule "r" when {written} then tag "x"'})
    (warning,) = check_rule_set(rules, config)[1]
    assert (warning.code, warning.help) == ("W203", f"did you mean `{meant}`?")


@pytest.mark.parametrize(
    ("written", "meant"),
    [("ordres", "orders"), ("pionts", "points"), ("total_spnet", "total_spent")],
)
def test_a_customer_field_with_two_letters_swapped_is_told_the_field_meant(
    tmp_path, written, meant
):
    rule = f'rule "r" when order.paid if customer.{written} > 3 then tag "x"'
    rules, config = rule_set(tmp_path, {"a.rules": rule})
    (warning,) = check_rule_set(rules, config)[1]
    assert (warning.code, warning.help) == ("W204", f"did you mean `customer.{meant}`?")


def test_an_attribute_that_is_no_field_s_typo_is_not_warned_of(tmp_path):
    for attribute in ("language", "city", "ordered", "sorted"):
        rule = f'rule "r" when order.paid if customer.{attribute} == "x" then tag "x"'
        rules, config = rule_set(tmp_path, {"a.rules": rule})
        assert check_rule_set(rules, config)[1] == [], attribute


def test_folder_problems_are_diagnostics(tmp_path):
    assert [d.code for d in check_rule_set(tmp_path / "missing", CONFIG)[1]] == ["E001"]
    assert [d.code for d in check_rule_set(tmp_path, CONFIG)[1]] == ["E002"]
    # A rule file given for its folder: the help names the folder.
    (tmp_path / "main.rules").write_text('when a.b then tag "x"\n', encoding="utf-8")
    (one_file,) = check_rule_set(tmp_path / "main.rules", CONFIG)[1]
    assert (one_file.code, one_file.help) == (
        "E001",
        f"give the folder that holds it, `{tmp_path}`: every `*.rules` file of a folder is one"
        " rule set",
    )


def test_json_output_has_locations(tmp_path):
    rules, config = rule_set(tmp_path, {"a.rules": 'when order.paid then tag "x" tag "y"'})
    _, diagnostics = check_rule_set(rules, config)
    (item,) = json.loads(render_json(diagnostics))
    assert (item["code"], item["line"], item["column"]) == ("E113", 1, 30)


def test_cli_check(tmp_path):
    rules, _ = rule_set(tmp_path, {"a.rules": 'when order.paid then followup "fit_check"'})
    runner = CliRunner()
    db = f"sqlite:///{tmp_path / 'absent.db'}"
    result = runner.invoke(cli, ["check", str(rules), "--db", db])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "absent.db").exists()  # checking never creates a database
    (rules / "b.rules").write_text('when order.paid then followup "nope"')
    result = runner.invoke(cli, ["check", str(rules), "--db", db, "--format", "json"])
    assert result.exit_code == 1
    assert json.loads(result.output)[0]["code"] == "E206"


def test_cli_check_fails_on_a_template_that_is_not_valid_jinja(tmp_path):
    rules, _ = rule_set(tmp_path, {"a.rules": 'when order.paid then followup "fit_check"'})
    (rules / "templates" / "fit_check.txt").write_text("Does it fit?\n{% if %}\n")
    db = f"sqlite:///{tmp_path / 'absent.db'}"
    result = CliRunner().invoke(cli, ["check", str(rules), "--db", db, "--format", "json"])
    assert result.exit_code == 1
    (item,) = json.loads(result.output)
    assert (item["code"], item["file"], item["line"], item["column"], item["end_column"]) == (
        "E501",
        str(rules / "templates" / "fit_check.txt"),
        2,
        1,
        9,
    )
    assert item["label"] == "expected an expression, got 'end of statement block'"


def template_codes(tmp_path: Path, rules: str, templates: dict[str, str]) -> list[tuple]:
    """(code, file name, line) of each diagnostic of a rule set with these templates."""
    folder, config = rule_set(tmp_path, {"a.rules": rules})
    for name, text in templates.items():
        (folder / "templates" / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / "templates" / name).write_text(text, encoding="utf-8")
    _, diagnostics = check_rule_set(folder, config)
    return [
        (d.code, Path(d.span.file).name if d.span else None, d.span.line if d.span else None)
        for d in diagnostics
    ]


def test_templates_and_what_they_include_are_checked_once_each(tmp_path):
    """Includes, imports and extends that resolve, `ignore missing`, lists with one template
    that exists, and names computed while rendering pass; each broken file is reported once,
    however many rules send it or templates include it."""
    rules = (
        'when order.paid then followup "fit_check" and message "thank_you"\n'
        'when order.received then message "thank_you" and coupon "c" worth 5\n'
    )
    templates = {
        "fit_check.txt": '{% extends "layouts/base" %}{% block body %}Fits?{% endblock %}',
        "layouts/base.html": '{% import "macros" as m %}{% block body %}{% endblock %}'
        '{% include "partials/footer" %}',
        "macros.txt": '{% macro hi(name) %}Hi {{ name }}{% endmacro %}{% from "m2" import x %}',
        "m2.txt": "{% macro x() %}x{% endmacro %}",
        "thank_you.txt": '{% include ["promo", "partials/footer"] %}'
        '{% include "promo" ignore missing %}'
        '{% include customer.language ~ "/thanks" %}{{ customer.nickname }}',
        "partials/footer.txt": "-- {{ shop.name }}\n{% if %}",
        "c.txt": '{% include "./partials/footer" %}{% include "c" %}',
    }
    assert template_codes(tmp_path, rules, templates) == [
        ("E503", "c.txt", 1),
        ("E501", "footer.txt", 2),
    ]


def test_only_templates_that_rules_send_or_include_are_read(tmp_path):
    """A draft no rule sends may be unfinished; a template that does not exist is E206 at the
    rule that names it, and not read further."""
    templates = {
        "fit_check.txt": '{% include "partials/sig" %}',
        "partials/sig.md": "{% endif %}",
        "draft.txt": "{% if %}",
        "thank_you.txt": '{% include "draft" %}',
    }
    rules = 'when order.paid then followup "fit_check" and followup "nope"'
    assert template_codes(tmp_path, rules, templates) == [
        ("E206", "a.rules", 1),
        ("E501", "sig.md", 1),
    ]


def test_a_template_read_in_what_a_rule_sends_it_without_is_warned_of(tmp_path):
    """W506 at the template's first read of `coupon` or `event`, naming a rule that sends it
    without one: a message's, a birthday's. A template a coupon sends from an event's rule is
    given both."""
    rules = (
        'when order.paid then message "thanks" and coupon "code" worth 5\n'
        'when customer.birthday at 09:00 then coupon "gift" worth 30\n'
        'when order.received + 1d then coupon "thanks" worth 5\n'
    )
    templates = {
        "thanks.txt": "Thanks!\n{{ coupon.code }}",
        "code.txt": "{{ coupon.code }} for {{ event.total }}",
        "gift.txt": "{% if event %}{{ event.total }}{% endif %}\n{{ coupon.code }} {{ event }}",
    }
    folder, config = rule_set(tmp_path, {"a.rules": rules})
    for name, text in templates.items():
        (folder / "templates" / name).write_text(text, encoding="utf-8")
    _, diagnostics = check_rule_set(folder, config)
    found = [
        (d.code, Path(d.span.file).name, d.span.line, d.span.column, d.message, d.help)
        for d in diagnostics
        if d.span
    ]
    assert found == [
        (
            "W506",
            "gift.txt",
            2,
            22,
            'template "gift" reads `event`, but a rule sends it without one',
            f"the rule at {folder / 'a.rules'}:2:45 is triggered by a date, not an event;"
            " read `event` inside `{% if event %}`",
        ),
        (
            "W506",
            "thanks.txt",
            2,
            4,
            'template "thanks" reads `coupon`, but a rule sends it without one',
            f"the rule at {folder / 'a.rules'}:1:30 sends it as a message, without a coupon;"
            " read `coupon` inside `{% if coupon %}`",
        ),
    ]


def test_a_template_reading_what_a_coupon_or_the_shop_does_not_hold_is_warned_of(tmp_path):
    """W507 at the field: a coupon's fields are fixed, the shop's are nudge.yaml's `shop:`
    settings (and its time zone and country). A template that sets `coupon` itself reads its
    own."""
    folder, config = rule_set(tmp_path, {"a.rules": 'when order.paid then coupon "c" worth 5\n'})
    (folder / "templates" / "c.txt").write_text(
        "{{ coupon.code }} {{ coupon.min }}\n{{ coupon['expiry'] }} {{ coupon.expires[:10] }}\n"
        "{{ shop.name }} {{ shop.timezone }} {{ shop.nmae }}\n",
        encoding="utf-8",
    )
    config = dataclasses.replace(config, shop={"name": "Acme", "url": "https://acme.example"})
    _, diagnostics = check_rule_set(folder, config)
    found = [(d.code, d.span.line, d.span.column, d.message, d.help) for d in diagnostics]
    assert found == [
        (
            "W507",
            1,
            29,
            'template "c" reads `coupon.min`, which a coupon does not have',
            "a coupon has `code`, `worth`, `unit`, `min_spend`, `expires`, `expires_local`",
        ),
        (
            "W507",
            2,
            12,
            'template "c" reads `coupon.expiry`, which a coupon does not have',
            "did you mean `expires`?",
        ),
        (
            "W507",
            3,
            45,
            'template "c" reads `shop.nmae`, which `shop` does not hold',
            "did you mean `name`?",
        ),
    ]
    (folder / "templates" / "c.txt").write_text(
        "{% set coupon = {'min': 1} %}{{ coupon.min }}", encoding="utf-8"
    )
    assert check_rule_set(folder, config)[1] == []


def test_a_template_reading_a_customer_field_it_is_not_given_is_warned_of(tmp_path):
    """W507 for `customer.nmae` (close to a field), and for a metric of the rules, which a
    template is not given: each failed every message when sent, or `| default` showed its
    default to everyone. Other names are the shop's attributes (`customer.language`)."""
    folder, config = rule_set(tmp_path, {"a.rules": 'when order.paid then followup "f"\n'})
    (folder / "templates" / "f.txt").write_text(
        "Hi {{ customer.nmae | default('you') }} {{ customer.name }} {{ customer.language }}\n"
        "{{ customer['points'] }} points {{ customer.city | default('') }} {{ customer.emial }}\n",
        encoding="utf-8",
    )
    _, diagnostics = check_rule_set(folder, config)
    found = [(d.code, d.span.line, d.span.column, d.message, d.help) for d in diagnostics]
    given = "`id`, `name`, `email`, `phone`, `birthday`, `timezone`, `tags`"
    assert found == [
        (
            "W507",
            1,
            16,
            'template "f" reads `customer.nmae`, which is not a customer field',
            "did you mean `name`?",
        ),
        (
            "W507",
            2,
            14,
            'template "f" reads `customer.points`, which the rules compute but a template is not'
            " given",
            f"a template is given the customer's {given} and the attributes the customers were"
            " imported with; `points` is for the rules' conditions",
        ),
        (
            "W507",
            2,
            79,
            'template "f" reads `customer.emial`, which is not a customer field',
            "did you mean `email`?",
        ),
    ]


def test_a_stored_field_a_template_is_not_given_is_not_called_computed(tmp_path):
    # `signed_up` and `accepts_marketing` are stored with the customer, not computed: W507
    # said "which the rules compute" of them as of `points`.
    folder, config = rule_set(tmp_path, {"a.rules": 'when order.paid then followup "f"\n'})
    (folder / "templates" / "f.txt").write_text(
        "{{ customer.signed_up }} {{ customer.accepts_marketing }} {{ customer.orders }}\n",
        encoding="utf-8",
    )
    _, diagnostics = check_rule_set(folder, config)
    assert [(d.code, d.message) for d in diagnostics] == [
        (
            "W507",
            f'template "f" reads `customer.{field}`, which the rules {how} but a template'
            " is not given",
        )
        for field, how in (
            ("signed_up", "read"),
            ("accepts_marketing", "read"),
            ("orders", "compute"),
        )
    ]


def test_a_template_that_is_not_utf8_is_an_error(tmp_path):
    folder, config = rule_set(tmp_path, {"a.rules": 'when order.paid then followup "fit_check"'})
    (folder / "templates" / "fit_check.txt").write_bytes(b"Hello,\ncaf\xe9")
    _, diagnostics = check_rule_set(folder, config)
    assert [(d.code, d.message) for d in diagnostics] == [
        ("E504", 'template "fit_check" is not UTF-8 text')
    ]
    # At the byte, as a rule file's E004 is, with the rule that sends it.
    (found,) = diagnostics
    assert found.span is not None and found.span.file.endswith("fit_check.txt")
    assert (found.span.line, found.span.column, found.label) == (
        2,
        4,
        "byte 0xe9 cannot start a character here",
    )
    assert str(found.help).endswith(f"the rule at {folder / 'a.rules'}:1:31 sends it")


def test_a_rule_error_renders_without_sources_passed(tmp_path):
    rules, config = rule_set(tmp_path, {"a.rules": 'when order.paid then tag "x" if yes'})
    with pytest.raises(RuleError) as caught:
        load_rule_set(rules, config)
    text = render_text(caught.value.diagnostics)
    assert '1 | when order.paid then tag "x" if yes' in text
    assert "                           ^^ this clause comes after the actions" in text


def test_checked_rule_keeps_the_parsed_rule(tmp_path):
    rules, config = rule_set(tmp_path, {"a.rules": "when order.paid then points order.total"})
    (rule,) = load_rule_set(rules, config).rules
    assert isinstance(rule.actions[0], ast.Points)


def test_a_template_file_over_a_megabyte_is_an_error_and_not_read(tmp_path):
    # A 13 MB template took minutes to compile, at every check and when the daemon sent it.
    folder, config = rule_set(
        tmp_path,
        {"a.rules": 'when order.paid then followup "fit_check"\nwhen order.paid then tag "x"'},
    )
    templates = folder / "templates"
    (templates / "fit_check.txt").write_text('Hi {% include "terms" %}')
    (templates / "terms.txt").write_text("x" * 1_000_000)
    _, diagnostics = check_rule_set(folder, config)
    assert diagnostics == []
    (templates / "terms.txt").write_text("x" * 1_000_001)
    _, diagnostics = check_rule_set(folder, config)
    assert [(d.severity, d.code, d.message, d.label) for d in diagnostics] == [
        (
            "error",
            "E508",
            'template "terms" is too large: over 1 MB',
            f"{templates / 'terms.txt'} is over 1,000,000 bytes, and is not read",
        )
    ]
    assert str(diagnostics[0].help).startswith(
        "a template is the text of one message, a few kilobytes: put long texts and images on"
        ' the shop\'s site and link to them; included by "fit_check" at'
    )


def test_a_metric_the_customers_were_imported_with_is_no_w507(db_url, tmp_path):
    """`customer.points` was warned of as a metric a template is not given even when the shop
    imports a column `points`: a template shows that column. `check` now asks the database
    (unless none is there: then it warns), as the daemon and `simulate` do when they load."""
    folder, _ = rule_set(tmp_path, {"a.rules": 'when order.paid then followup "f"\n'})
    (folder / "templates" / "f.txt").write_text(
        "{{ customer.points }} points, {{ customer.orders }} orders", encoding="utf-8"
    )
    (tmp_path / "nudge.yaml").write_text("country: CN\n", encoding="utf-8")
    runner = CliRunner()
    check = ["check", str(folder), "--config", str(tmp_path / "nudge.yaml"), "--db", db_url]
    people = tmp_path / "customers.csv"
    metrics = ("`customer.points`", "`customer.orders`")

    def warned() -> list[str]:
        result = runner.invoke(cli, [*check, "--format", "json"])
        assert result.exit_code == 0, result.output
        return [d["message"] for d in json.loads(result.stdout) if d["code"] == "W507"]

    def reads(field: str) -> str:
        return f'template "f" reads {field}, which the rules compute but a template is not given'

    assert warned() == [reads(field) for field in metrics]  # none stored (on SQLite no file)
    people.write_text("id,name,points\nc1,Li,\n", encoding="utf-8")
    assert runner.invoke(cli, ["import", "customers", str(people), "--db", db_url]).exit_code == 0
    assert warned() == [reads(field) for field in metrics]  # imported, but no one has points
    people.write_text("id,name,points\nc1,Li,\nc2,Wang,120\n", encoding="utf-8")
    assert runner.invoke(cli, ["import", "customers", str(people), "--db", db_url]).exit_code == 0
    assert warned() == [reads("`customer.orders`")]
    engine = open_database(db_url)  # as the daemon and `simulate` ask it
    _, diagnostics = check_rule_set(folder, CONFIG, imported=imported_attributes(engine))
    # A database from before the imports recorded the names (0014), which `check` reads as
    # it is: its customers are asked.
    with engine.connect() as conn, storage_db._schema_lock(conn):
        command.downgrade(storage_db.alembic_config(conn), "0013")
    engine.dispose()
    assert [d.message for d in diagnostics] == [reads("`customer.orders`")]
    try:
        assert warned() == [reads("`customer.orders`")]
    finally:
        open_database(db_url).dispose()  # upgraded again: PostgreSQL's is the next test's
