"""Opening a database: the schema comes from the Alembic migrations and matches tables.py."""

from __future__ import annotations

import multiprocessing
import socket
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    JSON,
    Column,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    func,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import Pool

from cli import main
from engine.checking.ruleset import stored_event_types
from engine.errors import DatabaseError
from engine.status import status
from engine.storage import bulk, tables
from engine.storage import db as storage_db
from engine.storage.bulk import insert_new_returning, insert_rows, insert_rows_returning
from engine.storage.chunks import among
from engine.storage.db import alembic_config, create, open_database


@pytest.fixture
def fresh_url(db_url: str) -> Iterator[str]:
    """A database with no schema at all: db_url's SQLite file (not created yet), or a new
    PostgreSQL database on db_url's server."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        yield db_url
        return
    name = f"nudge_fresh_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def schema_diff(url: str, metadata: MetaData) -> list:
    engine = create(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return compare_metadata(context, metadata)
    finally:
        engine.dispose()


def test_migrations_build_exactly_the_schema_of_tables_py(fresh_url):
    open_database(fresh_url).dispose()
    assert schema_diff(fresh_url, tables.metadata) == []


def test_schema_comparison_notices_a_difference(fresh_url):
    """The check above can fail: a table the migrations never created shows up in the diff."""
    open_database(fresh_url).dispose()
    extra = MetaData()
    for table in tables.metadata.tables.values():
        table.to_metadata(extra)
    Table("not_migrated", extra, Column("id", Integer, primary_key=True))
    diff = schema_diff(fresh_url, extra)
    assert [(kind, table.name) for kind, table in diff] == [("add_table", "not_migrated")]


def test_open_database_twice_keeps_the_data(fresh_url):
    engine = open_database(fresh_url)
    with engine.begin() as conn:
        conn.execute(insert(tables.customers).values(id="c1", accepts_marketing=False))
    engine.dispose()
    engine = open_database(fresh_url)
    with engine.connect() as conn:
        assert conn.execute(select(tables.customers.c.id)).scalars().all() == ["c1"]
        head = ScriptDirectory.from_config(alembic_config(conn)).get_current_head()
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == head
    engine.dispose()


def test_a_current_database_opens_while_another_process_writes(fresh_url, monkeypatch):
    """Opening reads the schema's revision before it takes any lock: a long write elsewhere (a
    first import, a large tick) does not keep other commands out."""
    open_database(fresh_url).dispose()
    monkeypatch.setattr(storage_db, "BUSY_TIMEOUT_S", 0.1)
    writer = create(fresh_url)
    with writer.begin() as conn:
        conn.execute(insert(tables.customers).values(id="c1", accepts_marketing=False))
        engine = open_database(fresh_url)  # SQLite's write lock is held meanwhile
        with engine.connect() as other:
            assert other.execute(select(tables.customers.c.id)).all() == []
        engine.dispose()
    writer.dispose()


def test_transactions_still_roll_back_after_the_upgrade(db_url):
    """The upgrade takes SQLite's transactions into its own hands; the pool must not keep that."""
    engine = open_database(db_url)
    with engine.connect() as conn:
        conn.execute(insert(tables.customers).values(id="c1", accepts_marketing=False))
        conn.rollback()
        assert conn.execute(select(tables.customers.c.id)).all() == []
    engine.dispose()


def _open_and_close(url: str) -> str:
    try:
        open_database(url).dispose()
    except DatabaseError as exc:
        return str(exc)
    return "ok"


def test_processes_opening_a_new_database_at_once_all_succeed(fresh_url):
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        outcomes = pool.map(_open_and_close, [fresh_url] * 4)
    assert outcomes == ["ok"] * 4
    assert schema_diff(fresh_url, tables.metadata) == []


