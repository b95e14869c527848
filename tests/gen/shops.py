"""Hypothesis strategies for small random shops: a handful of customers in a few time zones,
events of a few types with properties, some at identical instants, around DST changes,
holidays and a leap day.

A generated `World` holds the shop, the shop's settings and the simulation window; the rows
for the engine's importers are derived from the same shop.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st
from sqlalchemy import Engine

from engine.clock import FixedClock
from engine.importing.importers import import_customer_rows
from engine.timeutil import US, iso, to_us
from tests.reference.shop import Customer, Event, Shop

ZONES = ("UTC", "Asia/Shanghai", "America/New_York", "Europe/Berlin")
# Window starts: New York springs forward (03-08), Mid-Autumn and National Day in China,
# Berlin and New York fall back (10-25, 11-01), a leap day.
WINDOW_STARTS = (
    dt.datetime(2026, 3, 4, tzinfo=dt.UTC),
    dt.datetime(2026, 9, 20, tzinfo=dt.UTC),
    dt.datetime(2026, 10, 22, tzinfo=dt.UTC),
    dt.datetime(2028, 2, 24, tzinfo=dt.UTC),
)
WINDOW_DAYS = 12
HISTORY_DAYS = 40  # events start this long before the window
TAGS = ("vip", "complaint", "new")
CITIES = ("Beijing", "Shanghai", "Hangzhou")
CATEGORIES = ("shoes", "clothing", "beauty")
EVENT_TYPES = (
    "order.placed",
    "order.paid",
    "order.received",
    "order.returned",
    "cart.updated",
    "review.posted",
)


@dataclass(frozen=True)
class World:
    shop: Shop
    timezone: str
    start_us: int
    end_us: int


money = st.one_of(st.integers(0, 600), st.integers(0, 1200).map(lambda n: n / 2))


@st.composite
def _properties(draw: st.DrawFn, event_type: str) -> dict[str, Any]:
    entity = event_type.split(".", 1)[0]
    properties: dict[str, Any] = {}
    if entity == "order":
        if draw(st.integers(0, 9)):  # now and then an order without a total
            properties["total"] = draw(money)
        if draw(st.booleans()):
            properties["category"] = draw(st.sampled_from(CATEGORIES))
    elif entity == "review":
        properties["rating"] = draw(st.integers(1, 5))
    elif entity == "cart":
        properties["items"] = draw(st.integers(1, 5))
    return properties


@st.composite
def _customer(draw: st.DrawFn, index: int, window_start: dt.datetime) -> Customer:
    birthday = None
    if draw(st.booleans()):
        # near the window (so yearly triggers fire), sometimes 29 February
        day = window_start.date() + dt.timedelta(days=draw(st.integers(-5, WINDOW_DAYS + 5)))
        month_day = draw(st.sampled_from([day.strftime("%m-%d"), "02-29"]))
        birthday = draw(st.sampled_from([month_day, f"1992-{month_day}"]))  # a leap year
    signed_up = None
    if draw(st.booleans()):
        minutes = draw(st.integers(-HISTORY_DAYS * 1440, WINDOW_DAYS * 1440))
        signed_up = to_us(window_start) + minutes * 60 * US
    accepts = draw(st.booleans())
    # Mostly re-imported with the other value, once or twice, on quarter hours from the day
    # before the window to its end (so at some due times exactly): consent as it stood at each
    # due time.
    count = draw(st.sampled_from([0, 1, 1, 2]))
    moments = draw(
        st.lists(
            st.integers(-96, WINDOW_DAYS * 96),
            min_size=count,
            max_size=count,
            unique=True,
        )
    )
    changes = tuple(
        (to_us(window_start) + q * 900 * US, (accepts + n + 1) % 2 == 1)
        for n, q in enumerate(sorted(moments))
    )
    attributes: dict[str, Any] = {}
    if draw(st.booleans()):
        attributes["vip_level"] = draw(st.integers(0, 4))
    if draw(st.booleans()):
        attributes["city"] = draw(st.sampled_from(CITIES))
    return Customer(
        id=f"c{index}",
        name=draw(st.none() | st.sampled_from(["Li Wei", "Wang Fang", "Ann"])),
        birthday=birthday,
        timezone=draw(st.none() | st.sampled_from(ZONES)),
        signed_up_us=signed_up,
        accepts_marketing=accepts,
        tags=frozenset(draw(st.sets(st.sampled_from(TAGS), max_size=2))),
        attributes=attributes,
        consent_changes=changes,
    )


@st.composite
def worlds(draw: st.DrawFn, max_customers: int = 4, max_events: int = 20) -> World:
    """A shop, its time zone and a window of WINDOW_DAYS days."""
    window_start = draw(st.sampled_from(WINDOW_STARTS))
    start_us = to_us(window_start)
    customers = [
        draw(_customer(index, window_start)) for index in range(draw(st.integers(0, max_customers)))
    ]
    events: list[Event] = []
    if customers:
        # A small pool of instants, so that several events share one.
        pool = draw(
            st.lists(st.integers(-HISTORY_DAYS * 96, WINDOW_DAYS * 96), min_size=1, max_size=8).map(
                lambda quarters: [start_us + q * 900 * US for q in quarters]
            )
        )
        for index in range(draw(st.integers(0, max_events))):
            events.append(draw(_event(index, customers, pool)))
    return _world(draw, customers, events, start_us)


@st.composite
def dense_worlds(draw: st.DrawFn, customers: int = 6, events: int = 60) -> World:
    """Denser shops than `worlds`: `customers` customers and `events` events, most in the
    window or the week before it, so that most generated rule sets act (for the daemon's tests
    against `simulate`)."""
    window_start = draw(st.sampled_from(WINDOW_STARTS))
    start_us = to_us(window_start)
    people = [draw(_customer(index, window_start)) for index in range(customers)]
    # Mostly in the window and shortly before it; a few shared instants.
    quarters = st.integers(-7 * 96, WINDOW_DAYS * 96) | st.integers(-HISTORY_DAYS * 96, 0)
    pool = [
        start_us + q * 900 * US
        for q in draw(st.lists(quarters, min_size=events // 3, max_size=events))
    ]
    happenings = [draw(_event(index, people, pool)) for index in range(events)]
    return _world(draw, people, happenings, start_us)


@st.composite
def _event(draw: st.DrawFn, index: int, customers: list[Customer], pool: list[int]) -> Event:
    """Event `e{index}` of one of `customers`, at one of the instants of `pool`."""
    event_type = draw(st.sampled_from(EVENT_TYPES))
    return Event(
        key=f"e{index}",
        customer_id=draw(st.sampled_from(customers)).id,
        type=event_type,
        at_us=draw(st.sampled_from(pool)),
        properties=draw(_properties(event_type)),
    )


def _world(draw: st.DrawFn, customers: list[Customer], events: list[Event], start_us: int) -> World:
    return World(
        shop=Shop(customers=tuple(customers), events=tuple(events)),
        timezone=draw(st.sampled_from(ZONES)),
        start_us=start_us,
        end_us=start_us + WINDOW_DAYS * 86_400 * US,
    )


def customer_rows(shop: Shop) -> list[dict[str, Any]]:
    """The shop's customers as import rows (JSON Lines objects, section 4)."""
    rows = []
    for customer in shop.customers:
        row: dict[str, Any] = {
            "id": customer.id,
            "name": customer.name,
            "birthday": customer.birthday,
            "timezone": customer.timezone,
            "signed_up": None if customer.signed_up_us is None else iso(customer.signed_up_us),
            "accepts_marketing": customer.accepts_marketing,
            "tags": ",".join(sorted(customer.tags)) or None,
        }
        rows.append({**row, **customer.attributes})
    return rows


def import_customers(engine: Engine, shop: Shop, shop_tz: str) -> None:
    """Import the shop's customers as they were first, then each change of consent on a clock
    standing at its time, as a shop re-importing them then would."""
    assert not import_customer_rows(engine, customer_rows(shop), shop_tz, "customers").problems
    changes = [
        (at_us, {"id": customer.id, "accepts_marketing": flag})
        for customer in shop.customers
        for at_us, flag in customer.consent_changes
    ]
    for at_us, row in sorted(changes, key=lambda change: change[0]):
        report = import_customer_rows(engine, [row], shop_tz, "consent", FixedClock(at_us))
        assert not report.problems


def event_rows(shop: Shop) -> list[dict[str, Any]]:
    """The shop's events as import rows, each with its key as `id`."""
    return [
        {"id": e.key, "customer": e.customer_id, "type": e.type, "at": iso(e.at_us), **e.properties}
        for e in shop.events
    ]
