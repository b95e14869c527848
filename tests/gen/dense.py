"""Denser random shops than `shops.worlds`: several customers with many events each, so that
most generated rule sets act (for the daemon's tests against `simulate`)."""

from __future__ import annotations

from hypothesis import strategies as st

from engine.timeutil import US, to_us
from tests.gen.shops import (
    EVENT_TYPES,
    HISTORY_DAYS,
    WINDOW_DAYS,
    WINDOW_STARTS,
    ZONES,
    World,
    _customer,
    _properties,
)
from tests.reference.shop import Event, Shop


@st.composite
def dense_worlds(draw: st.DrawFn, customers: int = 6, events: int = 60) -> World:
    """A shop of `customers` customers and `events` events, most in the window or the week
    before it, its time zone and a window of WINDOW_DAYS days."""
    window_start = draw(st.sampled_from(WINDOW_STARTS))
    start_us = to_us(window_start)
    people = [draw(_customer(index, window_start)) for index in range(customers)]
    # Mostly in the window and shortly before it; a few shared instants.
    quarters = st.integers(-7 * 96, WINDOW_DAYS * 96) | st.integers(-HISTORY_DAYS * 96, 0)
    pool = draw(st.lists(quarters, min_size=events // 3, max_size=events))
    happenings = []
    for index in range(events):
        event_type = draw(st.sampled_from(EVENT_TYPES))
        happenings.append(
            Event(
                key=f"e{index}",
                customer_id=people[draw(st.integers(0, customers - 1))].id,
                type=event_type,
                at_us=start_us + draw(st.sampled_from(pool)) * 900 * US,
                properties=draw(_properties(event_type)),
            )
        )
    return World(
        shop=Shop(customers=tuple(people), events=tuple(happenings)),
        timezone=draw(st.sampled_from(ZONES)),
        start_us=start_us,
        end_us=start_us + WINDOW_DAYS * 86_400 * US,
    )
