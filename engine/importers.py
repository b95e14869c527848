"""Importing the shop's customers and events (LANGUAGE.md section 4).

From a file (CSV, or JSON Lines: `.jsonl`, `.ndjson`, `.json-lines`), or from Python dicts
(the demo generator). Rows are read one at a time, parsed and stored in chunks, and committed
in transactions of many chunks, so memory stays flat whatever the size of the file. A file is
parsed in a second process where one can be forked (engine.importing.worker), while this one
stores. A bad row is reported with its file and line and skipped; it is checked whole before
anything is written, so it changes nothing stored before. Importing the same data twice stores
nothing the second time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Literal, TypeVar
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.progress import Progress
from sqlalchemy import Connection, Engine, Table
from sqlalchemy.exc import OperationalError

from engine.errors import DatabaseError, DataError
from engine.importing import customers, events
from engine.importing.report import ImportReport, Problem, RowError
from engine.importing.sources import Row, file_format, read_rows
from engine.importing.worker import can_fork, in_worker
from engine.storage import tables
from engine.storage.bulk import first_load, importing
from engine.storage.db import BUSY_TIMEOUT_S
from engine.timeutil import zone

__all__ = [
    "ImportReport",
    "Problem",
    "import_customer_rows",
    "import_customers",
    "import_event_rows",
    "import_events",
]

# Rows are parsed and stored CHUNK_SIZE at a time (smaller chunks start the storing process
# sooner; each one costs PostgreSQL a staging table) and committed once a transaction holds
# BATCH_SIZE rows: on SQLite each commit rewrites the index pages its rows touched, which at a
# million events are most of them.
CHUNK_SIZE = 5_000
BATCH_SIZE = 100_000
# False parses every file in this process.
PARSE_IN_WORKER = True

T = TypeVar("T")


@dataclass(frozen=True)
class _Kind(Generic[T]):
    name: Literal["customers", "events"]
    required: tuple[str, ...]
    parse: Callable[[dict[str, object], bool, ZoneInfo], T]
    store: Callable[[Connection, list[T], ImportReport], None]
    table: Table  # the table the rows go to (loaded at once while empty: `first_load`)


_CUSTOMERS = _Kind(
    "customers",
    customers.REQUIRED,
    customers.parse_customer,
    customers.store_customers,
    tables.customers,
)
_EVENTS = _Kind("events", events.REQUIRED, events.parse_event, events.store_events, tables.events)


def import_customers(
    engine: Engine, path: Path, shop_tz: str, progress: bool = False
) -> ImportReport:
    """Import the customers of `path`; `shop_tz` is the configuration's `timezone`."""
    return _import_file(_CUSTOMERS, engine, path, shop_tz, progress)


def import_events(engine: Engine, path: Path, shop_tz: str, progress: bool = False) -> ImportReport:
    """Import the events of `path`; times without an offset are local time in `shop_tz`."""
    return _import_file(_EVENTS, engine, path, shop_tz, progress)


def import_customer_rows(
    engine: Engine, rows: Iterable[Mapping[str, object]], shop_tz: str, source: str = "<demo>"
) -> ImportReport:
    """Import customers given as dicts with JSON-like values (a row's "line" is its position,
    from 1); the same checks and report as a file."""
    return _import(_CUSTOMERS, engine, _numbered(rows, source), False, shop_tz, source)


def import_event_rows(
    engine: Engine, rows: Iterable[Mapping[str, object]], shop_tz: str, source: str = "<demo>"
) -> ImportReport:
    """Import events given as dicts with JSON-like values; `at` may also be a datetime."""
    return _import(_EVENTS, engine, _numbered(rows, source), False, shop_tz, source)


def _numbered(rows: Iterable[Mapping[str, object]], source: str) -> Iterator[Row | Problem]:
    for line, row in enumerate(rows, 1):
        if isinstance(row, Mapping):
            yield line, {key: value for key, value in row.items() if value is not None}
        else:
            yield Problem(source, line, f"expected a mapping of fields, got {type(row).__name__}")


