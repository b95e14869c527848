"""What one evaluation decided: actions in the form of LANGUAGE.md section 5."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.timeutil import iso


@dataclass(slots=True)
class ActionRecord:
    """One action of an occurrence that acted, with the policies' verdict."""

    rule: str
    rule_position: int
    customer_id: str
    occurrence_key: str
    kind: str
    position: int
    due_us: int
    at_us: int
    status: str  # sent | suppressed | pending (daemon only: the cap is decided at send time)
    reason: str | None = None
    template: str | None = None
    channel: str | None = None
    amount: float | None = None
    unit: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)  # tag, task title, coupon terms
    event_pk: int | None = None

    def sort_key(self) -> tuple[int, int, str, int, int, str]:
        """Send time, then the tie-breaks of LANGUAGE.md 3.8; the occurrence key last, so that
        no two actions of one evaluation tie."""
        return (
            self.at_us,
            self.rule_position,
            self.customer_id,
            self.position,
            self.due_us,
            self.occurrence_key,
        )

    def as_row(self) -> tuple[Any, ...]:
        """Every field, the sort key first: rows compare in the order of `sort_key`."""
        return (
            *self.sort_key(),
            self.rule,
            self.kind,
            self.status,
            self.reason,
            self.template,
            self.channel,
            self.amount,
            self.unit,
            self.detail,
            self.event_pk,
        )

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> ActionRecord:
        """The record `as_row` gave."""
        at_us, rule_position, customer_id, position, due_us, key, rule, kind, *rest = row
        return cls(rule, rule_position, customer_id, key, kind, position, due_us, at_us, *rest)

    def to_json(self) -> dict[str, Any]:
        """The JSON Lines object of LANGUAGE.md section 5."""
        record: dict[str, Any] = {
            "rule": self.rule,
            "customer": self.customer_id,
            "action": self.kind,
            "template": self.template,
            "channel": self.channel,
            "due": iso(self.due_us),
            "at": iso(self.at_us),
            "status": self.status,
            "reason": self.reason,
        }
        if self.kind in ("coupon", "points"):
            record["amount"] = _number(self.amount)
        if self.kind == "coupon":
            record["unit"] = self.unit
        return record


def _number(value: float | None) -> float | int | None:
    """A whole amount as an integer (`30`, not `30.0`); others as computed, never rounded."""
    if value is not None and float(value).is_integer():
        return int(value)
    return value
