"""Quiet hours and `limit`, the shop-wide policies (LANGUAGE.md 3.8) that depend on the order in
which actions are sent: they run over the actions due, in Python, after consent and `exclude`
(`engine.policies.consent`).
"""

from __future__ import annotations

import datetime as dt
import functools
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from zoneinfo import ZoneInfo

from engine.evaluation.records import AT, CUSTOMER, Row
from engine.language import ast
from engine.timeutil import DAY_US, US, from_us, local_wall, to_us, zone

QUARTER_US = 15 * 60 * US


def quiet_until(due_us: int, tz: str, windows: tuple[ast.QuietHours, ...]) -> int:
    """The send time of a customer-facing action due at `due_us`: moved to the end of a quiet
    window `[A, B)` (customer's local time; may cross midnight) when it falls inside one."""
    if not windows or not _in_quiet_hours(due_us, tz, windows):
        return due_us
    return _moved_out_of_quiet_hours(due_us, tz, windows)


# The longest time the clocks have skipped at once (double summer time); most skip an hour.
_SKIPPED_AT_MOST = 2 * 3600 * US


def cap_horizon(ruleset: ast.RuleSet, end_us: int, zones: Sequence[str]) -> int:
    """Where occurrences stop being due whose actions may be sent, after quiet hours, before or
    with the last of those due before `end_us`, in any of the customers' `zones`: a simulation
    or an explanation of `[start, end_us)` evaluates those too, so that `limit` decides its own
    as the daemon does, and lists only its own.

    Each move of `quiet_until` stays within quiet hours, so it never passes the first instant
    out of them: the send time of an action due just before `end_us`, when it is out of quiet
    hours, is the latest of all those due before, but for a window's end that the clocks skip
    (02:30 the night they go forward is 03:30: two hours at most are covered past `end_us`).
    Where windows leave no such instant (quiet hours covering the whole day, which `check`
    refuses, or leaving open only an hour the clocks skip that night), each of the moves is at
    most a day and an hour."""
    windows = ruleset.quiet_hours
    if not ruleset.limits or not windows:
        return end_us
    latest = end_us - 1 + _SKIPPED_AT_MOST
    for tz in zones:
        sent = quiet_until(end_us - 1, tz, windows)
        if _in_quiet_hours(sent, tz, windows):
            sent = end_us + (len(windows) + 1) * (DAY_US + 3600 * US)
        latest = max(latest, sent)
    return latest + 1  # an occurrence due at the latest send time ties with it


def _in_quiet_hours(at_us: int, tz: str, windows: tuple[ast.QuietHours, ...]) -> bool:
    """Whether `at_us` falls in a quiet window, from the zone's offset alone (cached per quarter
    of an hour: most actions are sent when they are due, and this is all they cost)."""
    clock = (at_us + _offset_us(at_us // QUARTER_US, tz)) % DAY_US
    for window in windows:
        start, end = _clock_us(window.start), _clock_us(window.end)
        if start < end and start <= clock < end:
            return True
        if start > end and (clock >= start or clock < end):
            return True
    return False


def _clock_us(clock: ast.ClockTime) -> int:
    return (clock.hour * 60 + clock.minute) * 60 * US


@functools.lru_cache(maxsize=65536)
def _offset_us(quarter: int, tz: str) -> int:
    """The zone's UTC offset during a quarter of an hour (UTC). Offsets and their changes fall
    on quarter hours, so it is the same all through one."""
    offset = from_us(quarter * QUARTER_US, zone(tz)).utcoffset()
    assert offset is not None
    return (offset.days * 86_400 + offset.seconds) * US


@functools.lru_cache(maxsize=65536)
def _moved_out_of_quiet_hours(due_us: int, tz: str, windows: tuple[ast.QuietHours, ...]) -> int:
    """Cached: occurrences of calendar triggers share their due times by the thousand."""
    at = due_us
    for _ in range(len(windows) + 1):  # windows may chain: the end of one inside another
        moved = _quiet_once(at, tz, windows)
        if moved == at:
            return at
        at = moved
    return at


def _quiet_once(at_us: int, tz: str, windows: Sequence[ast.QuietHours]) -> int:
    tzinfo = zone(tz)
    local = from_us(at_us, tzinfo)
    clock, day = local.time().replace(tzinfo=None), local.date()
    for window in windows:
        start, end = window.start.time, window.end.time
        if start == end:
            continue
        if start < end:
            if start <= clock < end:
                return _end_after(at_us, day, end, tzinfo)
        elif clock >= start:
            return _end_after(at_us, day + dt.timedelta(days=1), end, tzinfo)
        elif clock < end:
            return _end_after(at_us, day, end, tzinfo)
    return at_us


def _end_after(at_us: int, day: dt.date, end: dt.time, tzinfo: ZoneInfo) -> int:
    """The instant after `at_us` at which the clock reads a quiet window's `end` on `day`: the
    second of the two on the night the clocks go back, when `at_us` is in the repeated hour
    after the first (02:15 the second time, a window ending at 02:30: 15 minutes later)."""
    first = local_wall(day, end, tzinfo)
    if first > at_us:
        return first
    return max(at_us, to_us(dt.datetime.combine(day, end).replace(tzinfo=tzinfo, fold=1)))


def apply_limits(
    waiting: Sequence[Row],
    limits: Sequence[ast.Limit],
    sent_before: dict[str, list[int]],
    decide_before_us: int | None = None,
    both_sides: bool = False,
) -> list[bool | None]:
    """The cap's verdict on each waiting marketing action: whether it is sent, or `None` for
    those at or after `decide_before_us`, which the daemon decides later.

    `waiting` comes in order of send time with the tie-breaks of 3.8, each item with its send
    time and customer where action rows hold them (`engine.evaluation.records`). `sent_before`
    holds, per customer, the send times of marketing actions already recorded as sent. An action is
    suppressed when N were sent at times in `(at − D, at]`; with `both_sides` (the actions of
    late events, `sent_before` holding those sent after them too), also when sending it would
    make N + 1 in a span of D that ends at one sent later."""
    spans = [(limit.per.seconds * US, limit.count) for limit in limits]
    history = {customer: sorted(times) for customer, times in sent_before.items()}
    verdicts: list[bool | None] = []
    for item in waiting:
        at_us = item[AT]
        if decide_before_us is not None and at_us >= decide_before_us:
            verdicts.extend([None] * (len(waiting) - len(verdicts)))  # the rest is later still
            break
        times = history.get(item[CUSTOMER])
        if times is None:
            times = history[item[CUSTOMER]] = []
        upto = bisect_right(times, at_us)
        sent = True
        for span_us, count in spans:
            if upto - bisect_right(times, at_us - span_us, 0, upto) >= count or (
                both_sides and _full_after(times, upto, at_us, span_us, count)
            ):
                sent = False
                break
        if sent:
            times.insert(upto, at_us)  # where `insort` would put it
        verdicts.append(sent)
    return verdicts


def _full_after(times: list[int], upto: int, at_us: int, span_us: int, count: int) -> bool:
    """Whether a span of `span_us` ending at one of `times` (in order) after `at_us`, and
    holding it, already holds `count` of them: `times[upto:]` are those after it."""
    for i in range(upto, bisect_left(times, at_us + span_us, upto)):
        if bisect_right(times, times[i]) - bisect_right(times, times[i] - span_us) >= count:
            return True
    return False
