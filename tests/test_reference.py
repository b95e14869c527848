"""The reference evaluator's own tests: the corners the scenario files do not reach.

Rule sets are assembled straight from the parser, without the checker, so that the oracle is
tested independently of the engine's own stages.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from engine.config import Config, Rfm
from engine.language import ast
from engine.language.parse import parse_text
from engine.timeutil import to_us
from tests.reference.conditions import Instant, compare
from tests.reference.evaluator import simulate
from tests.reference.policies import send_time
from tests.reference.shop import Customer, Event, Ledger, RecordedAction, RecordedOccurrence, Shop
from tests.reference.triggers import first_day_of_holiday

UTC = ZoneInfo("UTC")
NEW_YORK = ZoneInfo("America/New_York")


def us(text: str) -> int:
    return to_us(dt.datetime.fromisoformat(text))


def rule_set(text: str) -> ast.RuleSet:
    """One file, `t.rules`; unnamed rules are named `t.rules:LINE`."""
    parsed = parse_text(text, "t.rules")
    rules = [s for s in parsed.statements if isinstance(s, ast.Rule)]
    return ast.RuleSet(
        rules=tuple(
            ast.CheckedRule(rule.name or f"t.rules:{rule.span.line}", index, "t.rules", rule)
            for index, rule in enumerate(rules)
        ),
        segments={s.name: s for s in parsed.statements if isinstance(s, ast.Segment)},
        limits=tuple(s for s in parsed.statements if isinstance(s, ast.Limit)),
        quiet_hours=tuple(s for s in parsed.statements if isinstance(s, ast.QuietHours)),
        excludes=tuple(s for s in parsed.statements if isinstance(s, ast.Exclude)),
        files=(parsed,),
    )


def run(text: str, shop: Shop, start: str, end: str, **options: object) -> list[dict]:
    ledger = options.pop("ledger", None)
    config = Config(**options)  # type: ignore[arg-type]
    return simulate(rule_set(text), shop, config, us(start), us(end), ledger)  # type: ignore[arg-type]


# --- comparisons --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "left", "right", "expected"),
    [
        ("==", None, 1, False),
        ("!=", None, 1, False),
        ("<", 1, None, False),
        ("in", None, ("a",), False),
        ("not in", None, ("a",), False),
        ("contains", None, "a", False),
        ("==", 1, 1.0, True),
        ("==", True, 1, False),  # yes is not the number 1
        ("!=", "1", 1, False),  # text and number do not compare
        ("<", "a", 1, False),
        ("<", "a", "b", True),
        ("contains", "Li Wei", "Li", True),
        ("contains", "Li Wei", "li", False),
        ("contains", frozenset({"vip"}), "vip", True),
        ("contains", ("shoes", "bags"), "bag", False),
        ("in", "shoes", ("shoes", "bags"), True),
        ("not in", "hats", ("shoes", "bags"), True),
        ("not in", "hats", 3, False),
        ("in", "oe", "shoes", True),
        ("<", Instant(1), Instant(2), True),
        ("<", dt.timedelta(hours=1), dt.timedelta(days=1), True),
        ("in", 3, "a3b", True),  # a number looked for in text as its text
        ("in", 150.0, "x150y", True),
        ("in", True, "it is true", True),
        ("in", True, (1,), False),  # in a list, only among its own kind
        ("in", 1, (True,), False),
        ("<", "1995-04-01", dt.date(2000, 1, 1), True),  # a birthday as ISO text
        (">", dt.date(2000, 1, 1), "1995-04-01", True),
        ("<", "02-29", dt.date(2000, 1, 1), False),  # without a year: not known
        (">", dt.date(2000, 1, 1), "02-29", False),
    ],
)
def test_compare(op: str, left: object, right: object, expected: bool) -> None:
    assert compare(op, left, right, UTC) is expected


def test_a_date_compares_with_an_instant_as_local_midnight() -> None:
    midnight = Instant(us("2026-06-01T00:00:00-04:00"))
    assert compare("==", midnight, dt.date(2026, 6, 1), NEW_YORK)
    assert compare("<", Instant(midnight.us - 1), dt.date(2026, 6, 1), NEW_YORK)
    assert not compare("==", midnight, dt.date(2026, 6, 1), UTC)


# --- holidays -----------------------------------------------------------------------------------


def test_first_day_of_a_holiday_in_either_language() -> None:
    assert first_day_of_holiday("CN", "春节", 2026) == dt.date(2026, 2, 17)
    assert first_day_of_holiday("CN", "Chinese New Year (Spring Festival)", 2026) == dt.date(
        2026, 2, 17
    )
    assert first_day_of_holiday("CN", "国庆节", 2027) == dt.date(2027, 10, 1)
    assert first_day_of_holiday("US", "Thanksgiving Day", 2026) == dt.date(2026, 11, 26)
    assert first_day_of_holiday("CN", "Thanksgiving Day", 2026) is None
    assert first_day_of_holiday(None, "春节", 2026) is None


# --- quiet hours --------------------------------------------------------------------------------


def quiet(text: str) -> tuple[ast.QuietHours, ...]:
    return rule_set(text).quiet_hours


def test_quiet_hours_end_is_found_on_the_local_calendar_across_dst() -> None:
    window = quiet("quiet hours 01:00 to 03:00")
    # 01:30 EST on the day clocks go forward; 03:00 that day is 07:00Z, 1.5 hours later
    due = us("2026-03-08T01:30:00-05:00")
    assert send_time("message", due, NEW_YORK, window) == us("2026-03-08T03:00:00-04:00")
    assert send_time("task", due, NEW_YORK, window) == due


def test_an_empty_quiet_window_moves_nothing() -> None:
    due = us("2026-06-01T10:00:00Z")
    assert send_time("followup", due, UTC, quiet("quiet hours 10:00 to 10:00")) == due


# --- occurrences, once, ledger ------------------------------------------------------------------


def test_once_every_counts_what_the_ledger_recorded_before_the_start() -> None:
    shop = Shop(
        customers=(Customer("c1"),),
        events=(Event("e1", "c1", "review.posted", us("2026-06-01T06:00:00Z")),),
    )
    text = 'rule "r" when review.posted once every 1d then task "t"'
    before = Ledger(occurrences=(RecordedOccurrence("r", "c1", us("2026-05-31T12:00:00Z")),))
    long_before = Ledger(occurrences=(RecordedOccurrence("r", "c1", us("2026-05-31T06:00:00Z")),))
    start, end = "2026-06-01T00:00:00Z", "2026-06-02T00:00:00Z"
    assert run(text, shop, start, end, ledger=before) == []
    assert len(run(text, shop, start, end, ledger=long_before)) == 1
    assert len(run(text, shop, start, end)) == 1


def test_points_from_the_ledger_count_towards_the_balance() -> None:
    shop = Shop(customers=(Customer("c1"),))
    text = 'rule "rich" when every day at 12:00 if customer.points >= 100 then task "t"'
    given = [("2026-05-01T00:00:00Z", 60), ("2026-05-02T00:00:00Z", 40)]
    ledger = Ledger(
        actions=tuple(
            RecordedAction(0, "c1", "points", 0, us(at), us(at), "sent", amount=amount)
            for at, amount in given
        )
    )
    records = run(text, shop, "2026-06-01T00:00:00Z", "2026-06-03T00:00:00Z", ledger=ledger)
    assert [r["due"] for r in records] == ["2026-06-01T12:00:00Z", "2026-06-02T12:00:00Z"]
    assert run(text, shop, "2026-06-01T00:00:00Z", "2026-06-03T00:00:00Z") == []


def test_points_of_an_unset_amount_are_zero() -> None:
    shop = Shop(
        customers=(Customer("c1"),),
        events=(
            Event("e1", "c1", "order.paid", us("2026-06-01T10:00:00Z")),
            Event("e2", "c1", "order.paid", us("2026-06-01T11:00:00Z"), {"total": 5}),
        ),
    )
    text = """
    when order.paid then points order.total
    when order.paid + 1h if customer.points == 5 then task "five"
    """
    records = run(text, shop, "2026-06-01T00:00:00Z", "2026-06-02T00:00:00Z")
    assert [(r["action"], r.get("amount"), r["due"]) for r in records] == [
        ("points", 0, "2026-06-01T10:00:00Z"),
        ("points", 5, "2026-06-01T11:00:00Z"),
        ("task", None, "2026-06-01T12:00:00Z"),
    ]


def test_rfm_uses_the_configured_thresholds() -> None:
    shop = Shop(
        customers=(Customer("c1"),),
        events=(Event("e1", "c1", "order.paid", us("2026-05-01T00:00:00Z"), {"total": 50}),),
    )
    text = 'when on 2026-06-01 if customer.rfm == "455" then task "t"'
    rfm = Rfm(recency_days=(10, 40, 50, 60), frequency=(0, 0, 0, 1), monetary=(1, 2, 3, 50))
    assert len(run(text, shop, "2026-06-01T00:00:00Z", "2026-06-02T00:00:00Z", rfm=rfm)) == 1
    assert run(text, shop, "2026-06-01T00:00:00Z", "2026-06-02T00:00:00Z") == []


def test_the_last_order_replacing_order_must_be_at_or_before_the_due_time() -> None:
    orders = [
        Event(f"o{i}", "c1", "order.paid", us(at), {"total": 1})
        for i, at in enumerate(["2026-06-01T10:00:00Z", "2026-06-03T09:59:59Z"])
    ]
    shop = Shop(customers=(Customer("c1"),), events=tuple(orders))
    text = 'when customer.last_order + 2d then task "t"'
    records = run(text, shop, "2026-06-01T00:00:00Z", "2026-07-01T00:00:00Z")
    assert [r["due"] for r in records] == ["2026-06-05T09:59:59Z"]


def test_a_timestamp_offset_is_elapsed_time_and_a_date_offset_calendar_days() -> None:
    shop = Shop(
        customers=(
            Customer(
                "c1",
                birthday="03-09",
                timezone="America/New_York",
                signed_up_us=us("2026-03-07T12:00:00-05:00"),
            ),
        )
    )
    text = """
    rule "signed" when customer.signed_up + 1w then task "t"
    rule "birthday" when customer.birthday - 1d then task "t"
    """
    records = run(text, shop, "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z")
    assert [(r["rule"], r["due"]) for r in records] == [
        ("birthday", "2026-03-08T05:00:00Z"),  # 00:00 EST on 03-08
        ("signed", "2026-03-14T17:00:00Z"),  # 168 hours later: 13:00 EDT
    ]
