"""Bulk writes: inserts of many rows, some of which may meet a row already stored under the
same key.

This is the one place where a bulk write tells SQLite and PostgreSQL apart. Both speak
`INSERT ... ON CONFLICT`: `insert_or_ignore` and `upsert` are built by SQLAlchemy with each
dialect's own `insert`. `insert_new`, the bulk insert where an import spends most of its time,
`insert_new_returning` and `insert_rows_returning`, for a tick's occurrences and actions on
SQLite (on PostgreSQL their ids are drawn beforehand by `reserve_ids` and they go in by
`insert_new` and `insert_rows`), and `insert_rows`, for the evaluation's scratch rows and the
outbox, write their SQL themselves and hand their rows to the driver as plain tuples (an
executemany or a `VALUES` list on SQLite, a COPY on PostgreSQL): SQLAlchemy's processing of
each row cost more than the database's insert.
`ON CONFLICT DO NOTHING` skips exactly the rows whose unique key is taken (unlike SQLite's
`INSERT OR IGNORE`, which would also swallow NOT NULL and CHECK violations).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Insert, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, OperationalError

from engine.errors import DatabaseError
from engine.storage.db import sqlite_write_transaction

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


@dataclass
class Imported:
    """What `importing` did after its block: `analyzed` is False where the statistics could
    not be updated (see there)."""

    analyzed: bool = True


@contextmanager
def importing(connection: Connection) -> Iterator[Imported]:
    """`connection` set up for an import while the block runs, then as it was.

    On SQLite: a page cache of 64 MB instead of 2 (each row stored updates the indexes at
    places all over them; a larger cache keeps them in memory from one batch to the next), and
    no foreign-key check (an import stores the customers a batch refers to before its events,
    in the same transaction, so the check would never fail). Neither changes what is written
    or when it is durable. The block must leave no transaction open. Once it has stored its
    rows, the customers are analyzed: without statistics SQLite reads each occurrence's
    customer through the primary key and then the table, where the index holding the zone and
    consent by id answers alone (at M, 0.05 s for the analysis). The events' lookups are
    planned without statistics, as they were measured. The analysis needs the write lock: when
    another process (the daemon's tick) holds it past the busy timeout, the statistics are
    left as they were (those of an earlier import or of the schema's upgrade, if any), as the
    rows are stored already, and what is yielded says so.

    On PostgreSQL: the tables an import writes are analyzed once it has stored its rows, so
    that the next evaluation is planned on their real sizes rather than on no statistics at
    all (autovacuum would only get to it a minute or more later).
    """
    imported = Imported()
    if connection.dialect.name == "postgresql":
        yield imported
        connection.exec_driver_sql(f"ANALYZE {', '.join(_IMPORTED)}")
        connection.commit()
        return
    if connection.dialect.name != "sqlite":
        yield imported
        return
    # Outside a transaction, where SQLite takes `foreign_keys` into account.
    before = {name: connection.exec_driver_sql(f"PRAGMA {name}").scalar() for name in _PRAGMAS}
    _set(connection, {"cache_size": -_SQLITE_CACHE_KIB, "foreign_keys": 0})
    try:
        yield imported
        try:
            connection.exec_driver_sql("ANALYZE customers")
        except OperationalError as exc:
            if "locked" not in str(exc.orig):  # the lock not given in time: see above
                raise
            imported.analyzed = False
    finally:
        connection.rollback()  # the transaction an error left open, if any
        _set(connection, before)


@contextmanager
def first_load(connection: Connection, table: Table) -> Iterator[bool]:
    """Whether `table` is being loaded while empty: then, on SQLite, the whole block is one
    transaction during which the table's indexes other than its keys are dropped, built again
    at its end (one sort each instead of an update of each for every row: storing a first
    import of events at M takes a quarter less CPU). All or nothing: an error rolls the rows
    and the indexes back. The block must not commit.

    False, with nothing done, when the table holds rows or on PostgreSQL: the block then stores
    as usual, committing as it goes."""
    if connection.dialect.name != "sqlite":
        yield False
        return
    target = connection.dialect.identifier_preparer.format_table(table)
    with sqlite_write_transaction(connection):
        empty = connection.exec_driver_sql(f"SELECT 1 FROM {target} LIMIT 1").first() is None
        if empty:
            indexes = _lookup_indexes(connection, table)
            for name, _ in indexes:
                connection.exec_driver_sql(f"DROP INDEX {name}")
            yield True
            for _, made_by in indexes:
                connection.exec_driver_sql(made_by)
    if empty:
        _truncate_log(connection)
    else:
        yield False


def _truncate_log(connection: Connection) -> None:
    """Give back the space of the write-ahead log, grown to the size of what was loaded, now
    rather than when the last connection closes (a daemon may hold one for months). Not while
    another process reads an older snapshot: the checkpoint would wait for it. The log then
    keeps its size, written again from its start, until the last connection closes."""
    before = {"busy_timeout": connection.exec_driver_sql("PRAGMA busy_timeout").scalar()}
    _set(connection, {"busy_timeout": 0})
    try:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        _set(connection, before)


# Lookup indexes that an import reads as it stores (each batch of customers asks for the latest
# sign-up's number): kept up row by row in a first load too, else every batch would scan the
# rows loaded before it. Their values grow with the load, so each row goes at the index's end.
_READ_WHILE_LOADING = frozenset({"ix_customers_signed_up_seq"})


def _lookup_indexes(connection: Connection, table: Table) -> list[tuple[str, str]]:
    """The indexes of `table` made by CREATE INDEX without UNIQUE (not its keys, on which
    `ON CONFLICT` depends) that the load does not read: quoted name and the SQL that made
    it."""
    quote = connection.dialect.identifier_preparer.quote
    listed = connection.exec_driver_sql(f"PRAGMA index_list({quote(table.name)})").all()
    made: dict[str, str] = dict(
        connection.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ?",
            (table.name,),
        ).all()
    )
    # index_list: seq, name, unique, origin ('c' for CREATE INDEX), partial
    return [
        (quote(row[1]), made[row[1]])
        for row in listed
        if row[3] == "c" and not row[2] and row[1] not in _READ_WHILE_LOADING
    ]


_PRAGMAS = ("cache_size", "foreign_keys")
_IMPORTED = ("customers", "customer_tags", "consent_changes", "events")  # what imports write


def _set(connection: Connection, pragmas: dict[str, object]) -> None:
    for name, value in pragmas.items():
        connection.exec_driver_sql(f"PRAGMA {name} = {int(cast(int, value))}")
    connection.commit()


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
        return _insert_postgresql(connection, table, columns, rows, _SKIP_TAKEN)[0]
    raise DatabaseError(f"Nudge works with SQLite and PostgreSQL, not {name}")


def insert_new_returning(
    connection: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
    returning: Sequence[str],
) -> list[tuple[Any, ...]]:
    """`insert_new`, returning the `returning` columns of the rows it inserted (those whose
    key was free: of two with the same key, the first), in no particular order (neither
    database promises one for RETURNING). On SQLite up to a thousand rows per statement, in
    one `VALUES` list; on PostgreSQL the COPY into a temporary table, then one
    INSERT ... SELECT. SQLAlchemy's own insert of many rows returning their ids processed every
    row and parameter in Python, and took twice as long on SQLite."""
    return _insert_returning(connection, table, columns, rows, returning, _SKIP_TAKEN)


def insert_rows_returning(
    connection: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
    returning: Sequence[str],
) -> list[tuple[Any, ...]]:
    """`insert_rows`, returning the `returning` columns of every row (in no particular order),
    as `insert_new_returning` does: a row that breaks a constraint fails the whole insert."""
    return _insert_returning(connection, table, columns, rows, returning, "")


def _insert_returning(
    connection: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
    returning: Sequence[str],
    on_conflict: str,
) -> list[tuple[Any, ...]]:
    if not rows:
        return []
    name = connection.dialect.name
    back = f" RETURNING {_names(connection, returning)}"
    if name == "postgresql":
        return _insert_postgresql(connection, table, columns, rows, on_conflict, back)[1]
    if name != "sqlite":
        raise DatabaseError(f"Nudge works with SQLite and PostgreSQL, not {name}")
    target = connection.dialect.identifier_preparer.format_table(table)
    head = f"INSERT INTO {target} ({_names(connection, columns)}) VALUES "
    marks = f"({', '.join('?' * len(columns))})"
    per = max(1, min(_SQLITE_ROWS_PER_STATEMENT, _SQLITE_VARIABLES // len(columns)))
    result: list[tuple[Any, ...]] = []
    for start in range(0, len(rows), per):
        part = rows[start : start + per]
        statement = f"{head}{', '.join([marks] * len(part))}{on_conflict}{back}"
        values = tuple(value for row in part for value in row)
        result += map(tuple, connection.exec_driver_sql(statement, values))
    return result


_SKIP_TAKEN = " ON CONFLICT DO NOTHING"
# Rows in one SQLite statement of an insert returning columns, and the most variables one may have
# (SQLite's limit since 3.32; SQLAlchemy assumes it too).
_SQLITE_ROWS_PER_STATEMENT = 1000
_SQLITE_VARIABLES = 32_766


def insert_rows(
    connection: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Iterable[Sequence[object]],
) -> None:
    """Insert `rows`, tuples of the `columns` of `table` in that order (JSON columns as JSON
    text), as they are: on SQLite one prepared statement run for every row, on PostgreSQL a
    COPY. A row that breaks a constraint fails the whole insert.

    `rows` may be an iterator that makes them as it goes: on PostgreSQL the server then stores
    the first rows while the next are being made (an iterator that yields nothing still costs a
    COPY there)."""
    if isinstance(rows, Sequence) and not rows:
        return
    target = connection.dialect.identifier_preparer.format_table(table)
    names = _names(connection, columns)
    name = connection.dialect.name
    if name == "sqlite":
        listed = list(rows)
        if listed:
            marks = ", ".join("?" * len(columns))
            connection.exec_driver_sql(f"INSERT INTO {target} ({names}) VALUES ({marks})", listed)
    elif name == "postgresql":
        _copy(connection, f"COPY {target} ({names}) FROM STDIN", rows)
    else:
        raise DatabaseError(f"Nudge works with SQLite and PostgreSQL, not {name}")


def _copy(connection: Connection, statement: str, rows: Iterable[Sequence[object]]) -> None:
    """COPY `rows` through the driver; its errors raised as SQLAlchemy's (an IntegrityError for
    a key already taken), as any other statement's are."""
    driver = cast("psycopg.Connection[Any]", connection.connection.driver_connection)
    dbapi = connection.dialect.loaded_dbapi
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
    except dbapi.Error as exc:
        raise DBAPIError.instance(statement, None, exc, dbapi.Error) from exc


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
    # A list makes it an executemany, whose rowcount sqlite3 sums over the rows.
    return connection.exec_driver_sql(sql, list(rows)).rowcount


def _insert_postgresql(
    connection: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
    on_conflict: str,
    returning: str = "",
) -> tuple[int, list[tuple[Any, ...]]]:
    """The rows inserted: how many, and their `returning` columns when asked for them."""
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
    _copy(
        connection,
        f"COPY {staging} (n, {names}) FROM STDIN",
        ((n, *row) for n, row in enumerate(rows)),
    )
    result = connection.exec_driver_sql(
        f"INSERT INTO {target} ({names}) SELECT {names} FROM {staging} ORDER BY n"
        f"{on_conflict}{returning}"
    )
    inserted = (result.rowcount, list(map(tuple, result)) if returning else [])
    connection.exec_driver_sql(f"DROP TABLE {staging}")
    return inserted


def reserve_ids(connection: Connection, table: Table, count: int) -> list[int]:
    """`count` new values of the sequence behind `table`'s `id` column, in increasing order, for
    rows to be inserted with their ids given (PostgreSQL only). Each is drawn by `nextval`, so
    no other session is ever given one of them, whether or not the rows are inserted in the end
    (a value not used is a gap, as the sequence leaves for a rolled-back insert)."""
    if connection.dialect.name != "postgresql":
        raise DatabaseError("ids are reserved on PostgreSQL only")
    if count <= 0:
        return []
    # One array rather than a row per id (the driver reads it in C); the sequence looked up once.
    ids = connection.exec_driver_sql(
        "SELECT ARRAY(SELECT nextval(sequence) FROM"
        " (SELECT pg_get_serial_sequence(%(table)s, 'id')::regclass AS sequence OFFSET 0) AS found,"
        " generate_series(1, %(n)s))",
        {"table": connection.dialect.identifier_preparer.format_table(table), "n": count},
    ).scalar_one()
    return sorted(ids)


def upsert(connection: Connection, table: Table) -> Insert:
    """An INSERT into `table` that overwrites every other column of a row with the same
    primary key."""
    statement = _insert(connection, table)
    keys = [column.name for column in table.primary_key.columns]
    return statement.on_conflict_do_update(
        index_elements=keys,
        set_={c.name: statement.excluded[c.name] for c in table.columns if c.name not in keys},
    )
