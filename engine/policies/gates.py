"""Gates in front of the policies' lookups: for most customers, what consent and `exclude if`
would find is known without looking.

Every marketing occurrence that passes its rule reads the customer's latest consent event and
each `exclude if` condition as of its due time: lookups in the events' and effects' indexes,
about 2 µs each on SQLite, for every occurrence (a customer gets thirteen Friday group buys in
a quarter). Most customers never sent a consent event, most never returned an order, and most
never had a complaint, so most of those lookups find nothing.

When the events of such a type are fewer than the marketing occurrences due, the customers who
had one before the window's end are written to `scratch.gated` (one pass over those events,
through the (type, time) index), and the lookup is made only for them. Likewise for a tag an
`exclude if` needs (`"complaint" in customer.tags`): the customers who may hold it in the
window, those it was imported for, given to before the window, or due an occurrence of a rule
giving it. For everyone else the answer is the one the lookup gives without such an event or
tag: the stored consent flag, an exclusion that cannot hold (`sqlgen.needed_events`,
`sqlgen.needed_tags`). When nobody had one, no lookup is made at all. With more such events or
holders than occurrences, writing the table would cost more than it saves, and every lookup is
made.

The consent flag as it stood at each due time (`consent.flag_at`) is gated the same way: only
an import's change of it after the window's start can make it differ from the stored flag, and
most customers' never changed at all, so the customers with such a change are written to
`scratch.gated` (kind "flag") and only theirs are looked up; with none, the stored flag is read.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.sql import FromClause
from sqlalchemy.sql.elements import ColumnElement

from engine.evaluation.scratch import candidates, gated
from engine.language import ast
from engine.plan.sqlgen import FlagAt, any_of, needed_events, needed_tags
from engine.plan.triggers import Customers
from engine.policies.consent import SUBSCRIBED, UNSUBSCRIBED, consent_sql, flag_at, stored_consent
from engine.storage.tables import consent_changes, customer_tags, effects, events

CONSENT = (SUBSCRIBED, UNSUBSCRIBED)
FLAG = "accepts_marketing"  # the gate of the customers whose flag changed (`scratch.gated`)


@dataclass(frozen=True)
class Gates:
    """What `write` found: event types whose customers are in `scratch.gated`, and types
    nobody had before the window's end (the lookups could not find one); tags whose possible
    holders are in `scratch.gated`, and tags nobody can hold in the window."""

    had: frozenset[str] = frozenset()
    none: frozenset[str] = frozenset()
    held: frozenset[str] = frozenset()
    unheld: frozenset[str] = frozenset()
    # Whose consent flag an import changed after the window's start: nobody's ("none"), those
    # in `scratch.gated` ("gated"), or not known (too many to write: "all" are looked up).
    flag_changed: str = "all"

    def open(self, kind: str) -> frozenset[str]:
        """The event types (`kind` "event") or tags ("tag") whose customers are in the table."""
        return self.had if kind == "event" else self.held

    def closed(self, kind: str) -> frozenset[str]:
        """The event types or tags nobody had or may hold."""
        return self.none if kind == "event" else self.unheld


# What a customer must have for a lookup to find something: an event of one of some types
# ("event", types), or a tag ("tag", (tag,)).
_Need = tuple[str, tuple[str, ...]]


def _needs(condition: ast.Expr, segments: dict[str, ast.Segment]) -> list[_Need]:
    """What an `exclude if` condition cannot hold without: each a gate it may stand behind."""
    return [
        *(("event", (t,)) for t in sorted(needed_events(condition, segments))),
        *(("tag", (t,)) for t in sorted(needed_tags(condition, segments))),
    ]


def write(
    conn: Connection,
    ruleset: ast.RuleSet,
    occurrences: int,
    start_us: int,
    end_us: int,
    who: Customers,
    shared: Mapping[int, int],
    recorded_until_us: int,
) -> Gates:
    """Write the customers `who` covers who had an event of a gating type before `end_us`, and
    those who may hold a gating tag in `[start_us, end_us)`, to `scratch.gated`.
    `occurrences` is the number of marketing occurrences due: a type or a tag gates only when
    it has fewer events or holders than that (for an `exclude if` needing several, the one
    with the fewest). `shared`: rules whose candidates are an earlier rule's
    (`triggers.shared_fills`). Tags recorded before `recorded_until_us` count: the window's
    start, or its end for a window of late events, whose conditions read the ledger's effects
    in it."""
    if not occurrences:
        return Gates()
    counted: dict[_Need, int] = {}
    givers = {
        tag: sorted({shared.get(position, position) for position in positions})
        for tag, positions in _givers(ruleset).items()
    }

    def count(need: _Need) -> int:
        """Events or holders of `need`, counted up to one more than `occurrences` in each
        table: the cost stays within the work due. (A customer holding a tag by two ways is
        counted twice: the gate is only taken less often.)"""
        if need not in counted:
            kind, names = need
            if kind == "event":
                some = _of(names, end_us, who).limit(occurrences + 1).subquery()
                query = sa.select(sa.func.count()).select_from(some)
            else:
                (tag,) = names
                holders = _holders(tag, recorded_until_us, who, givers.get(tag, ()))
                counts = [
                    sa.select(sa.func.count())
                    .select_from(h.limit(occurrences + 1).subquery())
                    .scalar_subquery()
                    for h in holders
                ]
                query = sa.select(functools.reduce(operator.add, counts))
            counted[need] = conn.execute(query).scalar_one()
        return counted[need]

    flag_changed = _gate_flag(conn, occurrences, start_us, who)
    choices = [[("event", CONSENT)]] + [
        _needs(e.condition, ruleset.segments) for e in ruleset.excludes
    ]
    opened: dict[str, set[str]] = {"event": set(), "tag": set()}  # in the table
    closed: dict[str, set[str]] = {"event": set(), "tag": set()}  # nobody had or holds one
    for options in choices:
        best = min(options, key=count, default=None)
        if best is not None and count(best) <= occurrences:
            kind, names = best
            (opened if count(best) else closed)[kind].update(names)
    had, held = opened["event"], opened["tag"]
    columns = ["customer_id", "kind", "name"]
    if had:
        found = _of(tuple(sorted(had)), end_us, who).with_only_columns(
            events.c.customer_id, sa.literal("event", sa.String), events.c.type
        )
        conn.execute(gated.insert().from_select(columns, found.distinct()))
    for tag in sorted(held):
        holders = sa.union(*_holders(tag, recorded_until_us, who, givers.get(tag, ()))).subquery()
        found = sa.select(
            holders.c.customer_id, sa.literal("tag", sa.String), sa.literal(tag, sa.String)
        )
        conn.execute(gated.insert().from_select(columns, found))
    none, unheld = closed["event"], closed["tag"]
    return Gates(frozenset(had), frozenset(none), frozenset(held), frozenset(unheld), flag_changed)


def _gate_flag(conn: Connection, occurrences: int, start_us: int, who: Customers) -> str:
    """Write the customers `who` covers whose consent flag an import changed after `start_us`
    (the earliest due time: a change before it is in the stored flag at every one) to
    `scratch.gated`, when there are no more changes than `occurrences`; say which it was
    (`Gates.flag_changed`). Through the index by time, so the cost grows with the changes made
    since the window's start, none at all for most windows."""
    clause = who.clause(consent_changes.c.customer_id)
    if clause is None:  # every tick's: built once
        changes, counted = _CHANGES, _CHANGES_COUNTED
    else:
        changes = _CHANGES.where(clause)
        counted = _counted(changes)
    params = {"start_us": start_us, "most": occurrences + 1}
    count = conn.execute(counted, params).scalar_one()
    if not count:
        return "none"
    if count > occurrences:
        return "all"
    found = changes.with_only_columns(
        consent_changes.c.customer_id, sa.literal("flag", sa.String), sa.literal(FLAG, sa.String)
    ).distinct()
    conn.execute(gated.insert().from_select(["customer_id", "kind", "name"], found), params)
    return "gated"


