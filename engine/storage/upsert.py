"""Inserts that meet a row already stored under the same key.

This is the one place where an import tells SQLite and PostgreSQL apart: both speak
`INSERT ... ON CONFLICT`, but SQLAlchemy builds it with each dialect's own `insert`.
`ON CONFLICT DO NOTHING` skips exactly the rows whose unique key is taken (unlike SQLite's
`INSERT OR IGNORE`, which would also swallow NOT NULL and CHECK violations).
"""

from __future__ import annotations

from sqlalchemy import Connection, Insert, Table
from sqlalchemy.dialects import postgresql, sqlite

from engine.errors import DatabaseError


def _insert(connection: Connection, table: Table) -> sqlite.Insert | postgresql.Insert:
    name = connection.dialect.name
    if name == "sqlite":
        return sqlite.insert(table)
    if name == "postgresql":
        return postgresql.insert(table)
    raise DatabaseError(f"Nudge works with SQLite and PostgreSQL, not {name}")


def insert_or_ignore(connection: Connection, table: Table) -> Insert:
    """An INSERT into `table` that skips rows whose primary or unique key is already stored."""
    return _insert(connection, table).on_conflict_do_nothing()


def upsert(connection: Connection, table: Table) -> Insert:
    """An INSERT into `table` that overwrites every other column of a row with the same
    primary key."""
    statement = _insert(connection, table)
    keys = [column.name for column in table.primary_key.columns]
    return statement.on_conflict_do_update(
        index_elements=keys,
        set_={c.name: statement.excluded[c.name] for c in table.columns if c.name not in keys},
    )
