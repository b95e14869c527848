"""Triggers → the occurrences due in a window, written to the `candidates` scratch table.

Each trigger kind of LANGUAGE.md 3.2 has its own source of occurrences. Where the due time is
plain arithmetic on a stored instant (an event plus a delay), one INSERT ... SELECT finds every
occurrence for all customers. Where local calendar time matters (`at HH:MM`, birthdays,
holidays, schedules, dates), Python computes the due time of each (time zone, local day) of the
window exactly with zoneinfo, writes these slots to a scratch table, and one INSERT ... SELECT
joins them to the customers of each zone (or to their instants on that day). The work grows
with the occurrences due, never with the customers or the history stored.
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy import Connection

from engine.checking.calendar import first_day
from engine.evaluation.scratch import candidates, slots
from engine.language import ast
from engine.storage.bulk import insert_rows
from engine.storage.tables import customers, events
from engine.timeutil import DAY_US, US, local_date, local_wall, zone

MIDNIGHT = dt.time(0, 0)
NO_EVENT = sa.cast(sa.null(), sa.BigInteger)
# A calendar trigger's local days between two dates, each with its occurrence key.
LocalDays = Callable[[dt.date, dt.date], Iterator[tuple[dt.date, str]]]


@dataclass(frozen=True)
class Window:
    start_us: int
    end_us: int


def _whole_days(offset: ast.Offset | None) -> int:
    if offset is None:
        return 0
    days = offset.duration.whole_days
    assert days is not None, "the checker allows only whole days here"
    return offset.sign * days


@dataclass(frozen=True)
class Customers:
    """Which customers an evaluation covers: everyone, one (`explain`), or the ids in
    `[low, high)` (a simulation taken in batches of customers, to keep memory flat)."""

    only: str | None = None
    low: str | None = None
    high: str | None = None

    def clause(
        self, column: sa.ColumnElement[str], params: str | None = None
    ) -> sa.ColumnElement[bool] | None:
        """`column` within these customers. `params`, when given, makes the bounds parameters
        named after it (their values: `params_for`), so that one statement serves every range
        of the same shape."""
        if params is not None:
            return parameters_clause(self.shape, column, params)
        parts = [_BOUND_TESTS[name](column, value) for name, value in self._bounds()]
        return sa.and_(*parts) if parts else None

    def params_for(self, params: str) -> dict[str, str]:
        """The values of the parameters of `clause(column, params)`."""
        return {f"{params}_{name}": value for name, value in self._bounds()}

    @property
    def shape(self) -> tuple[str, ...]:
        """Which bounds are set: customers of one shape share a statement with parameters."""
        return tuple(name for name, _ in self._bounds())

    def _bounds(self) -> list[tuple[str, str]]:
        bounds = (("only", self.only), ("low", self.low), ("high", self.high))
        return [(name, value) for name, value in bounds if value is not None]


_BOUND_TESTS: dict[str, Callable[[Any, Any], Any]] = {
    "only": operator.eq,
    "low": operator.ge,
    "high": operator.lt,
}


def parameters_clause(
    shape: tuple[str, ...], column: sa.ColumnElement[str], params: str
) -> sa.ColumnElement[bool] | None:
    """`Customers.clause` for customers of this `shape`, the bounds parameters named after
    `params`."""
    parts = [
        _BOUND_TESTS[name](column, sa.bindparam(f"{params}_{name}", type_=sa.String))
        for name in shape
    ]
    return sa.and_(*parts) if parts else None


EVERYONE = Customers()


@dataclass(frozen=True)
class LateImports:
    """What was imported since a tick that happened before its window, whose own occurrences a
    tick takes apart (`engine.evaluation.tick`): the events with keys in `(after_pk, upto_pk]` and
    the sign-ups numbered in `(signups_after, signups_upto]` (`customers.signed_up_seq`), of
    instants at or after `since_us` (the rule set's first start: older ones are history). Only
    those make occurrences late: a calendar trigger's fill writes none of them."""

    after_pk: int
    upto_pk: int
    signups_after: int
    signups_upto: int
    since_us: int

    def params(self) -> dict[str, int]:
        return {
            "late_after": self.after_pk,
            "late_upto": self.upto_pk,
            "late_signups_after": self.signups_after,
            "late_signups_upto": self.signups_upto,
            "late_since": self.since_us,
        }


def _late_clauses(source: Source) -> list[sa.ColumnElement[bool]]:
    """The source's rows among the `LateImports`, their bounds as parameters."""
    assert source.pk is not None
    after, upto = source.late_bounds
    return [
        source.pk > sa.bindparam(after, type_=sa.BigInteger),
        source.pk <= sa.bindparam(upto, type_=sa.BigInteger),
        source.instant >= sa.bindparam("late_since", type_=sa.BigInteger),
    ]


# Customers evaluated at once by a simulation or a tick: memory stays flat in the shop's size.
BATCH_CUSTOMERS = 5_000


def customer_batches(conn: Connection, size: int) -> list[Customers]:
    """Consecutive id ranges of about `size` customers each, covering every customer."""
    numbered = sa.select(
        customers.c.id, sa.func.row_number().over(order_by=customers.c.id).label("n")
    ).subquery()
    bounds = list(
        conn.execute(
            sa.select(numbered.c.id).where((numbered.c.n - 1) % size == 0).order_by(numbered.c.id)
        ).scalars()
    )
    if len(bounds) <= 1:
        return [Customers()]
    highs: list[str | None] = [*bounds[1:], None]
    return [
        Customers(low=None if i == 0 else low, high=high)
        for i, (low, high) in enumerate(zip(bounds, highs, strict=True))
    ]


@dataclass
class _Fill:
    """Where one rule's occurrences go, which of them are wanted, and how many went."""

    conn: Connection
    index: int
    window: Window
    shop_tz: str
    at: ast.ClockTime | None
    customers: Customers
    zones: Sequence[str]  # the customers' time zones (the shop's for those without one)
    needs: frozenset[str]  # event types the condition cannot hold without
    late: LateImports | None = None  # only the occurrences of these events and sign-ups
    inserted: int = 0

    @property
    def clock(self) -> dt.time:
        return self.at.time if self.at else MIDNIGHT

    def only(self, select: sa.Select[Any], column: sa.ColumnElement[str]) -> sa.Select[Any]:
        clause = self.customers.clause(column)
        return select if clause is None else select.where(clause)

    def every_day(self) -> Iterator[Slot]:
        """Each local day of each zone whose clock time (`at`, else 00:00) is in the window."""
        return calendar_slots(self.window, self.zones, self.clock, _every_day)

    def in_slot_zone(self, people: sa.FromClause) -> sa.ColumnElement[bool]:
        """The customer (a row of `people`, with the columns `id` and `timezone` of customers)
        lives in the slot's zone; true for everyone when the shop has one zone."""
        if len(self.zones) == 1:
            return sa.true()
        return slots.c.tz == sa.func.coalesce(people.c.timezone, self.shop_tz)

    def slot(self, tz: str, due_us: int, key: str, **more: Any) -> dict[str, Any]:
        """A row of the slots table for this rule: a due time in a zone, with its key."""
        return {
            "rule_index": self.index,
            "tz": tz,
            "due_us": due_us,
            "occurrence_key": key,
            "low_us": None,
            "high_us": None,
            "day": None,
            "month_day": None,
            **more,
        }

    def add_slots(self, rows: list[dict[str, Any]]) -> None:
        # As tuples, a COPY on PostgreSQL: as dicts through SQLAlchemy, writing and analyzing a
        # quarter's 7,050 slots at M took 0.33-0.40 s there, now 0.14-0.16 s.
        columns = [column.name for column in slots.columns]
        insert_rows(self.conn, slots, columns, [tuple(row[c] for c in columns) for row in rows])
        # A temporary table has no statistics until analyzed. PostgreSQL would take it for one
        # row and loop over the customers of every slot instead of over the instants. SQLite
        # would loop over the slots of `customer.signed_up + 7d at 10:00` and read every
        # customer signed up in the window for each (half of M: 0.41 s, analyzed 0.04 s).
        self.conn.exec_driver_sql(f"ANALYZE {slots.name}")

    def slots_to_customers(
        self,
        *conditions: sa.ColumnElement[bool],
        who_has: Sequence[sa.ColumnElement[bool]] = (),
    ) -> None:
        """Occurrences from this rule's slots, for each customer of the slot's zone who meets
        `conditions` (on the customer and the slot) and `who_has` (on the customer alone)."""
        people: sa.FromClause = customers
        if who_has and self.conn.dialect.name == "postgresql":
            # PostgreSQL cannot estimate how many slots match a customer's zone (an expression),
            # takes them for few and joins the slots first: `who_has` is then tested once per
            # slot, not once per customer (the group buy at M: 1.3 million lookups instead of
            # 100,000). The customers who pass are found first, on their own.
            people = (
                self.only(sa.select(customers.c.id, customers.c.timezone), customers.c.id)
                .where(*who_has)
                .cte("meeting")
                .prefix_with("MATERIALIZED")
            )
            who_has = ()
        on = sa.and_(
            slots.c.rule_index == self.index, self.in_slot_zone(people), *conditions, *who_has
        )
        select = (
            sa.select(
                sa.literal(self.index),
                people.c.id,
                slots.c.occurrence_key,
                slots.c.due_us,
                NO_EVENT,
                NO_EVENT,
            )
            .select_from(people)
            .join(slots, on)
        )
        # In the order of the candidates' index: each row goes in beside the one before it.
        self.insert_from(self.only(select, people.c.id).order_by(people.c.id))

    def insert_from(self, select: sa.Select[Any]) -> None:
        """INSERT ... SELECT of (rule_index, customer_id, occurrence_key, due_us, event_pk,
        trigger_us)."""
        self.run(_insert_from(select))

    def run(self, statement: sa.Insert, params: dict[str, Any] | None = None) -> None:
        """Run an insert into the candidates (`_insert_from`), counting the rows it wrote."""
        late = self.late.params() if self.late else {}
        result = self.conn.execute(statement, (params or {}) | late)
        self.inserted += result.rowcount


def _insert_from(select: sa.Select[Any]) -> sa.Insert:
    columns = ["rule_index", "customer_id", "occurrence_key", "due_us", "event_pk", "trigger_us"]
    statement = candidates.insert().from_select(columns, select)
    # Without the option, SQLAlchemy 2.1 does not keep psycopg's count of an INSERT.
    return statement.execution_options(preserve_rowcount=True)


def fill(
    conn: Connection,
    index: int,
    rule: ast.CheckedRule,
    window: Window,
    shop_tz: str,
    country: str | None,
    zones: Sequence[str],
    who: Customers = EVERYONE,
    needs: frozenset[str] = frozenset(),
    late: LateImports | None = None,
) -> int:
    """Write every occurrence of `rule` due in `window` for the customers `who` covers to the
    candidates table; returns how many. `zones` are the customers' time zones. With `late`,
    only the occurrences of those events and sign-ups.

    `needs`: event types the rule's condition cannot hold without (`sqlgen.needed_events`).
    A calendar trigger's occurrences (every customer, on each day of the window) are then
    written only for customers with such events before the window's end: one lookup per
    customer instead of one per occurrence, and none of the hopeless occurrences."""
    trigger = rule.when.trigger
    target = _Fill(conn, index, window, shop_tz, rule.when.at, who, zones, needs, late)
    offset = trigger.offset if isinstance(trigger, ast.EventTrigger | ast.CustomerTrigger) else None
    offset_us = _offset_us(offset)
    source = instant_source(trigger)
    if late is not None and (source is None or source.pk is None):
        return 0
    if source is not None:
        _instants(target, offset_us, source)
        return target.inserted
    match trigger:
        case ast.CustomerTrigger(name="birthday"):
            _birthdays(target, _whole_days(trigger.offset))
        case ast.HolidayTrigger():
            if country is None:
                raise ValueError("holiday triggers need a country")  # the checker says so
            _calendar(target, _holiday_days(country, trigger))
        case ast.ScheduleTrigger():
            _calendar(target, _schedule_days(trigger))
        case ast.DateTrigger(date=date):
            _calendar(target, _one_day(date))
        case _:
            raise ValueError(f"no occurrences for trigger {trigger!r}")  # the checker prevents it
    return target.inserted


def shared_fills(rules: Sequence[ast.CheckedRule]) -> dict[int, int]:
    """Rules whose occurrences are the same rows as an earlier rule's: rule position → the
    position whose candidates it reads (`fill` writes them once, under that one's index).

    Those are the triggers whose occurrences follow stored instants plus an offset, without
    `at`: an event's (the shop's four `when order.paid` rules: each fill read the window's
    paid orders and wrote the same 46,000 rows at M), a sign-up's, a first or last order's. What
    tells their occurrences apart (`if`, `unless`, `once`, validity) is each rule's own query."""
    first: dict[tuple[Source, int], int] = {}
    shared: dict[int, int] = {}
    for rule in rules:
        key = _fill_key(rule)
        if key is None:
            continue
        if key in first:
            shared[rule.position] = first[key]
        else:
            first[key] = rule.position
    return shared


def instant_event_types(rules: Sequence[ast.CheckedRule]) -> list[str]:
    """The event types whose events make occurrences of `rules` (an event's, a first or last
    order's), in order."""
    found = set()
    for rule in rules:
        trigger = rule.when.trigger
        if isinstance(trigger, ast.EventTrigger):
            found.add(trigger.event)
        elif instant_source(trigger) is _order_value_source():
            found.add("order.paid")
    return sorted(found)


def follows_sign_ups(rules: Sequence[ast.CheckedRule]) -> bool:
    """Whether some of `rules` has occurrences at the customers' sign-ups."""
    return any(
        isinstance(r.when.trigger, ast.CustomerTrigger) and r.when.trigger.name == "signed_up"
        for r in rules
    )


def _fill_key(rule: ast.CheckedRule) -> tuple[Source, int] | None:
    """What decides the rows of an instants trigger's fill without `at` (`_instants`): its
    source (one object per source) and offset; None for the others."""
    trigger = rule.when.trigger
    source = instant_source(trigger)
    if rule.when.at is not None or source is None:
        return None
    assert isinstance(trigger, ast.EventTrigger | ast.CustomerTrigger)
    return source, _offset_us(trigger.offset)


def _offset_us(offset: ast.Offset | None) -> int:
    return offset.seconds * US if offset else 0


# -- instants: events, signed_up, first/last order --------------------------------------------


@dataclass(frozen=True, eq=False)
class Source:
    """Rows of (customer_id, occurrence_key, instant, event_pk) from which occurrences come (one
    object per source, made once: the statements built from it are kept by its identity)."""

    select: sa.Select[Any]
    instant: sa.ColumnElement[int]
    customer: sa.ColumnElement[str]
    # What tells those imported late: the event's key, the sign-up's number (`LateImports`),
    # and the names of its bounds' parameters.
    pk: sa.ColumnElement[int] | None = None
    late_bounds: tuple[str, str] = ("late_after", "late_upto")


def instant_source(trigger: ast.Trigger) -> Source | None:
    """The instants a trigger's occurrences come from: its events, the customers' sign-up, the
    paid orders' times (first and last order); None for a date or calendar trigger."""
    match trigger:
        case ast.EventTrigger():
            return _event_source(trigger.event)
        case ast.CustomerTrigger(name="signed_up"):
            return _signed_up_source()
        case ast.CustomerTrigger(name="first_order" | "last_order"):
            return _order_value_source()
    return None


@functools.cache
def _event_source(event_type: str) -> Source:
    select = sa.select(
        events.c.customer_id,
        events.c.key.label("okey"),
        events.c.at_us.label("instant"),
        events.c.pk.label("event_pk"),
    ).where(events.c.type == event_type)
    return Source(select, events.c.at_us, events.c.customer_id, events.c.pk)


@functools.cache
def _signed_up_source() -> Source:
    instant = customers.c.signed_up_us
    select = sa.select(
        customers.c.id.label("customer_id"),
        sa.cast(instant, sa.String).label("okey"),
        instant.label("instant"),
        NO_EVENT.label("event_pk"),
    ).where(instant.is_not(None))
    bounds = ("late_signups_after", "late_signups_upto")
    return Source(select, instant, customers.c.id, customers.c.signed_up_seq, bounds)


@functools.cache
def _order_value_source() -> Source:
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
    return Source(select, events.c.at_us, events.c.customer_id, events.c.pk)


def _instants(target: _Fill, offset_us: int, source: Source) -> None:
    if target.at is not None:
        _instants_at(target, offset_us, source)
        return
    window, who = target.window, target.customers
    statement = _instants_insert(target.index, offset_us, source, who.shape, bool(target.late))
    params = {"low": window.start_us - offset_us, "high": window.end_us - offset_us}
    target.run(statement, params | who.params_for("who"))


@functools.lru_cache(maxsize=1024)
def _instants_insert(
    index: int, offset_us: int, source: Source, shape: tuple[str, ...], late: bool
) -> sa.Insert:
    """The fill of rule `index` from the instants of `source` in `[low, high)`, plus the offset,
    for customers of `shape` (parameters `who_…`), of the late events only when `late`: built
    once, as every tick of the daemon runs it (building it was about half of an idle tick's
    Python)."""
    select = source.select.where(
        source.instant >= sa.bindparam("low", type_=sa.BigInteger),
        source.instant < sa.bindparam("high", type_=sa.BigInteger),
        *(_late_clauses(source) if late else ()),
    )
    clause = parameters_clause(shape, source.customer, "who")
    found = select if clause is None else select.where(clause)
    row = found.selected_columns
    # In the order of the candidates' index, as `slots_to_customers` (the events come in time
    # order: 14 event rules at M, 3.2 s -> 2.0 s on SQLite). The source's own columns, not a
    # subquery's.
    return _insert_from(
        found.with_only_columns(
            sa.literal(index),
            row.customer_id,
            row.okey,
            source.instant + offset_us,
            row.event_pk,
            source.instant,
            maintain_column_froms=True,
        ).order_by(source.customer)
    )


def _instants_at(target: _Fill, offset_us: int, source: Source) -> None:
    """`at HH:MM`: each local day whose `at` falls in the window takes the instants of that day
    (after the offset), all due at that one time, except those later than it: an instant
    after its due time is not there yet when its occurrence is evaluated (LANGUAGE.md 3.3;
    `check`'s W319). The days are slots, one per (zone, local day), joined to the instants by
    range: a window in which no zone reaches `at` reads nothing at all, and a long one reads
    each instant once."""
    days: list[dict[str, Any]] = []
    for tz, day, due_us, key in target.every_day():
        tzinfo = zone(tz)
        low = local_wall(day, MIDNIGHT, tzinfo) - offset_us
        high = local_wall(day + dt.timedelta(days=1), MIDNIGHT, tzinfo) - offset_us
        days.extend(
            target.slot(tz, due_us, key, low_us=low, high_us=high, day=utc)
            for utc in range(utc_day(low), utc_day(high - 1) + 1)
        )
    if not days:
        return
    target.add_slots(days)
    rows = target.only(
        source.select.where(
            source.instant >= min(d["low_us"] for d in days),
            source.instant < max(d["high_us"] for d in days),
            *(_late_clauses(source) if target.late else ()),
        ),
        source.customer,
    ).subquery()
    select = sa.select(
        sa.literal(target.index),
        rows.c.customer_id,
        rows.c.okey,
        slots.c.due_us,
        rows.c.event_pk,
        rows.c.instant,
    ).join(
        slots,
        sa.and_(
            slots.c.rule_index == target.index,
            slots.c.day == rows.c.instant // DAY_US,
            rows.c.instant >= slots.c.low_us,
            rows.c.instant < slots.c.high_us,
            rows.c.instant <= slots.c.due_us,
        ),
    )
    if len(target.zones) > 1:
        select = target.only(
            select.join(customers, customers.c.id == rows.c.customer_id).where(
                target.in_slot_zone(customers)
            ),
            customers.c.id,
        )
    target.insert_from(select.order_by(rows.c.customer_id))


def after_their_at(index: int, source: Source, customer_id: str, shop_tz: str) -> sa.Select[Any]:
    """The instants of `customer_id` that the `at HH:MM` of rule `index` takes by their day but
    that come after that day's due time, with it: (occurrence key, instant, due), for `nudge
    explain` to say why they have no occurrence. Read from the slots the rule's fill wrote."""
    rows = source.select.where(source.customer == customer_id).subquery()
    return (
        sa.select(rows.c.okey, rows.c.instant, slots.c.due_us)
        .join(customers, customers.c.id == rows.c.customer_id)
        .join(
            slots,
            sa.and_(
                slots.c.rule_index == index,
                slots.c.tz == sa.func.coalesce(customers.c.timezone, shop_tz),
                slots.c.day == rows.c.instant // DAY_US,
                rows.c.instant >= slots.c.low_us,
                rows.c.instant < slots.c.high_us,
                rows.c.instant > slots.c.due_us,
            ),
        )
        .order_by(slots.c.due_us, rows.c.instant)
    )


def utc_day(instant_us: int) -> int:
    """`instant_us // DAY_US` as SQLite and PostgreSQL compute it for integers: the quotient
    rounded toward zero (Python's `//` rounds down, which differs before 1970)."""
    days = abs(instant_us) // DAY_US
    return days if instant_us >= 0 else -days


# -- birthdays ----------------------------------------------------------------------------------


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _birthdays(target: _Fill, offset_days: int) -> None:
    """Slots per (zone, local day) with the month and day whose anniversary makes that day,
    joined to the customers of each zone by their month and day (an index lookup)."""
    days: list[dict[str, Any]] = []
    for tz, day, due_us, _day_key in target.every_day():
        anniversary_day = day - dt.timedelta(days=offset_days)
        key = str(anniversary_day.year)
        days.append(target.slot(tz, due_us, key, month_day=anniversary_day.strftime("%m-%d")))
        if (anniversary_day.month, anniversary_day.day) == (2, 28) and not _leap(
            anniversary_day.year
        ):
            days.append(target.slot(tz, due_us, key, month_day="02-29"))
    if not days:
        return
    target.add_slots(days)
    target.slots_to_customers(slots.c.month_day == customers.c.birthday_md)


# -- calendar triggers: schedules, dates, holidays ---------------------------------------------


def _schedule_days(trigger: ast.ScheduleTrigger) -> LocalDays:
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


def _holiday_days(country: str, trigger: ast.HolidayTrigger) -> LocalDays:
    days = _whole_days(trigger.offset)

    def holiday_days(first: dt.date, last: dt.date) -> Iterator[tuple[dt.date, str]]:
        for year in range(first.year - 1, last.year + 2):
            day = first_day(country, trigger.name, year)
            if day is not None:
                yield day + dt.timedelta(days=days), str(year)

    return holiday_days


class Slot(NamedTuple):
    """A local day of a zone on which a calendar trigger falls due, and when."""

    tz: str
    day: dt.date
    due_us: int
    key: str  # the occurrence key


def calendar_slots(
    window: Window, zones: Sequence[str], clock: dt.time, local_days: LocalDays
) -> Iterator[Slot]:
    """Each local day of `local_days`, in each zone, whose `clock` falls in the window."""
    for tz in zones:
        tzinfo = zone(tz)
        first = local_date(window.start_us, tzinfo) - dt.timedelta(days=1)
        last = local_date(window.end_us, tzinfo) + dt.timedelta(days=1)
        for day, key in local_days(first, last):
            due = local_wall(day, clock, tzinfo)
            if window.start_us <= due < window.end_us:
                yield Slot(tz, day, due, key)


def clock_days(rule: ast.CheckedRule, country: str | None) -> LocalDays | None:
    """The local days on which `rule` falls due at a clock time known in advance (its `at`, else
    00:00): calendar triggers, birthdays, and any trigger with `at HH:MM`. None for triggers
    whose due times follow stored instants (an event plus a delay)."""
    trigger = rule.when.trigger
    match trigger:
        case ast.HolidayTrigger() if country is not None:
            return _holiday_days(country, trigger)
        case ast.ScheduleTrigger():
            return _schedule_days(trigger)
        case ast.DateTrigger(date=date):
            return _one_day(date)
        case ast.CustomerTrigger(name="birthday"):
            return _every_day
    return _every_day if rule.when.at is not None else None


def _every_day(first: dt.date, last: dt.date) -> Iterator[tuple[dt.date, str]]:
    for i in range((last - first).days + 1):
        day = first + dt.timedelta(days=i)
        yield day, day.isoformat()


def _one_day(date: dt.date) -> LocalDays:
    return lambda first, last: iter([(date, date.isoformat())])


def _calendar(target: _Fill, local_days: LocalDays) -> None:
    """Slots per time zone (local day → due time), joined to the customers of each zone."""
    rows = [
        target.slot(slot.tz, slot.due_us, slot.key)
        for slot in calendar_slots(target.window, target.zones, target.clock, local_days)
    ]
    if not rows:
        return
    target.add_slots(rows)
    needed = events.alias("needed_event")
    target.slots_to_customers(
        who_has=[
            sa.exists().where(
                needed.c.customer_id == customers.c.id,
                needed.c.type == event_type,
                needed.c.at_us < target.window.end_us,
            )
            for event_type in sorted(target.needs)
        ]
    )