def _counted(changes: sa.Select[Any]) -> sa.Select[Any]:
    """How many of `changes` there are, up to the parameter `most`."""
    some = changes.limit(sa.bindparam("most", type_=sa.Integer)).subquery()
    return sa.select(sa.func.count()).select_from(some)


# The changes of consent after the parameter `start_us`, and how many (`_gate_flag`).
_CHANGES = sa.select(consent_changes.c.customer_id).where(
    consent_changes.c.at_us > sa.bindparam("start_us", type_=sa.BigInteger)
)
_CHANGES_COUNTED = _counted(_CHANGES)


def _of(types: tuple[str, ...], end_us: int, who: Customers) -> sa.Select[Any]:
    query = sa.select(events.c.pk).where(events.c.type.in_(types), events.c.at_us < end_us)
    clause = who.clause(events.c.customer_id)
    return query if clause is None else query.where(clause)


def _givers(ruleset: ast.RuleSet) -> dict[str, list[int]]:
    """The positions of the rules that tag each tag."""
    found: dict[str, list[int]] = {}
    for rule in ruleset.rules:
        for action in rule.actions:
            if isinstance(action, ast.TagAction) and action.kind == "tag":
                found.setdefault(action.tag, []).append(rule.position)
    return found


def _holders(
    tag: str, recorded_until_us: int, who: Customers, givers: Sequence[int]
) -> list[sa.Select[Any]]:
    """The customers `who` covers who may hold `tag` in a window (as `sqlgen.Compiler.has_tag`
    reads them): those it was imported for, those the ledger recorded it given to before
    `recorded_until_us`, and those with an occurrence due of a rule giving it (`givers`), one
    query each."""
    imported = sa.select(customer_tags.c.customer_id).where(customer_tags.c.tag == tag)
    recorded = (
        sa.select(effects.c.customer_id)
        .where(effects.c.tag == tag, effects.c.kind == "tag", effects.c.at_us < recorded_until_us)
        .distinct()
    )
    found = [
        query if clause is None else query.where(clause)
        for query, clause in (
            (imported, who.clause(customer_tags.c.customer_id)),
            (recorded, who.clause(effects.c.customer_id)),
        )
    ]
    if givers:  # the candidates are those of the customers `who` covers
        cand = candidates.c
        found.append(sa.select(cand.customer_id).where(cand.rule_index.in_(givers)).distinct())
    return found


