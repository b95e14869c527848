"""Events in (LANGUAGE.md section 4): reading a row, and storing a batch of rows.

An event is stored under a key (`events.key`): its `id` when the shop gives one, else a digest
of what it says (customer, type, instant, properties), so the same event imported twice is
stored once. In the digest a whole number is one however written (`20`, `20.0`, CSV's `20.00`:
rules read numbers as doubles); an event stored before under its number's decimals is found
too (`_stored_under_its_decimals`). An event for a customer not stored yet creates that
customer with defaults.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import lru_cache
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import Connection, select
from sqlalchemy import text as text_sql

from engine.importing.fields import cell, code, json_values, storable, timestamp
from engine.importing.report import ImportReport, RowError
from engine.importing.sources import json_kind
from engine.storage.bulk import insert_new
from engine.storage.chunks import chunks
from engine.storage.tables import NAME_LENGTH, customers, events

REQUIRED = ("customer", "type", "at")
RESERVED = frozenset({"customer", "type", "at", "id"})
_TYPE = re.compile(r"[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*")
# One JSON form per value (keys sorted, no blanks), for the digest and for storage alike.
_CANONICAL = json.JSONEncoder(
    sort_keys=True, ensure_ascii=False, allow_nan=False, separators=(",", ":")
)


# The C encoder behind `_CANONICAL.encode`, made once: `encode` makes a new one for every call,
# which costs about as much as encoding an event's few properties. Without the check for values
# that hold themselves (a Python row could), which `_CANONICAL` then reports in words.
_ENCODER = (
    None
    if c_make_encoder is None
    else c_make_encoder(
        None, _CANONICAL.default, encode_basestring, None, ":", ",", True, False, False
    )
)


# orjson writes these types as `_CANONICAL` does (compared for every character, and for floats
# where Python writes no exponent, 1e-4 <= |x| < 1e16): a flat object of them, the common case,
# is written by orjson, three times faster. It refuses integers beyond 64 bits and lone
# surrogates, which then go to json, as does anything else (lists, objects, and Python types
# orjson would write where json refuses them, such as dates).
_ORJSON_ALIKE = frozenset({str, int, bool, type(None)})


def _canonical_json(value: dict[str, object]) -> str:
    """`_CANONICAL.encode(value)`: the same text, or the same TypeError or ValueError; RowError
    for a number that a double cannot hold or a value nested too deep (`fields.json_values`)."""
    if _orjson_alike(value):
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
        except orjson.JSONEncodeError:
            pass
    # Only here: what orjson writes holds no NaN, no infinity, no integer beyond 64 bits, and
    # no list or object.
    json_values(value)
    if _ENCODER is not None:
        try:
            return "".join(_ENCODER(value, 0))
        except RecursionError:
            pass
    return _CANONICAL.encode(value)


def _orjson_alike(value: dict[str, object]) -> bool:
    """Whether orjson writes `value` as `_CANONICAL` does, or refuses it."""
    for key, item in value.items():
        if type(key) is not str:
            return False
        if type(item) is float:
            if not (1e-4 <= abs(item) < 1e16 or item == 0.0):  # NaN and infinities fail too
                return False
        elif type(item) not in _ORJSON_ALIKE:
            return False
    return True


# An event as stored: the columns of `events` named in COLUMNS, in that order (the properties as
# JSON text). A plain tuple: it goes to the database driver as it is, and from the process that
# parses a file to the one that stores it (engine.importing.importers) cheaper than any class would.
EventRow = tuple[str, str, str, int, str]
COLUMNS = ("key", "customer_id", "type", "at_us", "properties")


def note_event(values: dict[str, object]) -> tuple[str, str] | None:
    """An order's `total` that is text, not a number (`¥1500`, `1,234.50`), or spelt `Total`:
    rules and metrics (`customer.total_spent`, `sum(order.paid.total)`) read it as not set."""
    total = values.get("total")
    kind = values.get("type")
    if not isinstance(kind, str) or not kind.startswith("order."):
        return None
    if total is None:
        return _total_spelt_otherwise(values)
    if not isinstance(total, str):
        return None
    if not total.strip() or not isinstance(cell(total.strip()), str):
        return None
    return (
        "order total",
        f"the order's `total` {total!r} is text, not a number: rules and metrics"
        " (customer.total_spent) read it as not set; write the amount alone, such as 1234.50",
    )


def shop_local_time(values: dict[str, object]) -> tuple[str, object] | None:
    """The event's time, read in the shop's zone when it has no offset."""
    return ("at", values["at"]) if "at" in values else None


def _total_spelt_otherwise(values: dict[str, object]) -> tuple[str, str] | None:
    """An order's `Total` or `TOTAL` (a spreadsheet's header): rules and metrics read `total`."""
    spelt = next((name for name in values if name.casefold() == "total"), None)
    if spelt is None:
        return None
    return (
        "order total spelt",
        f"the order's `{spelt}` is not `total`: rules and metrics read an order's total as"
        f" `total`, in lower case (customer.total_spent, sum(order.paid.total)), so this one"
        f" counts for none of them; name the column `total`",
    )


def customer_of(row: EventRow) -> str:
    return row[1]


def parse_event(values: dict[str, object], textual: bool, shop_zone: ZoneInfo) -> EventRow:
    """The event a row describes; RowError when a value cannot be used. `textual` rows (CSV)
    have their number-like properties stored as numbers."""
    try:
        customer, kind, at = values["customer"], values["type"], values["at"]
    except KeyError:
        missing = [name for name in REQUIRED if name not in values]
        raise RowError(f"the event has no {' or '.join(f'`{name}`' for name in missing)}") from None
    customer_id = code(customer, "customer", textual, NAME_LENGTH)
    if not isinstance(kind, str):
        raise RowError(f"`type` must be text such as order.paid, not {json_kind(kind)}")
    kind = _event_type(kind)
    at_us = timestamp(at, "at", shop_zone, textual)
    if textual:
        properties = {n: cell(v) for n, v in values.items() if n not in RESERVED}
    else:
        properties = values.copy()
        del properties["customer"], properties["type"], properties["at"]
        properties.pop("id", None)
    try:
        encoded = _canonical_json(properties)
    except (TypeError, ValueError) as exc:
        raise RowError(f"a property is not a JSON value: {exc}") from None
    storable(encoded, "a property", json_text=True)
    if "id" in values:
        key = code(values["id"], "id", textual, NAME_LENGTH)
    else:
        digested = encoded
        if _may_write_whole_numbers_with_decimals(encoded):
            whole = {name: _whole_numbers_as_integers(item) for name, item in properties.items()}
            digested = _canonical_json(whole)
        key = _content_key(customer_id, kind, at_us, digested)
    return (key, customer_id, kind, at_us, encoded)


def _content_key(customer_id: str, kind: str, at_us: int, properties: str) -> str:
    """The key of an event without `id`: a digest of what it says, its properties as JSON.
    Unambiguous: only the customer id may hold the separator (JSON escapes it)."""
    content = f"{customer_id}\x1f{kind}\x1f{at_us}\x1f{properties}"
    return "sha256:" + hashlib.sha256(content.encode()).hexdigest()


# Beyond this a double holds whole numbers only, and Python writes them with an exponent.
_WRITTEN_WITH_DECIMALS = 1e16


def _may_write_whole_numbers_with_decimals(encoded: str) -> bool:
    """Whether JSON text as `_canonical_json` writes it may hold a whole number written with
    decimals (`20.0`, followed by `,`, `}` or `]`); a text in quotes may say so too. Looked for
    in one pass first: most properties hold no `.0` at all."""
    return ".0" in encoded and (".0," in encoded or ".0}" in encoded or ".0]" in encoded)


def _whole_numbers_as_integers(value: object) -> object:
    """`value` with every whole float (`20.0`) an integer, inside lists and objects
    too: the same number as rules read it, written one way."""
    if type(value) is float:
        return int(value) if value.is_integer() and abs(value) < _WRITTEN_WITH_DECIMALS else value
    if isinstance(value, dict):
        return {name: _whole_numbers_as_integers(item) for name, item in value.items()}
    if isinstance(value, list):
        return [_whole_numbers_as_integers(item) for item in value]
    return value


def _stored_under_its_decimals(
    connection: Connection, rows: list[EventRow], unique: dict[str, EventRow]
) -> None:
    """Take out of `unique` (the events of `rows` by key) the events without `id` that a
    version before whole numbers were one in the digest stored under the digest of their
    properties as written, such as `20.0`: imported again as they were, they are stored
    already. Every row is looked at, not only the one `unique` keeps of those with its key:
    the same event written `20` first and `20.0` after is found by the second."""
    earlier: dict[str, str] = {}
    for key, customer_id, kind, at_us, encoded in rows:
        if key.startswith("sha256:") and _may_write_whole_numbers_with_decimals(encoded):
            written = _content_key(customer_id, kind, at_us, encoded)
            if written != key:
                earlier[written] = key
    for some in chunks(sorted(earlier)):
        for stored in connection.scalars(select(events.c.key).where(events.c.key.in_(some))):
            unique.pop(earlier[stored], None)


@lru_cache(maxsize=1024)
def _event_type(given: str) -> str:
    """`given` without the blanks around it, if it is an event name (a shop has few: each is
    checked once)."""
    kind = given.strip()
    if len(kind) > NAME_LENGTH:
        raise RowError(f"`type`: {kind[:20]!r}... is longer than {NAME_LENGTH} characters")
    if not _TYPE.fullmatch(kind):
        raise RowError(
            f"`type`: {kind!r} is not an event name such as order.paid"
            " (entity.happening: lower-case letters, digits and underscores)"
        )
    return kind


# Key of the PostgreSQL advisory lock an import's transaction holds while it adds events (any
# fixed 64-bit number no other application on the server uses; this one spells "nudge-ev").
EVENTS_LOCK = 0x6E75_6467_652D_6576


def store_events(connection: Connection, rows: list[EventRow], report: ImportReport) -> None:
    """Store the events of `rows` whose key is not stored yet, creating unknown customers.

    On PostgreSQL the transaction first takes `EVENTS_LOCK`, so that imports at once commit
    their events in the order of their keys (`events.pk`), as on SQLite: a tick that has seen
    the newest key has seen every event before it (`engine.evaluation.tick`)."""
    if connection.dialect.name == "postgresql":
        connection.execute(text_sql("SELECT pg_advisory_xact_lock(:key)"), {"key": EVENTS_LOCK})
    unique: dict[str, EventRow] = {}
    for row in rows:
        unique.setdefault(row[0], row)
    _stored_under_its_decimals(connection, rows, unique)
    # An event already stored has its customer stored, so the customers this creates are
    # exactly those of new events.
    report.customers_created += insert_new(
        connection,
        customers,
        ("id", "accepts_marketing", "attributes"),
        [(cid, False, "{}") for cid in sorted({row[1] for row in unique.values()})],
    )
    added = insert_new(connection, events, COLUMNS, list(unique.values()))
    report.added += added
    report.unchanged += len(rows) - added
