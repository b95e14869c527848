"""The typed AST of the rule language (LANGUAGE.md sections 2 and 3).

Every node is a frozen dataclass and keeps the `Span` it was written at. The parser
(`engine.language.parse`) builds these from the Lark parse tree; the checker
(`engine.checking.check`) turns a list of `RuleFile`s into a `RuleSet`; the compiler and the
reference evaluator read them. Nothing here knows about Lark or SQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from engine.language.source import Span

# ---------------------------------------------------------------------------------------------
# Lexical values


DurationUnit = Literal["m", "h", "d", "w"]
UNIT_SECONDS: dict[str, int] = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True)
class Duration:
    """`3d`, `2 weeks`: an exact elapsed time. `spelled` keeps the long form for `fmt`."""

    amount: int
    unit: DurationUnit
    span: Span = field(compare=False)
    spelled: bool = field(default=False, compare=False)

    @property
    def seconds(self) -> int:
        return self.amount * UNIT_SECONDS[self.unit]

    @property
    def whole_days(self) -> int | None:
        """The duration in calendar days, or None when it is not a whole number of days."""
        return self.amount * (7 if self.unit == "w" else 1) if self.unit in ("d", "w") else None

    @property
    def timedelta(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.seconds)


@dataclass(frozen=True)
class ClockTime:
    """`HH:MM`, 24-hour local clock time."""

    hour: int
    minute: int
    span: Span = field(compare=False)

    @property
    def time(self) -> dt.time:
        return dt.time(self.hour, self.minute)


@dataclass(frozen=True)
class Offset:
    """`+ 3d` / `- 1d` after a trigger. `sign` is +1 or -1."""

    sign: int
    duration: Duration
    span: Span = field(compare=False)

    @property
    def seconds(self) -> int:
        return self.sign * self.duration.seconds


# ---------------------------------------------------------------------------------------------
# Expressions (conditions, segment bodies, `points EXPR`)


@dataclass(frozen=True)
class Number:
    value: float | int
    text: str
    span: Span = field(compare=False)


@dataclass(frozen=True)
class String:
    value: str
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Bool:
    value: bool
    span: Span = field(compare=False)


@dataclass(frozen=True)
class DurationValue:
    duration: Duration
    span: Span = field(compare=False)


@dataclass(frozen=True)
class DateValue:
    value: dt.date
    span: Span = field(compare=False)


@dataclass(frozen=True)
class ListValue:
    items: tuple[Expr, ...]
    span: Span = field(compare=False)


# `event.NAME` reads a property of the rule's triggering event, whatever its entity: the way to
# read one of a `customer.*` event, as `customer.NAME` is the customer's own.
EVENT = "event"


@dataclass(frozen=True)
class Ref:
    """`customer.total_spent`, `order.total`, `event.total`: entity and field, as written."""

    entity: str
    name: str
    span: Span = field(compare=False)

    @property
    def dotted(self) -> str:
        return f"{self.entity}.{self.name}"


@dataclass(frozen=True)
class Aggregate:
    """`count(order.returned)`, `count(order.paid within 90d)`, `sum(order.paid.total)`."""

    func: Literal["count", "sum"]
    event: str
    event_span: Span = field(compare=False)
    prop: str | None = None
    within: Duration | None = None
    span: Span = field(default=None, compare=False)  # type: ignore[assignment]


@dataclass(frozen=True)
class InSegment:
    """`customer in "big spenders"` (`negated` for `customer not in "..."`)."""

    segment: str
    negated: bool
    segment_span: Span = field(compare=False)
    span: Span = field(compare=False)


CompareOp = Literal["==", "!=", "<", "<=", ">", ">=", "in", "not in", "contains"]


@dataclass(frozen=True)
class Compare:
    op: CompareOp
    left: Expr
    right: Expr
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Between:
    """`X between LOW and HIGH`, both ends included."""

    value: Expr
    low: Expr
    high: Expr
    span: Span = field(compare=False)


@dataclass(frozen=True)
class IsSet:
    """`X is set` / `X is not set` (`negated`)."""

    value: Expr
    negated: bool
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Arith:
    op: Literal["+", "-", "*", "/"]
    left: Expr
    right: Expr
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Negate:
    """Unary minus on a number."""

    operand: Expr
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Logic:
    """`a and b and c` / `a or b`: two or more operands."""

    op: Literal["and", "or"]
    operands: tuple[Expr, ...]
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Not:
    operand: Expr
    span: Span = field(compare=False)


Expr = (
    Number
    | String
    | Bool
    | DurationValue
    | DateValue
    | ListValue
    | Ref
    | Aggregate
    | InSegment
    | Compare
    | Between
    | IsSet
    | Arith
    | Negate
    | Logic
    | Not
)


# ---------------------------------------------------------------------------------------------
# Triggers


@dataclass(frozen=True)
class EventTrigger:
    """`when order.received`, `when order.received + 3d`."""

    event: str
    event_span: Span = field(compare=False)
    offset: Offset | None = None
    span: Span = field(default=None, compare=False)  # type: ignore[assignment]

    @property
    def entity(self) -> str:
        return self.event.split(".", 1)[0]


@dataclass(frozen=True)
class CustomerTrigger:
    """`when customer.birthday - 1d`, `when customer.signed_up + 7d`, `customer.last_order + 60d`.

    Whether `name` is a yearly date (birthday) or a timestamp (signed_up, first_order,
    last_order) is decided by the checker; see `CUSTOMER_DATE_FIELDS`/`CUSTOMER_TIME_FIELDS`.
    """

    name: str
    name_span: Span = field(compare=False)
    offset: Offset | None = None
    span: Span = field(default=None, compare=False)  # type: ignore[assignment]


@dataclass(frozen=True)
class HolidayTrigger:
    """`when holiday "中秋节" - 1d`."""

    name: str
    name_span: Span = field(compare=False)
    offset: Offset | None = None
    span: Span = field(default=None, compare=False)  # type: ignore[assignment]


WEEKDAYS: tuple[str, ...] = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)


@dataclass(frozen=True)
class ScheduleTrigger:
    """`every day`, `every monday`, `every month on 1`."""

    every: Literal["day", "week", "month"]
    weekday: int | None = None  # 0 = Monday, for every == "week"
    day_of_month: int | None = None  # for every == "month"
    span: Span = field(default=None, compare=False)  # type: ignore[assignment]


@dataclass(frozen=True)
class DateTrigger:
    """`on 2026-11-11`."""

    date: dt.date
    span: Span = field(compare=False)


Trigger = EventTrigger | CustomerTrigger | HolidayTrigger | ScheduleTrigger | DateTrigger

CUSTOMER_DATE_FIELDS = frozenset({"birthday"})
CUSTOMER_TIME_FIELDS = frozenset({"signed_up", "first_order", "last_order"})


@dataclass(frozen=True)
class When:
    trigger: Trigger
    at: ClockTime | None
    span: Span = field(compare=False)


# ---------------------------------------------------------------------------------------------
# Rule parts


@dataclass(frozen=True)
class Unless:
    event: str
    event_span: Span = field(compare=False)
    within: Duration | None = None
    span: Span = field(default=None, compare=False)  # type: ignore[assignment]


@dataclass(frozen=True)
class Once:
    """`once` (every is None) or `once every D`."""

    every: Duration | None
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Message:
    """`message "T" [via CH]` (marketing) and `followup "T" [via CH]` (service)."""

    kind: Literal["message", "followup"]
    template: str
    template_span: Span = field(compare=False)
    channel: str | None = None
    channel_span: Span | None = field(default=None, compare=False)
    span: Span = field(default=None, compare=False)  # type: ignore[assignment]


@dataclass(frozen=True)
class Coupon:
    """`coupon "T" worth 30 [min 200] [expires 14d] [via CH]`; `worth 15%` sets `percent`."""

    template: str
    template_span: Span = field(compare=False)
    worth: Number = field(compare=True)
    percent: bool = False
    min_spend: Number | None = None
    expires: Duration | None = None
    channel: str | None = None
    channel_span: Span | None = field(default=None, compare=False)
    span: Span = field(default=None, compare=False)  # type: ignore[assignment]

    kind: Literal["coupon"] = field(default="coupon", init=False)


@dataclass(frozen=True)
class Points:
    """`points order.total * 2`, `points 50`."""

    amount: Expr
    span: Span = field(compare=False)

    kind: Literal["points"] = field(default="points", init=False)


# Who a `gift` is for: "a task for the fulfilment team" (LANGUAGE.md 3.6), listed by
# `nudge tasks --for fulfilment`.
GIFT_TEAM = "fulfilment"


@dataclass(frozen=True)
class Task:
    """`task "TITLE" [for "TEAM"]` and `gift "ITEM"` (a task for `GIFT_TEAM`)."""

    kind: Literal["task", "gift"]
    title: str
    title_span: Span = field(compare=False)
    assignee: str | None = None
    span: Span = field(default=None, compare=False)  # type: ignore[assignment]
    assignee_span: Span | None = field(default=None, compare=False)  # the team as written


@dataclass(frozen=True)
class TagAction:
    """`tag "vip"` / `untag "new"`."""

    kind: Literal["tag", "untag"]
    tag: str
    tag_span: Span = field(compare=False)
    span: Span = field(default=None, compare=False)  # type: ignore[assignment]


Action = Message | Coupon | Points | Task | TagAction

MARKETING: frozenset[str] = frozenset({"message", "coupon"})
# Actions that reach the customer: moved by quiet hours.
CUSTOMER_FACING: frozenset[str] = frozenset({"message", "followup", "coupon"})
SERVICE: frozenset[str] = frozenset({"followup"})


# ---------------------------------------------------------------------------------------------
# Statements


@dataclass(frozen=True)
class Rule:
    """One rule. `name` is None when the file gives none (the checker names it FILE:LINE)."""

    name: str | None
    name_span: Span | None = field(compare=False)
    when: When = field(compare=True)
    condition: Expr | None = None
    unless: Unless | None = None
    once: Once | None = None
    actions: tuple[Action, ...] = ()
    span: Span = field(default=None, compare=False)  # type: ignore[assignment]


@dataclass(frozen=True)
class Segment:
    """`segment "NAME" = CONDITION`."""

    name: str
    name_span: Span = field(compare=False)
    condition: Expr = field(compare=True)
    span: Span = field(default=None, compare=False)  # type: ignore[assignment]


@dataclass(frozen=True)
class Limit:
    """`limit marketing to N per D`."""

    count: int
    per: Duration
    span: Span = field(compare=False)


@dataclass(frozen=True)
class QuietHours:
    """`quiet hours A to B`: the window [A, B), customer's local time, may cross midnight."""

    start: ClockTime
    end: ClockTime
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Exclude:
    """`exclude if CONDITION`."""

    condition: Expr
    span: Span = field(compare=False)


