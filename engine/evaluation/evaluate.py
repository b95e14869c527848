"""The evaluation core, shared by `simulate` and the daemon: what a rule set does in a window.

For a window `[start, end)`:
1. Rules are taken stratum by stratum (`_order`): a rule whose condition or `points` amount
   reads tags or points comes after the rules that give them (and a marketing rule after those
   giving what `exclude if` reads, where possible); rules whose amounts read each other's
   points, or a rule its own, are taken together in rounds (`_in_rounds`).
2. Every rule's occurrences due in the window go to a scratch table first (`find_due`,
   `engine.plan.triggers`), for every customer at once; a large shop is then evaluated in batches of
   customers (`evaluate_due`). Per rule and batch, one query evaluates `if`, `unless` and the
   trigger's own validity for all of them, as of each one's due time (`engine.plan.sqlgen`); `once`
   / `once every` keep the first that may act per customer, counting what the ledger recorded
   before the window.
3. Tags, untags and points of the occurrences that acted are added to the scratch effects, where
   the conditions of later strata see them.
4. Every action of every occurrence that acted goes through the policies (`engine.policies`).

Nothing here writes to the shop's tables: the daemon records the result, a simulation prints it.
"""

from __future__ import annotations

import functools
import heapq
from bisect import bisect_right, insort
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy import Connection

from engine.checking import dependencies
from engine.config import Config
from engine.evaluation import scratch
from engine.evaluation.records import AT, CUSTOMER, DUE, STATUS, ActionRecord, Row
from engine.language import ast
from engine.plan import triggers
from engine.plan.sqlfuncs import unindexed
from engine.plan.sqlgen import ORDER, Bounds, Compiler, Scope, needed_events
from engine.policies import gates
from engine.policies.consent import flag_at
from engine.policies.timing import apply_limits, cap_horizon, quiet_until
from engine.storage.bulk import insert_rows
from engine.storage.chunks import among, chunks
from engine.storage.distinct import stepped
from engine.storage.tables import actions, customers, effects, events, occurrences
from engine.timeutil import US

MARKETING_KINDS = sorted(ast.MARKETING)
NO_POINTS: Mapping[int, float] = MappingProxyType({})


@dataclass(slots=True)
class Occurrence:
    """An occurrence that acted, with what the policies need to know of it at its due time."""

    candidate_id: int
    rule: ast.CheckedRule
    customer_id: str
    key: str
    due_us: int
    event_pk: int | None
    tz: str  # the customer's time zone
    amounts: Mapping[int, float]  # action position → points
    consent: bool = True  # accepts marketing (always true for rules without marketing)
    excluded: bool = False  # an `exclude if` holds (marketing rules only)


@dataclass
class Evaluation:
    occurrences: list[Occurrence]
    rows: list[
        Row
    ]  # every action (`engine.evaluation.records`), in order of send time, tie-breaks of 3.8
    # Recorded actions (by id) that waited for the cap and were decided now: sent or not.
    decided: list[tuple[int, bool]] = field(default_factory=list)

    @property
    def actions(self) -> list[ActionRecord]:
        """The actions as records, in order: made from the rows at each call, for callers that
        want objects (a simulation streams the rows and makes one only as it prints it)."""
        return [ActionRecord.from_row(row) for row in self.rows]


@dataclass(frozen=True)
class Due:
    """The occurrences due in a window for the customers `who` covers, every rule's, written to
    the connection's candidates table (`engine.evaluation.scratch`)."""

    start_us: int
    who: triggers.Customers
    zones: tuple[str, ...]  # the customers' time zones
    counts: dict[int, int]  # rule position → occurrences due
    strata: tuple[tuple[ast.CheckedRule, ...], ...]  # the order of evaluation (`_order`)
    late_exclude: frozenset[int]  # marketing rules whose `exclude if` waits for every stratum
    gated: gates.Gates  # event types and tags in front of the policies' lookups (`gates`)
    # Rules reading an earlier rule's candidates, the same rows (`triggers.shared_fills`).
    shared: Mapping[int, int] = field(default_factory=dict)
    # Only the occurrences of events and sign-ups imported late, in a window a tick decided
    # without them: `once` and the cap then read the ledger after the window as well as before.
    late: bool = False
    # Rules evaluated together in rounds (a cycle through the amounts of `points`): each
    # rule's position → the positions of its cycle (`_order`).
    groups: Mapping[int, tuple[int, ...]] = field(default_factory=dict)
    # Each rule's query over these occurrences (`_Passing`), built once and run per batch of
    # customers with its bounds as parameters: built anew, the shop's 32 rules took 90 ms of
    # every batch of 5,000 customers at M. (`evaluate_due` is given the rule set and the
    # configuration `find_due` was given.)
    queries: dict[tuple[int, frozenset[str]], _Passing] = field(default_factory=dict, compare=False)

    def index(self, rule: ast.CheckedRule) -> int:
        """The `rule_index` of the rule's candidates."""
        return self.shared.get(rule.position, rule.position)

    @property
    def effects(self) -> scratch.Effects:
        """The tags and points conditions see: recorded before the window, and this
        evaluation's own."""
        return scratch.Effects(self.start_us)