class _BusyAtFirst:
    """A cursor whose first `answers` statements fail as SQLite's switch to WAL may fail."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.tries = 0

    def execute(self, statement: str) -> None:
        assert statement == "PRAGMA journal_mode=WAL"
        self.tries += 1
        if self.answers:
            raise sqlite3.OperationalError(self.answers.pop(0))


def test_the_switch_to_write_ahead_logging_waits_out_a_lock_and_nothing_else():
    # The flakiness of the test above: SQLite did not wait for the busy timeout there.
    busy = _BusyAtFirst("database is locked", "database is locked")
    storage_db._write_ahead_logging(busy)  # type: ignore[arg-type]
    assert busy.tries == 3
    broken = _BusyAtFirst("disk I/O error")
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        storage_db._write_ahead_logging(broken)  # type: ignore[arg-type]
    assert broken.tries == 1


def test_sqlite_uses_write_ahead_logging(tmp_path):
    engine = open_database(f"sqlite:///{tmp_path / 'shop.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
    engine.dispose()


def test_plain_postgresql_url_means_psycopg_3():
    engine = create("postgresql://postgres@127.0.0.1:5432/test")
    assert engine.dialect.driver == "psycopg"
    engine.dispose()


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("not a url", "not a database URL"),
        ("nosuchdb://x", "cannot use the database URL"),
    ],
)
def test_unusable_urls_are_plain_errors(url, words):
    with pytest.raises(DatabaseError, match=words):
        open_database(url)


def test_unreachable_sqlite_file_is_a_plain_error(tmp_path):
    with pytest.raises(DatabaseError, match="cannot open the database"):
        open_database(f"sqlite:///{tmp_path / 'no' / 'such' / 'folder.db'}")


def test_a_file_that_is_not_a_database_is_a_plain_error_and_left_as_it_was(tmp_path):
    path = tmp_path / "customers.csv"  # `--db sqlite:///customers.csv`, say
    path.write_text("id,name\n1,Ann\n", encoding="utf-8")
    with pytest.raises(DatabaseError, match=r"cannot open the database .*: file is not a database"):
        open_database(f"sqlite:///{path}")
    assert path.read_text(encoding="utf-8") == "id,name\n1,Ann\n"


def _make_foreign(url: str) -> None:
    """Another application's database at `url`: one table of its own, SQLite's usual journal."""
    if url.startswith("sqlite"):
        with sqlite3.connect(make_url(url).database) as conn:
            conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
            conn.execute("INSERT INTO invoices VALUES (1, 9.5)")
        return
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)"))
    engine.dispose()


def _tables_and_journal(url: str) -> tuple[set[str], str | None]:
    if url.startswith("sqlite"):
        with sqlite3.connect(make_url(url).database) as conn:
            names = {
                n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            return names, conn.execute("PRAGMA journal_mode").fetchone()[0]
    engine = create_engine(url)
    with engine.connect() as conn:
        names = set(inspect(conn).get_table_names())
    engine.dispose()
    return names, None


def test_commands_that_read_the_shop_refuse_another_application_s_database(fresh_url):
    # A mistyped --db naming the shop's own database: said so, and nothing made or changed.
    _make_foreign(fresh_url)
    before = _tables_and_journal(fresh_url)
    with pytest.raises(DatabaseError, match=r"is not a Nudge database \(it holds invoices\)"):
        storage_db.open_existing(fresh_url)
    assert stored_event_types(fresh_url) == []  # `check` reads it without a change either
    assert _tables_and_journal(fresh_url) == before
    assert before[1] in (None, "delete")


def test_commands_that_read_the_shop_refuse_an_empty_database(fresh_url):
    if fresh_url.startswith("sqlite"):
        sqlite3.connect(make_url(fresh_url).database).close()  # an empty file
    with pytest.raises(DatabaseError, match="is empty: import the shop's customers and events"):
        storage_db.open_existing(fresh_url)
    assert _tables_and_journal(fresh_url)[0] == set()
    open_database(fresh_url).dispose()  # what `nudge import` does: then it is the shop's
    storage_db.open_existing(fresh_url).dispose()


def test_a_database_password_is_not_shown_in_errors():
    with pytest.raises(DatabaseError) as refused:
        open_database("postgresql://shop:s3cretpw@127.0.0.1:1/shop")
    assert "s3cretpw" not in str(refused.value)
    assert "postgresql://shop:***@127.0.0.1:1/shop" in str(refused.value)


def test_a_database_from_a_newer_version_is_refused(fresh_url):
    engine = open_database(fresh_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(DatabaseError, match="newer version"):
        open_database(fresh_url)


def test_rows_inserted_as_tuples_read_back_as_given(db_url):
    """`insert_rows` hands tuples to the driver (an executemany, a COPY): every type comes back
    as it went in, JSON given as text included; a row breaking a constraint fails them all."""
    probe = Table(
        "bulk_probe",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("name", String(20)),
        Column("amount", Float),
        Column("doc", JSON),
    )
    engine = open_database(db_url)
    rows = [(1, "één", 2.5, '{"a": [1, null]}'), (2, None, None, "null"), (3, "c", -0.0, "{}")]
    with engine.begin() as conn:
        probe.create(conn)
        insert_rows(conn, probe, ("id", "name", "amount", "doc"), rows)
        stored = conn.execute(select(probe).order_by(probe.c.id)).all()
        assert stored == [
            (1, "één", 2.5, {"a": [1, None]}),
            (2, None, None, None),
            (3, "c", 0.0, {}),
        ]
        with pytest.raises(IntegrityError), conn.begin_nested():
            insert_rows(conn, probe, ("id", "name"), [(4, "new"), (1, "taken")])
        assert conn.execute(select(func.count()).select_from(probe)).scalar() == 3
        probe.drop(conn)
    engine.dispose()


def _keyed_probe() -> Table:
    """A table with an id, a unique key and a note, for the bulk writes and key lists."""
    return Table(
        "bulk_probe",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("key", String(20), unique=True),
        Column("note", String(20)),
    )


def test_new_rows_come_back_with_their_ids_and_taken_keys_are_skipped(db_url, monkeypatch):
    """`insert_new_returning`: the rows whose key was free (the first of two with the same
    key), with the columns asked for; on SQLite over several statements."""
    monkeypatch.setattr(bulk, "_SQLITE_ROWS_PER_STATEMENT", 2)
    probe = _keyed_probe()
    engine = open_database(db_url)
    with engine.begin() as conn:
        probe.create(conn)
        conn.execute(insert(probe), [{"key": "b", "note": "stored"}])
        given = [("a", "1"), ("b", "2"), ("c", "3"), ("a", "4"), ("d", None)]
        back = insert_new_returning(conn, probe, ("key", "note"), given, ("id", "key", "note"))
        stored = conn.execute(select(probe.c.id, probe.c.key, probe.c.note)).all()
        assert sorted(back) == sorted(tuple(row) for row in stored if row.key != "b")
        assert sorted((key, note) for _, key, note in back) == [("a", "1"), ("c", "3"), ("d", None)]
        assert insert_new_returning(conn, probe, ("key",), [("a",)], ("id",)) == []
        assert insert_new_returning(conn, probe, ("key",), [], ("id",)) == []
        probe.drop(conn)
    engine.dispose()


def test_rows_come_back_with_their_ids_and_a_taken_key_fails_them_all(db_url, monkeypatch):
    """`insert_rows_returning`: every row, with the columns asked for; a taken key is an
    error that stores none of them (unlike `insert_new_returning`, which skips it)."""
    monkeypatch.setattr(bulk, "_SQLITE_ROWS_PER_STATEMENT", 2)
    probe = _keyed_probe()
    engine = open_database(db_url)
    with engine.begin() as conn:
        probe.create(conn)
        given = [("a", "1"), ("b", None), ("c", "3")]
        back = insert_rows_returning(conn, probe, ("key", "note"), given, ("id", "key", "note"))
        stored = conn.execute(select(probe.c.id, probe.c.key, probe.c.note)).all()
        assert sorted(back) == sorted(tuple(row) for row in stored)
        assert sorted((key, note) for _, key, note in back) == given
        with pytest.raises(IntegrityError), conn.begin_nested():
            insert_rows_returning(conn, probe, ("key",), [("d",), ("a",)], ("id",))
        assert conn.execute(select(func.count()).select_from(probe)).scalar() == 3
        assert insert_rows_returning(conn, probe, ("key",), [], ("id",)) == []
        probe.drop(conn)
    engine.dispose()


def test_rows_made_as_they_are_inserted_go_in_and_a_failure_among_them_stores_none(db_url):
    """`insert_rows` of an iterator: its rows are stored as a list's are; when making one of
    them fails, the error comes through and none of them is stored (on PostgreSQL the COPY,
    which had taken the first rows, is abandoned)."""
    probe = _keyed_probe()
    engine = open_database(db_url)

    def made(first: int, last: int, failing: int | None = None) -> Iterator[tuple[int, str]]:
        for n in range(first, last + 1):
            if n == failing:
                raise ValueError(f"row {n}")
            yield (n, f"k{n}")

    with engine.begin() as conn:
        probe.create(conn)
        insert_rows(conn, probe, ("id", "key"), made(1, 3000))
        with pytest.raises(ValueError, match="row 8000"), conn.begin_nested():
            insert_rows(conn, probe, ("id", "key"), made(3001, 9000, failing=8000))
        stored = conn.execute(select(probe.c.id, probe.c.key).order_by(probe.c.id)).all()
        assert [tuple(row) for row in stored] == list(made(1, 3000))
        probe.drop(conn)
    engine.dispose()


def test_a_list_of_keys_selects_exactly_those_rows(db_url):
    """`among`: the rows whose key is in the list, of text and of integer keys, whatever the
    list's length (an array on PostgreSQL, an expanding IN elsewhere)."""
    probe = _keyed_probe()
    engine = open_database(db_url)
    with engine.begin() as conn:
        probe.create(conn)
        insert_rows(conn, probe, ("id", "key"), [(n, f"k{n}") for n in range(1, 3001)])
        dialect = conn.dialect.name
        by_key = select(probe.c.id).where(among(probe.c.key, "keys", dialect))
        by_id = select(probe.c.key).where(among(probe.c.id, "ids", dialect))
        wanted = [f"k{n}" for n in range(2, 3001, 3)] + ["missing"]
        assert sorted(conn.scalars(by_key, {"keys": wanted})) == list(range(2, 3001, 3))
        assert sorted(conn.scalars(by_id, {"ids": [7, 5, 9999]})) == ["k5", "k7"]
        assert list(conn.scalars(by_id, {"ids": []})) == []
        probe.drop(conn)
    engine.dispose()


