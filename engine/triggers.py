"""Triggers → the occurrences due in a window, written to the `candidates` scratch table.

Each trigger kind of LANGUAGE.md 3.2 has its own source of occurrences. Where the due time is
plain arithmetic on a stored instant (an event plus a delay), one INSERT ... SELECT finds every
occurrence for all customers. Where local calendar time matters (`at HH:MM`, birthdays,
holidays, schedules, dates), SQL narrows the rows to those that can fall in the window and
Python computes each due time exactly with zoneinfo, so the work grows with the occurrences due,
never with the customers or the history stored. Calendar triggers compute their slots once per
time zone and join them to the customers of that zone in SQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from engine import ast
from engine.calendar import first_day
from engine.scratch import candidates, slots
from engine.storage.tables import customers, events
from engine.timeutil import DAY_US, US, local_date, local_wall, zone

MIDNIGHT = dt.time(0, 0)
# A local calendar day is at most 26 hours away from any instant on it, whatever the zone.
SLACK_US = 2 * DAY_US
BATCH = 5000
NO_EVENT = sa.cast(sa.null(), sa.BigInteger)


@dataclass(frozen=True)
class Window:
    start_us: int
    end_us: int


def customer_zone(shop_tz: str) -> sa.ColumnElement[str]:
    return sa.func.coalesce(customers.c.timezone, shop_tz)


def local_due(instant_us: int, tz: str, at: ast.ClockTime | None) -> int:
    """`at HH:MM` on the local day on which `instant_us` falls; the instant itself without."""
    if at is None:
        return instant_us
    tzinfo = zone(tz)
    return local_wall(local_date(instant_us, tzinfo), at.time, tzinfo)


def _whole_days(offset: ast.Offset | None) -> int:
    if offset is None:
        return 0
    days = offset.duration.whole_days
    assert days is not None, "the checker allows only whole days here"
    return offset.sign * days


def _insert(conn: Connection, rows: Iterable[dict[str, Any]]) -> None:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH:
            conn.execute(candidates.insert(), batch)
            batch = []
    if batch:
        conn.execute(candidates.insert(), batch)


def fill(
    conn: Connection,
    index: int,
    rule: ast.CheckedRule,
    window: Window,
    shop_tz: str,
    country: str | None,
) -> None:
    """Write every occurrence of `rule` due in `window` to the candidates table."""
    trigger, at = rule.when.trigger, rule.when.at
    match trigger:
        case ast.EventTrigger():
            offset = trigger.offset.seconds if trigger.offset else 0
            _instants(conn, index, window, shop_tz, at, offset, _event_source(trigger.event))
        case ast.CustomerTrigger(name="birthday"):
            _birthdays(conn, index, window, shop_tz, at, _whole_days(trigger.offset))
        case ast.CustomerTrigger(name="signed_up"):
            offset = trigger.offset.seconds if trigger.offset else 0
            _instants(conn, index, window, shop_tz, at, offset, _signed_up_source())
        case ast.CustomerTrigger(name="first_order" | "last_order"):
            offset = trigger.offset.seconds if trigger.offset else 0
            _instants(conn, index, window, shop_tz, at, offset, _order_value_source())
        case ast.HolidayTrigger():
            if country is None:
                raise ValueError("holiday triggers need a country")  # the checker says so
            days = _whole_days(trigger.offset)
            name = trigger.name

            def holiday_days(first: dt.date, last: dt.date) -> Iterator[tuple[dt.date, str]]:
                for year in range(first.year - 1, last.year + 2):
                    day = first_day(country, name, year)
                    if day is not None:
                        yield day + dt.timedelta(days=days), str(year)

            _calendar(conn, index, window, shop_tz, at, holiday_days)
        case ast.ScheduleTrigger():
            _calendar(conn, index, window, shop_tz, at, _schedule_days(trigger))
        case ast.DateTrigger(date=date):
            _calendar(
                conn,
                index,
                window,
                shop_tz,
                at,
                lambda first, last: iter([(date, date.isoformat())]),
            )
        case _:
            raise ValueError(f"no occurrences for trigger {trigger!r}")  # the checker prevents it


# -- instants: events, signed_up, first/last order --------------------------------------------


@dataclass(frozen=True)
class _Source:
    """Rows of (customer_id, occurrence_key, instant, event_pk) from which occurrences come."""

    select: sa.Select[Any]
    instant: sa.ColumnElement[int]


def _event_source(event_type: str) -> _Source:
    select = sa.select(
        events.c.customer_id,
        events.c.key.label("okey"),
        events.c.at_us.label("instant"),
        events.c.pk.label("event_pk"),
    ).where(events.c.type == event_type)
    return _Source(select, events.c.at_us)


def _signed_up_source() -> _Source:
    instant = customers.c.signed_up_us
    select = sa.select(
        customers.c.id.label("customer_id"),
        sa.cast(instant, sa.String).label("okey"),
        instant.label("instant"),
        NO_EVENT.label("event_pk"),
    ).where(instant.is_not(None))
    return _Source(select, instant)


def _order_value_source() -> _Source:
    """Each distinct instant of an `order.paid`: two orders at one instant are one value. Whether
    it is (still) the first or last order at the due time is part of the rule's condition."""
    select = (
        sa.select(
            events.c.customer_id,
            sa.cast(events.c.at_us, sa.String).label("okey"),
            events.c.at_us.label("instant"),
            NO_EVENT.label("event_pk"),
        )
        .where(events.c.type == "order.paid")
        .group_by(events.c.customer_id, events.c.at_us)
    )
    return _Source(select, events.c.at_us)