def find_due(
    conn: Connection,
    ruleset: ast.RuleSet,
    config: Config,
    start_us: int,
    end_us: int,
    who: triggers.Customers = triggers.EVERYONE,
    hopeless: bool = False,
    late: triggers.LateImports | None = None,
) -> Due:
    """Every occurrence of every rule due in `[start_us, end_us)`: one pass over the triggers'
    sources for all the customers `who` covers, whatever batches they are evaluated in; with
    `late`, only those of these events and sign-ups (`engine.evaluation.tick`).

    Calendar occurrences of customers lacking an event the rule's condition needs are left
    out (`triggers.fill`), unless `hopeless` asks for them (`nudge explain` shows them all)."""
    scratch.reset(conn)
    if conn.dialect.name == "postgresql":
        # With the candidates analyzed (below), a rule's query is costed high enough for the
        # server to compile it to machine code first: at S, 110 ms of a 200 ms query, for each
        # rule and batch. Only for this transaction.
        conn.exec_driver_sql("SET LOCAL jit = off")
    window = triggers.Window(start_us, end_us)
    zones = customer_zones(conn, config.timezone)
    shared = triggers.shared_fills(ruleset.rules)
    counts: dict[int, int] = {}
    for rule in ruleset.rules:
        if rule.position in shared:  # the same rows as an earlier rule's, written once
            counts[rule.position] = counts[shared[rule.position]]
            continue
        counts[rule.position] = triggers.fill(
            conn,
            rule.position,
            rule,
            window,
            config.timezone,
            config.country,
            zones,
            who,
            _needs(rule, ruleset) if not hopeless else frozenset(),
            late,
        )
    strata, late_exclude, groups = _order(_Same(ruleset))
    marketing = sum(counts[rule.position] for rule in ruleset.rules if _is_marketing(rule))
    # A late window's conditions see what the ledger recorded in it too (`_recorded_effects`).
    recorded_until = end_us if late else start_us
    gated = gates.write(conn, ruleset, marketing, start_us, end_us, who, shared, recorded_until)
    if conn.dialect.name == "postgresql" and any(counts.values()):
        # Statistics for the planner, which otherwise takes a batch's candidates of a rule for
        # one row and loops over them (with the batch's bounds on the customers and on the
        # conditions' lookups of their events, the many are hashed instead: `_Passing`).
        conn.exec_driver_sql(f"ANALYZE {scratch.candidates.name}")
    return Due(
        start_us,
        who,
        tuple(zones),
        counts,
        strata,
        late_exclude,
        gated,
        shared,
        late is not None,
        groups,
    )


def evaluate(
    conn: Connection,
    ruleset: ast.RuleSet,
    config: Config,
    start_us: int,
    end_us: int,
    who: triggers.Customers = triggers.EVERYONE,
    hopeless: bool = False,
) -> Evaluation:
    """Everything `ruleset` does for occurrences due in `[start_us, end_us)`, on the data and
    ledger as they stand in `conn`, as a simulation sees it (`limit` decided with what is sent
    after `end_us`: `listed_horizon`). Writes only to this connection's scratch tables.

    `who` limits the evaluation to some customers: nothing in the language crosses from one
    customer to another, so theirs come out exactly as in a full evaluation."""
    horizon = listed_horizon(conn, ruleset, config, end_us)
    due = find_due(conn, ruleset, config, start_us, horizon, who, hopeless)
    return evaluate_due(conn, ruleset, config, due, listed_before_us=end_us)


def listed_horizon(conn: Connection, ruleset: ast.RuleSet, config: Config, end_us: int) -> int:
    """Where a simulation of a window ending at `end_us` evaluates occurrences up to, listing
    those due before `end_us` (`timing.cap_horizon`)."""
    return cap_horizon(ruleset, end_us, customer_zones(conn, config.timezone))


def _needs(rule: ast.CheckedRule, ruleset: ast.RuleSet) -> frozenset[str]:
    condition = rule.rule.condition
    return frozenset() if condition is None else needed_events(condition, ruleset.segments)


def evaluate_due(
    conn: Connection,
    ruleset: ast.RuleSet,
    config: Config,
    due: Due,
    batch: triggers.Customers = triggers.EVERYONE,
    decide_before_us: int | None = None,
    with_actions: bool = True,
    listed_before_us: int | None = None,
) -> Evaluation:
    """`evaluate` for the occurrences of `due` whose customers `batch` covers (a large shop is
    taken in batches of customers to keep memory flat; see `triggers.customer_batches`).
    With `listed_before_us`, the occurrences due from then on are evaluated for the cap only,
    and left out of the result."""
    scratch.clear_effects(conn)
    people = _People(due.who, batch)
    if due.late:
        _recorded_effects(conn, due, people)
    acted: list[Occurrence] = []
    taken: set[int] = set()  # the rules of a cycle, evaluated with its first
    for stratum in due.strata:
        for rule in stratum:
            if rule.position in taken:
                continue
            group = due.groups.get(rule.position)
            if group is not None:
                taken.update(group)
                cycle = [ruleset.rules[position] for position in group]
                acted.extend(_in_rounds(conn, cycle, ruleset, config, due, people))
            elif due.counts[rule.position]:
                acted.extend(_act(conn, rule, ruleset, config, due, people))
    if not with_actions:  # only which occurrences act (missed ones, after long downtime)
        return Evaluation(acted, [])
    if due.late_exclude:
        waited = [o for o in acted if o.rule.position in due.late_exclude]
        _exclude_late(conn, ruleset, config, waited, due)
    rows, decided = _actions(
        conn, ruleset, config, acted, due.start_us, decide_before_us, people, due.late
    )
    if listed_before_us is not None:
        acted = [o for o in acted if o.due_us < listed_before_us]
        rows = [row for row in rows if row[DUE] < listed_before_us]
    return Evaluation(acted, rows, decided)


