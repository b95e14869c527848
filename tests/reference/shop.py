"""The reference evaluator's inputs: a shop held in memory and the daemon's ledger.

Instants are int epoch microseconds UTC, as everywhere in Nudge.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class Customer:
    id: str
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    birthday: str | None = None  # "YYYY-MM-DD" or "MM-DD"
    timezone: str | None = None
    signed_up_us: int | None = None
    accepts_marketing: bool = False  # from the beginning: the first import's value
    tags: frozenset[str] = frozenset()
    attributes: dict[str, Any] = field(default_factory=dict)
    # Later imports that changed `accepts_marketing`: (their time, the new value), in order.
    consent_changes: tuple[tuple[int, bool], ...] = ()

    def as_of(self, at_us: int) -> Customer:
        """The customer as it stood at `at_us`: `accepts_marketing` as the last change at or
        before it left it (docs/semantics.md, "Consent over time"); every other field as
        last imported."""
        flag = self.accepts_marketing
        for changed_us, value in self.consent_changes:
            if changed_us <= at_us:
                flag = value
        return self if flag == self.accepts_marketing else replace(self, accepts_marketing=flag)


@dataclass(frozen=True)
class Event:
    key: str
    customer_id: str
    type: str
    at_us: int
    properties: dict[str, Any] = field(default_factory=dict)

    @property
    def entity(self) -> str:
        return self.type.split(".", 1)[0]


@dataclass(frozen=True)
class Shop:
    customers: tuple[Customer, ...] = ()
    events: tuple[Event, ...] = ()

    def events_by_customer(self) -> dict[str, list[Event]]:
        """Each customer's events in time order (ties keep their key order)."""
        grouped: dict[str, list[Event]] = defaultdict(list)
        for event in sorted(self.events, key=lambda e: (e.at_us, e.key)):
            grouped[event.customer_id].append(event)
        return grouped


@dataclass(frozen=True)
class RecordedOccurrence:
    """An occurrence the daemon acted on (not skipped by `if`, `unless` or `once`)."""

    rule: str
    customer: str
    due_us: int


@dataclass(frozen=True)
class RecordedAction:
    """An action the daemon recorded. `tag`/`amount` carry the effect of tag, untag, points."""

    rule_position: int
    customer: str
    kind: str
    position: int
    due_us: int
    at_us: int
    status: str  # sent | suppressed
    tag: str | None = None
    amount: float | None = None


@dataclass(frozen=True)
class Ledger:
    """What the daemon recorded before a simulation starts."""

    occurrences: tuple[RecordedOccurrence, ...] = ()
    actions: tuple[RecordedAction, ...] = ()
