"""Importing the shop's customers and events (LANGUAGE.md section 4).

From a file (CSV, or JSON Lines: `.jsonl`, `.ndjson`, `.json-lines`), or from Python dicts
(the demo generator). Rows are read one at a time and stored in batches, each in its own
transaction, so memory stays flat whatever the size of the file. A bad row is reported with
its file and line and skipped; it is checked whole before anything is written, so it changes
nothing stored before. Importing the same data twice stores nothing the second time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Generic, Literal, TypeVar
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.progress import Progress
from sqlalchemy import Connection, Engine

from engine.errors import DataError
from engine.importing import customers, events
from engine.importing.report import ImportReport, Problem, RowError
from engine.importing.sources import Row, file_format, read_rows
from engine.timeutil import zone

__all__ = [
    "ImportReport",
    "Problem",
    "import_customer_rows",
    "import_customers",
    "import_event_rows",
    "import_events",
]

BATCH_SIZE = 20_000  # rows; larger batches rewrite fewer index pages per row stored

T = TypeVar("T")


@dataclass(frozen=True)
class _Kind(Generic[T]):
    name: Literal["customers", "events"]
    required: tuple[str, ...]
    parse: Callable[[dict[str, object], bool, ZoneInfo], T]
    store: Callable[[Connection, list[T], ImportReport], None]


_CUSTOMERS = _Kind(
    "customers", customers.REQUIRED, customers.parse_customer, customers.store_customers
)
_EVENTS = _Kind("events", events.REQUIRED, events.parse_event, events.store_events)


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
    with _opened(path, progress) as lines:
        records = read_rows(lines, str(path), fmt, kind.required)
        return _import(kind, engine, records, fmt == "csv", shop_tz, str(path))


@contextmanager
def _opened(path: Path, progress: bool) -> Iterator[BinaryIO]:
    """`path` opened for reading bytes, with a progress bar on stderr when `progress`."""
    with ExitStack() as stack:
        try:
            if progress:
                bar = stack.enter_context(Progress(console=Console(stderr=True), transient=True))
                description = f"Importing {path.name}"
                stream = stack.enter_context(bar.open(path, "rb", description=description))
            else:
                stream = stack.enter_context(path.open("rb"))
        except OSError as exc:
            raise DataError(f"{path}: cannot read the file: {exc.strerror or exc}") from exc
        yield stream


def _import(
    kind: _Kind[T],
    engine: Engine,
    records: Iterable[Row | Problem],
    textual: bool,
    shop_tz: str,
    source: str,
) -> ImportReport:
    shop_zone = zone(shop_tz)
    report = ImportReport(kind.name, source)
    batch: list[T] = []
    for record in records:
        if isinstance(record, Problem):
            report.problems.append(record)
            continue
        line, values = record
        try:
            batch.append(kind.parse(values, textual, shop_zone))
        except RowError as exc:
            report.problems.append(Problem(source, line, str(exc)))
            continue
        if len(batch) >= BATCH_SIZE:
            _store(kind, engine, batch, report)
            batch = []
    if batch:
        _store(kind, engine, batch, report)
    return report


def _store(kind: _Kind[T], engine: Engine, batch: list[T], report: ImportReport) -> None:
    with engine.begin() as connection:
        kind.store(connection, batch, report)