@dataclass(frozen=True)
class _People:
    """The customers one evaluation covers: those of the window's `Due` and of the batch."""

    who: triggers.Customers
    batch: triggers.Customers

    def clauses(self, column: sa.ColumnElement[str]) -> list[sa.ColumnElement[bool]]:
        found = (self.who.clause(column), self.batch.clause(column))
        return [clause for clause in found if clause is not None]

    def batch_clauses(self, column: sa.ColumnElement[str]) -> list[sa.ColumnElement[bool]]:
        """`clauses` with the batch's bounds as parameters (`batch_params`), so that one
        statement serves every batch."""
        found = (self.who.clause(column), self.batch.clause(column, "batch"))
        return [clause for clause in found if clause is not None]

    @property
    def batch_params(self) -> dict[str, str]:
        return self.batch.params_for("batch")


# -- rounds -------------------------------------------------------------------------------------


def _act(
    conn: Connection,
    rule: ast.CheckedRule,
    ruleset: ast.RuleSet,
    config: Config,
    due: Due,
    people: _People,
    rank: int | None = None,
    earlier: Sequence[Occurrence] = (),
) -> list[Occurrence]:
    """The rule's occurrences that act (of one rank only, with `rank`: `_in_rounds`), their
    tags and points added for what comes after them."""
    passing = _passing(conn, rule, ruleset, config, due, people, rank)
    if due.late:
        passing = _not_done(conn, rule, passing)
    chosen = _apply_once(conn, rule, passing, due, people, earlier)
    _add_effects(conn, rule, chosen)
    return chosen


def _in_rounds(
    conn: Connection,
    cycle: list[ast.CheckedRule],
    ruleset: ast.RuleSet,
    config: Config,
    due: Due,
    people: _People,
) -> list[Occurrence]:
    """The rules of a cycle through the amounts of `points` (one rule whose amount reads the
    points it gives, or rules reading each other's), in the order of due times: each
    customer's occurrences of all of them ranked by due time, the first of each customer in
    the first round, and so on, every rule's of a round before the next, which sees their
    points (`scratch.ranks`)."""
    found = [rule for rule in cycle if due.counts[rule.position]]
    chosen: dict[int, list[Occurrence]] = {rule.position: [] for rule in found}
    rounds = _rank(conn, sorted({due.index(rule) for rule in found}), people) if found else 0
    for rank in range(1, rounds + 1):
        for rule in found:
            earlier = chosen[rule.position]
            earlier += _act(conn, rule, ruleset, config, due, people, rank, earlier)
    return [occurrence for rule in found for occurrence in chosen[rule.position]]


def _rank(conn: Connection, indexes: list[int], people: _People) -> int:
    """Rank the batch's candidates of these rule indexes per customer, in order of due time,
    then rule, then occurrence key (`scratch.ranks`); the most any customer has."""
    cand = scratch.candidates
    conn.execute(scratch.ranks.delete())
    key: sa.ColumnElement[str] = cand.c.occurrence_key
    if conn.dialect.name == "postgresql":  # Python's order (`_apply_once`), whatever the
        key = sa.collate(key, "C")  # database's collation: that of the code points
    rank = sa.func.row_number().over(
        partition_by=cand.c.customer_id, order_by=(cand.c.due_us, cand.c.rule_index, key)
    )
    ranked = sa.select(cand.c.id, rank).where(
        cand.c.rule_index.in_(indexes), *people.clauses(cand.c.customer_id)
    )
    conn.execute(scratch.ranks.insert().from_select(["candidate_id", "rank"], ranked))
    most = sa.select(sa.func.coalesce(sa.func.max(scratch.ranks.c.rank), 0))
    return int(conn.execute(most).scalar_one())


# -- a late window ----------------------------------------------------------------------------


def _recorded_effects(conn: Connection, due: Due, people: _People) -> None:
    """The tags, untags and points recorded in a late window (`Due.late`) for the customers of
    its occurrences, among this evaluation's own: conditions read the window's effects from
    there, in order of time with those the late occurrences give (the ledger's, before the
    window, as always)."""
    cand = scratch.candidates
    columns = [effects.c[name] for name in _EFFECT_COLUMNS]
    found = sa.select(*columns).where(
        effects.c.at_us >= due.start_us,
        effects.c.customer_id.in_(
            sa.select(cand.c.customer_id).where(*people.clauses(cand.c.customer_id))
        ),
        *people.clauses(effects.c.customer_id),
    )
    conn.execute(scratch.new_effects.insert().from_select(_EFFECT_COLUMNS, found))


