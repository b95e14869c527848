"""Gates in front of the policies' lookups: for most customers, what consent and `exclude if`
would find is known without looking.

Every marketing occurrence that passes its rule reads the customer's latest consent event and
each `exclude if` condition as of its due time: lookups in the events' index, about 2 µs each
on SQLite, for every occurrence (a customer gets thirteen Friday group buys in a quarter). Most
customers never sent a consent event, and most never returned an order, so most of those
lookups find nothing. When the events of such a type are fewer than the marketing occurrences
due, the customers who had one before the window's end are written to `scratch.had_events` (one
pass over those events, through the (type, time) index), and the lookup is made only for them.
For everyone else the answer is the one the lookup gives without such an event: the stored
consent flag, an exclusion that cannot hold (`sqlgen.needed_events`). When nobody had one, no
lookup is made at all. With more such events than occurrences, writing the table would cost
more than it saves, and every lookup is made.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.sql import FromClause
from sqlalchemy.sql.elements import ColumnElement

from engine import ast
from engine.policies import SUBSCRIBED, UNSUBSCRIBED, consent_sql, stored_consent
from engine.scratch import had_events
from engine.sqlgen import needed_events
from engine.storage.tables import events
from engine.triggers import Customers

CONSENT = (SUBSCRIBED, UNSUBSCRIBED)


@dataclass(frozen=True)
class Gates:
    """What `write` found, by event type: types whose customers are in `scratch.had_events`, and
    types nobody had before the window's end (the lookups could not find one)."""

    had: frozenset[str] = frozenset()
    none: frozenset[str] = frozenset()


def write(
    conn: Connection,
    ruleset: ast.RuleSet,
    occurrences: int,
    end_us: int,
    who: Customers,
) -> Gates:
    """Write the customers `who` covers who had an event of a gating type before `end_us` to
    `scratch.had_events`. `occurrences` is the number of marketing occurrences due: a type
    gates only when it has fewer events than that (for an `exclude if` needing several types,
    the one with the fewest)."""
    if not occurrences:
        return Gates()
    counted: dict[tuple[str, ...], int] = {}

    def count(types: tuple[str, ...]) -> int:
        """Events of `types` before the window's end, counted up to one more than
        `occurrences`: the cost stays within the work due."""
        if types not in counted:
            some = _of(types, end_us, who).limit(occurrences + 1).subquery()
            query = sa.select(sa.func.count()).select_from(some)
            counted[types] = conn.execute(query).scalar_one()
        return counted[types]

    choices = [[CONSENT]] + [
        [(t,) for t in sorted(needed_events(e.condition, ruleset.segments))]
        for e in ruleset.excludes
    ]
    had: set[str] = set()
    none: set[str] = set()
    for options in choices:
        best = min(options, key=count, default=None)
        if best is not None and count(best) <= occurrences:
            (had if count(best) else none).update(best)
    if had:
        found = _of(tuple(sorted(had)), end_us, who).with_only_columns(
            events.c.customer_id, events.c.type
        )
        conn.execute(had_events.insert().from_select(["customer_id", "type"], found.distinct()))
    return Gates(frozenset(had), frozenset(none))


def _of(types: tuple[str, ...], end_us: int, who: Customers) -> sa.Select[Any]:
    query = sa.select(events.c.pk).where(events.c.type.in_(types), events.c.at_us < end_us)
    clause = who.clause(events.c.customer_id)
    return query if clause is None else query.where(clause)


def consent(customer: FromClause, due: ColumnElement[int], gates: Gates) -> ColumnElement[bool]:
    """Whether the customer accepts marketing at `due` (`policies.consent_sql`), the latest
    consent event looked up only where there may be one."""
    if set(CONSENT) <= gates.none:
        return stored_consent(customer)
    lookup = _had(customer.c.id, CONSENT) if set(CONSENT) <= gates.had else None
    return consent_sql(customer, due, lookup)


def exclusions(
    test: Callable[[ast.Expr], ColumnElement[bool]],
    customer_id: ColumnElement[str],
    excludes: Sequence[ast.Exclude],
    segments: dict[str, ast.Segment],
    gates: Gates,
) -> list[ColumnElement[bool]]:
    """Each `exclude if` condition as a true/false value (`test`), tested only for customers who
    had every gating event it needs (for no one, when nobody had one)."""
    found: list[ColumnElement[bool]] = []
    for exclude in excludes:
        needed = needed_events(exclude.condition, segments)
        if needed & gates.none:
            found.append(sa.false())
            continue
        value = test(exclude.condition)
        for event_type in sorted(needed & gates.had):
            value = sa.case((_had(customer_id, (event_type,)), value), else_=sa.false())
        found.append(value)
    return found


def _had(customer_id: ColumnElement[str], types: Iterable[str]) -> ColumnElement[bool]:
    return sa.exists().where(had_events.c.customer_id == customer_id, had_events.c.type.in_(types))
