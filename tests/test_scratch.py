"""The scratch tables outlive an evaluation in their connection; each evaluation starts them
empty, whatever the one before left."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import Connection

from engine.evaluation import scratch
from engine.storage.db import open_database

CANDIDATE = {"rule_index": 0, "customer_id": "c1", "occurrence_key": "k", "due_us": 1}


def _write_every_table(conn: Connection) -> None:
    conn.execute(scratch.candidates.insert(), [CANDIDATE, {**CANDIDATE, "occurrence_key": "j"}])
    conn.execute(
        scratch.slots.insert(), {"rule_index": 0, "tz": "UTC", "due_us": 1, "occurrence_key": "k"}
    )
    effect = {"customer_id": "c1", "kind": "tag", "tag": "vip", "at_us": 1}
    conn.execute(scratch.new_effects.insert(), {**effect, "rule_position": 0, "position": 0})
    conn.execute(
        scratch.gated.insert(), {"customer_id": "c1", "kind": "event", "name": "order.returned"}
    )
    conn.execute(scratch.ranks.insert(), {"candidate_id": 1, "rank": 1})


def _rows(conn: Connection) -> dict[str, int]:
    return {
        table.name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
        for table in scratch.scratch.sorted_tables
    }


def _pages(conn: Connection) -> int:
    """On PostgreSQL, the size on disk of the scratch tables: rows of a rolled-back transaction
    are gone but still take their pages, which every later scan would read."""
    if conn.dialect.name != "postgresql":
        return 0
    sizes = (f"pg_relation_size('{table.name}')" for table in scratch.scratch.sorted_tables)
    return int(conn.exec_driver_sql(f"SELECT {' + '.join(sizes)}").scalar_one())


def test_each_reset_starts_the_scratch_tables_empty_whatever_the_connection_left(
    db_url: str,
) -> None:
    empty = dict.fromkeys((table.name for table in scratch.scratch.sorted_tables), 0)
    with open_database(db_url).connect() as conn:
        scratch.reset(conn)  # made in this connection
        assert _rows(conn) == empty
        _write_every_table(conn)
        conn.commit()  # a daemon's tick

        scratch.reset(conn)
        assert _rows(conn) == empty
        _write_every_table(conn)
        scratch.reset(conn)  # in the same transaction: the next group of batches
        assert _rows(conn) == empty
        _write_every_table(conn)
        conn.rollback()  # a simulation

        scratch.reset(conn)
        assert _rows(conn) == empty
        assert _pages(conn) == 0
        conn.rollback()

    # On PostgreSQL a connection whose first evaluation was rolled back lost the tables with it
    # (on SQLite they stay): the next reset makes them again.
    with open_database(db_url).connect() as conn:
        scratch.reset(conn)
        conn.rollback()
        scratch.reset(conn)
        _write_every_table(conn)
        assert set(_rows(conn).values()) == {1, 2}