def _not_done(
    conn: Connection, rule: ast.CheckedRule, passing: list[Occurrence]
) -> list[Occurrence]:
    """Of a late window's occurrences, those that add to what the ledger holds: not one it
    recorded (an event committed while a tick ran; an order paid at the instant of one
    recorded, the same order value), nor one of a first order when the rule acted on a first
    order of that customer, nor one of a last order paid in the span of a last order that
    acted (`(its order, its due time]`, in which the late order would have ended it)."""
    if not passing:
        return passing
    ledger = occurrences.c
    query = sa.select(ledger.customer_id, ledger.occurrence_key, ledger.due_us, ledger.status)
    query = query.where(
        ledger.rule == rule.name, among(ledger.customer_id, "people", conn.dialect.name)
    )
    recorded: dict[str, list[tuple[str, int, str]]] = defaultdict(list)
    for some in chunks(sorted({o.customer_id for o in passing})):
        for customer_id, key, due_us, status in conn.execute(query, {"people": some}):
            recorded[customer_id].append((key, due_us, status))
    trigger = rule.when.trigger
    order_value = trigger.name if isinstance(trigger, ast.CustomerTrigger) else None
    kept = []
    for occ in passing:
        rows = recorded.get(occ.customer_id, [])
        if any(key == occ.key for key, _, _ in rows):
            continue
        if order_value is not None:  # the keys are the orders' instants
            acted = [(int(key), due_us) for key, due_us, status in rows if status == "acted"]
            if order_value == "first_order" and acted:
                continue
            if order_value == "last_order" and any(k < int(occ.key) <= d for k, d in acted):
                continue
        kept.append(occ)
    return kept


# -- conditions -------------------------------------------------------------------------------


def _zones_query() -> sa.CompoundSelect[Any]:
    """The customers' zones, stepping through the index on `timezone` one lookup per zone
    (`distinct.stepped`), and the shop's (`shop_tz`) where some customer has none."""
    column = customers.c.timezone
    shop_tz = sa.bindparam("shop_tz", type_=sa.String)
    unset = sa.select(shop_tz).where(sa.exists().where(column.is_(None)))
    return sa.union_all(stepped(column), unset)


ZONES = _zones_query()


def customer_zones(conn: Connection, shop_tz: str) -> list[str]:
    """The time zones the customers live in; the shop's for customers without one.

    Read by stepping through the index, not by scanning it (`ZONES`): every tick asks, and its
    cost must not grow with the number of customers."""
    return sorted(set(conn.execute(ZONES, {"shop_tz": shop_tz}).scalars()) or {shop_tz})


def scope_for(
    rule: ast.CheckedRule | None,
    ruleset: ast.RuleSet,
    config: Config,
    effects: scratch.Effects,
    zones: Sequence[str],
    bounds: Bounds | None = None,
    gated: gates.Gates | None = None,
) -> tuple[Scope, Any]:
    """What `rule`'s conditions (or, without one, the `exclude if`s) see, and the candidates
    joined to their customers. With `gated`, the window's gates: `customer.accepts_marketing`
    is then looked up as it stood only where an import changed it (`gates.flag_reader`)."""
    cand = scratch.candidates
    trigger = None
    if rule is not None and isinstance(rule.when.trigger, ast.EventTrigger) and _reads_event(rule):
        trigger = events.alias("trigger_event")
    scope = Scope(
        customer=customers,
        due=cand.c.due_us,
        trigger=trigger,
        effects=effects,
        segments=ruleset.segments,
        shop_tz=config.timezone,
        rfm=config.rfm,
        zones=tuple(zones),
        bounds=bounds,
        flag=flag_at if gated is None else gates.flag_reader(gated),
        # A calendar rule's occurrences are every customer of a zone (who may meet the
        # condition) on each of the rule's days: many to a customer in a batch of a simulation,
        # where hashing the batch's events beats probing them per occurrence. Never without
        # bounds (a tick's evaluation of everyone): the type's events of the whole shop would
        # be read for what may be a few occurrences (performance.md, nineteenth round).
        hashed=bool(bounds and bounds(customers.c.id))
        and isinstance(rule and rule.when.trigger, _CALENDAR),
    )
    source = cand.join(customers, customers.c.id == cand.c.customer_id)
    if trigger is not None:
        source = source.join(trigger, trigger.c.pk == cand.c.event_pk)
    return scope, source


_CALENDAR = (ast.ScheduleTrigger, ast.HolidayTrigger, ast.DateTrigger)


def _reads_event(rule: ast.CheckedRule) -> bool:
    """Whether the rule's condition or points read the triggering event's properties (only the
    trigger's own entity can be read: the checker says so)."""
    amounts = [a.amount for a in rule.actions if isinstance(a, ast.Points)]
    return any(
        isinstance(node, ast.Ref) and node.entity != "customer"
        for part in (rule.rule.condition, *amounts)
        for node in ast.walk(part)
    )


def _passing(
    conn: Connection,
    rule: ast.CheckedRule,
    ruleset: ast.RuleSet,
    config: Config,
    due: Due,
    people: _People,
    rank: int | None = None,
) -> list[Occurrence]:
    """The rule's occurrences that pass `if` and `unless` (and whose trigger value stands),
    with their points and their policy flags, in one query; with `rank`, only each customer's
    occurrence of that rank in order of due time (`_in_rounds`)."""
    params: dict[str, Any] = people.batch_params
    if rank is not None:
        params = params | {"rank": rank}
    key = (rule.position, frozenset(params))
    query = due.queries.get(key)
    if query is None:
        query = _Passing.build(rule, ruleset, config, due, people, conn.dialect.name, rank)
        due.queries[key] = query
    points, marketing = query.points, query.marketing
    extra = 6 + len(points)
    result: list[Occurrence] = []
    # The driver's own rows, read from its cursor: no column needs SQLAlchemy's conversion
    # (each value is made what it must be below), and a Row costs about 0.8 µs: 0.4 s for the
    # group buy's 514,000 at M.
    if query.hashed:
        conn.exec_driver_sql("SET LOCAL enable_nestloop = off")
    with conn.execute(query.select, params) as found:
        rows = found.cursor.fetchall()
    if query.hashed:  # not in a `finally`: after a database error the transaction is
        # aborted, the setting with it, and a statement here would only hide that error
        conn.exec_driver_sql("SET LOCAL enable_nestloop TO DEFAULT")
    for row in rows:
        amounts = (
            {pos: float(row[6 + i] or 0.0) for i, pos in enumerate(points)} if points else NO_POINTS
        )
        occurrence = Occurrence(row[0], rule, row[1], row[2], row[3], row[4], row[5], amounts)
        if marketing:
            occurrence.consent = row[extra] != NO_CONSENT
            occurrence.excluded = row[extra] == EXCLUDED
        result.append(occurrence)
    return result


