"""`nudge explain`: for one customer, every occurrence in a window and what became of it.

It runs the evaluation core restricted to the customer (nothing in the language crosses from
one customer to another, so the outcome is the one a full simulation gives), then asks the
database, for every occurrence, the value of each part of the rule's condition at its due time,
which `unless` event cancelled it and whether its trigger value still stood.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from engine.config import Config
from engine.evaluation import scratch
from engine.evaluation.evaluate import (
    customer_zones,
    evaluate,
    recorded_before,
    scope_for,
    unless_sql,
    validity_sql,
)
from engine.evaluation.records import ActionRecord
from engine.language import ast
from engine.language.fmt import expr_text, statement_lines
from engine.plan.sqlgen import ORDER, Compiler, field_kind
from engine.plan.triggers import Customers, after_their_at, instant_source, shared_fills
from engine.storage.tables import consent_changes, customers
from engine.timeutil import clock_text


@dataclass
class Leaf:
    """One comparison of a condition, with its truth and the values it compared."""

    text: str
    true: bool
    values: list[tuple[str, str]]  # what was compared, and its value at the due time
    segment: str | None = None


@dataclass
class Story:
    """One occurrence of one rule for the customer."""

    rule: str
    rule_position: int
    key: str
    due_us: int
    trigger_us: int | None
    outcome: str  # acted | skipped | late (an instant after its day's `at`: no occurrence)
    reasons: list[str] = field(default_factory=list)
    leaves: list[Leaf] = field(default_factory=list)
    actions: list[ActionRecord] = field(default_factory=list)
    # The policies that suppressed its actions, by reason: the `exclude if` that held, the
    # rule set's `limit`s.
    policies: dict[str, list[str]] = field(default_factory=dict)
    # For marketing, when an import changed the customer's `accepts_marketing` after the due
    # time: the flag at the due time, when the first such change was made, and the flag after.
    consent_changed: tuple[bool, int, bool] | None = None


def explain(
    engine: Engine,
    ruleset: ast.RuleSet,
    config: Config,
    customer_id: str,
    start_us: int,
    end_us: int,
    rule_name: str | None = None,
) -> list[Story]:
    with engine.connect() as conn:
        try:
            result = evaluate(
                conn,
                ruleset,
                config,
                start_us,
                end_us,
                who=Customers(only=customer_id),
                hopeless=True,  # every occurrence, with why it did not act
            )
            # By rule too: rules sharing their candidates share their ids (`shared_fills`).
            acted = {(o.rule.position, o.candidate_id) for o in result.occurrences}
            shared = shared_fills(ruleset.rules)
            by_key: dict[tuple[str, str], list[ActionRecord]] = {}
            for action in result.actions:
                by_key.setdefault((action.rule, action.occurrence_key), []).append(action)
            stories = []
            flag_changes = _flag_changes(conn, customer_id)
            for rule in ruleset.rules:
                if rule_name is None or rule.name == rule_name:
                    index = shared.get(rule.position, rule.position)
                    stories.extend(
                        _stories(
                            conn, ruleset, config, rule, index, start_us, end_us, acted, by_key
                        )
                    )
                    stories.extend(_late(conn, rule, customer_id, config.timezone))
        finally:
            conn.rollback()
    for story in stories:
        if any(action.kind in ast.MARKETING for action in story.actions):
            later = (change for change in flag_changes if change[1] > story.due_us)
            story.consent_changed = next(later, None)
    stories.sort(key=lambda s: (s.due_us, s.rule_position))
    return stories


def _flag_changes(conn: Connection, customer_id: str) -> list[tuple[bool, int, bool]]:
    """The changes imports made to the customer's `accepts_marketing`, in order: the flag
    before, the time, the flag after (`tables.consent_changes`)."""
    c = consent_changes.c
    query = (
        sa.select(c.accepts_marketing_before, c.at_us, c.accepts_marketing_after)
        .where(c.customer_id == customer_id)
        .order_by(c.at_us, c.id)
    )
    return [(bool(before), at_us, bool(after)) for before, at_us, after in conn.execute(query)]


def _leaves(
    expr: ast.Expr, segments: dict[str, ast.Segment], segment: str | None = None
) -> Iterator[tuple[ast.Expr, str | None]]:
    match expr:
        case ast.Logic(operands=operands):
            for operand in operands:
                yield from _leaves(operand, segments, segment)
        case ast.Not(operand=inner):
            yield from _leaves(inner, segments, segment)
        case ast.InSegment(segment=name):
            yield from _leaves(segments[name].condition, segments, name)
        case _:
            yield expr, segment


def _operands(expr: ast.Expr) -> list[ast.Expr]:
    """The parts of a comparison worth showing: references and counts, not literals."""
    match expr:
        case ast.Compare(left=left, right=right):
            parts = [left, right]
        case ast.Between(value=value, low=low, high=high):
            parts = [value, low, high]
        case ast.IsSet(value=value):
            parts = [value]
        case _:
            parts = []
    shown: list[ast.Expr] = []
    for part in parts:
        if isinstance(part, ast.Ref) and field_kind(part) == "tags":
            continue
        if isinstance(part, ast.Ref | ast.Aggregate | ast.Arith):
            shown.append(part)
    return shown


def _stories(
    conn: Connection,
    ruleset: ast.RuleSet,
    config: Config,
    rule: ast.CheckedRule,
    index: int,  # the `rule_index` of its candidates
    start_us: int,
    end_us: int,  # the candidates due from then on were evaluated for the cap only
    acted: set[tuple[int, int]],
    by_key: dict[tuple[str, str], list[ActionRecord]],
) -> list[Story]:
    cand = scratch.candidates
    zones = customer_zones(conn, config.timezone)
    scope, source = scope_for(rule, ruleset, config, scratch.Effects(start_us), zones)
    compiler = Compiler(scope)
    columns: list[Any] = [cand.c.id, cand.c.occurrence_key, cand.c.due_us, cand.c.trigger_us]
    leaves = []
    condition = rule.rule.condition
    if condition is not None:
        for i, (leaf, segment) in enumerate(_leaves(condition, ruleset.segments)):
            operands = _operands(leaf)
            columns.append(compiler.condition(leaf).label(f"leaf_{i}"))
            columns.extend(
                compiler.value(part).label(f"leaf_{i}_{j}") for j, part in enumerate(operands)
            )
            leaves.append((i, leaf, segment, operands))
        columns.append(compiler.condition(condition).label("condition"))
    validity = validity_sql(rule)
    if validity:
        columns.append(sa.and_(*validity).label("valid"))
    unless = rule.rule.unless
    if unless is not None:
        columns.append(unless_sql(unless).label("cancelled"))
    columns.append(recorded_before(rule, start_us).label("recorded_before"))
    excludes = ruleset.excludes
    columns.extend(compiler.test(e.condition).label(f"exclude_{i}") for i, e in enumerate(excludes))
    query = (
        sa.select(*columns)
        .select_from(source)
        .where(cand.c.rule_index == index, cand.c.due_us < end_us)
    )
    stories = []
    for row in conn.execute(query).mappings():
        story = Story(
            rule.name,
            rule.position,
            row["occurrence_key"],
            row["due_us"],
            row["trigger_us"],
            "acted" if (rule.position, row["id"]) in acted else "skipped",
        )
        for i, leaf, segment, operands in leaves:
            values = [
                (expr_text(p), _value(row[f"leaf_{i}_{j}"], compiler.kind(p), config.timezone))
                for j, p in enumerate(operands)
            ]
            story.leaves.append(Leaf(expr_text(leaf), bool(row[f"leaf_{i}"]), values, segment))
        if story.outcome == "skipped":
            story.reasons = _why_skipped(rule, row)
        story.actions = by_key.get((rule.name, story.key), [])
        suppressed = {action.reason for action in story.actions if action.status == "suppressed"}
        if "excluded" in suppressed:
            held = [e for i, e in enumerate(excludes) if row[f"exclude_{i}"]]
            story.policies["excluded"] = [_policy_text(e) for e in held]
        if "cap" in suppressed:
            story.policies["cap"] = [_policy_text(limit) for limit in ruleset.limits]
        stories.append(story)
    return stories


def _late(conn: Connection, rule: ast.CheckedRule, customer_id: str, shop_tz: str) -> list[Story]:
    """The instants of an `at HH:MM` rule that came after their day's due time, which have no
    occurrence (LANGUAGE.md 3.3: an event after the due time is not seen)."""
    source = instant_source(rule.when.trigger)
    if rule.when.at is None or source is None:
        return []
    found = conn.execute(after_their_at(rule.position, source, customer_id, shop_tz))
    return [
        Story(rule.name, rule.position, key, due_us, instant_us, "late")
        for key, instant_us, due_us in found
    ]


def _why_skipped(rule: ast.CheckedRule, row: Any) -> list[str]:
    reasons = []
    if "valid" in row and not row["valid"]:
        trigger = rule.when.trigger
        name = trigger.name if isinstance(trigger, ast.CustomerTrigger) else "value"
        reasons.append(f"customer.{name} changed before the due time ({ORDER} came in between)")
    if "condition" in row and not row["condition"]:
        reasons.append(f"`if {expr_text(rule.rule.condition)}` was false")  # type: ignore[arg-type]
    if row.get("cancelled"):
        unless = rule.rule.unless
        assert unless is not None
        reasons.append(f"cancelled by `unless {unless.event}`: such an event came in time")
    if row["recorded_before"]:
        reasons.append(
            "the daemon did this occurrence before the window, due at another time (the rule"
            " or the customer's data changed since): the same occurrence never acts twice"
        )
    if not reasons and rule.rule.once is not None:
        once = rule.rule.once
        every = (
            f" every {expr_text(ast.DurationValue(once.every, once.span))}" if once.every else ""
        )
        reasons.append(f"`once{every}`: the rule already acted for this customer")
    return reasons


def customer_zone(engine: Engine, customer_id: str) -> str | None:
    """The customer's own `timezone`, None when they have none (they live on shop time)."""
    with engine.connect() as conn:
        query = sa.select(customers.c.timezone).where(customers.c.id == customer_id)
        return conn.execute(query).scalar()


