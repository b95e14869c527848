"""The distinct values of an indexed column, read by stepping through its index.

One lookup per value (`min(column)` above the value before), in one recursive statement, so
that the cost grows with the number of values rather than of rows, and a server across the
network is asked once. `SELECT DISTINCT` reads every entry of the index: the twelve event types
of three million events took 120 ms on SQLite, the steps 0.1 ms.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from engine.storage.tables import events


def stepped(column: sa.Column[Any]) -> sa.Select[Any]:
    """The values of `column` that are set, in ascending order, one index lookup each."""
    steps = sa.select(sa.func.min(column).label("value")).cte(
        f"{column.name}_steps", recursive=True
    )
    following = sa.select(sa.func.min(column)).where(column > steps.c.value).scalar_subquery()
    steps = steps.union_all(sa.select(following).where(steps.c.value.is_not(None)))
    return sa.select(steps.c.value).where(steps.c.value.is_not(None))


# The types of the events stored (what `check` knows the shop sends), by the index of (type,
# time, customer).
EVENT_TYPES = stepped(events.c.type)
