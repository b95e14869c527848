"""Bulk writes: inserts that meet a row already stored under the same key.

This is the one place where an import tells SQLite and PostgreSQL apart. Both speak
`INSERT ... ON CONFLICT`: `insert_or_ignore` and `upsert` are built by SQLAlchemy with each
dialect's own `insert`; `insert_new`, the bulk insert where an import spends most of its time,
writes its SQL itself and hands its rows to the driver as plain tuples (an executemany on
SQLite, a COPY on PostgreSQL). `ON CONFLICT DO NOTHING` skips exactly the rows whose unique key
is taken (unlike SQLite's `INSERT OR IGNORE`, which would also swallow NOT NULL and CHECK
violations).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Insert, Table
from sqlalchemy.dialects import postgresql, sqlite

from engine.errors import DatabaseError

if TYPE_CHECKING:
    import psycopg

_SQLITE_CACHE_KIB = 64 * 1024


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


def insert_new(
    connection: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
) -> int:
    """Insert `rows`, tuples of the `columns` of `table` in that order, skipping those whose key
    is already stored, in the order given; the number of rows inserted.

    JSON columns are given as JSON text. The rows go to the driver as they are, without
    SQLAlchemy's per-row processing: on SQLite one prepared statement run for every row, on
    PostgreSQL a COPY into a temporary table and one INSERT ... SELECT from it.
    """
    if not rows:
        return 0
    name = connection.dialect.name
    if name == "sqlite":
        return _insert_new_sqlite(connection, table, columns, rows)
    if name == "postgresql":
        return _insert_new_postgresql(connection, table, columns, rows)
    raise DatabaseError(f"Nudge works with SQLite and PostgreSQL, not {name}")


def _names(connection: Connection, columns: Sequence[str]) -> str:
    quote = connection.dialect.identifier_preparer.quote
    return ", ".join(quote(column) for column in columns)


def _insert_new_sqlite(
    connection: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[object]]
) -> int:
    target = connection.dialect.identifier_preparer.format_table(table)
    marks = ", ".join("?" * len(columns))
    sql = (
        f"INSERT INTO {target} ({_names(connection, columns)}) VALUES ({marks})"
        " ON CONFLICT DO NOTHING"
    )
    # Each row stored updates the table's indexes at places all over them: a page cache larger
    # than the default 2 MB keeps them in memory from one batch to the next (the connection
    # keeps it; it is memory only, nothing about what is written or when).
    connection.exec_driver_sql(f"PRAGMA cache_size = -{_SQLITE_CACHE_KIB}")
    # A list makes it an executemany, whose rowcount sqlite3 sums over the rows.
    return connection.exec_driver_sql(sql, list(rows)).rowcount


def _insert_new_postgresql(
    connection: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[object]]
) -> int:
    preparer = connection.dialect.identifier_preparer
    target = preparer.format_table(table)
    staging = preparer.quote(f"nudge_new_{table.name}")
    names = _names(connection, columns)
    # The staging table has the column types of `table` and no constraint; `n` keeps the order
    # given. It is dropped before the transaction ends, so no connection keeps it.
    connection.exec_driver_sql(
        f"CREATE TEMPORARY TABLE {staging} ON COMMIT DROP AS"
        f" SELECT 0::bigint AS n, {names} FROM {target} WITH NO DATA"
    )
    driver = cast("psycopg.Connection[Any]", connection.connection.driver_connection)
    with (
        driver.cursor() as cursor,
        cursor.copy(f"COPY {staging} (n, {names}) FROM STDIN") as copy,
    ):
        for n, row in enumerate(rows):
            copy.write_row((n, *row))
    inserted = connection.exec_driver_sql(
        f"INSERT INTO {target} ({names}) SELECT {names} FROM {staging} ORDER BY n"
        " ON CONFLICT DO NOTHING"
    ).rowcount
    connection.exec_driver_sql(f"DROP TABLE {staging}")
    return inserted


def upsert(connection: Connection, table: Table) -> Insert:
    """An INSERT into `table` that overwrites every other column of a row with the same
    primary key."""
    statement = _insert(connection, table)
    keys = [column.name for column in table.primary_key.columns]
    return statement.on_conflict_do_update(
        index_elements=keys,
        set_={c.name: statement.excluded[c.name] for c in table.columns if c.name not in keys},
    )
