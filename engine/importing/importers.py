"""Importing the shop's customers and events (LANGUAGE.md section 4).

From a file (CSV, or JSON Lines: `.jsonl`, `.ndjson`, `.json-lines`), or from Python dicts
(the demo generator). Rows are read one at a time, parsed and stored in chunks, and committed
in transactions of many chunks, so memory stays flat whatever the size of the file. Where a
second process can be forked (engine.importing.worker), it parses the file while this one
stores: all of a customers file, three chunks in four of an events file (this process parses
the fourth, so that both are about as busy). A bad row is reported with its file and line and
skipped; it is checked whole before anything is written, so it changes nothing stored before.
Importing the same data twice stores nothing the second time.
"""

from __future__ import annotations

import heapq
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, Generic, Literal, NamedTuple, TypeVar
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.progress import Progress
from sqlalchemy import Connection, Engine, Table
from sqlalchemy.exc import OperationalError

from engine.clock import Clock, SystemClock
from engine.demo.mark import holds_demo_shop
from engine.errors import DatabaseError, DataError
from engine.evaluation.processes import can_fork
from engine.importing import customers, events
from engine.importing.fields import local_time_note
from engine.importing.report import ImportReport, Note, Problem, RowError
from engine.importing.sources import (
    Row,
    Share,
    blocks,
    file_format,
    file_lines,
    pipe_encoding,
    read_blocks,
    refuse_binary,
    text_encoding,
    transcoded,
)
from engine.importing.worker import in_worker
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

# Rows are parsed and stored in chunks of CHUNK_SIZE rows of the file (JSON lines, CSV records;
# smaller chunks start the storing process sooner; each one costs PostgreSQL a staging table)
# and committed once a transaction holds BATCH_SIZE rows: on SQLite each commit rewrites the
# index pages its rows touched, which at a million events are most of them.
CHUNK_SIZE = 5_000
BATCH_SIZE = 100_000
# False parses every file in this process.
PARSE_IN_WORKER = True
# A file's chunks are shared between the storing process and the worker in cycles of CYCLE: see
# `_Kind.parsed_here`.
CYCLE = 4

T = TypeVar("T")

WALL_CLOCK = SystemClock()  # what dates an import's changes of consent, but in tests


@dataclass(frozen=True)
class _Kind(Generic[T]):
    name: Literal["customers", "events"]
    required: tuple[str, ...]
    known: frozenset[str]  # its columns that are not free ones (attributes, properties)
    parse: Callable[[dict[str, object], bool, ZoneInfo], T]
    # What a row imported as it is most likely does not mean: (what, message), or None.
    note: Callable[[dict[str, object]], tuple[str, str] | None]
    # The row's time read in the shop's zone when it has no offset: (column, value), or None.
    local_time: Callable[[dict[str, object]], tuple[str, object] | None]
    customer: Callable[[T], str]  # the id of the customer a parsed row is of
    # Stores a chunk's rows; the clock tells when (`consent_changes` are dated by it).
    store: Callable[[Connection, list[T], ImportReport, Clock], None]
    table: Table  # the table the rows go to (loaded at once while empty: `first_load`)
    # Of each CYCLE chunks of a file, how many (the first) the storing process parses itself
    # when a worker parses the others. Storing an event costs about half of what parsing it
    # does, so with one chunk in four both processes are about as busy; storing a customer
    # costs more than parsing one, so the worker parses them all.
    parsed_here: int


_CUSTOMERS = _Kind(
    "customers",
    customers.REQUIRED,
    customers.KNOWN,
    customers.parse_customer,
    customers.note_customer,
    customers.shop_local_time,
    customers.customer_of,
    customers.store_customers,
    tables.customers,
    0,
)
_EVENTS = _Kind(
    "events",
    events.REQUIRED,
    events.RESERVED,
    events.parse_event,
    events.note_event,
    events.shop_local_time,
    events.customer_of,
    lambda connection, rows, report, _clock: events.store_events(connection, rows, report),
    tables.events,
    1,
)


def import_customers(
    engine: Engine,
    path: Path,
    shop_tz: str,
    progress: bool = False,
    assumed: bool = False,
    clock: Clock = WALL_CLOCK,
) -> ImportReport:
    """Import the customers of `path`; `shop_tz` is the configuration's `timezone`, `assumed`
    when no configuration gave it: times without an offset read in it are then noted. A change
    of a stored customer's consent is dated by `clock` (`tables.consent_changes`)."""
    return _import_file(_CUSTOMERS, engine, path, shop_tz, progress, assumed, clock)