def _instants(
    conn: Connection,
    index: int,
    window: Window,
    shop_tz: str,
    at: ast.ClockTime | None,
    offset_s: int,
    source: _Source,
) -> None:
    cols = ["rule_index", "customer_id", "occurrence_key", "due_us", "event_pk", "trigger_us"]
    offset_us = offset_s * US
    if at is None:
        rows = source.select.where(
            source.instant >= window.start_us - offset_us,
            source.instant < window.end_us - offset_us,
        ).subquery()
        conn.execute(
            candidates.insert().from_select(
                cols,
                sa.select(
                    sa.literal(index),
                    rows.c.customer_id,
                    rows.c.okey,
                    rows.c.instant + offset_us,
                    rows.c.event_pk,
                    rows.c.instant,
                ),
            )
        )
        return
    near = source.select.where(
        source.instant >= window.start_us - offset_us - SLACK_US,
        source.instant < window.end_us - offset_us + SLACK_US,
    ).subquery()
    query = sa.select(near, customer_zone(shop_tz).label("tz")).join(
        customers, customers.c.id == near.c.customer_id
    )

    def rows() -> Iterator[dict[str, Any]]:
        for row in conn.execute(query):
            due = local_due(row.instant + offset_us, row.tz, at)
            if window.start_us <= due < window.end_us:
                yield {
                    "rule_index": index,
                    "customer_id": row.customer_id,
                    "occurrence_key": row.okey,
                    "due_us": due,
                    "event_pk": row.event_pk,
                    "trigger_us": row.instant,
                }

    _insert(conn, rows())


# -- birthdays ----------------------------------------------------------------------------------


def anniversary(month: int, day: int, year: int) -> dt.date:
    """The yearly anniversary of a month and day; 29 February is 28 February in other years."""
    if (month, day) == (2, 29) and not _leap(year):
        return dt.date(year, 2, 28)
    return dt.date(year, month, day)


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _birthdays(
    conn: Connection,
    index: int,
    window: Window,
    shop_tz: str,
    at: ast.ClockTime | None,
    offset_days: int,
) -> None:
    first = local_date(window.start_us, zone("UTC")) - dt.timedelta(days=offset_days + 2)
    last = local_date(window.end_us, zone("UTC")) - dt.timedelta(days=offset_days - 2)
    query = sa.select(
        customers.c.id, customers.c.birthday_md, customer_zone(shop_tz).label("tz")
    ).where(customers.c.birthday_md.is_not(None))
    if (last - first).days < 366:
        days = {
            (first + dt.timedelta(days=i)).strftime("%m-%d") for i in range((last - first).days + 1)
        }
        if "02-28" in days:
            days.add("02-29")
        query = query.where(customers.c.birthday_md.in_(sorted(days)))
    clock = at.time if at else MIDNIGHT

    def rows() -> Iterator[dict[str, Any]]:
        for row in conn.execute(query):
            month, day = (int(part) for part in row.birthday_md.split("-"))
            tzinfo = zone(row.tz)
            for year in range(first.year, last.year + 1):
                local_day = anniversary(month, day, year) + dt.timedelta(days=offset_days)
                due = local_wall(local_day, clock, tzinfo)
                if window.start_us <= due < window.end_us:
                    yield {
                        "rule_index": index,
                        "customer_id": row.id,
                        "occurrence_key": str(year),
                        "due_us": due,
                        "event_pk": None,
                        "trigger_us": None,
                    }

    _insert(conn, rows())


# -- calendar triggers: schedules, dates, holidays ---------------------------------------------


def _schedule_days(trigger: ast.ScheduleTrigger) -> Any:
    def days(first: dt.date, last: dt.date) -> Iterator[tuple[dt.date, str]]:
        for i in range((last - first).days + 1):
            day = first + dt.timedelta(days=i)
            if (
                trigger.every == "day"
                or (trigger.every == "week" and day.weekday() == trigger.weekday)
                or (trigger.every == "month" and day.day == trigger.day_of_month)
            ):
                yield day, day.isoformat()

    return days


def _calendar(
    conn: Connection,
    index: int,
    window: Window,
    shop_tz: str,
    at: ast.ClockTime | None,
    local_days: Any,
) -> None:
    """Slots per time zone (local day → due time), joined to the customers of each zone."""
    clock = at.time if at else MIDNIGHT
    zones = [tz for (tz,) in conn.execute(sa.select(customer_zone(shop_tz)).distinct())]
    rows: list[dict[str, Any]] = []
    for tz in zones:
        tzinfo = zone(tz)
        first = local_date(window.start_us, tzinfo) - dt.timedelta(days=1)
        last = local_date(window.end_us, tzinfo) + dt.timedelta(days=1)
        for day, key in local_days(first, last):
            due = local_wall(day, clock, tzinfo)
            if window.start_us <= due < window.end_us:
                rows.append({"rule_index": index, "tz": tz, "due_us": due, "occurrence_key": key})
    if not rows:
        return
    conn.execute(slots.insert(), rows)
    join = sa.select(
        sa.literal(index),
        customers.c.id,
        slots.c.occurrence_key,
        slots.c.due_us,
        NO_EVENT,
        NO_EVENT,
    ).join(slots, sa.and_(slots.c.tz == customer_zone(shop_tz), slots.c.rule_index == index))
    conn.execute(
        candidates.insert().from_select(
            ["rule_index", "customer_id", "occurrence_key", "due_us", "event_pk", "trigger_us"],
            join,
        )
    )
