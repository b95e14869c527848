"""Bulk writes: inserts that meet a row already stored under the same key.

This is the one place where an import tells SQLite and PostgreSQL apart: both speak
`INSERT ... ON CONFLICT`, but SQLAlchemy builds it with each dialect's own `insert`.
`ON CONFLICT DO NOTHING` skips exactly the rows whose unique key is taken (unlike SQLite's
`INSERT OR IGNORE`, which would also swallow NOT NULL and CHECK violations).

JSON columns may be given already serialized (`json_text`), which spares serializing a value
twice when the importer needs its JSON text anyway (for an event's digest).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import BindParameter, Cast, Connection, Insert, Table, Text, bindparam, cast
from sqlalchemy.dialects import postgresql, sqlite

from engine.errors import DatabaseError


def _insert(connection: Connection, table: Table) -> sqlite.Insert | postgresql.Insert:
    name = connection.dialect.name
    if name == "sqlite":
        return sqlite.insert(table)
    if name == "postgresql":
        return postgresql.insert(table)
    raise DatabaseError(f"Nudge works with SQLite and PostgreSQL, not {name}")


def _json_text(connection: Connection, name: str) -> BindParameter[str] | Cast[object]:
    """A parameter holding JSON text, for a JSON column: PostgreSQL casts it to JSONB, SQLite
    stores JSON as text anyway."""
    parameter = bindparam(name, type_=Text)
    if connection.dialect.name == "postgresql":
        return cast(parameter, postgresql.JSONB)
    return parameter


def insert_or_ignore(
    connection: Connection, table: Table, json_text: tuple[str, ...] = ()
) -> Insert:
    """An INSERT into `table` that skips rows whose primary or unique key is already stored.
    The columns named in `json_text` are given as JSON text rather than Python values."""
    statement = _insert(connection, table)
    if json_text:
        statement = statement.values({name: _json_text(connection, name) for name in json_text})
    return statement.on_conflict_do_nothing()


def insert_new(
    connection: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    json_text: tuple[str, ...] = (),
) -> int:
    """Insert `rows` into `table`, skipping those whose key is already stored, in one batch;
    the number of rows inserted."""
    statement = insert_or_ignore(connection, table, json_text)
    if connection.dialect.name == "postgresql":
        # psycopg reports no row count for a batch; RETURNING lists the rows inserted.
        returned = connection.execute(statement.returning(*table.primary_key.columns), rows)
        return len(returned.all())
    return connection.execute(statement, rows).rowcount


def upsert(connection: Connection, table: Table) -> Insert:
    """An INSERT into `table` that overwrites every other column of a row with the same
    primary key."""
    statement = _insert(connection, table)
    keys = [column.name for column in table.primary_key.columns]
    return statement.on_conflict_do_update(
        index_elements=keys,
        set_={c.name: statement.excluded[c.name] for c in table.columns if c.name not in keys},
    )