def render(
    stories: list[Story], customer_id: str, shop_tz: str, customer_tz: str | None = None
) -> str:
    """Plain words, one block per occurrence. Times are shop time; for a customer who lives in
    another zone, a due time and a send time are also given by the customer's clock, which
    `at HH:MM`, schedules and quiet hours read (a message moved by quiet hours 22:00 to 08:00
    to 00:00 shop time is sent at 08:00 in Tokyo)."""

    def when(us: int) -> str:
        return clock_text(us, shop_tz)

    def theirs(us: int) -> str:
        """`when`, and the customer's clock where it reads otherwise."""
        shop, own = when(us), clock_text(us, customer_tz or shop_tz)
        if own == shop:
            return shop
        same_day = own[:10] == shop[:10]
        return f"{shop} ({own[11:] if same_day else own} for the customer)"

    if not stories:
        return f"No rule had an occurrence for customer {customer_id} in this window."
    lives = f"; the customer lives in {customer_tz}" if customer_tz not in (None, shop_tz) else ""
    lines = [f"Customer {customer_id} (times are shop time, {shop_tz}{lives}):", ""]
    for story in stories:
        trigger = f", triggered at {when(story.trigger_us)}" if story.trigger_us else ""
        if story.outcome == "late":
            lines.append(f"{story.rule}: no occurrence due {theirs(story.due_us)}{trigger}")
            lines.append(
                "  what triggers it came after that due time, which a rule does not wait for"
                " (`+ 1d at HH:MM` takes it the next day)"
            )
            lines.append("")
            continue
        lines.append(f"{story.rule}: due {theirs(story.due_us)}{trigger}")
        for leaf in story.leaves:
            mark = "yes" if leaf.true else "no "
            where = f" (segment {leaf.segment!r})" if leaf.segment else ""
            shown = ", ".join(f"{name} = {value}" for name, value in leaf.values)
            lines.append(f"  [{mark}] {leaf.text}{where}" + (f"   ({shown})" if shown else ""))
        if story.outcome == "skipped":
            for reason in story.reasons:
                lines.append(f"  skipped: {reason}")
        for action in story.actions:
            what = action.kind + (f' "{action.template}"' if action.template else "")
            moved = (
                f", moved by quiet hours to {theirs(action.at_us)}"
                if (action.at_us != action.due_us)
                else ""
            )
            if action.status == "sent":
                lines.append(f"  {what}: sent{moved}")
            else:
                policies = ", ".join(f"`{p}`" for p in story.policies.get(action.reason or "", []))
                why = _reason(action.reason) + (f": {policies}" if policies else "")
                lines.append(f"  {what}: suppressed ({why}){moved}")
        if story.consent_changed is not None:
            then, changed_us, after = story.consent_changed
            lines.append(
                f"  `accepts_marketing` was {_yes(then)} at the due time; an import made it"
                f" {_yes(after)} on {when(changed_us)}"
            )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _policy_text(policy: ast.Limit | ast.Exclude) -> str:
    """A policy as the rule file says it (`limit marketing to 3 per 7d`)."""
    return statement_lines(policy, block=False)[0].text


def _reason(reason: str | None) -> str:
    return {
        "no-consent": "the customer does not accept marketing",
        "excluded": "an `exclude if` policy holds for this customer",
        "cap": "a marketing limit was reached",
    }.get(reason or "", reason or "")


def _value(value: Any, kind: str, shop_tz: str) -> str:
    """A value as the rules write it: yes/no, and an instant in shop time as every time of
    `explain` is (it was `True` and `2026-11-20T09:00:00Z` under "times are shop time")."""
    if value is None:
        return "not set"
    if kind == "instant":
        return clock_text(int(value), shop_tz)
    if kind == "bool" or isinstance(value, bool):
        return _yes(bool(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