Statement = Rule | Segment | Limit | QuietHours | Exclude


@dataclass(frozen=True)
class Comment:
    """A `# ...` comment, kept for `fmt`. `own_line` is False for a comment after code."""

    text: str
    span: Span
    own_line: bool


@dataclass(frozen=True)
class RuleFile:
    """One parsed `*.rules` file."""

    name: str
    statements: tuple[Statement, ...]
    comments: tuple[Comment, ...] = ()


# ---------------------------------------------------------------------------------------------
# The checked rule set: what the compiler and the reference evaluator consume


@dataclass(frozen=True)
class CheckedRule:
    """A rule that passed the checker, with its final name and its position in the rule set.

    `position` orders rules for tie-breaks (LANGUAGE.md 3.8): files in name order, rules in
    file order. `condition` has segments left as `InSegment` nodes; resolve them through
    `RuleSet.segments`.
    """

    name: str
    position: int
    file: str
    rule: Rule

    @property
    def when(self) -> When:
        return self.rule.when

    @property
    def actions(self) -> tuple[Action, ...]:
        return self.rule.actions


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[CheckedRule, ...]
    segments: dict[str, Segment]
    limits: tuple[Limit, ...]
    quiet_hours: tuple[QuietHours, ...]
    excludes: tuple[Exclude, ...]
    files: tuple[RuleFile, ...]
    # The template files the rules send and those they include, as the check read them: what
    # the daemon watches for edits beside the rule files.
    templates: tuple[Path, ...] = ()


def walk(node: object) -> Iterator[object]:
    """`node` and every node of the tree under it, depth first."""
    yield node
    for value in getattr(node, "__dict__", {}).values():
        for item in value if isinstance(value, tuple) else (value,):
            if hasattr(item, "__dataclass_fields__"):
                yield from walk(item)
