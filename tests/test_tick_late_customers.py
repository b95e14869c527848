"""Customers imported after a tick passed their sign-up (a cron job's `nudge import customers`):
their `customer.signed_up` occurrences act late within `grace` and are recorded missed when
older, as events imported late (docs/semantics.md, late events); each is taken once and counted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from daemon_helpers import config_for, write_rules
from sqlalchemy import Engine

from engine.checking.ruleset import load_rule_set
from engine.config import Config
from engine.evaluation.simulate import simulate_records
from engine.evaluation.tick import tick
from engine.importing.customers import parse_customer, store_customers
from engine.importing.importers import WALL_CLOCK, import_customer_rows, import_event_rows
from engine.importing.report import ImportReport
from engine.outbox.history import history
from engine.storage.db import open_database
from engine.storage.tables import customers, occurrences
from engine.timeutil import US, iso, zone
from tests.test_tick import HOUR_US, A

MINUTE_US = 60 * US
WELCOME = 'rule "welcome"\n  when customer.signed_up + 10m\n  then task "say hello"\n'


def setup(engine: Engine, tmp_path: Path, db_url: str, rules: str = WELCOME) -> Config:
    """A rule set on `engine` started at A and ticked at A + 1h."""
    config = config_for(tmp_path, db_url)
    ruleset = load_rule_set(write_rules(tmp_path / "rules", {"r.rules": rules}, []), config)
    tick(engine, ruleset, config, "shop", A)  # the rule set starts
    tick(engine, ruleset, config, "shop", A + HOUR_US)
    return config


def ticked(engine: Engine, tmp_path: Path, config: Config, now_us: int) -> tuple[int, int, int]:
    """(late, acted, missed) of a tick at `now_us`."""
    ruleset = load_rule_set(tmp_path / "rules", config)
    report = tick(engine, ruleset, config, "shop", now_us)
    return report.late, report.recorded.occurrences, report.recorded.missed


def signed_up(engine: Engine, config: Config, *rows: tuple[str, int]) -> None:
    people = [{"id": cid, "signed_up": iso(at_us)} for cid, at_us in rows]
    assert not import_customer_rows(engine, people, config.timezone).problems


def stored_with(engine: Engine, values: dict[str, object], meanwhile: Callable[..., None]) -> None:
    """Store one customer as an import does, `meanwhile` called after each of its statements
    (to start another import at the moment under test)."""
    row = parse_customer(values, False, zone("UTC"))
    with engine.connect() as conn:
        sa.event.listen(conn, "after_cursor_execute", meanwhile)
        conn.begin()
        store_customers(conn, [row], ImportReport("customers", "<test>"), WALL_CLOCK)
        conn.commit()


def ledger(engine: Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        query = sa.select(occurrences.c.customer_id, occurrences.c.due_us, occurrences.c.status)
        return sorted((c, iso(due), status) for c, due, status in conn.execute(query))


def test_a_sign_up_imported_after_its_tick_acts_late_within_grace(db_url, tmp_path, engine):
    config = setup(engine, tmp_path, db_url)
    # The hourly import brings a customer who signed up half an hour ago.
    signed_up(engine, config, ("c1", A + 30 * MINUTE_US))
    assert ticked(engine, tmp_path, config, A + 2 * HOUR_US) == (1, 1, 0)
    for hours in range(3, 6):  # taken once
        assert ticked(engine, tmp_path, config, A + hours * HOUR_US) == (0, 0, 0)
    ruleset = load_rule_set(tmp_path / "rules", config)
    simulated = simulate_records(engine, ruleset, config, A, A + 6 * HOUR_US)
    assert [(r["customer"], r["due"]) for r in simulated] == [("c1", iso(A + 40 * MINUTE_US))]
    done = [(r.customer_id, iso(r.due_us)) for r in history(engine, A, A + 6 * HOUR_US)]
    assert done == [("c1", iso(A + 40 * MINUTE_US))]


def test_older_than_grace_is_missed_and_history_is_not_late(db_url, tmp_path, engine):
    config = setup(engine, tmp_path, db_url)
    for hours in range(2, 9):
        ticked(engine, tmp_path, config, A + hours * HOUR_US)
    signed_up(
        engine,
        config,
        ("old", A - 2 * HOUR_US),  # before the rule set started: history
        ("gone", A + HOUR_US),  # due 1h10 after A: more than grace (6h) and a tick ago
        ("recent", A + 7 * HOUR_US),
    )
    assert ticked(engine, tmp_path, config, A + 9 * HOUR_US) == (2, 1, 1)
    assert ledger(engine) == [
        ("gone", iso(A + HOUR_US + 10 * MINUTE_US), "missed"),
        ("recent", iso(A + 7 * HOUR_US + 10 * MINUTE_US), "acted"),
    ]


def test_only_a_new_or_moved_sign_up_is_numbered(db_url, tmp_path, engine):
    """An import that repeats a customer leaves its number; one that moves the sign-up, or
    gives one to a customer an event made, numbers it anew, after every number before."""
    config = setup(engine, tmp_path, db_url)
    assert not import_event_rows(
        engine, [{"customer": "e1", "type": "order.paid", "at": iso(A - HOUR_US)}], config.timezone
    ).problems
    signed_up(engine, config, ("c1", A - HOUR_US), ("c2", A - HOUR_US))

    def numbers() -> dict[str, int | None]:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(customers.c.id, customers.c.signed_up_seq))
            return dict(rows.all())

    first = numbers()
    assert first["e1"] is None and first["c1"] and first["c2"]
    assert not import_customer_rows(
        engine, [{"id": "c1", "signed_up": iso(A - HOUR_US), "name": "Ann"}], config.timezone
    ).problems
    assert numbers() == first
    signed_up(engine, config, ("c2", A + 30 * MINUTE_US), ("e1", A + 20 * MINUTE_US))
    after = numbers()
    last = max(first["c1"], first["c2"])
    assert after["c1"] == first["c1"]
    assert sorted([after["c2"], after["e1"]]) == [last + 1, last + 2]
    # Both now acts late: e1's sign-up is new, c2's moved into the rule set's time.
    assert ticked(engine, tmp_path, config, A + 2 * HOUR_US) == (2, 2, 0)


def test_counted_but_not_evaluated_without_a_sign_up_rule(db_url, tmp_path, engine):
    rules = 'rule "thanks"\n  when order.paid\n  then task "thank"\n'
    config = setup(engine, tmp_path, db_url, rules)
    signed_up(engine, config, ("c1", A + 30 * MINUTE_US))
    assert ticked(engine, tmp_path, config, A + 2 * HOUR_US) == (1, 0, 0)
    assert ticked(engine, tmp_path, config, A + 3 * HOUR_US) == (0, 0, 0)


def test_a_sign_up_imported_between_the_upgrade_and_the_next_tick_acts(db_url, tmp_path, engine):
    """A rule set that ran before migration 0012: the first import after the upgrade (the
    hourly import, which upgrades the database as it opens it, while the daemon still runs the
    old version or is stopped for the upgrade) numbers sign-ups the next tick must take."""
    from tests.test_storage import HEAD, migrate

    config = setup(engine, tmp_path, db_url)
    engine.dispose()
    migrate(db_url, "0011")
    migrate(db_url, HEAD)  # through 0012
    signed_up(engine, config, ("c1", A + 30 * MINUTE_US))
    assert ticked(engine, tmp_path, config, A + 2 * HOUR_US) == (1, 1, 0)


def test_two_imports_at_once_on_sqlite_number_their_sign_ups_apart(tmp_path):
    """An import reads the newest number, then writes the next ones: on SQLite it must hold the
    write lock from that read on (as the advisory lock on PostgreSQL). Else another import
    that read the same number and committed first, and a tick after it, left this import's
    sign-up under a number the rule set had seen: never acted on, never counted."""

    db_url = f"sqlite:///{tmp_path / 'shop.db'}"
    engine = open_database(db_url)
    config = setup(engine, tmp_path, db_url)
    signed_up(engine, config, ("old", A - HOUR_US))  # not a first load
    other = threading.Thread(target=signed_up, args=(engine, config, ("c1", A + 30 * MINUTE_US)))

    def meanwhile(conn: object, cursor: object, statement: str, *_args: object) -> None:
        if "max(customers.signed_up_seq)" not in statement or other.is_alive():
            return
        other.start()  # another import, once this one has read the newest number
        other.join(timeout=1)
        if not other.is_alive():  # it did not wait for this one: a tick comes in between
            assert ticked(engine, tmp_path, config, A + 2 * HOUR_US) == (1, 1, 0)

    stored_with(engine, {"id": "c2", "signed_up": iso(A + 20 * MINUTE_US)}, meanwhile)
    other.join()
    ticked(engine, tmp_path, config, A + 3 * HOUR_US)
    assert [(c, status) for c, _, status in ledger(engine)] == [("c1", "acted"), ("c2", "acted")]
    engine.dispose()


def test_two_imports_at_once_keep_each_other_s_changes(db_url, tmp_path, engine):
    """An import reads the stored customers to apply its rows on top: another import that
    commits a change of the same customer after that read must not be written over. On SQLite
    the read ran outside any transaction, and the email given meanwhile was lost."""

    if db_url.startswith("sqlite"):
        db_url = f"sqlite:///{tmp_path / 'shop.db'}"  # one database for both connections
        engine = open_database(db_url)
    assert not import_customer_rows(engine, [{"id": "c1", "name": "Ann"}], "UTC").problems
    emailed = {"id": "c1", "email": "ann@example.com"}
    other = threading.Thread(target=import_customer_rows, args=(engine, [emailed], "UTC"))

    def meanwhile(conn: object, cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().startswith("SELECT customers.id") and not other.is_alive():
            other.start()  # the other import, once this one has read c1
            other.join(timeout=1)  # it waits for this one to commit, or commits first

    stored_with(engine, {"id": "c1", "name": "Anna"}, meanwhile)
    other.join()
    with engine.connect() as conn:
        stored = conn.execute(sa.select(customers.c.name, customers.c.email)).one()
    engine.dispose()
    assert tuple(stored) == ("Anna", "ann@example.com")


def test_two_imports_at_once_on_postgresql_wait_for_each_other_without_deadlock(db_url, engine):
    """On PostgreSQL an import that numbered sign-ups holds the numbers' lock to its commit, and
    waits for the customers another import changed and has not committed. That other import
    must not take the lock after changing them (a batch without new sign-ups, then one with):
    each would wait for the other, and PostgreSQL ends one of them ("deadlock detected")."""

    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time")
    shop = zone("UTC")

    def rows(*given: dict[str, object]) -> list:
        return [parse_customer(values, False, shop) for values in given]

    def stored(conn: sa.Connection, *given: dict[str, object]) -> None:
        store_customers(conn, rows(*given), ImportReport("customers", "<test>"), WALL_CLOCK)

    with engine.begin() as conn:
        stored(conn, {"id": "x", "name": "Ann"})
    failed: list[BaseException] = []

    def other_import() -> None:
        try:
            with engine.connect() as conn, conn.begin():
                stored(conn, {"id": "y", "signed_up": iso(A)}, {"id": "x", "signed_up": iso(A)})
        except BaseException as exc:  # told by the assertion below
            failed.append(exc)

    other = threading.Thread(target=other_import)
    try:
        with engine.connect() as conn, conn.begin():
            stored(conn, {"id": "x", "name": "Anna"})  # a first batch: no sign-up
            other.start()
            other.join(timeout=1)  # it waits for x, or for this import's lock
            stored(conn, {"id": "z", "signed_up": iso(A)})  # a second batch, with one
    except sa.exc.OperationalError as exc:
        failed.append(exc)
    other.join()
    assert failed == []
    with engine.connect() as conn:
        numbers = dict(conn.execute(sa.select(customers.c.id, customers.c.signed_up_seq)).all())
    assert sorted(numbers) == ["x", "y", "z"] and len(set(numbers.values())) == 3
