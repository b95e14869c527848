"""Recording what an evaluation decided: occurrences, actions, effects, coupons, tasks, outbox.

Everything is written in the caller's transaction. Each occurrence goes in under its unique key
(rule, customer, occurrence key) with `ON CONFLICT DO NOTHING`; only the occurrences this call
really inserted get their actions recorded, so an occurrence recorded by another process, or
before a crash, is never acted on twice.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from engine.config import Config
from engine.evaluation.evaluate import Evaluation
from engine.evaluation.records import ActionRecord
from engine.language import ast
from engine.outbox.coupons import record_coupons
from engine.storage import jsontext
from engine.storage.bulk import (
    insert_new,
    insert_new_returning,
    insert_rows,
    insert_rows_returning,
    reserve_ids,
)
from engine.storage.chunks import among, chunks
from engine.storage.tables import (
    actions,
    customer_tags,
    customers,
    effects,
    events,
    occurrences,
    outbox,
    tasks,
)
from engine.timeutil import US, iso, local_text

DELIVERED = ("message", "followup", "coupon")


@dataclass
class Recorded:
    occurrences: int = 0
    missed: int = 0
    actions: int = 0
    outbox: int = 0
    already: int = 0  # occurrences another process (or an earlier run) had recorded

    def add(self, other: Recorded) -> None:
        self.occurrences += other.occurrences
        self.missed += other.missed
        self.actions += other.actions
        self.outbox += other.outbox
        self.already += other.already


def record(
    conn: Connection, evaluation: Evaluation, config: Config, now_us: int, missed_before_us: int
) -> Recorded:
    """Record `evaluation`. Occurrences due before `missed_before_us` are recorded as `missed`
    (downtime longer than the grace period) and do not act."""
    report = Recorded()
    by_occurrence: dict[tuple[str, str, str], list[ActionRecord]] = {}
    for action in evaluation.actions:
        by_occurrence.setdefault(
            (action.rule, action.customer_id, action.occurrence_key), []
        ).append(action)
    # By customer (the evaluation's order is its plan's, at random): each index of the
    # occurrences and the actions that leads with the customer, or with the rule and then the
    # customer, is then written from one end to the other, page after page, rather than at
    # random places all over it (at L those indexes outgrow PostgreSQL's shared buffers).
    # Stable: a customer's occurrences keep the evaluation's order.
    ordered = sorted(evaluation.occurrences, key=attrgetter("customer_id"))
    rows = [
        (
            occ.rule.name,
            occ.customer_id,
            occ.key,
            occ.due_us,
            now_us,
            "missed" if occ.due_us < missed_before_us else "acted",
        )
        for occ in ordered
    ]
    inserted = _insert_occurrences(conn, rows)
    report.already = len(rows) - len(inserted)
    action_rows: list[dict[str, Any]] = []
    for occ in ordered:
        key = (occ.rule.name, occ.customer_id, occ.key)
        if key not in inserted:
            continue
        occurrence_id, status = inserted[key]
        if status == "missed":
            report.missed += 1
            continue
        report.occurrences += 1
        for action in by_occurrence.get(key, []):
            action_rows.append(_action_row(occurrence_id, action))
    if not action_rows:
        return report
    ids = _insert_actions(conn, action_rows)
    recorded = list(zip(ids, action_rows, strict=True))
    report.actions = len(recorded)
    _effects(conn, recorded)
    _tasks(conn, recorded, now_us)
    report.outbox += _deliveries(
        conn, config, [(i, r) for i, r in recorded if r["status"] == "sent"], now_us
    )
    return report


def decide(
    conn: Connection, decided: Sequence[tuple[int, bool]], config: Config, now_us: int
) -> int:
    """Apply the cap's verdict to recorded actions that were waiting for it; returns how many
    were queued for delivery."""
    if not decided:
        return 0
    conn.execute(
        actions.update()
        .where(actions.c.id == sa.bindparam("aid"), actions.c.status == "pending")
        .values(status=sa.bindparam("st"), reason=sa.bindparam("rs")),
        [
            {"aid": aid, "st": "sent" if ok else "suppressed", "rs": None if ok else "cap"}
            for aid, ok in decided
        ],
    )
    sent_ids = [aid for aid, ok in decided if ok]
    if not sent_ids:
        return 0
    rows = [
        dict(row)
        for ids in chunks(sent_ids)
        for row in conn.execute(sa.select(actions).where(actions.c.id.in_(ids))).mappings()
    ]
    return _deliveries(conn, config, [(row["id"], row) for row in rows], now_us)


# -- inserts ----------------------------------------------------------------------------------


_OCCURRENCE_COLUMNS = ("rule", "customer_id", "occurrence_key", "due_us", "recorded_us", "status")
_OCCURRENCE_RETURNED = ("id", "rule", "customer_id", "occurrence_key", "status")


_Key = tuple[str, str, str]  # rule, customer, occurrence key


def _insert_occurrences(
    conn: Connection, rows: list[tuple[Any, ...]]
) -> dict[_Key, tuple[int, str]]:
    """Insert the occurrences `rows` (`_OCCURRENCE_COLUMNS`) whose key is free, and return the
    id and status of those inserted, by key.

    On PostgreSQL their ids are drawn first (`reserve_ids`) and go in with them, so that which
    rows the insert skipped is known from its count alone in the usual case, where it skipped
    none, instead of each row's key and id sent back and matched; when it skipped some, the
    ids it stored are read back with their keys (`_stored`). Elsewhere the insert returns
    them."""
    if conn.dialect.name != "postgresql":
        return {
            (rule, customer_id, key): (occurrence_id, status)
            for occurrence_id, rule, customer_id, key, status in insert_new_returning(
                conn, occurrences, _OCCURRENCE_COLUMNS, rows, _OCCURRENCE_RETURNED
            )
        }
    ids = reserve_ids(conn, occurrences, len(rows))
    given = [(occurrence_id, *row) for occurrence_id, row in zip(ids, rows, strict=True)]
    if insert_new(conn, occurrences, ("id", *_OCCURRENCE_COLUMNS), given) == len(rows):
        return {(row[1], row[2], row[3]): (row[0], row[6]) for row in given}
    stored = _stored(conn, ids)
    return {
        (row[1], row[2], row[3]): (row[0], row[6])
        for row in given
        if stored.get(row[0]) == (row[1], row[2], row[3])
    }


def _stored(conn: Connection, ids: list[int]) -> dict[int, _Key]:
    """The key of each occurrence stored under one of `ids`. By key as well as by id: an id
    the sequence gave again (a table loaded with its ids, the sequence not moved past them)
    names another occurrence, which `ON CONFLICT DO NOTHING` kept."""
    query = sa.select(
        occurrences.c.id,
        occurrences.c.rule,
        occurrences.c.customer_id,
        occurrences.c.occurrence_key,
    ).where(among(occurrences.c.id, "ids", conn.dialect.name))
    return {
        found.id: (found.rule, found.customer_id, found.occurrence_key)
        for some in chunks(ids)
        for found in conn.execute(query, {"ids": some})
    }


def _action_row(occurrence_id: int, action: ActionRecord) -> dict[str, Any]:
    return {
        "occurrence_id": occurrence_id,
        "position": action.position,
        "rule": action.rule,
        "rule_position": action.rule_position,
        "customer_id": action.customer_id,
        "kind": action.kind,
        "template": action.template,
        "channel": action.channel,
        "amount": action.amount,
        "unit": action.unit,
        "due_us": action.due_us,
        "at_us": action.at_us,
        "status": action.status,
        "reason": action.reason,
        "detail": {**action.detail, "event_pk": action.event_pk},
    }


_ACTION_COLUMNS = tuple(c.name for c in actions.columns if c.name != "id")
_ACTION_RETURNED = ("id", "occurrence_id", "position")


def _insert_actions(conn: Connection, rows: list[dict[str, Any]]) -> list[int]:
    """Insert the actions of occurrences this call inserted, and return their ids, in the order
    of `rows`. On PostgreSQL the ids are drawn first (`reserve_ids`) and the rows copied into
    the table with them: no staging table, and nothing sent back."""
    if conn.dialect.name == "postgresql":
        ids = reserve_ids(conn, actions, len(rows))
        # Each row made as the COPY takes it, so that the server stores the first meanwhile.
        given = (
            (action_id, *_action_values(row)) for action_id, row in zip(ids, rows, strict=True)
        )
        insert_rows(conn, actions, ("id", *_ACTION_COLUMNS), given)
        return ids
    values = [_action_values(row) for row in rows]
    returned = insert_rows_returning(conn, actions, _ACTION_COLUMNS, values, _ACTION_RETURNED)
    by_place = {
        (occurrence_id, position): action_id for action_id, occurrence_id, position in returned
    }
    return [by_place[(row["occurrence_id"], row["position"])] for row in rows]


def _action_values(row: dict[str, Any]) -> tuple[Any, ...]:
    """An action row's `_ACTION_COLUMNS`, its detail as JSON text."""
    return tuple(jsontext.dumps(row[c]) if c == "detail" else row[c] for c in _ACTION_COLUMNS)


