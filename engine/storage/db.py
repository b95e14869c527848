"""Opening the shop's database: engine options per dialect, and schema upgrade on open.

`open_database` brings any database it opens to the newest schema through the Alembic
migrations in `migrations/`, so there is no manual step. Several processes may open the same
database at once (the daemon, an import, a report): the upgrade runs under a lock, an
exclusive write transaction on SQLite and a transaction-scoped advisory lock on PostgreSQL,
so one of them migrates and the others then find the schema current.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.exc import DatabaseError as SQLAlchemyDatabaseError

from engine.errors import DatabaseError
from engine.plan.sqlfuncs import arith_value
from engine.storage import jsontext

MIGRATIONS = Path(__file__).parent / "migrations"

# Key of the PostgreSQL advisory lock held while the schema is upgraded (any fixed 64-bit
# number that no other application on the server uses; this one spells "nudge-db").
_SCHEMA_LOCK = 0x6E75_6467_652D_6462


# How long a SQLite connection waits for another's write lock before giving up with "database
# is locked".
BUSY_TIMEOUT_S = 10.0


@contextmanager
def short_write(engine: Engine) -> Iterator[Connection]:
    """`engine.begin()` for a command's one short write (claiming a task, requeuing dead
    letters). On SQLite another process may hold the write lock beyond the busy timeout (an
    import's first load, a long tick): that is said in plain words, the transaction undone."""
    try:
        with engine.begin() as conn:
            yield conn
    except OperationalError as exc:
        if "locked" not in str(exc.orig):
            raise
        raise DatabaseError(
            "another process (an import, or the daemon's tick) held the database's write lock"
            f" for more than {BUSY_TIMEOUT_S:g} seconds; nothing was changed, run the command"
            " again"
        ) from exc


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    _write_ahead_logging(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
    dbapi_connection.create_function("nudge_arith", 3, arith_value, deterministic=True)


def _write_ahead_logging(cursor: sqlite3.Cursor) -> None:
    """Switch the database to write-ahead logging (it stays so: later switches do nothing).
    While another process switches the same new file, SQLite may answer "database is locked"
    at once rather than wait for the busy timeout (one open in a few hundred, six processes
    opening a new database together): the switch is tried again until that timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def create(url: str) -> Engine:
    """An Engine for `url` (a SQLAlchemy URL); `postgresql://` means psycopg 3."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
        raise DatabaseError(f"not a database URL: {url!r}") from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    try:
        engine = create_engine(parsed, json_deserializer=jsontext.loads)
    except (ArgumentError, ImportError) as exc:
        shown = parsed.render_as_string(hide_password=True)
        raise DatabaseError(f"cannot use the database URL {shown!r}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def alembic_config(connection: Connection) -> Config:
    """Alembic's configuration, built in code: the packaged migrations, run on `connection`."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@contextmanager
def sqlite_write_transaction(connection: Connection) -> Iterator[None]:
    """One SQLite transaction around the block, holding the write lock from its start, in which
    DDL is transactional too: committed at the end of the block, rolled back if it raises.

    pysqlite opens transactions only before DML, so DDL would run outside any transaction: the
    transaction is taken into our own hands, the connection set to autocommit meanwhile. The
    block must not commit or roll back (the driver's commit would end this transaction)."""
    before = connection.get_isolation_level()
    connection.execution_options(isolation_level="AUTOCOMMIT")
    try:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            # Unless SQLite ended it on its own (as it may on a full disk, for one).
            if connection.connection.driver_connection.in_transaction:  # type: ignore[union-attr]
                connection.exec_driver_sql("ROLLBACK")
            raise
        connection.exec_driver_sql("COMMIT")
    finally:
        connection.rollback()  # SQLAlchemy's own record of the transaction; nothing is open
        connection.execution_options(isolation_level=before)


@contextmanager
def _schema_lock(connection: Connection) -> Iterator[None]:
    """One transaction around the upgrade, during which no other process can upgrade."""
    if connection.dialect.name == "sqlite":
        with sqlite_write_transaction(connection):
            yield
        return
    with connection.begin():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
        yield


def upgrade(engine: Engine) -> None:
    """Bring the schema of `engine`'s database to the newest revision (no-op when current).

    Whether it is current is read first, without the lock: a database in use is nearly always
    current, and on SQLite taking the lock would wait for whichever process is writing (a long
    tick, a first import) and give up after `BUSY_TIMEOUT_S`."""
    with engine.connect() as connection:
        config = alembic_config(connection)
        current = MigrationContext.configure(connection).get_current_revision()
        if current == ScriptDirectory.from_config(config).get_current_head():
            return
    with engine.connect() as connection, _schema_lock(connection):
        command.upgrade(alembic_config(connection), "head")


def open_existing(url: str) -> Engine:
    """`open_database` for a command that reads the shop (`simulate`, `status`…): `url` must
    name a database that Nudge has written already. A SQLite file that does not exist, an empty
    database or another application's (a mistyped --db) is an error, and is left as it was:
    no table is made in it, nor is a SQLite file switched to write-ahead logging."""
    parsed = make_url(url) if "://" in url else None
    if parsed is not None and parsed.get_backend_name() == "sqlite":
        path = parsed.database
        if path and path != ":memory:" and not path.startswith("file:") and not Path(path).exists():
            raise DatabaseError(
                f"there is no database {path} ({url}): import the shop's customers and events"
                " first (`nudge import`), or name the right file with --db or `database:`"
            )
        _a_nudge_database(url, stored_tables(url))
        return open_database(url)
    # A server's tables are read through the engine the command then uses, on the connection
    # its pool keeps: one connection, not one to look and another to work.
    engine = create(url)
    try:
        _a_nudge_database(url, server_tables(engine))
    except DatabaseError:
        engine.dispose()
        raise
    return _brought_up_to_date(engine, url)


def _a_nudge_database(url: str, tables: set[str] | None) -> None:
    """DatabaseError when `tables` (those `url`'s database holds; None when they could not be
    read) are none, or another application's."""
    if tables is None or "alembic_version" in tables:
        return
    if not tables:
        raise DatabaseError(
            f"the database {shown_url(url)} is empty: import the shop's customers and events"
            " first (`nudge import`), or name the right database with --db or `database:`"
        )
    some = ", ".join(sorted(tables)[:5]) + (", …" if len(tables) > 5 else "")
    raise DatabaseError(
        f"the database {shown_url(url)} is not a Nudge database (it holds {some}): name"
        " the shop's Nudge database with --db or `database:`"
    )


def stored_tables(url: str) -> set[str] | None:
    """The tables `url`'s database holds, read without changing it (a SQLite file is opened
    read-only); None for an in-memory database, or where it cannot be read (`open_database`
    then says why)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return None
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database
        if not path or path == ":memory:" or path.startswith("file:"):
            return None
        try:
            read_only = f"{Path(path).resolve().as_uri()}?mode=ro"
            with closing(sqlite3.connect(read_only, uri=True)) as connection:
                names = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                return {str(name) for (name,) in names}
        except sqlite3.Error:
            return None
    try:
        engine = create(url)
    except DatabaseError:
        return None
    try:
        return server_tables(engine)
    finally:
        engine.dispose()


def server_tables(engine: Engine) -> set[str] | None:
    """The tables `engine`'s database holds; None where it cannot be read."""
    try:
        with engine.connect() as conn:
            return set(inspect(conn).get_table_names())
    except SQLAlchemyDatabaseError:
        return None


def shown_url(url: str) -> str:
    """`url` as messages show it: without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return url


def open_database(url: str) -> Engine:
    """Connect to `url` and bring its schema up to date."""
    return _brought_up_to_date(create(url), url)


def _brought_up_to_date(engine: Engine, url: str) -> Engine:
    """`engine`, on `url`, its schema brought up to date; disposed of when that fails."""
    try:
        upgrade(engine)
    except SQLAlchemyDatabaseError as exc:  # unreachable, locked, not a database at all
        engine.dispose()
        raise DatabaseError(f"cannot open the database {shown_url(url)!r}: {exc.orig}") from exc
    except CommandError as exc:
        engine.dispose()
        raise DatabaseError(
            f"the database {shown_url(url)!r} has a schema this version of Nudge does not know"
            f" ({exc}); is it used by a newer version?"
        ) from exc
    return engine
