"""Temporary tables one evaluation works in. They live in the evaluating connection only, so a
simulation writes nothing to the shop's tables and several daemons never see each other's.

- `candidates`: every occurrence due in the window, with the due time as a column so that one
  query evaluates a rule's condition for all of them.
- `slots`: due times of calendar triggers (schedules, dates, holidays) per time zone, joined to
  the customers living in each zone.
- `new_effects`: tags, untags and points given by occurrences of this evaluation, visible to
  the conditions of later occurrences exactly as recorded effects are.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    literal,
    select,
    union_all,
)
from sqlalchemy.sql.selectable import Subquery

from engine.storage.tables import effects

scratch = MetaData()

candidates = Table(
    "nudge_candidates",
    scratch,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule_index", Integer, nullable=False),
    Column("customer_id", String(200), nullable=False),
    Column("occurrence_key", String(300), nullable=False),
    Column("due_us", BigInteger, nullable=False),
    Column("event_pk", BigInteger),  # the triggering event, for event triggers
    Column("trigger_us", BigInteger),  # the trigger's instant (event time, timestamp value)
    Index("ix_nudge_candidates_rule", "rule_index"),
    prefixes=["TEMPORARY"],
)

slots = Table(
    "nudge_slots",
    scratch,
    Column("rule_index", Integer, nullable=False),
    Column("tz", String(64), nullable=False),
    Column("due_us", BigInteger, nullable=False),
    Column("occurrence_key", String(300), nullable=False),
    prefixes=["TEMPORARY"],
)

new_effects = Table(
    "nudge_new_effects",
    scratch,
    Column("customer_id", String(200), nullable=False),
    Column("kind", String(10), nullable=False),
    Column("tag", String(200)),
    Column("amount", Float),
    Column("at_us", BigInteger, nullable=False),
    Column("rule_position", Integer, nullable=False),
    Column("position", Integer, nullable=False),
    Index("ix_nudge_new_effects", "customer_id", "kind", "tag", "at_us"),
    prefixes=["TEMPORARY"],
)


def reset(conn: Connection) -> None:
    """Create the scratch tables afresh in this connection."""
    scratch.drop_all(conn, checkfirst=True)
    scratch.create_all(conn)


def all_effects(before_us: int) -> Subquery:
    """Recorded effects of occurrences before the window, then this evaluation's own."""
    cols = ("customer_id", "kind", "tag", "amount", "at_us", "rule_position", "position")
    recorded = select(*(effects.c[n] for n in cols)).where(effects.c.at_us < literal(before_us))
    fresh = select(*(new_effects.c[n] for n in cols))
    return union_all(recorded, fresh).subquery("all_effects")
