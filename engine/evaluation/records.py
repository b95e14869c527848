"""What one evaluation decided: actions in the form of LANGUAGE.md section 5."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.timeutil import iso

# An action as a row: the fields of `ActionRecord` in order, a plain tuple. The sort key comes
# first (send time, then the tie-breaks of LANGUAGE.md 3.8, the occurrence key last), so rows sort
# and merge by plain tuple comparison in the order of `ActionRecord.sort_key`; no two actions of
# one evaluation share a key, so comparison never reaches `detail`. The evaluation builds, sorts,
# spills and merges rows; an `ActionRecord` is made of one only where an object is wanted.
Row = tuple[Any, ...]
AT = 0  # send time
CUSTOMER = 2
DUE = 4
STATUS = 8  # then the reason


@dataclass(slots=True)
class ActionRecord:
    """One action of an occurrence that acted, with the policies' verdict."""

    at_us: int
    rule_position: int
    customer_id: str
    position: int
    due_us: int
    occurrence_key: str
    rule: str
    kind: str
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

    @classmethod
    def from_row(cls, row: Row) -> ActionRecord:
        """The record of an action row: its fields, in order."""
        return cls(*row)

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