HEAD = ScriptDirectory(str(storage_db.MIGRATIONS)).get_current_head()


def migrate(url: str, revision: str) -> None:
    """Upgrade or downgrade `url`'s schema to `revision`, as `upgrade` does, under its lock."""
    engine = create(url)
    try:
        with engine.connect() as conn, storage_db._schema_lock(conn):
            config = alembic_config(conn)
            current = MigrationContext.configure(conn).get_current_revision()
            if current is not None and int(revision) < int(current):
                command.downgrade(config, revision)
            else:
                command.upgrade(config, revision)
    finally:
        engine.dispose()


def test_the_sign_ups_numbers_go_back_with_the_customers_and_their_events_kept(fresh_url):
    """0012 downgraded on a shop's database: customers that events and tags refer to lose the
    column `signed_up_seq`, and nothing else (SQLite's foreign keys refused the table's copy)."""
    engine = open_database(fresh_url)
    with engine.begin() as conn:
        conn.execute(insert(tables.customers).values(id="c1", accepts_marketing=True))
        conn.execute(insert(tables.customer_tags).values(customer_id="c1", tag="vip"))
        conn.execute(
            insert(tables.events).values(key="k1", customer_id="c1", type="order.paid", at_us=7)
        )
    engine.dispose()
    migrate(fresh_url, "0011")
    engine = create(fresh_url)
    with engine.connect() as conn:
        assert "signed_up_seq" not in {c["name"] for c in inspect(conn).get_columns("customers")}
        assert conn.execute(text("SELECT id, accepts_marketing FROM customers")).all() == [
            ("c1", True)
        ]
        assert conn.execute(text("SELECT customer_id, tag FROM customer_tags")).all() == [
            ("c1", "vip")
        ]
        assert conn.execute(text("SELECT key, customer_id FROM events")).all() == [("k1", "c1")]
    engine.dispose()
    migrate(fresh_url, HEAD)
    assert schema_diff(fresh_url, tables.metadata) == []