_EFFECT_COLUMNS = (
    "action_id",
    "customer_id",
    "kind",
    "tag",
    "amount",
    "at_us",
    "rule_position",
    "position",
)


def _effects(conn: Connection, recorded: list[tuple[int, dict[str, Any]]]) -> None:
    rows = [
        (
            action_id,
            row["customer_id"],
            row["kind"],
            row["detail"].get("tag"),
            row["amount"],
            row["at_us"],
            row["rule_position"],
            row["position"],
        )
        for action_id, row in recorded
        if row["kind"] in ("tag", "untag", "points")
    ]
    insert_rows(conn, effects, _EFFECT_COLUMNS, rows)


def _tasks(conn: Connection, recorded: list[tuple[int, dict[str, Any]]], now_us: int) -> None:
    rows = [
        {
            "action_id": action_id,
            "customer_id": row["customer_id"],
            "kind": row["kind"],
            "title": row["detail"]["title"],
            "assignee": row["detail"].get("assignee"),
            "status": "open",
            "created_us": now_us,
            "updated_us": now_us,
        }
        for action_id, row in recorded
        if row["kind"] in ("task", "gift")
    ]
    if rows:
        conn.execute(tasks.insert(), rows)


# -- the outbox ---------------------------------------------------------------------------------


_OUTBOX_COLUMNS = (
    "action_id",
    "channel",
    "payload",
    "status",
    "attempts",
    "next_attempt_us",
    "created_us",
)