@dataclass(frozen=True)
class _Passing:
    """A rule's query for its occurrences that pass, with the batch's bounds as parameters."""

    select: sa.Select[Any]
    points: tuple[int, ...]  # positions of the points actions, whose amounts follow the ids
    marketing: bool  # what consent and `exclude if` (unless late) found follows (`_policies`)
    # Whether a test reads a batch's events from a materialized CTE (`Compiler.some`). The
    # query is then run without nested loops: PostgreSQL takes the batch's candidates joined
    # to its customers for a few rows (at L, 2 for 35,000) and would scan the whole CTE for
    # each (the group buy at L: 300 ms a batch, hashed 47 ms).
    hashed: bool

    @classmethod
    def build(
        cls,
        rule: ast.CheckedRule,
        ruleset: ast.RuleSet,
        config: Config,
        due: Due,
        people: _People,
        dialect: str,
        rank: int | None = None,
    ) -> _Passing:
        cand = scratch.candidates
        # On PostgreSQL the batch's bounds are repeated on the customers and on each of the
        # conditions' lookups of their events: with the candidates analyzed (`find_due`), it can
        # then read the batch's rows of each once and hash them, instead of probing them per
        # occurrence.
        bounds = people.batch_clauses if dialect == "postgresql" else None
        scope, source = scope_for(rule, ruleset, config, due.effects, due.zones, bounds, due.gated)
        compiler = Compiler(scope)
        where: list[Any] = [
            cand.c.rule_index == due.index(rule),
            *people.batch_clauses(cand.c.customer_id),
            *(bounds(customers.c.id) if bounds else ()),
        ]
        if rank is not None:  # `_in_rounds`
            ranks = scratch.ranks.c
            of_rank = sa.select(ranks.candidate_id).where(
                ranks.rank == sa.bindparam("rank", type_=sa.Integer)
            )
            where.append(cand.c.id.in_(of_rank))
        where.extend(validity_sql(rule))
        if rule.rule.condition is not None:
            where.append(compiler.condition(rule.rule.condition, whole=True))
        if rule.rule.unless is not None:
            where.append(~unless_sql(rule.rule.unless, bounds))
        # A probe of the ledger's key for each candidate: written as a `NOT EXISTS`, PostgreSQL
        # may read and hash all the rule's history instead, a cost that grows with the ledger.
        where.append(sa.case((recorded_before(rule, due.start_us), sa.false()), else_=sa.true()))
        points = [(pos, a) for pos, a in enumerate(rule.actions) if isinstance(a, ast.Points)]
        columns: list[Any] = [
            cand.c.id,
            cand.c.customer_id,
            cand.c.occurrence_key,
            cand.c.due_us,
            cand.c.event_pk,
            compiler.customer_zone,
        ]
        columns += [compiler.value(action.amount, "number") for _, action in points]
        marketing = _is_marketing(rule)
        if marketing:
            here = bool(ruleset.excludes) and rule.position not in due.late_exclude
            excluded = _excluded(compiler, ruleset, due.gated) if here else None
            columns.append(_policies(gates.consent(customers, cand.c.due_us, due.gated), excluded))
        select = sa.select(*columns).select_from(source).where(*where)
        positions = tuple(pos for pos, _ in points)
        return cls(select, positions, marketing, compiler.materialized)


# What the policies computed in SQL found of a marketing occurrence (`_policies`).
NO_CONSENT, EXCLUDED, NEITHER = 0, 1, 2


def _policies(consent: Any, excluded: Any | None) -> Any:
    """Consent, then `exclude if` (when given) as one value: `NO_CONSENT`, `EXCLUDED` or
    `NEITHER`. Consent comes first (LANGUAGE.md 3.8), so the exclusions are tested only for
    customers who accept marketing (row by row on SQLite: the lookups of the others are not
    made; PostgreSQL may still hash a lookup's rows for the whole batch)."""
    if excluded is None:
        return sa.case((consent, NEITHER), else_=NO_CONSENT)
    return sa.case((sa.not_(consent), NO_CONSENT), (excluded, EXCLUDED), else_=NEITHER)


def _excluded(compiler: Compiler, ruleset: ast.RuleSet, gated: gates.Gates) -> Any:
    excludes, segments = ruleset.excludes, ruleset.segments
    return gates.excluded(compiler.test, compiler.c.id, excludes, segments, gated)


class _Same:
    """A rule set as a cache key, by identity: it holds a dict, so it has no hash of its own."""

    __slots__ = ("ruleset",)

    def __init__(self, ruleset: ast.RuleSet) -> None:
        self.ruleset = ruleset

    def __hash__(self) -> int:
        return id(self.ruleset)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.ruleset is self.ruleset