def import_events(
    engine: Engine, path: Path, shop_tz: str, progress: bool = False, assumed: bool = False
) -> ImportReport:
    """Import the events of `path`; times without an offset are local time in `shop_tz`
    (noted when `assumed`, as for customers)."""
    return _import_file(_EVENTS, engine, path, shop_tz, progress, assumed)


def import_customer_rows(
    engine: Engine,
    rows: Iterable[Mapping[str, object]],
    shop_tz: str,
    source: str = "<demo>",
    clock: Clock = WALL_CLOCK,
) -> ImportReport:
    """Import customers given as dicts with JSON-like values (a row's "line" is its position,
    from 1); the same checks and report as a file."""
    return _import(_CUSTOMERS, engine, _numbered(rows, source), False, shop_tz, source, clock)


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
    kind: _Kind[T],
    engine: Engine,
    path: Path,
    shop_tz: str,
    progress: bool,
    assumed: bool,
    clock: Clock = WALL_CLOCK,
) -> ImportReport:
    with engine.connect() as conn:
        if holds_demo_shop(conn):
            shown = engine.url.render_as_string(hide_password=True)
            raise DatabaseError(
                f"the database {shown!r} holds the synthetic shop of `nudge demo`: the shop's own"
                f" {kind.name} would be mixed with its made-up ones, and `nudge run` would act on"
                " both. Import into a database of your own, such as `--db sqlite:///shop.db` or"
                " `database:` in nudge.yaml (or delete the demo's database first)"
            )
    fmt = file_format(path)
    shop_zone = zone(shop_tz)
    source = str(path)
    assumed_zone = shop_zone if assumed else None

    with ExitStack() as stack:
        stream = stack.enter_context(_open(path))
        status = os.fstat(stream.fileno())
        # A file is read as far as its size when the import began: two processes reading a file
        # still being written then read the same lines.
        size = status.st_size if stat.S_ISREG(status.st_mode) else None
        report = ImportReport(kind.name, source)
        # A file of Chinese Excel's (not UTF-8, but GB18030 text throughout) is read as that.
        if size is not None:
            refuse_binary(stream.read(4), source)
            stream.seek(0)
            encoding = text_encoding(stream, size)
        else:  # weighed by its first megabytes, which are read again
            stream, encoding = pipe_encoding(stream, source)
        if encoding is not None:
            report.take([_read_as(source, encoding[1])])

        def parsed(handle: BinaryIO, share: Share) -> Iterator[_Parsed[T]]:
            """The chunks `share` takes, parsed, each with the position in the file it reaches."""
            lines = file_lines(handle, size)
            if encoding is not None:
                lines = transcoded(lines, encoding[0])
            read = read_blocks(lines, source, fmt, kind.required, share, kind.known)
            for number, records in read:
                chunk = _chunk(kind, records, fmt == "csv", shop_zone, source, assumed_zone)
                # A pipe has no position (nor a size to show progress against).
                yield _Parsed(number, chunk, 0 if size is None else handle.tell())

        if PARSE_IN_WORKER and can_fork():
            here = kind.parsed_here if size is not None else 0  # a pipe is read once
            theirs = Share(CHUNK_SIZE, CYCLE, range(here, CYCLE))
            messages: Iterable[_Parsed[T]] = stack.enter_context(
                in_worker(lambda: parsed(stream, theirs))
            )
            if here:
                # The same file through a handle of its own (the worker's shares its position
                # with `stream`), even if the path names another file by now (Linux, as a fork).
                mine = stack.enter_context(open(f"/proc/self/fd/{stream.fileno()}", "rb"))
                own = parsed(mine, Share(CHUNK_SIZE, CYCLE, range(here)))
                messages = heapq.merge(own, messages, key=_number)
        else:
            messages = parsed(stream, Share(CHUNK_SIZE))
        # The bar is started after the fork: it has a thread of its own.
        reached = stack.enter_context(_progress(path.name, status.st_size, progress))
        chunks = _reporting(messages, reached)
        return _store(kind, engine, chunks, report, clock)


def _read_as(source: str, line: int) -> Note:
    return Note(
        source,
        line,
        "not UTF-8 text, but GB18030 (GBK) throughout, as Excel saves CSV on Chinese Windows:"
        " the file is read as that",
        "encoding",
    )


def _open(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file: {exc.strerror or exc}") from exc


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
    messages: Iterable[_Parsed[T]], reached: Callable[[int], None]
) -> Iterator[_Chunk[T]]:
    """The chunks of `messages`, telling `reached` the furthest position read so far."""
    furthest = 0
    for message in messages:
        furthest = max(furthest, message.position)
        reached(furthest)
        yield message.chunk


