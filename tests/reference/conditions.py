"""Conditions and expressions (LANGUAGE.md 3.3), evaluated for one customer at one due time.

Values are plain Python: None (not set), bool, int/float, str, `Instant`, `datetime.timedelta`
(durations), tuples (lists) and frozensets (tags). A date is compared with an instant as 00:00
on that date in the customer's local time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from engine.config import Rfm
from engine.language import ast
from engine.timeutil import DAY_US, US, local_wall
from tests.reference.shop import Customer, Event


@dataclass(frozen=True, order=True)
class Instant:
    us: int


@dataclass(frozen=True)
class Context:
    """What a condition sees: the customer as of `due_us`, and the triggering event."""

    customer: Customer
    due_us: int
    tz: ZoneInfo
    seen: tuple[Event, ...]  # the customer's events at or before the due time
    tags: frozenset[str]
    points: float | None  # `points_balance`
    event: Event | None
    segments: dict[str, ast.Segment]
    rfm: Rfm


def holds(expr: ast.Expr, ctx: Context) -> bool:
    """A condition: true only when it evaluates to yes."""
    return value(expr, ctx) is True


def value(expr: ast.Expr, ctx: Context) -> Any:
    match expr:
        case ast.Number() | ast.String() | ast.Bool():
            return expr.value
        case ast.DurationValue():
            return expr.duration.timedelta
        case ast.DateValue():
            return expr.value
        case ast.ListValue():
            return tuple(value(item, ctx) for item in expr.items)
        case ast.Ref():
            return _ref(expr, ctx)
        case ast.Aggregate():
            return _aggregate(expr, ctx)
        case ast.InSegment():
            inside = holds(ctx.segments[expr.segment].condition, without_event(ctx))
            return not inside if expr.negated else inside
        case ast.Compare():
            return compare(expr.op, value(expr.left, ctx), value(expr.right, ctx), ctx.tz)
        case ast.Between():
            x, low, high = (value(e, ctx) for e in (expr.value, expr.low, expr.high))
            return compare(">=", x, low, ctx.tz) and compare("<=", x, high, ctx.tz)
        case ast.IsSet():
            is_set = value(expr.value, ctx) is not None
            return not is_set if expr.negated else is_set
        case ast.Arith():
            return _arith(expr.op, value(expr.left, ctx), value(expr.right, ctx))
        case ast.Negate():
            operand = value(expr.operand, ctx)
            return -operand if _is_number(operand) else None
        case ast.Logic():
            test = all if expr.op == "and" else any
            return test(holds(operand, ctx) for operand in expr.operands)
        case ast.Not():
            return not holds(expr.operand, ctx)
    raise TypeError(f"not an expression: {expr!r}")


# --- comparisons ----------------------------------------------------------------------------

_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def compare(op: str, left: Any, right: Any, tz: ZoneInfo) -> bool:
    """A comparison with a value that is not set is false."""
    if op in ("in", "not in", "contains"):
        item, container = (right, left) if op == "contains" else (left, right)
        if item is None or container is None:
            return False
        item, container = _normal(item, tz), _normal(container, tz)
        if op == "not in":
            return _is_container(container) and not _member(item, container)
        return _member(item, container)
    left, right = _read_text(left, right), _read_text(right, left)
    if left is None or right is None:
        return False
    left, right = _normal(left, tz), _normal(right, tz)
    if op == "==":
        return _equal(left, right)
    if op == "!=":
        return _kind(left) == _kind(right) and not _equal(left, right)
    if op in _ORDER:
        kind = _kind(left)
        return (
            kind == _kind(right)
            and kind in ("number", "text", "instant", "duration")
            and (_ORDER[op](left, right))
        )
    raise ValueError(f"unknown comparison {op}")


_NUMBER_TEXT = re.compile(r"\s*-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]{1,2})?\s*")


def _read_text(x: Any, other: Any) -> Any:
    """docs/semantics.md: text compared with a number is a number when it is written as one
    (JSON number syntax, at most 45 characters, a two-digit exponent at most), else not set;
    a date compared with text is its ISO text."""
    if isinstance(x, str) and _kind(other) == "number":
        return float(x) if len(x) <= 45 and _NUMBER_TEXT.fullmatch(x) else None
    if isinstance(x, dt.date) and isinstance(other, str):
        return x.isoformat()
    if isinstance(x, str) and isinstance(other, dt.date):
        return x if x[4:5] == "-" else None  # a birthday written MM-DD: its year is not known
    return x


def _normal(x: Any, tz: ZoneInfo) -> Any:
    """Dates become instants (00:00 local), lists of any kind become tuples."""
    if isinstance(x, dt.date):
        return Instant(local_wall(x, dt.time(0, 0), tz))
    if isinstance(x, list):
        return tuple(x)
    return x


def _kind(x: Any) -> str:
    if isinstance(x, bool):
        return "bool"
    if isinstance(x, int | float):
        return "number"
    if isinstance(x, str):
        return "text"
    if isinstance(x, Instant):
        return "instant"
    if isinstance(x, dt.timedelta):
        return "duration"
    if isinstance(x, tuple | frozenset):
        return "collection"
    return "other"


def _equal(left: Any, right: Any) -> bool:
    return _kind(left) == _kind(right) and left == right


def _is_container(x: Any) -> bool:
    return isinstance(x, str | tuple | frozenset)


def _member(item: Any, container: Any) -> bool:
    """`item in container`: a substring test on text, a membership test on a list or set."""
    if item is None:
        return False
    if isinstance(container, str):
        if isinstance(item, bool):
            return ("true" if item else "false") in container
        if isinstance(item, int | float):
            return f"{item:.15g}" in container  # a number looked for as its text: 3, not 3.0
        return isinstance(item, str) and item in container
    if isinstance(container, tuple | frozenset):
        return any(_equal(item, element) for element in container)
    return False


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


# Arithmetic and sums beyond this are not set, products and quotients below TINIEST are 0
# (docs/semantics.md, "Numbers beyond 1e308").
LARGEST = 1e308
TINIEST = 1e-300


def _arith(op: str, left: Any, right: Any) -> Any:
    if not (_is_number(left) and _is_number(right)):
        return None
    size, by = abs(left), abs(right)
    if op == "/":
        if right == 0:
            return None
        if by >= 1:
            return 0.0 if size < TINIEST * by else left / right
        return left / right if size <= LARGEST * by else None
    if op == "*":
        if size <= 1 and by < TINIEST / max(size, TINIEST):
            return 0.0
        return left * right if size <= 1 or by <= LARGEST / size else None
    if size > LARGEST - by:
        return None
    return left + right if op == "+" else left - right


def bounded(total: float) -> float | None:
    """A sum, not set where beyond LARGEST."""
    return None if abs(total) > LARGEST else total


def points_balance(gifts: list[float]) -> float | None:
    """Points are added up in millionths, as whole numbers (each rounded half away from zero),
    so that a balance does not depend on how its gifts are grouped; not set when a gift is
    beyond a trillion."""
    if any(abs(gift) > 1e12 for gift in gifts):
        return None
    return sum(int(gift * 1e6 + (-0.5 if gift < 0 else 0.5)) for gift in gifts) / 1e6


# --- customer values and metrics ------------------------------------------------------------

STORED_FIELDS = ("id", "name", "email", "phone", "birthday", "timezone", "accepts_marketing")


def _ref(ref: ast.Ref, ctx: Context) -> Any:
    if ref.entity != "customer":
        event = ctx.event
        if event is None or ref.entity not in (event.entity, ast.EVENT):
            return None
        return event.properties.get(ref.name)
    metric = _METRICS.get(ref.name)
    if metric is not None:
        return metric(ctx)
    if ref.name in STORED_FIELDS:
        return getattr(ctx.customer, ref.name)
    if ref.name == "signed_up":
        signed_up = ctx.customer.signed_up_us
        return None if signed_up is None else Instant(signed_up)
    return ctx.customer.attributes.get(ref.name)


def _number(x: Any) -> float:
    """An event property summed or totalled: numbers count, anything else is 0."""
    return x if _is_number(x) else 0


def _orders(ctx: Context) -> list[Event]:
    return [e for e in ctx.seen if e.type == "order.paid"]


def _total_spent(ctx: Context) -> float | None:
    return bounded(sum(_number(e.properties.get("total")) for e in _orders(ctx)))


def _average_order(ctx: Context) -> float | None:
    orders, spent = len(_orders(ctx)), _total_spent(ctx)
    return spent / orders if orders and spent is not None else None


def _first_order(ctx: Context) -> Instant | None:
    orders = _orders(ctx)
    return Instant(orders[0].at_us) if orders else None


def _last_order(ctx: Context) -> Instant | None:
    orders = _orders(ctx)
    return Instant(orders[-1].at_us) if orders else None


def _days_since_last_order(ctx: Context) -> int | None:
    last = _last_order(ctx)
    return None if last is None else (ctx.due_us - last.us) // DAY_US


def _returns(ctx: Context) -> int:
    return sum(1 for e in ctx.seen if e.type == "order.returned")


def _return_rate(ctx: Context) -> float:
    orders = len(_orders(ctx))
    return _returns(ctx) / orders if orders else 0


def _rfm(ctx: Context) -> str:
    """Three digits: recency, frequency, monetary, each scored 1-5 by the configured cuts.
    A customer without orders scores recency 1."""
    days = _days_since_last_order(ctx)
    recency = 1 if days is None else 5 - sum(1 for cut in ctx.rfm.recency_days if days > cut)
    frequency = 1 + sum(1 for cut in ctx.rfm.frequency if len(_orders(ctx)) >= cut)
    spent = _total_spent(ctx)
    monetary = 1 + sum(1 for cut in ctx.rfm.monetary if spent is not None and spent >= cut)
    return f"{recency}{frequency}{monetary}"


_METRICS: dict[str, Callable[[Context], Any]] = {
    "orders": lambda ctx: len(_orders(ctx)),
    "total_spent": _total_spent,
    "average_order": _average_order,
    "first_order": _first_order,
    "last_order": _last_order,
    "days_since_last_order": _days_since_last_order,
    "returns": _returns,
    "return_rate": _return_rate,
    "points": lambda ctx: ctx.points,
    "tags": lambda ctx: ctx.tags,
    "rfm": _rfm,
}


def _aggregate(agg: ast.Aggregate, ctx: Context) -> float | None:
    """count/sum over the customer's events up to the due time; `within D`: (due − D, due]."""
    after = None if agg.within is None else ctx.due_us - agg.within.seconds * US
    chosen = [e for e in ctx.seen if e.type == agg.event and (after is None or e.at_us > after)]
    if agg.func == "count":
        return len(chosen)
    return bounded(sum(_number(e.properties.get(agg.prop or "")) for e in chosen))


def without_event(ctx: Context) -> Context:
    """Segments and policies see the customer only."""
    return dataclasses.replace(ctx, event=None)
