"""Figures a merchant reads first: per rule, per day, coupons, tasks, busiest customers."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from engine.evaluation.records import ActionRecord
from engine.timeutil import from_us, zone

REASONS = ("no-consent", "excluded", "cap")


@dataclass
class RuleLine:
    rule: str
    occurrences: int = 0
    sent: int = 0
    suppressed: Counter[str] = field(default_factory=Counter)


@dataclass
class Summary:
    rules: list[RuleLine]
    per_day: dict[dt.date, Counter[str]]  # day → rule → actions sent
    coupons: int
    coupon_money: float
    coupon_percent: int
    tasks: int
    gifts: int
    busiest: list[tuple[str, int]]
    per_week: Counter[int]  # customer-facing messages a customer gets in a week → customers
    total: int


def summarize(records: Iterable[ActionRecord], shop_tz: str, top: int = 10) -> Summary:
    tz = zone(shop_tz)
    rules: dict[str, RuleLine] = {}
    occurrences: dict[str, set[tuple[str, str]]] = defaultdict(set)
    per_day: dict[dt.date, Counter[str]] = defaultdict(Counter)
    per_customer: Counter[str] = Counter()
    weekly: Counter[tuple[str, tuple[int, int]]] = Counter()
    coupons = tasks = gifts = coupon_percent = 0
    coupon_money = 0.0
    total = 0
    for record in records:
        total += 1
        line = rules.setdefault(record.rule, RuleLine(record.rule))
        occurrences[record.rule].add((record.customer_id, record.occurrence_key))
        if record.status != "sent":
            line.suppressed[record.reason or record.status] += 1
            continue
        line.sent += 1
        local = from_us(record.at_us, tz)
        per_day[local.date()][record.rule] += 1
        per_customer[record.customer_id] += 1
        if record.kind in ("message", "followup", "coupon"):
            weekly[(record.customer_id, local.isocalendar()[:2])] += 1
        if record.kind == "coupon":
            coupons += 1
            if record.unit == "percent":
                coupon_percent += 1
            else:
                coupon_money += record.amount or 0.0
        elif record.kind == "task":
            tasks += 1
        elif record.kind == "gift":
            gifts += 1
    for name, line in rules.items():
        line.occurrences = len(occurrences[name])
    return Summary(
        rules=list(rules.values()),
        per_day=dict(sorted(per_day.items())),
        coupons=coupons,
        coupon_money=coupon_money,
        coupon_percent=coupon_percent,
        tasks=tasks,
        gifts=gifts,
        busiest=per_customer.most_common(top),
        per_week=Counter(weekly.values()),
        total=total,
    )