def _import_file(
    kind: _Kind[T], engine: Engine, path: Path, shop_tz: str, progress: bool
) -> ImportReport:
    fmt = file_format(path)
    shop_zone = zone(shop_tz)
    source = str(path)
    try:
        stream = path.open("rb")
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file: {exc.strerror or exc}") from exc

    def parsed() -> Iterator[tuple[_Chunk[T], int]]:
        """The file's rows parsed, a chunk at a time, each with the position it reaches."""
        records = read_rows(stream, source, fmt, kind.required)
        for chunk in _chunks(kind, records, fmt == "csv", shop_zone, source):
            yield chunk, stream.tell()

    with stream, ExitStack() as stack:
        if PARSE_IN_WORKER and can_fork():
            messages = stack.enter_context(in_worker(parsed))
        else:
            messages = parsed()
        # The bar is started after the fork: it has a thread of its own.
        size = os.fstat(stream.fileno()).st_size
        reached = stack.enter_context(_progress(path.name, size, progress))
        chunks = _reporting(messages, reached)
        return _store(kind, engine, chunks, ImportReport(kind.name, source))


@contextmanager
def _progress(name: str, size: int, shown: bool) -> Iterator[Callable[[int], None]]:
    """What to call with the position reached in a file of `size` bytes: when `shown`, it moves
    a progress bar on stderr."""
    if not shown:
        yield lambda position: None
        return
    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"Importing {name}", total=size)
        yield lambda position: bar.update(task, completed=position)


def _reporting(
    messages: Iterable[tuple[_Chunk[T], int]], reached: Callable[[int], None]
) -> Iterator[_Chunk[T]]:
    for chunk, position in messages:
        reached(position)
        yield chunk


def _import(
    kind: _Kind[T],
    engine: Engine,
    records: Iterable[Row | Problem],
    textual: bool,
    shop_tz: str,
    source: str,
) -> ImportReport:
    chunks = _chunks(kind, records, textual, zone(shop_tz), source)
    return _store(kind, engine, chunks, ImportReport(kind.name, source))


# Rows parsed, and the bad rows met on the way.
_Chunk = tuple[list[T], list[Problem]]


def _chunks(
    kind: _Kind[T],
    records: Iterable[Row | Problem],
    textual: bool,
    shop_zone: ZoneInfo,
    source: str,
) -> Iterator[_Chunk[T]]:
    """The rows of `records` parsed, CHUNK_SIZE at a time (the last chunk may hold fewer)."""
    rows: list[T] = []
    problems: list[Problem] = []
    for record in records:
        if isinstance(record, Problem):
            problems.append(record)
            continue
        line, values = record
        try:
            rows.append(kind.parse(values, textual, shop_zone))
        except RowError as exc:
            problems.append(Problem(source, line, str(exc)))
            continue
        if len(rows) >= CHUNK_SIZE:
            yield rows, problems
            rows, problems = [], []
    if rows or problems:
        yield rows, problems


def _store(
    kind: _Kind[T], engine: Engine, chunks: Iterable[_Chunk[T]], report: ImportReport
) -> ImportReport:
    """Store the rows of `chunks` as they come, committing once a transaction holds
    BATCH_SIZE rows or more, and at the end."""
    try:
        return _store_in(kind, engine, chunks, report)
    except OperationalError as exc:
        if "locked" not in str(exc.orig):
            raise
        raise DatabaseError(
            f"{report.source}: another process (an import, or the daemon's tick) held the"
            f" database's write lock for more than {BUSY_TIMEOUT_S:g} seconds; what this"
            " import committed before is kept, run it again to store the rest"
        ) from exc


def _store_in(
    kind: _Kind[T], engine: Engine, chunks: Iterable[_Chunk[T]], report: ImportReport
) -> ImportReport:
    with engine.connect() as connection, importing(connection):
        with first_load(connection, kind.table) as loading:
            if loading:  # one transaction, the table's lookup indexes built at its end
                for rows, problems in chunks:
                    report.problems.extend(problems)
                    kind.store(connection, rows, report)
                return report
        held = 0  # rows stored in the open transaction
        for rows, problems in chunks:
            report.problems.extend(problems)
            if not rows:
                continue
            if not connection.in_transaction():
                connection.begin()
            kind.store(connection, rows, report)
            held += len(rows)
            if held >= BATCH_SIZE:
                connection.commit()
                held = 0
        if connection.in_transaction():
            connection.commit()
    return report
