"""Policies (LANGUAGE.md 3.7) in the order of 3.8: consent, exclude, quiet hours, limit."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from engine.language import ast
from engine.timeutil import US, from_us, iso, local_date, to_us
from tests.reference.conditions import Context, holds, without_event


@dataclass
class Planned:
    """One action of an acted occurrence, on its way to a JSONL record."""

    rule: ast.CheckedRule
    customer: str
    position: int
    occurrence_key: str
    kind: str
    due_us: int
    at_us: int
    status: str
    reason: str | None
    template: str | None = None
    channel: str | None = None
    amount: float | None = None
    unit: str | None = None

    def order(self) -> tuple[int, int, str, int, int, str]:
        """Send time, then rule position, customer id, action position, due time (3.8); the
        occurrence key settles occurrences that agree on all of those."""
        return (
            self.at_us,
            self.rule.position,
            self.customer,
            self.position,
            self.due_us,
            self.occurrence_key,
        )

    def record(self) -> dict[str, Any]:
        """The JSONL record of LANGUAGE.md section 5."""
        result: dict[str, Any] = {
            "rule": self.rule.name,
            "customer": self.customer,
            "action": self.kind,
            "template": self.template,
            "channel": self.channel,
            "due": iso(self.due_us),
            "at": iso(self.at_us),
            "status": self.status,
            "reason": self.reason,
        }
        if self.kind == "coupon":
            result["amount"] = self.amount
            result["unit"] = self.unit
        elif self.kind == "points":
            result["amount"] = self.amount
        return result


def consent_and_exclude(
    kind: str, ctx: Context, excludes: Iterable[ast.Exclude]
) -> tuple[str, str | None]:
    """Status and reason of an action before `limit`: marketing needs consent, then must not
    be excluded."""
    if kind not in ast.MARKETING:
        return "sent", None
    if not ctx.customer.accepts_marketing:
        return "suppressed", "no-consent"
    customer_only = without_event(ctx)
    if any(holds(exclude.condition, customer_only) for exclude in excludes):
        return "suppressed", "excluded"
    return "sent", None


def send_time(kind: str, due_us: int, tz: ZoneInfo, quiet: tuple[ast.QuietHours, ...]) -> int:
    """Customer-facing actions due inside a quiet window `[A, B)` (local time, possibly
    crossing midnight) are sent at the window's next end B."""
    if kind not in ast.MARKETING | ast.SERVICE:
        return due_us
    at = due_us
    for _ in quiet:  # a window's end may fall inside another window
        for window in quiet:
            if _inside(from_us(at, tz).time(), window.start.time, window.end.time):
                at = _next(at, window.end.time, tz)
    return at


def _inside(clock: dt.time, start: dt.time, end: dt.time) -> bool:
    if start < end:
        return start <= clock < end
    if start > end:
        return clock >= start or clock < end
    return False


def _next(after_us: int, clock: dt.time, tz: ZoneInfo) -> int:
    """The first instant after `after_us` at which the local clock reads `clock`: on the night
    the clocks go back, a time of the repeated hour is read twice."""
    day = local_date(after_us, tz)
    while True:
        for fold in (0, 1):  # fold 1 is the second reading (in a gap, an earlier instant)
            candidate = to_us(dt.datetime.combine(day, clock).replace(tzinfo=tz, fold=fold))
            if candidate > after_us:
                return candidate
        day += dt.timedelta(days=1)


def apply_limits(
    planned: list[Planned], limits: tuple[ast.Limit, ...], sent_before: dict[str, list[int]]
) -> None:
    """`limit marketing to N per D`, in order of send time: a marketing action is suppressed
    (reason `cap`) when N marketing actions were already sent to the customer at send times in
    `(at − D, at]`. `sent_before` holds the send times of the ledger's sent marketing actions."""
    sent = {customer: list(times) for customer, times in sent_before.items()}
    for action in sorted(planned, key=Planned.order):
        if action.kind not in ast.MARKETING or action.status != "sent":
            continue
        times = sent.setdefault(action.customer, [])
        for limit in limits:
            window = limit.per.seconds * US
            if sum(1 for t in times if action.at_us - window < t <= action.at_us) >= limit.count:
                action.status, action.reason = "suppressed", "cap"
                break
        else:
            times.append(action.at_us)