@functools.lru_cache(maxsize=16)
def _order(
    same: _Same,
) -> tuple[tuple[tuple[ast.CheckedRule, ...], ...], frozenset[int], dict[int, tuple[int, ...]]]:
    """The strata, the marketing rules whose `exclude if` waits until every stratum is done, and
    the rules evaluated together in rounds (each one's position → its cycle's: `_in_rounds`).

    `exclude if` is evaluated with each marketing rule's own query. When it reads tags or
    points, the rules giving them go to earlier strata than the marketing rule, so that what
    they gave is there. Where that would make a cycle (the marketing rule gives, itself or
    through rules reading what it gives, what `exclude` reads), that rule's `exclude` is
    evaluated once every stratum is done instead.

    Worked out once per rule set (the key holds it, so its identity is not reused while
    cached): every tick asks, and it took a sixth of an idle tick."""
    ruleset = same.ruleset
    links = dependencies.edges(ruleset.rules, ruleset.segments)
    links += dependencies.amount_edges(ruleset.rules)
    positions = [rule.position for rule in ruleset.rules]
    groups = {p: tuple(c) for c in dependencies.cycles(positions, links) for p in c}
    excluded = dependencies.Effects()
    for exclude in ruleset.excludes:
        read = dependencies.reads(exclude.condition, ruleset.segments)
        excluded = dependencies.Effects(excluded.tags | read.tags, excluded.points or read.points)
    # Each marketing rule's `exclude` added to the rules' own dependencies in turn.
    written = dependencies.writers(ruleset.rules)
    late: set[int] = set()
    for rule in ruleset.rules if excluded.tags or excluded.points else ():
        if not _is_marketing(rule):
            continue
        more = dependencies.edges_from(rule.position, excluded, written)
        if dependencies.reaches(links, (edge.writer for edge in more), rule.position):
            late.add(rule.position)
        else:
            links += more
    return _frozen(dependencies.layers(ruleset.rules, links)), frozenset(late), groups


def _frozen(
    strata: list[list[ast.CheckedRule]],
) -> tuple[tuple[ast.CheckedRule, ...], ...]:
    return tuple(tuple(stratum) for stratum in strata)


def _is_marketing(rule: ast.CheckedRule) -> bool:
    return any(a.kind in MARKETING_KINDS for a in rule.actions)


def _exclude_late(
    conn: Connection,
    ruleset: ast.RuleSet,
    config: Config,
    acted: list[Occurrence],
    due: Due,
) -> None:
    """`exclude if` for these marketing occurrences that acted, once every tag and point given
    before their due times is known."""
    # Consent comes first. Rules sharing their candidates (`Due.shared`) share candidate ids:
    # the exclusion depends only on the customer and the due time, so it holds for all of them.
    marketing: dict[int, list[Occurrence]] = defaultdict(list)
    for o in acted:
        if o.consent:
            marketing[o.candidate_id].append(o)
    if not marketing:
        return
    cand = scratch.candidates
    scope, source = scope_for(None, ruleset, config, due.effects, due.zones, None, due.gated)
    excluded = _excluded(Compiler(scope), ruleset, due.gated)
    for some in chunks(marketing):
        query = sa.select(cand.c.id, excluded).select_from(source).where(cand.c.id.in_(some))
        for candidate_id, flag in conn.execute(query):
            for occurrence in marketing[candidate_id]:
                occurrence.excluded = bool(flag)


def recorded_before(rule: ast.CheckedRule, start_us: int) -> sa.Exists:
    """Whether the ledger holds the candidate's occurrence (rule, customer, key) with a due time
    before the window: one that a rule edit (a new `at`, a new delay) or corrected data (a
    birthday) moved into it, which never acts twice (LANGUAGE.md 3.4)."""
    ledger, cand = occurrences.c, scratch.candidates.c
    return sa.exists().where(
        ledger.rule == rule.name,
        ledger.customer_id == cand.customer_id,
        ledger.occurrence_key == cand.occurrence_key,
        ledger.due_us < start_us,
    )


def validity_sql(rule: ast.CheckedRule) -> list[Any]:
    """`customer.first_order` / `last_order` occurrences live only while the value stands."""
    trigger = rule.when.trigger
    if not isinstance(trigger, ast.CustomerTrigger):
        return []
    cand = scratch.candidates
    other = events.alias("other_order")
    base = [other.c.customer_id == cand.c.customer_id, other.c.type == ORDER]
    if trigger.name == "last_order":
        later = sa.and_(other.c.at_us > cand.c.trigger_us, other.c.at_us <= cand.c.due_us)
        return [~sa.exists().where(*base, later)]
    if trigger.name == "first_order":
        return [~sa.exists().where(*base, other.c.at_us < cand.c.trigger_us)]
    return []


def unless_sql(unless: ast.Unless, bounds: Bounds | None = None) -> Any:
    """Whether the `unless` event came: with `bounds`, among the batch's events (as every
    lookup of `_Passing` on PostgreSQL)."""
    cand = scratch.candidates
    u = events.alias("unless_event")
    where = [
        u.c.customer_id == cand.c.customer_id,
        u.c.type == unless.event,
        u.c.at_us <= cand.c.due_us,
        *(bounds(u.c.customer_id) if bounds else ()),
    ]
    if unless.within is not None:
        where.append(u.c.at_us > cand.c.due_us - unless.within.seconds * US)
    else:
        where.append(u.c.at_us > cand.c.trigger_us)
    return sa.exists().where(*where)


