"""Quiet hours: the fast check (zone offset per quarter hour) against the exact computation.
The cap: actions sharing a send time, decided and listed in the order of LANGUAGE.md 3.8."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.checking.ruleset import load_rule_set
from engine.config import Config
from engine.evaluation.simulate import simulate_records
from engine.importing.importers import import_customer_rows, import_event_rows
from engine.language import ast
from engine.language.source import Span
from engine.policies.timing import _moved_out_of_quiet_hours, apply_limits, cap_horizon, quiet_until
from engine.storage.db import open_database
from engine.timeutil import US, from_us, parse_moment, to_us, zone
from tests.reference.policies import send_time

SPAN = Span("policies.rules", 1, 1, 1, 2)
# Zones with clock changes at different local times and offsets of half and quarter hours.
ZONES = ["Asia/Shanghai", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe",
         "Asia/Kathmandu", "America/St_Johns", "Africa/Cairo", "UTC"]  # fmt: skip
START = to_us(dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
END = to_us(dt.datetime(2028, 1, 1, tzinfo=dt.UTC))
MINUTE_US = 60 * US


def clock(minutes: int) -> ast.ClockTime:
    return ast.ClockTime(minutes // 60, minutes % 60, SPAN)


windows = st.lists(
    st.tuples(st.integers(0, 24 * 60 - 1), st.integers(0, 24 * 60 - 1)).map(
        lambda w: ast.QuietHours(clock(w[0]), clock(w[1]), SPAN)
    ),
    min_size=1,
    max_size=3,
).map(tuple)


@settings(max_examples=400, deadline=None)
@given(
    # Whole minutes too, so that instants fall exactly on the windows' edges.
    due_us=st.integers(START, END)
    | st.integers(START // MINUTE_US, END // MINUTE_US).map(lambda m: m * MINUTE_US),
    tz=st.sampled_from(ZONES),
    quiet=windows,
)
def test_quiet_until_agrees_with_the_exact_computation(
    due_us: int, tz: str, quiet: tuple[ast.QuietHours, ...]
) -> None:
    assert quiet_until(due_us, tz, quiet) == _moved_out_of_quiet_hours(due_us, tz, quiet)


@settings(max_examples=150, deadline=None)
@given(
    end_us=st.integers(START // MINUTE_US, END // MINUTE_US).map(lambda m: m * MINUTE_US),
    zones=st.lists(st.sampled_from(ZONES), min_size=1, max_size=3, unique=True),
    quiet=windows,
)
def test_a_simulation_s_horizon_holds_every_send_time_of_what_is_due_before_its_end(
    end_us: int, zones: list[str], quiet: tuple[ast.QuietHours, ...]
) -> None:
    """`cap_horizon` is past the send time of every action due before the window's end, in
    every zone (the simulation decides the cap with what is due up to it), whatever the quiet
    windows: several, crossing midnight, chained, or covering the whole day."""
    rules = SimpleNamespace(limits=("a limit",), quiet_hours=quiet)
    horizon = cap_horizon(rules, end_us, zones)  # type: ignore[arg-type]
    due = [end_us - 1] + [end_us - step * 7 * MINUTE_US for step in range(1, 300)]
    sent = [quiet_until(due_us, tz, quiet) for due_us in due for tz in zones]
    assert max(sent) < horizon


def test_a_simulation_s_horizon_holds_a_send_time_moved_by_the_clocks_going_forward() -> None:
    """Quiet until 02:30 in New York: the night the clocks skip from 02:00 to 03:00, an action
    due at 23:00 goes out at 03:30, after a window ending at 03:10."""
    quiet = (ast.QuietHours(clock(22 * 60), clock(2 * 60 + 30), SPAN),)
    new_york = zone("America/New_York")
    due = to_us(dt.datetime(2026, 3, 7, 23, 0, tzinfo=new_york))
    end = to_us(dt.datetime(2026, 3, 8, 3, 10, tzinfo=new_york))
    sent = quiet_until(due, "America/New_York", quiet)
    assert from_us(sent, new_york) == dt.datetime(2026, 3, 8, 3, 30, tzinfo=new_york)
    rules = SimpleNamespace(limits=("a limit",), quiet_hours=quiet)
    assert cap_horizon(rules, end, ["America/New_York"]) > sent  # type: ignore[arg-type]


def test_an_action_due_in_quiet_hours_waits_for_their_end_on_the_local_clock() -> None:
    quiet = (ast.QuietHours(clock(21 * 60), clock(9 * 60), SPAN),)
    berlin = zone("Europe/Berlin")
    late = to_us(dt.datetime(2026, 3, 28, 23, 30, tzinfo=berlin))  # the night clocks go forward
    assert from_us(quiet_until(late, "Europe/Berlin", quiet), berlin) == dt.datetime(
        2026, 3, 29, 9, 0, tzinfo=berlin
    )
    noon = to_us(dt.datetime(2026, 3, 29, 12, 0, 1, tzinfo=berlin))
    assert quiet_until(noon, "Europe/Berlin", quiet) == noon
    assert quiet_until(noon - 3 * 3600 * US, "Europe/Berlin", quiet) == noon - 3 * 3600 * US


def test_quiet_hours_ending_in_the_hour_repeated_when_clocks_go_back_end_at_its_second_pass() -> (
    None
):
    """Quiet from 23:00 to 02:30 in Paris, the night of 2026-10-25 (02:00-03:00 is lived twice):
    due at 02:15 the first time, sent at the first 02:30; due at 02:15 the second time (inside
    the window all the same), at the second 02:30, fifteen minutes later, not at once (the
    engine) nor the next night (the reference evaluator, before)."""
    quiet = (ast.QuietHours(clock(23 * 60), clock(2 * 60 + 30), SPAN),)
    paris = zone("Europe/Paris")
    first = to_us(dt.datetime(2026, 10, 25, 0, 15, tzinfo=dt.UTC))  # 02:15 CEST
    second = first + 3600 * US  # 02:15 CET
    for due, sent in ((first, first + 15 * MINUTE_US), (second, second + 15 * MINUTE_US)):
        assert quiet_until(due, "Europe/Paris", quiet) == sent
        assert send_time("message", due, paris, quiet) == sent


CAP_RULES = """\
limit marketing to 3 per 1d
quiet hours 22:00 to 08:00