def _deliveries(
    conn: Connection, config: Config, sent: list[tuple[int, dict[str, Any]]], now_us: int
) -> int:
    """Outbox rows for customer-facing actions decided `sent` (and tasks, when a tasks channel
    is configured), with coupons issued on the way."""
    wanted = [
        (action_id, row)
        for action_id, row in sent
        if row["kind"] in DELIVERED or (row["kind"] in ("task", "gift") and config.tasks_channel)
    ]
    if not wanted:
        return 0
    ids = {row["customer_id"] for _, row in wanted}
    people = _customers(conn, ids)
    given = _tag_effects(conn, ids)
    happenings = _events(conn, {row["detail"].get("event_pk") for _, row in wanted})
    coupons = _issue_coupons(
        conn, [(i, row) for i, row in wanted if row["kind"] == "coupon"], now_us
    )
    # Each row made as the COPY takes it, so that the server stores the first ones meanwhile.
    rows = _outbox_rows(config, wanted, people, given, happenings, coupons, now_us)
    insert_rows(conn, outbox, _OUTBOX_COLUMNS, rows)
    return len(wanted)


def _outbox_rows(
    config: Config,
    wanted: list[tuple[int, dict[str, Any]]],
    people: dict[str, dict[str, Any]],
    given: dict[str, list[_TagEffect]],
    happenings: dict[int, dict[str, Any]],
    coupons: dict[int, dict[str, Any]],
    now_us: int,
) -> Iterator[tuple[Any, ...]]:
    """The outbox row of each action `wanted` (`_OUTBOX_COLUMNS`), its payload made of what
    was read for them."""
    for action_id, row in wanted:
        coupon = coupons.get(action_id)
        if coupon is not None and row["detail"].get("expires_s"):
            # the end of its validity as the customer's clock reads it, for the template
            expires_us = row["at_us"] + row["detail"]["expires_s"] * US
            person = people.get(row["customer_id"]) or {}
            where = person.get("timezone") or config.timezone
            coupon = {**coupon, "expires_local": local_text(expires_us, where)}
        task = None
        if row["kind"] in ("task", "gift"):
            task = {"title": row["detail"]["title"], "assignee": row["detail"].get("assignee")}
        payload = {
            "kind": row["kind"],
            "marketing": row["kind"] in ast.MARKETING,
            "template": row["template"],
            "rule": row["rule"],
            "customer_id": row["customer_id"],
            "due": iso(row["due_us"]),
            "at": iso(row["at_us"]),
            "idempotency_key": f"{action_id}-{_digest(row)}",
            "context": {
                "customer": _as_due(people.get(row["customer_id"]), given, row),
                "event": happenings.get(row["detail"].get("event_pk")),
                "coupon": coupon,
                "task": task,
            },
        }
        channel = row["channel"] if row["kind"] in DELIVERED else config.tasks_channel
        yield (action_id, channel, jsontext.dumps(payload), "pending", 0, row["at_us"], now_us)


def _issue_coupons(
    conn: Connection, issued: list[tuple[int, dict[str, Any]]], now_us: int
) -> dict[int, dict[str, Any]]:
    """The coupons of these coupon actions, recorded: each as the outbox context shows it, by
    action id."""
    rows = []
    for action_id, row in issued:
        detail = row["detail"]
        expires = row["at_us"] + detail["expires_s"] * US if detail.get("expires_s") else None
        rows.append(
            {
                "action_id": action_id,
                "customer_id": row["customer_id"],
                "template": row["template"],
                "worth": row["amount"],
                "unit": row["unit"],
                "min_spend": detail.get("min_spend"),
                "expires_us": expires,
                "created_us": now_us,
            }
        )
    codes = record_coupons(conn, rows)
    return {
        row["action_id"]: {
            "code": code,
            "worth": row["worth"],
            "unit": row["unit"],
            "min_spend": row["min_spend"],
            "expires": iso(row["expires_us"]) if row["expires_us"] else None,
        }
        for row, code in zip(rows, codes, strict=True)
    }