# -- once -------------------------------------------------------------------------------------


def _apply_once(
    conn: Connection,
    rule: ast.CheckedRule,
    passing: list[Occurrence],
    due: Due,
    people: _People,
    earlier: Sequence[Occurrence] = (),
) -> list[Occurrence]:
    """Keep the occurrences that may act: all of them, or under `once` / `once every D` the
    first per customer not within D of the last one that acted (the ledger's included, and
    `earlier`: those of the rule's earlier rounds).

    Occurrences of late events (`Due.late`) come after the ledger's later ones were decided:
    one acts only where no occurrence that acted, before or after it, is within D of it, so
    that the rule never acts twice within D."""
    once = rule.rule.once
    if once is None or not passing:
        return passing
    cand = scratch.candidates
    customer, due_us = occurrences.c.customer_id, occurrences.c.due_us
    where = [
        occurrences.c.rule == rule.name,
        occurrences.c.status == "acted",
        customer.in_(
            sa.select(cand.c.customer_id).where(
                cand.c.rule_index == due.index(rule), *people.clauses(cand.c.customer_id)
            )
        ),
    ]
    if due.late:
        query = sa.select(customer, due_us).where(*where)
    else:  # the latest before the window is enough
        query = sa.select(customer, sa.func.max(due_us)).where(*where, due_us < due.start_us)
        query = query.group_by(customer)
    acted: dict[str, list[int]] = defaultdict(list)
    for customer_id, time_us in conn.execute(query):
        acted[customer_id].append(time_us)
    for occ in earlier:
        acted[occ.customer_id].append(occ.due_us)
    for times in acted.values():
        times.sort()
    every_us = once.every.seconds * US if once.every is not None else None
    chosen: list[Occurrence] = []
    for occ in sorted(passing, key=lambda o: (o.customer_id, o.due_us, o.key)):
        times = acted[occ.customer_id]
        if times and (every_us is None or _within(times, occ.due_us, every_us)):
            continue
        insort(times, occ.due_us)
        chosen.append(occ)
    return chosen


def _within(times: list[int], due_us: int, every_us: int) -> bool:
    """Whether one of `times` (in order) is in `(due − every, due + every)`."""
    i = bisect_right(times, due_us - every_us)
    return i < len(times) and times[i] < due_us + every_us


_EFFECT_COLUMNS = ("customer_id", "kind", "tag", "amount", "at_us", "rule_position", "position")


def _add_effects(conn: Connection, rule: ast.CheckedRule, chosen: Sequence[Occurrence]) -> None:
    """The tags, untags and points of the rule's occurrences that acted, for later strata."""
    given = [
        (pos, action)
        for pos, action in enumerate(rule.actions)
        if isinstance(action, ast.TagAction | ast.Points)
    ]
    rows = [
        (
            occ.customer_id,
            action.kind,
            action.tag if isinstance(action, ast.TagAction) else None,
            occ.amounts[pos] if isinstance(action, ast.Points) else None,
            occ.due_us,
            rule.position,
            pos,
        )
        for occ in chosen
        for pos, action in given
    ]
    insert_rows(conn, scratch.new_effects, _EFFECT_COLUMNS, rows)


# -- actions and policies -------------------------------------------------------------------------


def _actions(
    conn: Connection,
    ruleset: ast.RuleSet,
    config: Config,
    acted: list[Occurrence],
    start_us: int,
    decide_before_us: int | None,
    people: _People,
    late: bool = False,
) -> tuple[list[Row], list[tuple[int, bool]]]:
    """Every action of the occurrences that acted, as rows with the policies' verdicts, in
    order; and the recorded actions waiting for the cap that it decided now.

    A marketing action under a `limit` is built as sent, apart; once those are in order the cap
    decides them together with the recorded ones still waiting, and only those it suppresses or
    leaves to the daemon are built again. Those of late events (`Due.late`) are decided on
    what was sent before and after them, and leave the recorded ones waiting to the tick's
    own window."""
    rows: list[Row] = []
    capped: list[Row] = []  # waiting for the cap
    limited = bool(ruleset.limits)
    quiet = ruleset.quiet_hours
    shapes = {rule.position: [_shape(a, config) for a in rule.actions] for rule in ruleset.rules}
    send_times: dict[tuple[int, str], int] = {}  # quiet hours, per (due time, zone)
    for occ in acted:
        rule = occ.rule
        due_us = occ.due_us
        for pos, shape in enumerate(shapes[rule.position]):
            at_us, status, reason, into = due_us, "sent", None, rows
            if shape.quiet and quiet:
                at_us = send_times.get((due_us, occ.tz), -1)
                if at_us < 0:
                    at_us = quiet_until(due_us, occ.tz, quiet)
                    send_times[due_us, occ.tz] = at_us
            if shape.marketing:
                if not occ.consent:
                    status, reason = "suppressed", "no-consent"
                elif occ.excluded:
                    status, reason = "suppressed", "excluded"
                elif limited:
                    into = capped
            into.append(
                (
                    at_us,
                    rule.position,
                    occ.customer_id,
                    pos,
                    due_us,
                    occ.key,
                    rule.name,
                    shape.kind,
                    status,
                    reason,
                    shape.template,
                    shape.channel,
                    occ.amounts[pos] if shape.kind == "points" else shape.amount,
                    shape.unit,
                    shape.detail,
                    occ.event_pk,
                )
            )
    rows.sort()
    decided: list[tuple[int, bool]] = []
    # What the daemon left waiting is the tick's own window's to decide, not a late one's.
    recorded = [] if late else _recorded_pending(conn, start_us, people)
    if limited:
        capped.sort()
        waiting = list(heapq.merge(capped, recorded)) if recorded else capped
        if waiting:
            sent_times = _recorded_sent(conn, ruleset, waiting, start_us, late)
            verdicts = apply_limits(waiting, ruleset.limits, sent_times, decide_before_us, late)
            judged: list[Row] = []  # in order, as `waiting`
            for row, sent in zip(waiting, verdicts, strict=True):
                if isinstance(row, _Waiting):
                    if sent is not None:
                        decided.append((row.action_id, sent))
                elif sent:
                    judged.append(row)
                else:
                    verdict = ("suppressed", "cap") if sent is False else ("pending", None)
                    judged.append(row[:STATUS] + verdict + row[STATUS + 2 :])
            # Two runs in order: sorting them together merges them in one pass.
            rows += judged
            rows.sort()
    else:
        # No cap (any more: the `limit` was taken out of the rules): what an earlier rule set
        # left waiting for it goes out at its send time.
        for waiting_row in recorded:
            if decide_before_us is None or waiting_row.at_us < decide_before_us:
                decided.append((waiting_row.action_id, True))
    return rows, decided