rule "review"
  when review.posted
  then message "hello"

rule "order"
  when order.paid
  then message "hello" and coupon "hello" worth 5%
"""


def test_the_cap_takes_actions_sent_at_one_time_in_the_order_of_rule_customer_position_due(
    db_url: str, tmp_path: Path
) -> None:
    """Everything here is sent at 08:00 in Shanghai (00:00 UTC): moved there by quiet hours, or
    due then. The cap lets c9's first three through in the order of 3.8, which is also the
    order of the output: the earlier rule before an earlier due time, the first action of
    `then` before an earlier due time, and customers in Python's order of ids ("c10" first)."""
    config = Config(timezone="Asia/Shanghai")
    (tmp_path / "rules" / "templates").mkdir(parents=True)
    (tmp_path / "rules" / "shop.rules").write_text(CAP_RULES, encoding="utf-8")
    (tmp_path / "rules" / "templates" / "hello.txt").write_text("hi", encoding="utf-8")
    engine = open_database(db_url)
    people = [{"id": c, "accepts_marketing": True} for c in ("c9", "c10")]
    assert not import_customer_rows(engine, people, config.timezone).problems
    happenings = [
        {"customer": "c9", "type": "order.paid", "at": "2026-06-10T16:30:00Z"},  # 00:30 there
        {"customer": "c9", "type": "order.paid", "at": "2026-06-11T00:00:00Z"},  # 08:00
        {"customer": "c9", "type": "order.paid", "at": "2026-06-10T14:30:00Z"},  # 22:30
        {"customer": "c9", "type": "review.posted", "at": "2026-06-10T15:00:00Z"},  # 23:00
        {"customer": "c10", "type": "review.posted", "at": "2026-06-10T15:00:00Z"},
    ]
    assert not import_event_rows(engine, happenings, config.timezone).problems
    ruleset = load_rule_set(tmp_path / "rules", config)
    start, end = parse_moment("2026-06-10", "UTC"), parse_moment("2026-06-12", "UTC")
    records = simulate_records(engine, ruleset, config, start, end)
    engine.dispose()
    assert {r["at"] for r in records} == {"2026-06-11T00:00:00Z"}
    assert [
        (r["rule"], r["customer"], r["action"], r["due"][11:16], r["reason"]) for r in records
    ] == [
        ("review", "c10", "message", "15:00", None),
        ("review", "c9", "message", "15:00", None),
        ("order", "c9", "message", "14:30", None),
        ("order", "c9", "message", "16:30", None),
        ("order", "c9", "message", "00:00", "cap"),
        ("order", "c9", "coupon", "14:30", "cap"),
        ("order", "c9", "coupon", "16:30", "cap"),
        ("order", "c9", "coupon", "00:00", "cap"),
    ]


def _fits(times: list[int], at: int, span: int, count: int) -> bool:
    """Whether every span `(t − span, t]` that holds `at`, `t` one of `times` or `at`, holds
    at most `count` of them with `at` among them."""
    with_it = [*times, at]
    ends = [t for t in with_it if at <= t < at + span]
    return all(sum(t - span < u <= t for u in with_it) <= count for t in ends)


@settings(max_examples=300, deadline=None)
@given(
    sent=st.lists(st.integers(0, 40), max_size=8),
    late=st.lists(st.integers(0, 40), min_size=1, max_size=6),
    count=st.integers(1, 3),
    span=st.integers(1, 12),
)
def test_late_actions_are_sent_only_where_no_span_then_holds_more_than_the_cap(
    sent: list[int], late: list[int], count: int, span: int
) -> None:
    """Actions of late events come after the ones sent later than them were decided. Decided
    on both sides, one is sent only where every span of the limit that holds it, ending at it
    or at one sent after it, then holds no more than the cap; each one sent counts for the
    next."""
    limit = ast.Limit(count, ast.Duration(span, "m", SPAN), SPAN)  # times in minutes
    waiting = [(at * MINUTE_US, 0, "c1") for at in sorted(late)]
    kept = [t * MINUTE_US for t in sent]
    verdicts = apply_limits(waiting, [limit], {"c1": list(kept)}, both_sides=True)
    for (at_us, _, _), verdict in zip(waiting, verdicts, strict=True):
        assert verdict is _fits(kept, at_us, span * MINUTE_US, count)
        if verdict:
            kept.append(at_us)
