"""Customers in (LANGUAGE.md section 4): reading a row, and storing a batch of rows.

Choices where the contract is silent:
- Importing a customer already stored updates the fields the row gives and keeps the others:
  a field left unset (an empty cell, a missing or null key) is not a request to clear it. To
  withdraw consent a file says `accepts_marketing` `false`; `tags`, when given, replace the
  customer's imported tags; attributes given are merged into the stored ones.
- A change of a stored customer's `accepts_marketing` is kept with the time the import wrote it
  (`consent_changes`), so that rules read consent as it stood at each due time. A customer's
  first import (or the one an event created with `false`) changes nothing: that value stands
  from the beginning. Other fields keep only their latest value.
- `signed_up` without an offset is local time of the `timezone` given on the same row, else
  of the shop.
- `id` is text; a JSON integer id is taken as its digits. Text fields are stored without the
  blanks around them.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, delete, false, func, select, update
from sqlalchemy import text as text_sql

from engine.checking.types import CUSTOMER_FIELDS
from engine.clock import Clock
from engine.importing.fields import (
    birthday,
    code,
    flag,
    json_values,
    storable,
    tags,
    text,
    timestamp,
    zone_name,
)
from engine.importing.report import ImportReport, Note, RowError
from engine.storage.bulk import insert_or_ignore, upsert
from engine.storage.tables import (
    NAME_LENGTH,
    consent_changes,
    customer_attributes,
    customer_tags,
    customers,
    rule_set_state,
)
from engine.timeutil import zone

REQUIRED = ("id",)
KNOWN = frozenset(
    {"id", "name", "email", "phone", "birthday", "timezone", "signed_up", "accepts_marketing"}
    | {"tags"}
)
_COLUMNS = (
    "name",
    "email",
    "phone",
    "birthday",
    "birthday_md",
    "timezone",
    "signed_up_us",
    "signed_up_seq",  # set here, never given by a row (`_number_sign_ups`)
    "accepts_marketing",
)


# Metrics a rule reads of a customer (LANGUAGE.md 3.3), which a column of the same name does
# not give: `customer.points` is what the rules gave, whatever a column `points` holds.
METRICS = frozenset(CUSTOMER_FIELDS) - KNOWN


def note_customer(values: dict[str, object]) -> tuple[str, str] | None:
    """A column named as a metric: the rules read the metric, templates the column."""
    named = sorted(name for name in values if name in METRICS)
    if not named:
        return None
    listed = ", ".join(f"`{name}`" for name in named)
    return (
        "metric columns",
        f"{listed} {'is a metric' if len(named) == 1 else 'are metrics'} the rules compute"
        f" (customer.{named[0]}): rules read the metric, not this column, while templates"
        f" show the column; rename {'it' if len(named) == 1 else 'them'} (such as"
        f" {named[0]}_imported) to keep the two apart",
    )


def shop_local_time(values: dict[str, object]) -> tuple[str, object] | None:
    """`signed_up`, read in the shop's zone when it has no offset and the row no `timezone`."""
    if not _given(values, "signed_up") or _given(values, "timezone"):
        return None
    return ("signed_up", values["signed_up"])


@dataclass(frozen=True, slots=True)
class Stored:
    """A customer as stored: the columns of `_COLUMNS`, the attributes, the set of tags."""

    columns: dict[str, object]
    attributes: dict[str, object]
    tags: frozenset[str]

    def same(self, other: Stored | None) -> bool:
        """Whether `other` is the same customer as stored: attributes compared as JSON values,
        whatever form the database gives them back in (PostgreSQL gives the number 1e23 back as
        the integer 100000000000000000000000)."""
        if other is None or self.columns != other.columns or self.tags != other.tags:
            return False
        mine, theirs = self.attributes, other.attributes
        if mine == theirs and not any(
            isinstance(v, bool | list | dict) for values in (mine, theirs) for v in values.values()
        ):
            return True  # Python's equality is JSON's where no yes/no can meet a number
        return _same_json(mine, theirs)