def test_the_event_types_are_read_one_index_lookup_each(fresh_url: str) -> None:
    """`check` and a daemon's start ask which event types the shop sends: the answer is the
    stored types, each once, read by stepping through the index of (type, time, customer),
    not by reading every event (on PostgreSQL asked with its sequential scans off, so that
    only the statement's shape decides)."""
    engine = open_database(fresh_url)
    try:
        assert stored_event_types(fresh_url) == []
        rows = [
            {"customer_id": f"c{i}", "type": kind, "at_us": i, "key": f"e{i}", "props": {}}
            for i, kind in enumerate(["order.paid", "cart.updated", "order.paid", "见面.礼"] * 50)
        ]
        with engine.begin() as conn:
            conn.execute(tables.customers.insert(), [{"id": f"c{i}"} for i in range(200)])
            conn.execute(tables.events.insert(), rows)
        asked: list[str] = []

        def grab(conn, cursor, statement, parameters, context, executemany) -> None:
            asked.append(statement)

        event.listen(Engine, "before_cursor_execute", grab)
        try:
            assert stored_event_types(fresh_url) == ["cart.updated", "order.paid", "见面.礼"]
        finally:
            event.remove(Engine, "before_cursor_execute", grab)
        (statement,) = [text for text in asked if "events" in text]
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement).all()
            else:
                conn.exec_driver_sql("SET enable_seqscan = off")
                plan = conn.exec_driver_sql("EXPLAIN " + statement).all()
        shown = " ".join(str(row[-1]) for row in plan)
        assert "type_at_us_customer_id" in shown and "SCAN events" not in shown, shown
    finally:
        engine.dispose()


