"""Occurrences and due times of each trigger kind (LANGUAGE.md 3.2), one customer at a time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

from engine.config import Config
from engine.language import ast
from engine.timeutil import US, local_date, local_wall, zone
from tests.reference.shop import Customer, Event

MIDNIGHT = dt.time(0, 0)


@dataclass(frozen=True)
class Occurrence:
    """One occurrence of a rule for a customer. `key` tells occurrences of the same rule and
    customer apart (event key, year, slot date, timestamp value); `event` is the triggering
    event of an event trigger."""

    rule: ast.CheckedRule
    customer: Customer
    key: str
    due_us: int
    event: Event | None = None


def customer_zone(customer: Customer, config: Config) -> ZoneInfo:
    return zone(customer.timezone or config.timezone)


def occurrences(
    rule: ast.CheckedRule,
    customer: Customer,
    events: list[Event],
    config: Config,
    start_us: int,
    end_us: int,
) -> Iterator[Occurrence]:
    """The rule's occurrences for `customer` whose due time is in [start_us, end_us)."""
    tz = customer_zone(customer, config)
    trigger = rule.when.trigger
    clock = rule.when.at
    for key, due, event in _all(trigger, clock, customer, events, config, tz, start_us, end_us):
        if start_us <= due < end_us:
            yield Occurrence(rule, customer, key, due, event)


def _all(
    trigger: ast.Trigger,
    clock: ast.ClockTime | None,
    customer: Customer,
    events: list[Event],
    config: Config,
    tz: ZoneInfo,
    start_us: int,
    end_us: int,
) -> Iterator[tuple[str, int, Event | None]]:
    match trigger:
        case ast.EventTrigger():
            for event in events:
                due = _at(event.at_us + _shift(trigger.offset), clock, tz)
                if event.type == trigger.event and event.at_us <= due:  # not due before it
                    yield event.key, due, event
        case ast.CustomerTrigger() if trigger.name in ast.CUSTOMER_DATE_FIELDS:
            birthday = customer.birthday
            if birthday is None:
                return
            month, day_of_month = int(birthday[-5:-3]), int(birthday[-2:])
            days = _days(trigger.offset)
            for year in _years(start_us, end_us, tz, days):
                date = _anniversary(year, month, day_of_month) + dt.timedelta(days=days)
                yield str(year), local_wall(date, _clock(clock), tz), None
        case ast.CustomerTrigger():
            yield from _timestamp_values(trigger.name, customer, events, trigger.offset, clock, tz)
        case ast.HolidayTrigger():
            days = _days(trigger.offset)
            for year in _years(start_us, end_us, tz, days):
                first = first_day_of_holiday(config.country, trigger.name, year)
                if first is not None:
                    date = first + dt.timedelta(days=days)
                    yield str(year), local_wall(date, _clock(clock), tz), None
        case ast.ScheduleTrigger():
            day = local_date(start_us, tz) - dt.timedelta(days=1)
            last = local_date(end_us, tz) + dt.timedelta(days=1)
            while day <= last:
                if _is_slot(trigger, day):
                    yield day.isoformat(), local_wall(day, _clock(clock), tz), None
                day += dt.timedelta(days=1)
        case ast.DateTrigger():
            yield trigger.date.isoformat(), local_wall(trigger.date, _clock(clock), tz), None


def _timestamp_values(
    name: str,
    customer: Customer,
    events: list[Event],
    offset: ast.Offset | None,
    clock: ast.ClockTime | None,
    tz: ZoneInfo,
) -> Iterator[tuple[str, int, None]]:
    """signed_up, first_order, last_order: one occurrence per value of the timestamp.

    A last_order occurrence lives only while its value stands: an order at a later instant at
    or before its due time replaces it. Orders at the same instant are one value."""
    if name == "signed_up":
        values = [] if customer.signed_up_us is None else [customer.signed_up_us]
    else:
        values = sorted({e.at_us for e in events if e.type == "order.paid"})
        if name == "first_order":
            values = values[:1]
    for index, value in enumerate(values):
        due = _at(value + _shift(offset), clock, tz)
        replaced = index + 1 < len(values) and values[index + 1] <= due
        if not replaced and value <= due:  # `at` may put the due time before the value
            yield str(value), due, None


def _shift(offset: ast.Offset | None) -> int:
    """An offset as exact elapsed microseconds."""
    return 0 if offset is None else offset.seconds * US


def _days(offset: ast.Offset | None) -> int:
    """A customer-date or holiday offset in calendar days (whole days or weeks)."""
    if offset is None:
        return 0
    days = offset.duration.whole_days
    if days is None:
        raise ValueError("the offset of a date trigger must be whole days or weeks")
    return offset.sign * days


def _clock(clock: ast.ClockTime | None) -> dt.time:
    return MIDNIGHT if clock is None else clock.time


def _at(moment_us: int, clock: ast.ClockTime | None, tz: ZoneInfo) -> int:
    """`at HH:MM`: HH:MM on the local day on which `moment_us` falls."""
    if clock is None:
        return moment_us
    return local_wall(local_date(moment_us, tz), clock.time, tz)


def _years(start_us: int, end_us: int, tz: ZoneInfo, days: int) -> range:
    """Every year whose yearly occurrence, moved by `days`, could fall in the window."""
    margin = abs(days) // 365 + 1
    return range(local_date(start_us, tz).year - margin, local_date(end_us, tz).year + margin + 1)


def _anniversary(year: int, month: int, day: int) -> dt.date:
    """The date in `year`; 29 February is 28 February in other years."""
    try:
        return dt.date(year, month, day)
    except ValueError:
        return dt.date(year, month, day - 1)


def _is_slot(trigger: ast.ScheduleTrigger, day: dt.date) -> bool:
    if trigger.every == "day":
        return True
    if trigger.every == "week":
        return day.weekday() == trigger.weekday
    return day.day == trigger.day_of_month


@lru_cache(maxsize=256)
def first_day_of_holiday(country: str | None, name: str, year: int) -> dt.date | None:
    """The first date in `year` whose holiday names include `name`, spelled in English or in
    the country's own language as the `holidays` package spells them."""
    if country is None:
        return None
    calendar = holidays.country_holidays(country, years=year)
    languages = {calendar.default_language}
    if "en_US" in calendar.supported_languages:
        languages.add("en_US")
    dates = []
    for language in languages:
        named = holidays.country_holidays(country, years=year, language=language)
        dates += [day for day, names in named.items() if name in names.split("; ")]
    return min(dates, default=None)