def _same_json(one: object, other: object) -> bool:
    """Whether two JSON values are the same: numbers by their value as doubles (rules read them
    so), never equal to true or false."""
    if isinstance(one, bool) or isinstance(other, bool):
        return type(one) is type(other) and one == other
    if isinstance(one, int | float) and isinstance(other, int | float):
        if type(one) is type(other):
            return one == other
        try:
            return float(one) == float(other)
        except OverflowError:  # an integer stored before imports refused such (`json_values`)
            return False
    if isinstance(one, dict) and isinstance(other, dict):
        return one.keys() == other.keys() and all(_same_json(one[k], other[k]) for k in one)
    if isinstance(one, list) and isinstance(other, list):
        return len(one) == len(other) and all(map(_same_json, one, other))
    return type(one) is type(other) and one == other


_NEW = Stored({**dict.fromkeys(_COLUMNS), "accepts_marketing": False}, {}, frozenset())


@dataclass(frozen=True, slots=True)
class CustomerRow:
    """What one row says about a customer: only the fields it gives."""

    id: str
    fields: dict[str, object]
    attributes: dict[str, object]
    tags: frozenset[str] | None

    def __reduce__(self) -> tuple[type[CustomerRow], tuple[object, ...]]:
        # Rows parsed in a worker process come back pickled: as arguments of the constructor,
        # about 20 times faster to read back than a slotted dataclass's own state.
        return CustomerRow, (self.id, self.fields, self.attributes, self.tags)


def parse_customer(values: dict[str, object], textual: bool, shop_zone: ZoneInfo) -> CustomerRow:
    """The customer a row describes; RowError when a value cannot be used."""
    # Attributes are text from CSV and keep their JSON type; `textual` (CSV) ids and phones may
    # be numbers a spreadsheet wrote in scientific notation.
    if "id" not in values:
        raise RowError("the customer has no `id`")
    customer_id = code(values["id"], "id", textual, NAME_LENGTH)
    fields: dict[str, object] = {}
    for name in ("name", "email"):
        if _given(values, name):
            fields[name] = text(values[name], name)
    if _given(values, "phone"):
        fields["phone"] = code(values["phone"], "phone", textual)
    if _given(values, "birthday"):
        fields["birthday"], fields["birthday_md"] = birthday(values["birthday"], textual)
    if _given(values, "timezone"):
        fields["timezone"] = zone_name(values["timezone"])
    if _given(values, "signed_up"):
        local = zone(str(fields["timezone"])) if "timezone" in fields else shop_zone
        fields["signed_up_us"] = timestamp(values["signed_up"], "signed_up", local, textual)
    if _given(values, "accepts_marketing"):
        fields["accepts_marketing"] = flag(values["accepts_marketing"], "accepts_marketing")
    attributes = {name: value for name, value in values.items() if name not in KNOWN}
    json_values(attributes)
    try:
        encoded = json.dumps(attributes, allow_nan=False, ensure_ascii=False)
        storable(encoded, "an attribute", json_text=True)
    except (TypeError, ValueError) as exc:
        raise RowError(f"an attribute is not a JSON value: {exc}") from None
    return CustomerRow(
        id=customer_id,
        fields=fields,
        attributes=attributes,
        tags=tags(values["tags"]) if _given(values, "tags") else None,
    )


def customer_of(row: CustomerRow) -> str:
    return row.id


def zeros_dropped(
    connection: Connection,
    referenced: Iterable[tuple[int, str]],
    kind: Literal["customers", "events"],
    source: str,
) -> list[Note]:
    """A note of the rows of `referenced` (the line where each starts, and the customer id it
    gives) whose id seems to have lost the zeros it began with: Excel reads a column of digits
    as numbers when it opens a CSV file, and saves `00123` as `123`. Such an id is digits,
    shorter than the stored ids that begin with a zero (`_padded_widths`), and stored when
    padded with zeros to their length. Found before the rows are stored; when no stored id
    begins with a zero, or the ids of the rows are as long as those, it costs no lookup."""
    widths = _padded_widths(connection)
    if not widths:
        return []
    longest = max(widths)
    short = [
        (line, cid)
        for line, cid in referenced
        if len(cid) < longest and cid.isascii() and cid.isdigit() and cid[0] != "0"
    ]
    if not short:
        return []
    padded = {cid: [cid.zfill(width) for width in widths if width > len(cid)] for _, cid in short}
    query = select(customers.c.id).where(customers.c.id.in_(sorted(set().union(*padded.values()))))
    stored = set(connection.execute(query).scalars())
    found = [
        (line, cid, twin)
        for line, cid in short
        if (twin := next((p for p in padded[cid] if p in stored), None))
    ]
    if not found:
        return []
    line, cid, twin = found[0]
    stored_as = (
        f"the event is stored for `{cid}`, not for `{twin}`"
        if kind == "events"
        else f"the row is stored as `{cid}`, not as `{twin}`"
    )
    return [
        Note(
            source,
            line,
            f"the customer `{cid}` seems to be `{twin}`, a stored customer, without its leading"
            " zeros, which Excel drops when it opens and saves a CSV file (and a program"
            f" reading ids as numbers), and {stored_as}: import the file as the shop exported"
            " it, or open it in Excel with Data > From Text/CSV, the column set to Text",
            "zeros dropped",
            len(found),
        )
    ]


