"""Shared fixtures. Every test that takes `db_url` runs on SQLite and on PostgreSQL.

PostgreSQL is at NUDGE_TEST_PG (default postgresql+psycopg://postgres@127.0.0.1:5432/test).
Locally a missing server skips those tests; under CI=true it fails them.
"""

from __future__ import annotations

import os
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from engine.evaluation.processes import can_fork
from engine.storage.db import open_database
from engine.storage.tables import metadata

PG_ADMIN_URL = os.environ.get("NUDGE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A scratch PostgreSQL database for this test run, dropped at the end."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"nudge_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI but unreachable: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    open_database(url).dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database URL: a fresh SQLite file, or the run's PostgreSQL database
    with every table emptied."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shop.db'}"
        return
    url: str = request.getfixturevalue("pg_database")
    engine = create_engine(url)
    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()
    yield url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on `db_url`'s database, disposed of after the test."""
    engine = open_database(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def only_this_thread() -> None:
    """Wait (bounded) for threads earlier tests stopped to end, then assert that this process
    may fork (`engine.evaluation.processes.can_fork`): else a test of a forked worker would silently
    run without one. Once in the whole suite such a thread was still ending. Skipped where no
    worker is forked (not Linux)."""
    if sys.platform != "linux":
        pytest.skip("workers are forked on Linux only")
    for thread in threading.enumerate():
        if thread is not threading.current_thread():
            thread.join(timeout=10)
    assert can_fork(), [thread.name for thread in threading.enumerate()]


@pytest.fixture
def another_thread() -> Iterator[None]:
    """A second thread in this process, running until the test ends."""
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="another thread")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