def consent(customer: FromClause, due: ColumnElement[int], gates: Gates) -> ColumnElement[bool]:
    """Whether the customer accepts marketing at `due` (`consent.consent_sql`), the flag's
    changes and the latest consent event looked up only where there may be one."""
    flag = flag_then(customer, due, gates)
    if set(CONSENT) <= gates.none:
        return flag
    lookup = _passes(customer.c.id, "event", CONSENT) if set(CONSENT) <= gates.had else None
    return consent_sql(customer, due, lookup, flag)


def flag_then(customer: FromClause, due: ColumnElement[int], gates: Gates) -> ColumnElement[bool]:
    """The customer's `accepts_marketing` at `due` (`consent.flag_at`), its changes looked up
    only for the customers who may have one."""
    if gates.flag_changed == "none":
        return stored_consent(customer)
    changed = _passes(customer.c.id, "flag", (FLAG,)) if gates.flag_changed == "gated" else None
    return flag_at(customer, due, changed)


def flag_reader(gates: Gates) -> FlagAt | None:
    """How a condition reads `customer.accepts_marketing` (`sqlgen.Scope.flag`): the stored
    flag alone when no import changed anyone's since the window's start, else `flag_then`."""
    if gates.flag_changed == "none":
        return None
    return functools.partial(flag_then, gates=gates)


def excluded(
    test: Callable[[ast.Expr], ColumnElement[bool]],
    customer_id: ColumnElement[str],
    excludes: Sequence[ast.Exclude],
    segments: dict[str, ast.Segment],
    gates: Gates,
) -> ColumnElement[bool]:
    """Whether an `exclude if` holds, each condition a true/false value (`test`) tested only
    for customers who had every gating event and may hold every gating tag it needs (for no
    one, when nobody had or holds one). Where several conditions are gated, one probe says
    first whether the customer passes any gate (most pass none); the conditions without a gate
    are tested for everyone."""
    behind: list[ColumnElement[bool]] = []  # conditions behind a gate
    open_to_all: list[ColumnElement[bool]] = []
    for exclude in excludes:
        needs = _needs(exclude.condition, segments)
        if any(gates.closed(kind).intersection(names) for kind, names in needs):
            continue  # cannot hold
        value = test(exclude.condition)
        passes = [
            _passes(customer_id, kind, names)
            for kind, names in needs
            if gates.open(kind).issuperset(names)
        ]
        for probe in passes:
            value = sa.case((probe, value), else_=sa.false())
        (behind if passes else open_to_all).append(value)
    if len(behind) > 1:
        anyone = sa.exists().where(gated.c.customer_id == customer_id)
        behind = [sa.case((anyone, any_of(behind)), else_=sa.false())]
    found = behind + open_to_all
    return any_of(found) if found else sa.false()


def _passes(
    customer_id: ColumnElement[str], kind: str, names: Iterable[str]
) -> ColumnElement[bool]:
    """Whether the customer passes the gate of one of these event types or tags."""
    return sa.exists().where(
        gated.c.customer_id == customer_id, gated.c.kind == kind, gated.c.name.in_(names)
    )