# The first and the last of the stored customer ids that begin with a zero: two lookups in the
# index of ids, whatever their number.
_ZERO_LED = (customers.c.id >= "0") & (customers.c.id < "1")
_ZERO_LED_ENDS = select(
    select(func.min(customers.c.id)).where(_ZERO_LED).scalar_subquery(),
    select(func.max(customers.c.id)).where(_ZERO_LED).scalar_subquery(),
)


def _padded_widths(connection: Connection) -> list[int]:
    """The lengths of the first and the last of the stored customer ids that begin with a zero,
    those that are digits (`00123`): ids padded with zeros to one length, as a shop's system
    writes them."""
    ends = connection.execute(_ZERO_LED_ENDS).one()
    return sorted({len(cid) for cid in ends if cid and cid.isascii() and cid.isdigit()})


def _given(values: dict[str, object], name: str) -> bool:
    value = values.get(name)
    return value is not None and not (isinstance(value, str) and not value.strip())


# Key of the PostgreSQL advisory lock an import's transaction holds while it stores customers
# (any fixed 64-bit number no other application on the server uses; this one spells "nudge-su").
CUSTOMERS_LOCK = 0x6E75_6467_652D_7375


def store_customers(
    connection: Connection, rows: list[CustomerRow], report: ImportReport, clock: Clock
) -> None:
    """Apply `rows` in order on top of what is stored, write what changed, and count; a
    stored customer's consent that changed is kept with `clock`'s time (`_date_consent`).

    Imports of customers at once run one after the other, from this first read of the stored
    customers to their commit (`_one_at_a_time`)."""
    _one_at_a_time(connection)
    stored = _load(connection, {row.id for row in rows})
    state = dict(stored)
    for row in rows:
        before = state.get(row.id)
        after = _apply(before or _NEW, row)
        if before is None:
            report.added += 1
        elif after.same(before):
            report.unchanged += 1
        else:
            report.updated += 1
        state[row.id] = after

    changed = {cid: new for cid, new in state.items() if not new.same(stored.get(cid))}
    if not changed:
        return
    _number_sign_ups(connection, changed, stored)
    _date_consent(connection, changed, stored, clock)
    connection.execute(
        upsert(connection, customers),
        [{"id": cid, **new.columns, "attributes": new.attributes} for cid, new in changed.items()],
    )
    _name_attributes(connection, rows)
    retagged = {
        cid: new.tags for cid, new in changed.items() if new.tags != stored.get(cid, _NEW).tags
    }
    if retagged:
        connection.execute(delete(customer_tags).where(customer_tags.c.customer_id.in_(retagged)))
        links = [{"customer_id": cid, "tag": tag} for cid, tags in retagged.items() for tag in tags]
        if links:
            connection.execute(insert_or_ignore(connection, customer_tags), links)


def _name_attributes(connection: Connection, rows: list[CustomerRow]) -> None:
    """Record the names of the attributes `rows` give (`customer_attributes`), which `check`
    asks about; those longer than a name the table holds are left out. A row gives only the
    attributes it sets: an empty cell or a null is none."""
    named = set().union(*(row.attributes for row in rows))
    kept = sorted(name for name in named if len(name) <= NAME_LENGTH)
    if kept:
        statement = insert_or_ignore(connection, customer_attributes)
        connection.execute(statement, [{"name": name} for name in kept])