def _import(
    kind: _Kind[T],
    engine: Engine,
    records: Iterable[Row | Problem],
    textual: bool,
    shop_tz: str,
    source: str,
    clock: Clock = WALL_CLOCK,
) -> ImportReport:
    shop_zone = zone(shop_tz)
    chunks = (
        _chunk(kind, block, textual, shop_zone, source) for _, block in blocks(records, CHUNK_SIZE)
    )
    return _store(kind, engine, chunks, ImportReport(kind.name, source), clock)


class _Chunk(NamedTuple, Generic[T]):
    """Rows parsed, the line where each starts, and the bad rows and notes met on the way."""

    rows: list[T]
    lines: list[int]
    problems: list[Problem | Note]


class _Parsed(NamedTuple, Generic[T]):
    """A chunk of a file parsed: the chunk's number, the chunk, and the position in the file
    its parsing reached (for the progress bar)."""

    number: int
    chunk: _Chunk[T]
    position: int


def _number(parsed: _Parsed[T]) -> int:
    return parsed.number


def _chunk(
    kind: _Kind[T],
    records: list[Row | Problem],
    textual: bool,
    shop_zone: ZoneInfo,
    source: str,
    assumed_zone: ZoneInfo | None = None,
) -> _Chunk[T]:
    """The rows of `records` parsed, and the problems met: each bad row, and the first row of
    each kind `kind.note` notes, with how many there are; with `assumed_zone` (the shop's zone
    when no configuration gave it), the first time without an offset too."""
    rows: list[T] = []
    lines: list[int] = []
    problems: list[Problem | Note] = []
    notes: dict[str, Note] = {}
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
        lines.append(line)
        noted = [kind.note(values)]
        if assumed_zone is not None:
            noted.append(local_time_note(kind.local_time(values), assumed_zone))
        for found in noted:
            if found is not None:
                about, message = found
                earlier = notes.get(about)
                notes[about] = (
                    Note(source, line, message, about)
                    if earlier is None
                    else replace(earlier, count=earlier.count + 1)
                )
    return _Chunk(rows, lines, [*problems, *notes.values()])


def _store(
    kind: _Kind[T],
    engine: Engine,
    chunks: Iterable[_Chunk[T]],
    report: ImportReport,
    clock: Clock,
) -> ImportReport:
    """Store the rows of `chunks` as they come, committing once a transaction holds
    BATCH_SIZE rows or more, and at the end."""
    try:
        return _store_in(kind, engine, chunks, report, clock)
    except OperationalError as exc:
        if "locked" not in str(exc.orig):
            raise
        raise DatabaseError(
            f"{report.source}: another process (an import, or the daemon's tick) held the"
            f" database's write lock for more than {BUSY_TIMEOUT_S:g} seconds; what this"
            " import committed before is kept, run it again to store the rest"
        ) from exc


def _store_in(
    kind: _Kind[T],
    engine: Engine,
    chunks: Iterable[_Chunk[T]],
    report: ImportReport,
    clock: Clock,
) -> ImportReport:
    with engine.connect() as connection, importing(connection) as imported:
        with first_load(connection, kind.table) as loading:
            if loading:  # one transaction, the table's lookup indexes built at its end
                for chunk in chunks:
                    _store_chunk(kind, connection, chunk, report, clock)
        if not loading:
            _store_committing(kind, connection, chunks, report, clock)
    report.analyzed = imported.analyzed
    return report


def _store_chunk(
    kind: _Kind[T], connection: Connection, chunk: _Chunk[T], report: ImportReport, clock: Clock
) -> None:
    """Store the rows of `chunk`, and report its problems, and the rows whose customer id seems
    to have lost the zeros it began with (`customers.zeros_dropped`), found before storing."""
    report.take(chunk.problems)
    if not chunk.rows:
        return
    referenced = zip(chunk.lines, map(kind.customer, chunk.rows), strict=True)
    report.take(customers.zeros_dropped(connection, referenced, kind.name, report.source))
    kind.store(connection, chunk.rows, report, clock)


def _store_committing(
    kind: _Kind[T],
    connection: Connection,
    chunks: Iterable[_Chunk[T]],
    report: ImportReport,
    clock: Clock,
) -> None:
    held = 0  # rows stored in the open transaction
    for chunk in chunks:
        if chunk.rows and not connection.in_transaction():
            connection.begin()
        _store_chunk(kind, connection, chunk, report, clock)
        held += len(chunk.rows)
        if held >= BATCH_SIZE:
            connection.commit()
            held = 0
    if connection.in_transaction():
        connection.commit()
