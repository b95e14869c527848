"""Quiet hours: the fast check (zone offset per quarter hour) against the exact computation."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from engine import ast
from engine.policies import _moved_out_of_quiet_hours, quiet_until
from engine.source import Span
from engine.timeutil import US, from_us, to_us, zone

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
