"""The types of condition expressions, and the checks that keep them sensible.

A condition sees customers' fields and metrics (LANGUAGE.md 3.3, their types known here), free
customer attributes and event properties (whose type is only known at run time: `unknown`),
and literals. `check_condition` and `check_number` report every misuse they find — comparing a
date with a number, arithmetic on text, an event property of another entity, an unknown
segment — and never stop at the first.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass

from engine.errors import Diagnostic
from engine.language import ast
from engine.language.fmt import expr_text
from engine.language.source import Span
from engine.language.suggest import did_you_mean, nearest
from engine.language.syntax_diagnosis import AMOUNTS


@dataclass(frozen=True)
class Type:
    """`kind` is number, text, yes/no, duration, date, time, list, set or unknown; `item` is
    the type of a list's or set's items."""

    kind: str
    item: Type | None = None

    def __str__(self) -> str:
        if self.kind in ("list", "set") and self.item and self.item.kind != "unknown":
            return f"a {self.kind} of {_PLURAL.get(self.item.kind, self.item.kind)}"
        return _NAMES.get(self.kind, self.kind)


NUMBER = Type("number")
TEXT = Type("text")
BOOL = Type("yes/no")
DURATION = Type("duration")
DATE = Type("date")
TIME = Type("time")
UNKNOWN = Type("unknown")
TAGS = Type("set", TEXT)

_NAMES = {
    "number": "a number",
    "text": "text",
    "yes/no": "yes or no",
    "duration": "a duration",
    "date": "a date",
    "time": "a point in time",
    "list": "a list",
    "set": "a set",
    "unknown": "a value",
}
_PLURAL = {"number": "numbers", "text": "texts", "date": "dates", "time": "times"}

# Customer fields and metrics whose type is known (LANGUAGE.md 3.3 and section 4).
CUSTOMER_FIELDS: dict[str, Type] = {
    "id": TEXT,
    "name": TEXT,
    "email": TEXT,
    "phone": TEXT,
    "timezone": TEXT,
    "birthday": DATE,
    "signed_up": TIME,
    "accepts_marketing": BOOL,
    "orders": NUMBER,
    "total_spent": NUMBER,
    "average_order": NUMBER,
    "first_order": TIME,
    "last_order": TIME,
    "days_since_last_order": NUMBER,
    "returns": NUMBER,
    "return_rate": NUMBER,
    "points": NUMBER,
    "tags": TAGS,
    "rfm": TEXT,
}

_ORDERED = frozenset({"number", "text", "duration", "date", "time", "unknown"})


def _compatible(a: Type, b: Type) -> bool:
    if "unknown" in (a.kind, b.kind):
        return True
    if a.kind in ("list", "set") and b.kind in ("list", "set"):
        return _compatible(a.item or UNKNOWN, b.item or UNKNOWN)
    return a.kind == b.kind or {a.kind, b.kind} == {"date", "time"}


@dataclass
class Scope:
    """What a condition may refer to: the triggering event's entity (None where there is no
    event: schedule, date, holiday and customer triggers, segments, `exclude`), and the
    segments of the rule set (None: not known, because a file failed to parse)."""

    event_entity: str | None
    where: str  # "rule", "segment" or "exclude": for messages
    segments: Collection[str] | None
    report: Callable[[Diagnostic], None]
    warn_event: Callable[[str, Span], None]


def check_condition(expr: ast.Expr, scope: Scope) -> None:
    """Report every problem of a condition (`if`, a segment, `exclude if`)."""
    result = _infer(expr, scope)
    _expect_bool(expr, result, scope)


def check_number(expr: ast.Expr, scope: Scope, what: str) -> None:
    """Report every problem of an expression that must be a number (`points EXPR`)."""
    result = _infer(expr, scope)
    if result.kind not in ("number", "unknown"):
        _error(
            scope,
            "E303",
            f"{what} must be a number, not {result}",
            expr,
            f"this is {result}",
            "give a number such as `50` or a numeric value such as `order.total * 2`",
        )


def _error(
    scope: Scope, code: str, message: str, node: object, label: str, help: str | None = None
) -> None:
    span = getattr(node, "span", None)
    scope.report(Diagnostic("error", code, message, span, label=label, help=help))


def _expect_bool(expr: ast.Expr, result: Type, scope: Scope) -> None:
    if result.kind == "yes/no":
        return
    shown = f"`{expr.dotted}`" if isinstance(expr, ast.Ref) else "this"
    example = f"{expr.dotted} == yes" if isinstance(expr, ast.Ref) else "order.total > 100"
    _error(
        scope,
        "E304",
        "a condition must be true or false",
        expr,
        f"{shown} is {result}, not a comparison",
        f"compare it, e.g. `{example}`",
    )


def _infer(expr: ast.Expr, scope: Scope) -> Type:
    match expr:
        case ast.Number():
            return NUMBER
        case ast.String():
            return TEXT
        case ast.Bool():
            return BOOL
        case ast.DurationValue():
            return DURATION
        case ast.DateValue():
            return DATE
        case ast.ListValue(items=items):
            kinds = [_infer(item, scope) for item in items]
            known = [k for k in kinds if k.kind != "unknown"]
            for item, kind in zip(items, kinds, strict=True):
                if known and not _compatible(kind, known[0]):
                    _error(
                        scope,
                        "E309",
                        "a list holds values of one kind",
                        item,
                        f"this is {kind}, the list's first value is {known[0]}",
                    )
            return Type("list", known[0] if known else UNKNOWN)
        case ast.Ref():
            return _ref(expr, scope)
        case ast.Aggregate():
            _aggregate(expr, scope)
            return NUMBER
        case ast.InSegment():
            _segment(expr, scope)
            return BOOL
        case ast.Compare():
            _compare(expr, scope)
            return BOOL
        case ast.Between():
            value, low, high = (_infer(e, scope) for e in (expr.value, expr.low, expr.high))
            if _against_a_duration(expr, expr.value, value, (expr.low, expr.high), scope):
                return BOOL
            for bound, kind in ((expr.low, low), (expr.high, high)):
                if (
                    value.kind not in _ORDERED
                    or not _compatible(value, kind)
                    or not _compatible(low, kind)  # the ends of one kind, even when value's is open
                ):
                    _error(
                        scope,
                        "E301",
                        f"cannot tell whether {value} lies between {low} and {high}",
                        bound,
                        f"this is {kind}",
                        "both ends must be values of the same kind as the one tested",
                    )
                    break
            else:
                _reversed_ends(expr, scope)
                for bound in (expr.low, expr.high):
                    _quoted_number(bound, value, "`between`", scope)
                    _zero_led(bound, value, scope)
            return BOOL
        case ast.IsSet():
            _infer(expr.value, scope)
            return BOOL
        case ast.Arith():
            for side in (expr.left, expr.right):
                kind = _infer(side, scope)
                if kind.kind not in ("number", "unknown"):
                    _error(
                        scope,
                        "E302",
                        f"`{expr.op}` works on numbers, not on {kind}",
                        side,
                        f"this is {kind}",
                    )
            return NUMBER
        case ast.Negate():
            kind = _infer(expr.operand, scope)
            if kind.kind not in ("number", "unknown"):
                _error(scope, "E302", f"`-` works on numbers, not on {kind}", expr, "not a number")
            return NUMBER
        case ast.Logic():
            for operand in expr.operands:
                _expect_bool(operand, _infer(operand, scope), scope)
            return BOOL
        case ast.Not():
            _expect_bool(expr.operand, _infer(expr.operand, scope), scope)
            return BOOL
    raise AssertionError(f"unknown expression {expr!r}")


def _ref(ref: ast.Ref, scope: Scope) -> Type:
    if ref.entity == "customer":
        if ref.name in CUSTOMER_FIELDS:
            return CUSTOMER_FIELDS[ref.name]
        close = nearest(ref.name, CUSTOMER_FIELDS, cutoff=0.85)
        if close is not None:
            scope.report(
                Diagnostic(
                    "warning",
                    "W204",
                    f"`customer.{ref.name}` is not a known customer field",
                    ref.span,
                    label="read as a customer attribute from the shop's data",
                    help=f"did you mean `customer.{close}`?",
                )
            )
        return UNKNOWN
    if scope.event_entity is None:
        where = {
            "segment": "a segment is not tied to any event",
            "exclude": "`exclude` is not tied to any event",
            "rule": "this rule is not triggered by an event",
        }[scope.where]
        _error(
            scope,
            "E211",
            f"`{ref.dotted}` is a value of an event, and {where}",
            ref,
            "no event to read this from",
            "use `customer.…` values, or `count(...)`/`sum(...)` over the customer's events",
        )
    elif ref.entity not in (scope.event_entity, ast.EVENT):
        help = (
            f"values of this rule's event are written `{scope.event_entity}.NAME` or `event.NAME`"
        )
        if nearest(ref.entity, [scope.event_entity, "customer"]) == "customer":
            help = f"did you mean `customer.{ref.name}`?"
        _error(
            scope,
            "E210",
            f"`{ref.dotted}` belongs to `{ref.entity}` events, but this rule is triggered by "
            f"a `{scope.event_entity}` event",
            ref,
            f"not a value of the `{scope.event_entity}` event",
            help,
        )
    return UNKNOWN


def _aggregate(agg: ast.Aggregate, scope: Scope) -> None:
    scope.warn_event(agg.event, agg.event_span)
    if agg.func == "count" and agg.prop is not None:
        _error(
            scope,
            "E305",
            "`count` counts events; it takes an event name only",
            agg,
            f"`.{agg.prop}` is not needed here",
            f"to add up `{agg.prop}`, write `sum({agg.event}.{agg.prop})`",
        )
    if agg.within is not None and agg.within.seconds == 0:
        message, label, help = ZERO_PERIODS["count"]
        _error(scope, "E311", message, agg.within, label, help)


# E311, a period of zero where it means nothing: the message, the label (what it would do) and
# the help (what to write in its place, at it), by where it stands.
ZERO_PERIODS = {
    "count": (
        "`within` needs a duration longer than zero",
        "no event falls in a window of zero: this would always count 0",
        "write how far back to count, such as `90d`, or leave out `within` to count them all",
    ),
    "unless": (
        "`unless ... within` must be longer than zero",
        "no event falls in a window of zero: nothing would cancel the rule",
        "write how far back to look, such as `7d` (after an event trigger, `unless` alone looks "
        "from the event to the due time)",
    ),
    "once": (
        "`once every` must be longer than zero",
        "no earlier action falls in a period of zero: nothing would be skipped",
        "write the period, such as `30d`; to act once per customer ever, write `once` alone",
    ),
    "limit": (
        "a limit's period must be longer than zero",
        "no message sent before falls in a period of zero: nothing would be limited",
        "write the period over which messages are counted, such as `7d`",
    ),
    "expires": (
        "a coupon's expiry must be longer than zero",
        "the coupon would expire as it is issued",
        "write how long it stays valid, such as `14d`, or leave out `expires` for a coupon "
        "that does not expire",
    ),
}


def _segment(node: ast.InSegment, scope: Scope) -> None:
    if scope.segments is None or node.segment in scope.segments:
        return
    scope.report(
        Diagnostic(
            "error",
            "E201",
            f'no segment is named "{node.segment}"',
            node.segment_span,
            label="unknown segment",
            help=did_you_mean(node.segment, scope.segments)
            or 'define it in any file of the rule set: `segment "NAME" = CONDITION`',
        )
    )


def _compare(node: ast.Compare, scope: Scope) -> None:
    left, right = _infer(node.left, scope), _infer(node.right, scope)
    op = node.op
    _zero_led(node.right, left, scope)  # a list after `in`, a code after `contains` or `==`
    if op != "contains":  # a code before `==` or `in` (`050 in order.codes`)
        _zero_led(node.left, right, scope)
    if op in ("in", "not in"):
        container, item, item_node = right, left, node.left
        container_node = node.right
    elif op == "contains":
        container, item, item_node = left, right, node.right
        container_node = node.left
    else:
        if _against_a_duration(node, node.left, left, (node.right,), scope) or (
            _against_a_duration(node, node.right, right, (node.left,), scope)
        ):
            return
        if not _compatible(left, right):
            _error(
                scope,
                "E301",
                f"cannot compare {left} with {right}",
                node,
                f"{left} {op} {right}",
                _membership_help(node, left, right) or _compare_help(left, right),
            )
        elif op not in ("==", "!=") and left.kind not in _ORDERED:
            _error(
                scope,
                "E301",
                f"`{op}` cannot order {left}",
                node,
                f"{left} has no order",
                "use `==` or `!=`",
            )
        elif op not in ("==", "!="):
            _quoted_number(node.right, left, f"`{op}`", scope)
            _quoted_number(node.left, right, f"`{op}`", scope)
        return
    if container.kind == "text":
        if item.kind not in ("text", "unknown"):
            _error(
                scope,
                "E308",
                f"`{op}` on text looks for text, not {item}",
                item_node,
                f"this is {item}",
            )
        return
    if container.kind not in ("list", "set", "unknown"):
        _error(
            scope,
            "E308",
            f"`{op}` needs a list, a set or text, not {container}",
            container_node,
            f"this is {container}",
            'e.g. `order.category in ["shoes", "bags"]` or `"vip" in customer.tags`',
        )
        return
    element = container.item or UNKNOWN
    if not _compatible(item, element):
        _error(
            scope,
            "E301",
            f"{container} cannot hold {item}",
            item_node,
            f"this is {item}",
            _membership_help(node, left, right),
        )


def _against_a_duration(
    node: ast.Compare | ast.Between,
    value: ast.Expr,
    kind: Type,
    others: tuple[ast.Expr, ...],
    scope: Scope,
) -> bool:
    """E301 for a number, or a value of the shop's data, compared with a duration (`customer.
    days_since_last_order > 30 days`, `order.delivery_days between 1 and 3 days`): the data
    holds numbers and text, never durations, so that a duration would be compared as the
    microseconds it lasts, and hold for no value. The help gives the plain numbers to write."""
    durations = [o.duration for o in others if isinstance(o, ast.DurationValue)]
    if not durations or kind.kind not in ("number", "unknown"):
        return False
    first = next(o for o in others if isinstance(o, ast.DurationValue))
    name = expr_text(value) if isinstance(value, ast.Ref) else None
    between = isinstance(node, ast.Between)

    def written(amounts: list[str | None]) -> str:  # what the caret is under, written anew
        return " and ".join(a or "" for a in amounts)

    def amount(other: ast.Expr, days: bool) -> str | None:
        if isinstance(other, ast.DurationValue):
            whole = other.duration.whole_days if days else other.duration.amount
            return None if whole is None else str(whole)
        return expr_text(other) if isinstance(other, ast.Number) else None

    help = None
    if name == "customer.days_since_last_order":
        amounts = [amount(o, days=True) for o in others]
        if all(amounts):
            help = f"`{name}` is a number of days: write `{written(amounts)}`"
    elif kind.kind == "unknown" and len({d.unit for d in durations}) == 1:
        amounts = [amount(o, days=False) for o in others]
        unit = _UNIT_NAMES[durations[0].unit]
        if all(amounts):
            help = (
                "the shop's data holds numbers, not durations: write the number in the unit it "
                f"counts in, such as `{written(amounts)}` if it counts {unit}"
            )
    wan = [d.amount for d in durations if d.unit == "w" and not d.spelled]
    if wan and not between and _an_amount(value):
        # `order.total >= 2w`: 2万, 20,000, as a shop owner writes it, sooner than 2 weeks.
        help = (
            f"an amount is a plain number: write `{wan[0] * 10_000}` if `{wan[0]}w` means "
            f"{wan[0]}万"
        )
    shown = f"`{name}`" if name else "this"
    if kind.kind == "number":
        message = f"{shown} is a number, not a duration"
    else:
        message = f"{shown} is a value of the shop's data, which holds no durations"
    span = first.span
    if between:  # the ends, which the help writes anew
        low, high = others[0].span, others[-1].span
        span = Span(low.file, low.line, low.column, high.end_line, high.end_column)
    scope.report(
        Diagnostic(
            "error",
            "E301",
            message,
            span,
            label=("durations" if len(durations) > 1 else "one end a duration")
            if between
            else "a duration",
            help=help or "write a plain number, in the unit the value counts in",
        )
    )
    return True


_UNIT_NAMES = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _an_amount(value: ast.Expr) -> bool:
    """Whether `value` is an amount, which a shop owner may write in 万 (`2w`): a total
    (`order.total`, the property `customer.total_spent` sums), a sum, a customer's amount."""
    match value:
        case ast.Ref(entity="customer", name=name):
            return f"customer.{name}" in AMOUNTS
        case ast.Ref(name=name):
            return name == "total"
        case ast.Aggregate(func="sum"):
            return True
    return False


# A number written with a leading zero: `050`, `007` (not `0`, `0.5`); with its sign, `-05`.
_ZERO_LED = re.compile(r"0[0-9]")


def _zero_led(node: ast.Expr, other: Type, scope: Scope) -> None:
    """E324 for a number written with a leading zero (`050`, `-05`) compared with a value of
    the shop's data: an import keeps such a value as text, a code (docs/importing.md), which the
    number 50 never equals; so does a list of them (`in [050, 051]`). Where the value compared
    is known to be a number (`customer.orders >= 05`), the zero is harmless and passed over."""
    if other.kind != "unknown":
        return
    for value in node.items if isinstance(node, ast.ListValue) else (node,):
        sign, number = ("-", value.operand) if isinstance(value, ast.Negate) else ("", value)
        if not isinstance(number, ast.Number) or not _ZERO_LED.match(number.text):
            continue
        written = sign + number.text
        plain = sign + expr_text(ast.Number(number.value, str(number.value), number.span))
        scope.report(
            Diagnostic(
                "error",
                "E324",
                f"`{written}` is read as the number {plain}, not as the code `{written}`",
                value.span,
                label="a number with a leading zero",
                help=f'write `"{written}"` in quotes if it is a code (the shop\'s data keeps '
                f"a number with a leading zero as text), or `{plain}` for the number",
            )
        )


# A number as the rules write it (the grammar's NUMBER, with a sign): the suggestion to drop
# the quotes must give valid syntax, so `"1_000"`, `"1e3"` or `"nan"`, which Python's float
# takes, get no warning.
_WRITTEN_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def _quoted_number(node: ast.Expr, other: Type, what: str, scope: Scope) -> None:
    """W322 for a number in quotes that orders a value of unknown type (an attribute, an event
    property): the two compare as text, letter by letter, so that 99 comes after "100"."""
    if not isinstance(node, ast.String) or other.kind != "unknown":
        return
    if _WRITTEN_NUMBER.fullmatch(node.value.strip()) is None:
        return
    scope.report(
        Diagnostic(
            "warning",
            "W322",
            f'`"{node.value}"` is text: {what} orders text letter by letter, so that a value of'
            f' 99 comes after "100"',
            node.span,
            label="a number in quotes",
            help=f"write the number without quotes: `{node.value.strip()}`",
        )
    )


def _reversed_ends(node: ast.Between, scope: Scope) -> None:
    """E321 for `between` whose written ends are the wrong way round: it holds for no value."""
    low, high = _literal(node.low), _literal(node.high)
    if low is None or high is None or low[0] != high[0] or not low[1] > high[1]:
        return
    _error(
        scope,
        "E321",
        "`between` with its larger end first holds for no value",
        node,
        "the ends are the wrong way round",
        "write the smaller (or earlier) end first, such as `between 10 and 100`",
    )


def _literal(node: ast.Expr) -> tuple[str, float] | None:
    """A literal end of `between` as its kind and a number that orders it: a number, a date
    (its ordinal) or a duration (its seconds)."""
    match node:
        case ast.Number(value=value):
            return "number", float(value)
        case ast.Negate(operand=ast.Number(value=value)):
            return "number", -float(value)
        case ast.DateValue(value=day):
            return "date", float(day.toordinal())
        case ast.DurationValue(duration=duration):
            return "duration", float(duration.seconds)
    return None


def _membership_help(node: ast.Compare, left: Type, right: Type) -> str | None:
    """`customer.tags == "vip"`, `customer.tags in ["vip"]`: whether a set holds a text is
    asked with `in` (LANGUAGE.md 3.3), written out with the text the merchant gave. `left`
    and `right` are the types of the two sides."""
    if left.kind == "set":
        whole, part = node.left, node.right
    elif right.kind == "set":
        whole, part = node.right, node.left
    else:
        return None
    texts = part.items if isinstance(part, ast.ListValue) else (part,)
    if not texts or not all(isinstance(text, ast.String) for text in texts):
        return None
    test, join = ("not in", " and ") if node.op in ("!=", "not in") else ("in", " or ")
    return "write `" + join.join(f"{expr_text(t)} {test} {expr_text(whole)}" for t in texts) + "`"


def _compare_help(left: Type, right: Type) -> str | None:
    kinds = {left.kind, right.kind}
    if kinds == {"text", "number"}:
        return 'a number in quotes is text: write `20`, not `"20"` (or the other way round)'
    if "date" in kinds or "time" in kinds:
        return (
            "dates are written YYYY-MM-DD; to compare an age, use e.g. "
            "`customer.days_since_last_order > 60`"
        )
    if "yes/no" in kinds:
        return "yes/no values are compared with `yes` or `no`"
    return None
