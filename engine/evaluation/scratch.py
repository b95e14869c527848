"""Temporary tables one evaluation works in. They live in the evaluating connection only, so a
simulation writes nothing to the shop's tables and several daemons never see each other's.

- `candidates`: every occurrence due in the window, with the due time as a column so that one
  query evaluates a rule's condition for all of them.
- `slots`: due times of calendar, birthday and `at HH:MM` triggers per time zone and local day,
  joined to the customers living in each zone (or to their instants on that day).
- `new_effects`: tags, untags and points given by occurrences of this evaluation, visible to
  the conditions of later occurrences exactly as recorded effects are.
- `gated`: the customers who had an event of some types before the window's end, those who
  may hold some tags in the window, and those whose consent flag an import changed after its
  start, in front of the policies' lookups (`engine.policies.gates`).
- `ranks`: the candidates of rules evaluated together in rounds (amounts reading the points
  they give), each with its rank among its customer's in order of due time.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

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
    create_mock_engine,
    literal,
)
from sqlalchemy.schema import CreateIndex, CreateTable, ExecutableDDLElement
from sqlalchemy.sql.elements import ColumnElement

from engine.plan.sqlfuncs import ARITH_FUNCTION
from engine.storage.tables import effects

scratch = MetaData()

candidates = Table(
    "nudge_candidates",
    scratch,
    # Wide on PostgreSQL: the tables live as long as the connection, and their ids go on from one
    # evaluation to the next. (On SQLite the id is the row's own, and starts again.)
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("rule_index", Integer, nullable=False),
    Column("customer_id", String(200), nullable=False),
    Column("occurrence_key", String(300), nullable=False),
    Column("due_us", BigInteger, nullable=False),
    Column("event_pk", BigInteger),  # the triggering event, for event triggers
    Column("trigger_us", BigInteger),  # the trigger's instant (event time, timestamp value)
    # A rule's candidates are read per batch of customers. On SQLite the index holds every
    # column, so that they are read from it in order: a read of each row from the table, in
    # random order, cost 2 µs a row at M. (A PostgreSQL temporary table is never vacuumed, so
    # the server would read the rows from the table all the same.)
    Index(
        "ix_nudge_candidates_rule",
        "rule_index",
        "customer_id",
        "due_us",
        "occurrence_key",
        "event_pk",
        "trigger_us",
    ).ddl_if(dialect="sqlite"),
    Index("ix_nudge_candidates_rule_customer", "rule_index", "customer_id").ddl_if(
        dialect="postgresql"
    ),
    prefixes=["TEMPORARY"],
)

slots = Table(
    "nudge_slots",
    scratch,
    Column("rule_index", Integer, nullable=False),
    Column("tz", String(64), nullable=False),
    Column("due_us", BigInteger, nullable=False),
    Column("occurrence_key", String(300), nullable=False),
    # `at HH:MM` after an event: the instants `[low_us, high_us)` fall on the slot's local day.
    Column("low_us", BigInteger),
    Column("high_us", BigInteger),
    # The day in UTC (days from the epoch, as the databases divide: `triggers.utc_day`) those
    # instants fall on: a local day spans two or three, a row each, so that an instant finds
    # its slot by equality. By the range alone, PostgreSQL hashed the slots by zone and tested
    # each instant against every day of the window (at M, 2 million rows for 23,000 events).
    Column("day", BigInteger),
    Column("month_day", String(5)),  # birthdays: the anniversary (MM-DD) making the local day
    Index("ix_nudge_slots_day", "rule_index", "day", "low_us"),
    # Customers joined to the slots of their zone: without it, SQLite read every
    # slot of the rule for each customer (the group buy at M: 65 instead of 13).
    Index("ix_nudge_slots_zone", "rule_index", "tz"),
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

gated = Table(
    "nudge_gated",
    scratch,
    Column("customer_id", String(200), primary_key=True),
    Column("kind", String(5), primary_key=True),  # event | tag | flag
    Column("name", String(200), primary_key=True),  # the event type, the tag, the flag
    prefixes=["TEMPORARY"],
)


ranks = Table(
    "nudge_ranks",
    scratch,
    Column("candidate_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("rank", Integer, nullable=False),
    Index("ix_nudge_ranks_rank", "rank", "candidate_id"),
    prefixes=["TEMPORARY"],
)


def reset(conn: Connection) -> None:
    """Make the scratch tables empty in this connection: created where missing, emptied where an
    earlier evaluation left rows.

    They are kept from one evaluation to the next rather than dropped and created again: on
    PostgreSQL that was twelve statements changing the catalog in every tick of the daemon (about
    15 ms at M, and its commit flushed them to the log). There the whole reset is one round trip,
    and the tables are truncated only when one holds a page."""
    creations = _creations(f"{conn.dialect.name}+{conn.dialect.driver}")
    if conn.dialect.name == "postgresql":
        names = [table.name for table in scratch.sorted_tables]
        used = " + ".join(f"pg_relation_size('{name}')" for name in names)
        empty = f"DO $$ BEGIN IF {used} > 0 THEN TRUNCATE {', '.join(names)}; END IF; END $$"
        conn.exec_driver_sql("; ".join((*creations, _ARITH, empty)))
        return
    for statement in creations:
        conn.exec_driver_sql(statement)
    for table in scratch.sorted_tables:
        conn.execute(table.delete())


# `sqlfuncs.arith`'s function, made where the session's schema of its own (the scratch tables')
# has none yet: made anew in each evaluation, it would change the catalog in every tick.
_ARITH = f"""DO $outer$ BEGIN
  IF NOT EXISTS (
    SELECT 1 FROM pg_proc WHERE proname = 'nudge_arith' AND pronamespace = pg_my_temp_schema()
  ) THEN {ARITH_FUNCTION};
  END IF;
END $outer$"""


@functools.cache
def _creations(dialect: str) -> tuple[str, ...]:
    """`CREATE … IF NOT EXISTS` for every scratch table and its indexes, as `create_all` would
    make them for the dialect and driver (`sqlite+pysqlite`; the indexes meant for one dialect
    only are left out of others)."""
    made: list[ExecutableDDLElement] = []
    mock = create_mock_engine(f"{dialect}://", lambda ddl, *_, **__: made.append(ddl))
    scratch.create_all(mock, checkfirst=False)
    statements = []
    for ddl in made:
        if isinstance(ddl, CreateTable):
            again: ExecutableDDLElement = CreateTable(ddl.element, if_not_exists=True)
        else:
            assert isinstance(ddl, CreateIndex), ddl
            again = CreateIndex(ddl.element, if_not_exists=True)
        statements.append(str(again.compile(dialect=mock.dialect)))
    return tuple(statements)


def clear_effects(conn: Connection) -> None:
    """Forget the effects of an earlier batch of customers evaluated in this connection."""
    conn.execute(new_effects.delete())


@dataclass(frozen=True)
class Effects:
    """Tags, untags and points given by rules, as conditions see them: this evaluation's own
    (`new_effects`) and those recorded before its window. Every effect of the evaluation is at
    or after the window's start, so it is later than any recorded one: a condition reads each
    table with its own index and takes the newest answer (never a union, which the database
    would scan whole for every occurrence)."""

    before_us: int  # the window's start

    def sources(self) -> list[tuple[Table, list[ColumnElement[bool]]]]:
        """Each table with the condition that keeps its rows, newest first."""
        return [(new_effects, []), (effects, [effects.c.at_us < literal(self.before_us)])]