@dataclass(frozen=True, slots=True)
class _Shape:
    """What every action at one position of a rule holds, whoever it is for."""

    kind: str
    quiet: bool  # customer-facing: moved by quiet hours
    marketing: bool  # consent, `exclude` and the cap apply
    template: str | None = None
    channel: str | None = None
    amount: float | None = None
    unit: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)  # shared: never changed


def _shape(action: ast.Action, config: Config) -> _Shape:
    kind: str = action.kind
    quiet = kind in ast.CUSTOMER_FACING
    marketing = kind in MARKETING_KINDS
    match action:
        case ast.Message(template=template, channel=channel):
            return _Shape(kind, quiet, marketing, template, channel or config.default_channel)
        case ast.Coupon():
            detail = {
                "min_spend": float(action.min_spend.value) if action.min_spend else None,
                "expires_s": action.expires.seconds if action.expires else None,
            }
            return _Shape(
                kind,
                quiet,
                marketing,
                action.template,
                action.channel or config.default_channel,
                float(action.worth.value),
                "percent" if action.percent else "money",
                detail,
            )
        case ast.Task(title=title, assignee=assignee):
            return _Shape(kind, quiet, marketing, detail={"title": title, "assignee": assignee})
        case ast.TagAction(tag=tag):
            return _Shape(kind, quiet, marketing, detail={"tag": tag})
    return _Shape(kind, quiet, marketing)  # points: the amount is the occurrence's


class _Waiting(NamedTuple):
    """A marketing action the daemon recorded as waiting for the cap, as the cap sees it: the
    sort key of action rows (`engine.evaluation.records`), then its id. It sorts among new rows by
    that key alone, as its due time is before the window and theirs are in it."""

    at_us: int
    rule_position: int
    customer_id: str
    position: int
    due_us: int
    occurrence_key: str
    action_id: int


def _recorded_pending(conn: Connection, start_us: int, people: _People) -> list[_Waiting]:
    """Marketing actions the daemon recorded before the window whose send time has not come, in
    order: the cap decides them together with the new ones, in order of send time."""
    query = (
        sa.select(
            actions.c.at_us,
            actions.c.rule_position,
            actions.c.customer_id,
            actions.c.position,
            actions.c.due_us,
            occurrences.c.occurrence_key,
            actions.c.id,
        )
        .join(occurrences, occurrences.c.id == actions.c.occurrence_id)
        .where(
            actions.c.status == "pending",
            actions.c.due_us < start_us,
            *people.clauses(actions.c.customer_id),
        )
    )
    return sorted(_Waiting(*row) for row in conn.execute(query))


def _recorded_sent(
    conn: Connection, ruleset: ast.RuleSet, waiting: list[Row], start_us: int, late: bool
) -> dict[str, list[int]]:
    """Send times of marketing actions recorded as sent before the window that the cap of a
    waiting action (in order, the earliest first) can still count, per customer: an index
    lookup per waiting customer. For `late` actions, those sent after them as well.

    The lookup is by the index of (customer, kind, send time): the terms on status and due time
    are kept from the index of (status, due time), which SQLite, without statistics of the
    ledger, took instead and read every action ever sent (a tick's 2 ms at two weeks of a
    3,000-customer shop's ledger were 29 ms at six months)."""
    longest = max(limit.per.seconds for limit in ruleset.limits) * US
    earliest = waiting[0][AT] - longest
    people = sorted({row[CUSTOMER] for row in waiting})
    when = (
        [actions.c.at_us < waiting[-1][AT] + longest]
        if late
        else [unindexed(actions.c.due_us) < start_us]
    )
    query = sa.select(actions.c.customer_id, actions.c.at_us).where(
        among(actions.c.customer_id, "people", conn.dialect.name),
        actions.c.kind.in_(MARKETING_KINDS),
        actions.c.at_us > earliest,
        unindexed(actions.c.status) == "sent",
        *when,
    )
    sent: dict[str, list[int]] = defaultdict(list)
    for some in chunks(people):
        for customer_id, at_us in conn.execute(query, {"people": some}):
            sent[customer_id].append(at_us)
    return sent