def _one_at_a_time(connection: Connection) -> None:
    """Make the transaction the only one storing customers until it ends, before it reads
    them: two imports at once would otherwise each write its customers over what the other
    changed meanwhile, and give their sign-ups the same numbers (`_number_sign_ups`). On
    PostgreSQL `CUSTOMERS_LOCK`, taken before anything is written (taken later, while holding
    customers another import waits for, the two would wait for each other); on SQLite the
    database's write lock, which its driver takes only at a transaction's first write, reading
    outside any before it: a write that changes nothing takes it."""
    if connection.dialect.name == "postgresql":
        connection.execute(text_sql("SELECT pg_advisory_xact_lock(:key)"), {"key": CUSTOMERS_LOCK})
    else:
        connection.execute(update(customers).where(false()).values(signed_up_seq=None))


def _number_sign_ups(
    connection: Connection, changed: dict[str, Stored], stored: dict[str, Stored]
) -> None:
    """Give each customer of `changed` whose sign-up time is new or moved the next number of
    `customers.signed_up_seq`, so that a tick can tell the sign-ups imported since it last
    looked (`engine.evaluation.tick`). The transaction stores customers alone (`_one_at_a_time`), so
    that imports at once commit their numbers in order: a tick that has seen the newest
    number has seen every sign-up before it."""
    moved = [
        cid
        for cid, new in changed.items()
        if new.columns["signed_up_us"] is not None
        and new.columns["signed_up_us"] != stored.get(cid, _NEW).columns["signed_up_us"]
    ]
    if not moved:
        return
    last = connection.execute(select(func.max(customers.c.signed_up_seq))).scalar_one() or 0
    for seq, cid in enumerate(moved, start=last + 1):
        new = changed[cid]
        changed[cid] = Stored({**new.columns, "signed_up_seq": seq}, new.attributes, new.tags)


def _date_consent(
    connection: Connection, changed: dict[str, Stored], stored: dict[str, Stored], clock: Clock
) -> None:
    """Keep each change of a stored customer's `accepts_marketing` with the time it is
    written, taken now and never before the ticks' watermark (`_decided_until`): the flag as it
    stood at a due time is read from these (`consent.flag_at`). A customer stored for the
    first time has no earlier value, so its own stands from the beginning."""
    flipped = [
        (cid, bool(before.columns["accepts_marketing"]), bool(new.columns["accepts_marketing"]))
        for cid, new in changed.items()
        if (before := stored.get(cid)) is not None
        and bool(before.columns["accepts_marketing"]) != bool(new.columns["accepts_marketing"])
    ]
    if not flipped:
        return
    now_us = max(clock.now_us(), _decided_until(connection))
    connection.execute(
        consent_changes.insert(),
        [
            {
                "customer_id": cid,
                "at_us": now_us,
                "accepts_marketing_before": was,
                "accepts_marketing_after": now,
            }
            for cid, was, now in flipped
        ],
    )


def _decided_until(connection: Connection) -> int:
    """The latest watermark of the daemon's ticks (`engine.evaluation.tick`): every occurrence due
    before it was decided with the flag as it then stood, so a change is dated no earlier, or a
    later simulation would read it where the daemon did not (the importing machine's clock behind
    the daemon's, or a tick that ran while this import was writing). On PostgreSQL the rule sets'
    rows stay locked until the import commits: a tick running now is waited for, and one that
    starts meanwhile skips (`tick._lock`), so none decides with the old flag past this time."""
    state = rule_set_state.c
    query = select(state.watermark_us)
    if connection.dialect.name == "postgresql":
        query = query.order_by(state.name).with_for_update(read=True)
    return max(connection.execute(query).scalars(), default=0)


def _apply(base: Stored, row: CustomerRow) -> Stored:
    return Stored(
        columns={**base.columns, **row.fields},
        attributes={**base.attributes, **row.attributes} if row.attributes else base.attributes,
        tags=base.tags if row.tags is None else row.tags,
    )


def _load(connection: Connection, ids: set[str]) -> dict[str, Stored]:
    """The stored state of those of `ids` that are stored."""
    records = connection.execute(select(customers).where(customers.c.id.in_(ids))).mappings()
    found = {record["id"]: record for record in records}
    links: defaultdict[str, set[str]] = defaultdict(set)
    query = select(customer_tags).where(customer_tags.c.customer_id.in_(found))
    for customer_id, tag in connection.execute(query):
        links[customer_id].add(tag)
    return {
        cid: Stored(
            columns={c: record[c] for c in _COLUMNS},
            attributes=record["attributes"],
            tags=frozenset(links[cid]),
        )
        for cid, record in found.items()
    }