def _digest(row: dict[str, Any]) -> str:
    text = f"{row['rule']}|{row['customer_id']}|{row['due_us']}|{row['position']}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@functools.cache
def _context_queries(
    dialect: str,
) -> tuple[sa.Select[Any], sa.Select[Any], sa.Select[Any], sa.Select[Any]]:
    """What the outbox payloads show, each read by a list of keys (`among`, the parameter `ids`
    or `pks`): the customers' imported tags, the tags and untags rules gave them, the customers,
    and the triggering events."""
    imported = sa.select(customer_tags.c.customer_id, customer_tags.c.tag).where(
        among(customer_tags.c.customer_id, "ids", dialect)
    )
    given = sa.select(
        effects.c.customer_id,
        effects.c.at_us,
        effects.c.rule_position,
        effects.c.position,
        effects.c.tag,
        effects.c.kind,
    ).where(among(effects.c.customer_id, "ids", dialect), effects.c.kind.in_(("tag", "untag")))
    people = sa.select(
        customers.c.id,
        customers.c.name,
        customers.c.email,
        customers.c.phone,
        customers.c.timezone,
        customers.c.birthday,
        customers.c.attributes,
    ).where(among(customers.c.id, "ids", dialect))
    happenings = sa.select(events.c.pk, events.c.type, events.c.at_us, events.c.properties).where(
        among(events.c.pk, "pks", dialect)
    )
    return imported, given, people, happenings


def _customers(conn: Connection, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Each customer as stored, by id: attributes, then the columns, then the imported tags
    (sorted; `_as_due` adds the rules' own)."""
    imported, _, people, _ = _context_queries(conn.dialect.name)
    tags: dict[str, list[str]] = {}
    result = {}
    for some in chunks(sorted(ids)):
        for customer_id, tag in conn.execute(imported, {"ids": some}):
            tags.setdefault(customer_id, []).append(tag)
        for customer_id, name, email, phone, timezone, birthday, attributes in conn.execute(
            people, {"ids": some}
        ):
            result[customer_id] = {
                **(attributes or {}),
                "id": customer_id,
                "name": name,
                "email": email,
                "phone": phone,
                "timezone": timezone,
                "birthday": birthday,
                "tags": sorted(tags.get(customer_id, [])),
            }
    return result


# A tag or untag effect as `_as_due` applies it: its place in the order of LANGUAGE.md 3.8
# (time, rule, action), the tag, and whether it gives the tag.
_TagEffect = tuple[tuple[int, int, int], str, bool]


def _tag_effects(conn: Connection, ids: Iterable[str]) -> dict[str, list[_TagEffect]]:
    """The tags and untags rules gave these customers, recorded so far, each customer's in
    order."""
    _, query, _, _ = _context_queries(conn.dialect.name)
    given: dict[str, list[_TagEffect]] = {}
    for some in chunks(sorted(ids)):
        for customer_id, at_us, rule_position, position, tag, kind in conn.execute(
            query, {"ids": some}
        ):
            given.setdefault(customer_id, []).append(
                ((at_us, rule_position, position), tag, kind == "tag")
            )
    for found in given.values():
        found.sort()
    return given


def _as_due(
    customer: dict[str, Any] | None, given: dict[str, list[_TagEffect]], row: dict[str, Any]
) -> dict[str, Any] | None:
    """The customer as the action `row`'s template sees them: holding the tags they hold at its
    due time, the imported ones changed by every tag and untag that comes before it (earlier;
    at the same instant, of an earlier rule or an earlier action of its rule: `tag "gold" and
    followup "tier_gold"` shows gold). Each of those is recorded by the time the action is,
    however late quiet hours or the cap send it."""
    effects_of = given.get(row["customer_id"])
    if customer is None or not effects_of:
        return customer
    before = (row["due_us"], row["rule_position"], row["position"])
    tags = set(customer["tags"])
    for place, tag, gives in effects_of:
        if place >= before:
            break
        if gives:
            tags.add(tag)
        else:
            tags.discard(tag)
    return {**customer, "tags": sorted(tags)}


def _events(conn: Connection, pks: set[Any]) -> dict[int, dict[str, Any]]:
    """Each triggering event as templates see it, by key: properties, then type and time."""
    *_, happenings = _context_queries(conn.dialect.name)
    result = {}
    for some in chunks(sorted(pk for pk in pks if pk is not None)):
        for pk, kind, at_us, properties in conn.execute(happenings, {"pks": some}):
            result[pk] = {**(properties or {}), "type": kind, "at": iso(at_us)}
    return result