def test_consent_changes_come_with_0013_and_the_customers_stand_as_they_were(fresh_url):
    """0013 on a shop's database: the customers, tags and events are kept, and no change of
    consent is known (what is stored stands from the beginning); downgraded, the table goes and
    the rest stays."""
    migrate(fresh_url, "0012")
    engine = create(fresh_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO customers (id, accepts_marketing, attributes)"
                " VALUES ('c1', :yes, '{}'), ('c2', :no, '{}')"
            ),
            {"yes": True, "no": False},
        )
        conn.execute(insert(tables.customer_tags).values(customer_id="c1", tag="vip"))
        conn.execute(
            insert(tables.events).values(key="k1", customer_id="c2", type="order.paid", at_us=7)
        )
    engine.dispose()
    migrate(fresh_url, HEAD)
    assert schema_diff(fresh_url, tables.metadata) == []
    engine = create(fresh_url)
    with engine.begin() as conn:
        assert conn.execute(
            text("SELECT id, accepts_marketing FROM customers ORDER BY id")
        ).all() == [
            ("c1", True),
            ("c2", False),
        ]
        assert conn.execute(select(func.count()).select_from(tables.consent_changes)).scalar() == 0
        conn.execute(
            insert(tables.consent_changes).values(
                customer_id="c1",
                at_us=9,
                accepts_marketing_before=True,
                accepts_marketing_after=False,
            )
        )
    engine.dispose()
    migrate(fresh_url, "0012")
    engine = create(fresh_url)
    with engine.connect() as conn:
        assert "consent_changes" not in inspect(conn).get_table_names()
        assert conn.execute(text("SELECT id FROM customers ORDER BY id")).scalars().all() == [
            "c1",
            "c2",
        ]
        assert conn.execute(text("SELECT key FROM events")).scalars().all() == ["k1"]
    engine.dispose()


