"""The reference evaluator: LANGUAGE.md sections 3 and 5, one customer and one occurrence at a
time, in plain Python. It exists only to check the real engine and is never used in production.

Occurrences are processed in order of due time (ties: rule position, customer id, occurrence
key), so that the tags and points given by earlier ones are in place when a later one's
conditions are evaluated. `limit` is applied afterwards, in order of send time.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from engine.config import Config
from engine.language import ast
from engine.timeutil import US
from tests.reference.conditions import Context, holds, points_balance, value
from tests.reference.policies import Planned, apply_limits, consent_and_exclude, send_time
from tests.reference.shop import Event, Ledger, Shop
from tests.reference.triggers import Occurrence, customer_zone, occurrences

EFFECTS = frozenset({"tag", "untag", "points"})


@dataclass(frozen=True)
class Effect:
    """A tag, untag or points given to a customer at `at_us`."""

    at_us: int
    rule_position: int
    position: int
    due_us: int
    kind: str
    tag: str | None
    amount: float | None


def simulate(
    ruleset: ast.RuleSet,
    shop: Shop,
    config: Config,
    start_us: int,
    end_us: int,
    ledger: Ledger | None = None,
) -> list[dict[str, Any]]:
    """Every action of every occurrence due in [start_us, end_us), as JSONL records in order of
    send time. Before `start_us` only what the ledger recorded counts."""
    ledger = ledger or Ledger()
    events = shop.events_by_customer()
    acted: dict[tuple[str, str], list[int]] = defaultdict(list)
    for recorded_occurrence in ledger.occurrences:
        if recorded_occurrence.due_us < start_us:
            key = (recorded_occurrence.rule, recorded_occurrence.customer)
            acted[key].append(recorded_occurrence.due_us)
    effects: dict[str, list[Effect]] = defaultdict(list)
    sent_before: dict[str, list[int]] = defaultdict(list)
    for recorded in ledger.actions:
        if recorded.due_us >= start_us:
            continue
        if recorded.kind in EFFECTS:
            effects[recorded.customer].append(
                Effect(
                    recorded.at_us,
                    recorded.rule_position,
                    recorded.position,
                    recorded.due_us,
                    recorded.kind,
                    recorded.tag,
                    recorded.amount,
                )
            )
        elif recorded.kind in ast.MARKETING and recorded.status == "sent":
            sent_before[recorded.customer].append(recorded.at_us)

    due = [
        occurrence
        for rule in ruleset.rules
        for customer in shop.customers
        for occurrence in occurrences(
            rule, customer, events.get(customer.id, []), config, start_us, end_us
        )
    ]
    due.sort(key=lambda o: (o.due_us, o.rule.position, o.customer.id, o.key))

    planned: list[Planned] = []
    for occurrence in due:
        ctx = _context(occurrence, events.get(occurrence.customer.id, []), effects, ruleset, config)
        if not _acts(occurrence, ctx, acted[occurrence.rule.name, occurrence.customer.id]):
            continue
        acted[occurrence.rule.name, occurrence.customer.id].append(occurrence.due_us)
        for position, action in enumerate(occurrence.rule.actions):
            step = _plan(occurrence, position, action, ctx, ruleset, config)
            planned.append(step)
            if step.kind in EFFECTS:
                tag = action.tag if isinstance(action, ast.TagAction) else None
                effects[step.customer].append(
                    Effect(
                        step.at_us,
                        occurrence.rule.position,
                        position,
                        step.due_us,
                        step.kind,
                        tag,
                        step.amount,
                    )
                )

    apply_limits(planned, ruleset.limits, sent_before)
    planned.sort(key=Planned.order)
    return [step.record() for step in planned]


def _context(
    occurrence: Occurrence,
    events: list[Event],
    effects: dict[str, list[Effect]],
    ruleset: ast.RuleSet,
    config: Config,
) -> Context:
    """The customer as of the due time: its consent as it stood then, events at or before it,
    effects strictly before it."""
    due = occurrence.due_us
    customer = occurrence.customer.as_of(due)
    tags = set(customer.tags)
    gifts: list[float] = []
    earlier = [e for e in effects[customer.id] if e.at_us < due]
    for effect in sorted(earlier, key=lambda e: (e.at_us, e.rule_position, e.position, e.due_us)):
        if effect.kind == "tag":
            tags.add(effect.tag or "")
        elif effect.kind == "untag":
            tags.discard(effect.tag or "")
        elif effect.amount is not None:
            gifts.append(effect.amount)
    return Context(
        customer=customer,
        due_us=due,
        tz=customer_zone(customer, config),
        seen=tuple(e for e in events if e.at_us <= due),
        tags=frozenset(tags),
        points=points_balance(gifts),
        event=occurrence.event,
        segments=ruleset.segments,
        rfm=config.rfm,
    )


def _acts(occurrence: Occurrence, ctx: Context, acted_at: list[int]) -> bool:
    """`if`, `unless` and `once`: whether the occurrence acts."""
    rule = occurrence.rule.rule
    due = occurrence.due_us
    if rule.condition is not None and not holds(rule.condition, ctx):
        return False
    if rule.unless is not None and _cancelled(rule.unless, occurrence, ctx):
        return False
    if rule.once is not None:
        if rule.once.every is None:
            return not acted_at
        window = rule.once.every.seconds * US
        return not any(due - window < t <= due for t in acted_at)
    return True


def _cancelled(unless: ast.Unless, occurrence: Occurrence, ctx: Context) -> bool:
    """`unless EVENT`: an EVENT later than the triggering event and at or before the due time;
    `unless EVENT within D`: an EVENT in (due − D, due]."""
    due = occurrence.due_us
    if unless.within is not None:
        after = due - unless.within.seconds * US
    elif occurrence.event is not None:
        after = occurrence.event.at_us
    else:
        raise ValueError("`unless` on a rule not triggered by an event needs `within`")
    return any(e.type == unless.event and after < e.at_us <= due for e in ctx.seen)


def _plan(
    occurrence: Occurrence,
    position: int,
    action: ast.Action,
    ctx: Context,
    ruleset: ast.RuleSet,
    config: Config,
) -> Planned:
    status, reason = consent_and_exclude(action.kind, ctx, ruleset.excludes)
    step = Planned(
        rule=occurrence.rule,
        customer=occurrence.customer.id,
        position=position,
        occurrence_key=occurrence.key,
        kind=action.kind,
        due_us=occurrence.due_us,
        at_us=send_time(action.kind, occurrence.due_us, ctx.tz, ruleset.quiet_hours),
        status=status,
        reason=reason,
    )
    if isinstance(action, ast.Message | ast.Coupon):
        step.template = action.template
        step.channel = action.channel or config.default_channel
    if isinstance(action, ast.Coupon):
        step.amount = action.worth.value
        step.unit = "percent" if action.percent else "money"
    elif isinstance(action, ast.Points):
        amount = value(action.amount, ctx)
        step.amount = 0 if amount is None else amount  # docs/semantics.md: unset gives 0
    return step