def test_0014_keeps_the_daemons_noted_and_leaves_them_to_their_heartbeat(fresh_url) -> None:
    """0014 on a database with a daemon noted: the row is kept, without a `pid_space`, and
    `status` judges it by its heartbeat alone, as before (its process cannot be looked for);
    downgraded, the column goes and the row stays."""
    ended = subprocess.Popen([sys.executable, "-c", ""])  # a number no process runs under
    ended.wait()
    migrate(fresh_url, "0013")
    engine = create(fresh_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO daemons (id, host, pid, started_us, heartbeat_us, tick_seconds)"
                " VALUES ('d1', :host, :pid, 5, 10, 30)"
            ),
            {"host": socket.gethostname(), "pid": ended.pid},
        )
    engine.dispose()
    migrate(fresh_url, HEAD)
    assert schema_diff(fresh_url, tables.metadata) == []
    engine = create(fresh_url)
    (seen,) = status(engine, 10 + 60 * 1_000_000, tick_seconds=30).daemons
    assert (seen.pid, seen.gone, seen.silent) == (ended.pid, False, False)
    engine.dispose()
    migrate(fresh_url, "0013")
    engine = create(fresh_url)
    with engine.connect() as conn:
        assert "pid_space" not in {c["name"] for c in inspect(conn).get_columns("daemons")}
        assert conn.execute(text("SELECT id, pid FROM daemons")).all() == [("d1", ended.pid)]
    engine.dispose()


def test_0015_records_the_names_of_the_attributes_stored(fresh_url) -> None:
    """0015 on a shop's database: the names set in its customers' attributes are recorded,
    each once (those of null values, and names longer than 200 characters, are not), so that
    `check` asks them and not every customer; downgraded, the table goes."""
    migrate(fresh_url, "0014")
    engine = create(fresh_url)
    long = "x" * 201
    with engine.begin() as conn:
        conn.execute(
            insert(tables.customers),
            [
                {"id": "c1", "attributes": {"points": 3, "language": "zh"}},
                {"id": "c2", "attributes": {"language": "en", "vip": None, long: 1}},
                {"id": "c3", "attributes": {}},
            ],
        )
    engine.dispose()
    migrate(fresh_url, HEAD)
    assert schema_diff(fresh_url, tables.metadata) == []
    engine = create(fresh_url)
    with engine.connect() as conn:
        names = select(tables.customer_attributes.c.name).order_by("name")
        assert conn.execute(names).scalars().all() == ["language", "points"]
    engine.dispose()
    migrate(fresh_url, "0014")
    engine = create(fresh_url)
    with engine.connect() as conn:
        assert "customer_attributes" not in inspect(conn).get_table_names()
        assert conn.execute(text("SELECT count(*) FROM customers")).scalar() == 3
    engine.dispose()


@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["history", "--from", "2026-11-01", "--to", "2026-11-02"],
        ["outbox"],
        ["tasks"],
    ],
    ids=lambda command: command[0],
)
def test_a_reading_command_connects_to_the_database_once(db_url, command, capsys) -> None:
    """The schema's revision and the tables are read on the connection the command then works
    on: on PostgreSQL a look at the tables opened a connection of its own (two a command)."""
    open_database(db_url).dispose()
    opened: list[object] = []

    def note(dbapi_connection: object, _record: object) -> None:
        opened.append(dbapi_connection)

    event.listen(Pool, "connect", note)
    try:
        main([*command, "--db", db_url])
        assert len(opened) == 1
        opened.clear()
        assert stored_event_types(db_url) == []  # what `check` reads
        assert len(opened) == 1
    finally:
        event.remove(Pool, "connect", note)
    capsys.readouterr()
