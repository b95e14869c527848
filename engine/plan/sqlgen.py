"""Expressions of the rule language → SQLAlchemy Core, evaluated as of each occurrence's due time.

Every value is read "as it stood at the due time": metrics and counts look only at events at or
before `due`, tags and points only at effects before it, `customer.accepts_marketing` at the
imports' changes of it after it (`consent.flag_at`). The other stored fields and attributes
are kept only as last imported, and read so. The due time is a column of the
candidate table, so one query evaluates a condition for every occurrence at once.

Unset values follow LANGUAGE.md 3.3: a comparison with an unset value is false, and `not` of
it is true. SQL's NULL logic differs, so every comparison is wrapped in COALESCE(..., false)
(but an EXISTS, which is never NULL) and conditions are always two-valued.
"""

from __future__ import annotations

import datetime as dt
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause

from engine.config import Rfm
from engine.evaluation.scratch import Effects
from engine.language import ast
from engine.plan.sqlfuncs import (
    arith,
    balance,
    bounded_sum,
    json_bool,
    json_contains,
    json_num,
    json_set,
    json_text,
    points_total,
    strpos,
)
from engine.policies.consent import flag_at
from engine.storage.tables import customer_tags, events
from engine.timeutil import DAY_US, US, local_wall, zone

Kind = Literal["number", "text", "bool", "instant", "date", "duration", "tags", "list", "any"]

ORDER = "order.paid"
RETURN = "order.returned"

STORED_FIELDS: dict[str, Kind] = {
    "id": "text",
    "name": "text",
    "email": "text",
    "phone": "text",
    "timezone": "text",
    "birthday": "text",
    "accepts_marketing": "bool",
    "signed_up": "instant",
}
METRICS: dict[str, Kind] = {
    "orders": "number",
    "total_spent": "number",
    "average_order": "number",
    "first_order": "instant",
    "last_order": "instant",
    "days_since_last_order": "number",
    "returns": "number",
    "return_rate": "number",
    "points": "number",
    "tags": "tags",
    "rfm": "text",
}
_COLUMN_OF_FIELD = {"signed_up": "signed_up_us"}
COMPARISONS = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def field_kind(ref: ast.Ref) -> Kind:
    """The static type of a reference; `any` for attributes and event properties."""
    if ref.entity == "customer":
        return STORED_FIELDS.get(ref.name) or METRICS.get(ref.name) or "any"
    return "any"


# Tests keeping a table's rows to some customers, given the table's customer column.
Bounds = Callable[[ColumnElement[str]], list[ColumnElement[bool]]]
# The customer's `accepts_marketing` as it stood at the due time, given the customer and the
# due time (`consent.flag_at`, `gates.flag_then`).
FlagAt = Callable[[FromClause, ColumnElement[int]], ColumnElement[bool]]


@dataclass(frozen=True)
class Scope:
    """What an expression can see: the customer row, the due time, the triggering event."""

    customer: FromClause
    due: ColumnElement[int]
    trigger: FromClause | None
    effects: Effects  # tags and points given by rules
    segments: dict[str, ast.Segment]
    shop_tz: str
    rfm: Rfm
    zones: tuple[str, ...]  # the customers' time zones
    # Tests that keep a table's rows of the customers evaluated, given its customer column:
    # repeated in each lookup of their events, so that PostgreSQL can read a batch's events
    # once rather than probe them per occurrence (`evaluate._Passing`).
    bounds: Bounds | None = None
    # Whether the lookups of an event's presence that decide the whole condition read the
    # customers' events of that type once and hash them (with `bounds`, a batch's): for rules
    # whose occurrences are many to a customer (`evaluate.scope_for`).
    hashed: bool = False
    # How `customer.accepts_marketing` is read as it stood at the due time: None for the stored
    # flag alone, when no import changed anyone's since the window's start (`gates.flag_reader`:
    # the SQL is then what it was before changes were kept); by default each customer's changes
    # are looked up.
    flag: FlagAt | None = flag_at


class Compiler:
    """Compiles expressions within one `Scope`."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.c = scope.customer.c
        self.materialized = False  # whether a test reads a materialized CTE (`some`)

    # -- conditions (always true/false, never NULL) -----------------------------------------

    def condition(
        self, expr: ast.Expr, lazy: bool = False, whole: bool = False
    ) -> ColumnElement[bool]:
        """`expr` as a SQL test. `lazy` for a value read in a SELECT list (`test`). `whole`
        for a test that decides a WHERE on its own or as one of the terms it ANDs: there,
        PostgreSQL joins an EXISTS (a semi or anti join) rather than run it for each row."""
        match expr:
            case ast.Logic(op=op, operands=ops):
                whole = whole and op == "and" and not lazy
                parts = [self.condition(o, lazy, whole) for o in _needed(op, ops)]
                if lazy:
                    return _lazy(op, parts)
                return sa.and_(*parts) if op == "and" else sa.or_(*parts)
            case ast.Not(operand=inner):
                return sa.not_(self.condition(inner, lazy))
            case ast.InSegment(segment=name, negated=negated):
                body = self.condition(
                    self.scope.segments[name].condition, lazy, whole and not negated
                )
                return sa.not_(body) if negated else body
            case ast.IsSet(value=value, negated=negated):
                if self.kind(value) == "tags":
                    return sa.false() if negated else sa.true()
                if isinstance(value, ast.Ref) and self.kind(value) == "any":
                    # Present and not null, whatever it holds: a list or an object too.
                    present = json_set(self._document(value), value.name)
                    return sa.not_(present) if negated else present
                compiled = self.value(value)
                return compiled.is_(None) if negated else compiled.is_not(None)
            case ast.Compare(op=op, left=left, right=right):
                # EXISTS is never unset; left bare (not in COALESCE), PostgreSQL can test it
                # for many rows at once, as a semi join.
                found = self._by_lookup(op, left, right, whole and not lazy)
                return found if found is not None else self._truth(self._compare(expr))
            case ast.Between(value=value, low=low, high=high):
                kind = self._common_kind(value, low, high)
                ends = (value, low, high)
                test = self._compared(value, kind, ends).between(
                    self._compared(low, kind, ends), self._compared(high, kind, ends)
                )
                return self._truth(test)
            case ast.Bool(value=value):
                return sa.true() if value else sa.false()
            case _:
                return self._truth(self.value(expr, "bool") == sa.true())

    def test(self, expr: ast.Expr) -> ColumnElement[bool]:
        """`expr` as a true/false value, for a SELECT list. SQLite evaluates both sides of
        AND and OR there (in WHERE it stops at the first that decides); written as CASE, an
        operand's lookups run only when the ones before leave the answer open."""
        return self.condition(expr, lazy=True)

    @staticmethod
    def _truth(test: ColumnElement[Any]) -> ColumnElement[bool]:
        return sa.func.coalesce(test, sa.false())

    def _compare(self, expr: ast.Compare) -> ColumnElement[Any]:
        op, left, right = expr.op, expr.left, expr.right
        if op in ("in", "not in"):
            test = self._membership(left, right)
            return sa.not_(test) if op == "not in" else test
        if op == "contains":
            return self._membership(right, left)
        kind = self._common_kind(left, right)
        sides = (left, right)
        return COMPARISONS[op](
            self._compared(left, kind, sides), self._compared(right, kind, sides)
        )

    def _compared(self, expr: ast.Expr, kind: Kind, among: tuple[ast.Expr, ...]) -> Any:
        """`expr` as `kind` for a comparison with `among`. A date compared with text (a
        birthday, a free attribute) is compared as ISO text, and text that does not begin with
        a year (a birthday written MM-DD) is unset there: its date is not known."""
        value = self.value(expr, kind)
        if kind != "text" or isinstance(expr, ast.DateValue):
            return value
        if not any(isinstance(other, ast.DateValue) for other in among):
            return value
        return sa.case((sa.func.substr(value, 5, 1) == "-", value), else_=sa.null())

    def _by_lookup(
        self, op: str, left: ast.Expr, right: ast.Expr, whole: bool = False
    ) -> ColumnElement[bool] | None:
        """A comparison that only asks whether such an event exists: a count with a number
        (`customer.orders >= 1`, `customer.returns == 0`, `count(E) > 0`), or the days since
        the last order under a number (`customer.days_since_last_order <= 180`: a paid order in
        the last 181 whole days). One index lookup instead of counting them all or finding the
        latest; and a database can test EXISTS for many rows at once (PostgreSQL's semi join),
        where it runs a subquery's MAX row by row. None when the comparison needs the value.
        `whole`: see `condition`."""
        test = _existence_test(op, left, right)
        if test is not None:
            (event_type, within), some = test
            found = self.some(event_type, _microseconds(within), whole)
            return found if some else sa.not_(found)
        days = _recency_test(op, left, right)
        if days is not None:
            return self.some(ORDER, days * DAY_US, whole)
        return None

    def _membership(self, item: ast.Expr, container: ast.Expr) -> ColumnElement[Any]:
        """`item in container`: a tag in the tags, an item in a list, or a substring in text.
        An unset item is neither in nor out of anything: the test is unset too (NULL)."""
        kind = self.kind(container)
        if kind == "tags":
            tag = self.value(item, "text")
            return _unless_unset(item, tag, self.has_tag(tag))
        if isinstance(container, ast.ListValue):
            item_kind = self._common_kind(item, *container.items)
            value = self.value(item, item_kind)
            if not container.items:  # nothing is in an empty list; an unset item stays unset
                return sa.case((value.is_(None), sa.null()), else_=sa.false())
            return value.in_([self.value(i, item_kind) for i in container.items])
        if kind == "any" and isinstance(container, ast.Ref):
            # A free attribute or event property: a list (JSON import) or text.
            item_kind = self.kind(item)
            value = self.value(item, item_kind)
            looked_for = item_kind if item_kind in ("number", "bool") else "text"
            found = json_contains(self._document(container), container.name, value, looked_for)
            return _unless_unset(item, value, found)
        haystack, needle = self.value(container, "text"), self.value(item, "text")
        return strpos(haystack, needle) > 0

    def _common_kind(self, *exprs: ast.Expr) -> Kind:
        kinds = [self.kind(e) for e in exprs]
        known = [k for k in kinds if k != "any"]
        if not known:
            return "text"
        if "instant" in known:
            return "instant"
        if "date" in known and ("any" in kinds or "text" in known):
            # A birthday, or a free attribute holding a date, is ISO text: compared as such,
            # whichever side the date is written on.
            return "text"
        return known[0]

    # -- values ---------------------------------------------------------------------------------

    def kind(self, expr: ast.Expr) -> Kind:
        match expr:
            case ast.Number() | ast.Aggregate() | ast.Negate():
                return "number"
            case ast.String():
                return "text"
            case ast.Bool():
                return "bool"
            case ast.DurationValue():
                return "duration"
            case ast.DateValue():
                return "date"
            case ast.ListValue():
                return "list"
            case ast.Ref():
                return field_kind(expr)
            case ast.Arith(left=left, right=right):
                kinds = {self.kind(left), self.kind(right)}
                return "instant" if "instant" in kinds else "number"
            case _:
                return "bool"

    def value(self, expr: ast.Expr, want: Kind = "any") -> ColumnElement[Any]:
        match expr:
            case ast.Number(value=v):
                return sa.literal(float(v), sa.Double)
            case ast.String(value=v):
                return sa.literal(v, sa.Text)
            case ast.Bool(value=v):
                return sa.true() if v else sa.false()
            case ast.DurationValue(duration=d):
                return sa.literal(d.seconds * US, sa.BigInteger)
            case ast.DateValue(value=day):
                if want == "text":
                    return sa.literal(day.isoformat(), sa.Text)
                return self.midnight(day)
            case ast.Ref():
                return self.ref(expr, want)
            case ast.Aggregate():
                return self.aggregate(expr)
            case ast.Negate(operand=inner):
                return -self.value(inner, "number")
            case ast.Arith(op=op, left=left, right=right):
                return self._arith(op, left, right)
            case _:
                return self.test(expr)

    def midnight(self, day: dt.date) -> ColumnElement[Any]:
        """00:00 on `day` where the customer lives (a date is read on the customer's calendar,
        like date triggers)."""
        return sa.case(
            *(
                (self.customer_zone == tz, local_wall(day, dt.time(0, 0), zone(tz)))
                for tz in self.scope.zones
            ),
            else_=local_wall(day, dt.time(0, 0), zone(self.scope.shop_tz)),
        )

    @property
    def customer_zone(self) -> ColumnElement[str]:
        return sa.func.coalesce(self.c.timezone, self.scope.shop_tz)

    def _arith(self, op: str, left: ast.Expr, right: ast.Expr) -> ColumnElement[Any]:
        """Numbers: not set where the result would be beyond about LARGEST (`arith`)."""
        if self.kind(left) == "instant" or self.kind(right) == "instant":
            lhs, rhs = self.value(left, "instant"), self.value(right, "duration")
            return lhs + rhs if op == "+" else lhs - rhs
        return arith(op, self.value(left, "number"), self.value(right, "number"))

    def ref(self, ref: ast.Ref, want: Kind = "any") -> ColumnElement[Any]:
        if ref.entity == "customer":
            if ref.name == "accepts_marketing" and self.scope.flag is not None:
                return self.scope.flag(self.scope.customer, self.scope.due)  # as it stood then
            if ref.name in STORED_FIELDS:
                return self.c[_COLUMN_OF_FIELD.get(ref.name, ref.name)]
            if ref.name in METRICS:
                return self.metric(ref.name)
        return _json(self._document(ref), ref.name, want)

    def _document(self, ref: ast.Ref) -> ColumnElement[Any]:
        """The JSON column holding a free attribute or an event property."""
        return self.c.attributes if ref.entity == "customer" else self._properties

    @property
    def _properties(self) -> ColumnElement[Any]:
        if self.scope.trigger is None:
            raise ValueError("event properties need an event trigger")  # the checker says so
        return self.scope.trigger.c.properties

    # -- customer metrics as of the due time ------------------------------------------------------

    def _events(self, event_type: str, within_us: int | None = None) -> Any:
        e = events.alias()
        conds = [
            e.c.customer_id == self.c.id,
            e.c.type == event_type,
            e.c.at_us <= self.scope.due,
        ]
        if within_us is not None:
            conds.append(e.c.at_us > self.scope.due - within_us)
        if self.scope.bounds is not None:
            conds.extend(self.scope.bounds(e.c.customer_id))
        return e, conds

    def some(
        self, event_type: str, within_us: int | None = None, whole: bool = False
    ) -> ColumnElement[bool]:
        """Whether the customer has such an event at or before the due time (and less than
        `within_us` before it).

        `whole` (see `condition`) with `Scope.hashed`: the events are read from a materialized
        CTE of the customers' (the batch's) events of the type, which PostgreSQL cannot probe
        for each occurrence and so hashes once. It estimates a batch's occurrences many times
        too low and would otherwise probe the events' index for each (the weekly group buy at
        M: 85 against 32 ms for a batch's 35,000). Elsewhere an EXISTS is run for each row,
        and would read the whole CTE each time."""
        if not (whole and self.scope.hashed):
            _, conds = self._events(event_type, within_us)
            return sa.exists().where(*conds)
        bounds = self.scope.bounds(events.c.customer_id) if self.scope.bounds else []
        typed = sa.select(events.c.customer_id, events.c.at_us).where(
            events.c.type == event_type, *bounds
        )
        those = typed.cte().prefix_with("MATERIALIZED")
        self.materialized = True
        conds = [those.c.customer_id == self.c.id, those.c.at_us <= self.scope.due]
        if within_us is not None:
            conds.append(those.c.at_us > self.scope.due - within_us)
        return sa.exists().where(*conds)

    def count(self, event_type: str, within: ast.Duration | None = None) -> ColumnElement[Any]:
        e, conds = self._events(event_type, _microseconds(within))
        return sa.select(sa.func.count()).select_from(e).where(*conds).scalar_subquery()

    def total(
        self, event_type: str, prop: str, within: ast.Duration | None = None
    ) -> ColumnElement[Any]:
        e, conds = self._events(event_type, _microseconds(within))
        summed = bounded_sum(json_num(e.c.properties, prop))
        return sa.select(summed).where(*conds).scalar_subquery()

    def order_time(self, func: Literal["min", "max"]) -> ColumnElement[Any]:
        e, conds = self._events(ORDER)
        return sa.select(getattr(sa.func, func)(e.c.at_us)).where(*conds).scalar_subquery()

    def aggregate(self, agg: ast.Aggregate) -> ColumnElement[Any]:
        if agg.func == "count":
            return self.count(agg.event, agg.within)
        return self.total(agg.event, agg.prop or "total", agg.within)

    def metric(self, name: str) -> ColumnElement[Any]:
        orders = self.count(ORDER)
        spent = self.total(ORDER, "total")
        match name:
            case "orders":
                return orders
            case "total_spent":
                return spent
            case "average_order":
                return spent / sa.func.nullif(orders, 0)
            case "first_order":
                return self.order_time("min")
            case "last_order":
                return self.order_time("max")
            case "days_since_last_order":
                return (self.scope.due - self.order_time("max")) // DAY_US
            case "returns":
                return self.count(RETURN)
            case "return_rate":
                return sa.func.coalesce(
                    sa.cast(self.count(RETURN), sa.Double) / sa.func.nullif(orders, 0), 0.0
                )
            case "points":
                return balance(
                    [
                        sa.select(points_total(fx.c.amount))
                        .where(
                            fx.c.customer_id == self.c.id,
                            fx.c.kind == "points",
                            fx.c.at_us < self.scope.due,
                            *keep,
                        )
                        .scalar_subquery()
                        for fx, keep in self.scope.effects.sources()
                    ]
                )
            case "rfm":
                return self.rfm()
        raise ValueError(name)  # tags are handled by membership; the checker knows the rest

    def rfm(self) -> ColumnElement[Any]:
        """The three scores from one pass over the customer's paid orders: the latest order's
        time, their number and their total are aggregates of one subquery."""
        cuts = self.scope.rfm
        e, conds = self._events(ORDER)
        latest = sa.func.max(e.c.at_us)
        days = (self.scope.due - latest) // DAY_US
        recency = sa.case(
            (latest.is_(None), 1),
            *((days <= cut, 5 - i) for i, cut in enumerate(cuts.recency_days)),
            else_=1,
        )

        def score(value: ColumnElement[Any], ladder: tuple[float, ...]) -> ColumnElement[Any]:
            return sa.case(
                *((value >= cut, 5 - i) for i, cut in enumerate(reversed(ladder))), else_=1
            )

        spent = bounded_sum(json_num(e.c.properties, "total"))
        parts = [recency, score(sa.func.count(), cuts.frequency), score(spent, cuts.monetary)]
        text = [sa.cast(p, sa.Text) for p in parts]
        scores = text[0].concat(text[1]).concat(text[2])
        return sa.select(scores).select_from(e).where(*conds).scalar_subquery()

    def has_tag(self, tag: ColumnElement[Any]) -> ColumnElement[bool]:
        """Whether the customer has `tag` at the due time: the latest rule effect before it,
        else the imported tags. Effects at one instant apply in rule, then action order."""
        latest_effects = [
            sa.select(fx.c.kind)
            .where(
                fx.c.customer_id == self.c.id,
                fx.c.kind.in_(("tag", "untag")),
                fx.c.tag == tag,
                fx.c.at_us < self.scope.due,
                *keep,
            )
            .order_by(fx.c.at_us.desc(), fx.c.rule_position.desc(), fx.c.position.desc())
            .limit(1)
            .scalar_subquery()
            for fx, keep in self.scope.effects.sources()
        ]
        imported = sa.exists().where(
            customer_tags.c.customer_id == self.c.id, customer_tags.c.tag == tag
        )
        # COALESCE reads its arguments only until one is set: each lookup runs at most once.
        fallback = sa.case((imported, "tag"), else_="untag")
        latest = sa.func.coalesce(*latest_effects, fallback) == "tag"
        # Most customers never had the tag from a rule: one probe per table says so, cheaper
        # than the latest effect's lookup, which sorts its rows. The probe names the kinds, so
        # that the index goes straight to the tag rather than through the customer's points.
        given = sa.or_(
            *(
                sa.exists().where(
                    fx.c.customer_id == self.c.id, fx.c.kind.in_(("tag", "untag")), fx.c.tag == tag
                )
                for fx, _ in self.scope.effects.sources()
            )
        )
        return sa.case((given, latest), else_=imported)


_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}
# Metrics of the latest or first paid order, and the average: unset while the customer has no
# paid order at the due time, so that any comparison of them is false until there is one.
_SET_BY_AN_ORDER = {"days_since_last_order", "last_order", "first_order", "average_order"}


def needed_events(expr: ast.Expr, segments: dict[str, ast.Segment]) -> frozenset[str]:
    """Event types a customer must have had by a due time for `expr` to hold then: a count, a
    sum or the return rate compared so that zero fails it (`customer.orders >= 3`, `customer.
    total_spent >= 1000`, `count(review.posted) > 0`, `customer.return_rate > 0.5`), or a
    comparison of a metric set only by a paid order.
    None are known of other tests; `or` needs what every side needs."""
    return _needed_by(expr, segments, _events_needed)


def needed_tags(expr: ast.Expr, segments: dict[str, ast.Segment]) -> frozenset[str]:
    """Tags a customer must hold at a due time for `expr` to hold then: `"vip" in customer.
    tags`, `customer.tags contains "vip"`. `or` needs what every side needs."""
    return _needed_by(expr, segments, _tags_needed)


def _needed_by(
    expr: ast.Expr,
    segments: dict[str, ast.Segment],
    test_needs: Callable[[ast.Expr], frozenset[str]],
) -> frozenset[str]:
    """What `expr` needs, given what a single test needs (`test_needs`)."""
    match expr:
        case ast.Logic(op="and", operands=ops):
            return frozenset().union(*(_needed_by(o, segments, test_needs) for o in ops))
        case ast.Logic(op="or", operands=ops):
            return frozenset.intersection(*(_needed_by(o, segments, test_needs) for o in ops))
        case ast.InSegment(segment=name, negated=False):
            return _needed_by(segments[name].condition, segments, test_needs)
    return test_needs(expr)


def _events_needed(expr: ast.Expr) -> frozenset[str]:
    match expr:
        case ast.Compare(op=op, left=left, right=right) if op in COMPARISONS:
            if _order_metric(left) or _order_metric(right):
                return frozenset({ORDER})
            for value, number, test in ((left, right, op), (right, left, _FLIPPED.get(op, op))):
                summed = _summed(value)
                zero_fails = isinstance(number, ast.Number) and not COMPARISONS[test](
                    0, float(number.value)
                )
                if summed and zero_fails:
                    return frozenset({summed})
        case ast.Between(value=value, low=low, high=high):
            if _order_metric(value):
                return frozenset({ORDER})
            summed = _summed(value)
            if (
                summed
                and isinstance(low, ast.Number)
                and isinstance(high, ast.Number)
                and not float(low.value) <= 0 <= float(high.value)
            ):
                return frozenset({summed})
    return frozenset()


def _tags_needed(expr: ast.Expr) -> frozenset[str]:
    match expr:
        case ast.Compare(op="in", left=ast.String(value=tag), right=ast.Ref() as ref) if (
            field_kind(ref) == "tags"
        ):
            return frozenset({tag})
        case ast.Compare(op="contains", left=ast.Ref() as ref, right=ast.String(value=tag)) if (
            field_kind(ref) == "tags"
        ):
            return frozenset({tag})
    return frozenset()


def _summed(expr: ast.Expr) -> str | None:
    """The event type without which a count, a sum or the return rate is 0."""
    counted = _counted(expr)
    if counted is not None:
        return counted[0]
    match expr:
        case ast.Ref(entity="customer", name="total_spent"):
            return ORDER
        case ast.Ref(entity="customer", name="return_rate"):
            return RETURN
        case ast.Aggregate(func="sum", event=event):
            return event
    return None


def _unless_unset(
    item: ast.Expr, value: ColumnElement[Any], test: ColumnElement[Any]
) -> ColumnElement[Any]:
    """`test` of `item` (compiled as `value`), but unset (NULL) when the item is: a lookup
    (EXISTS) finds nothing for it, which `not in` would make true. A literal is never unset."""
    if isinstance(item, ast.String | ast.Number | ast.Bool):
        return test
    return sa.case((value.is_(None), sa.null()), else_=test)


def any_of(tests: list[ColumnElement[bool]]) -> ColumnElement[bool]:
    """Whether any of these true/false values (`Compiler.test`) holds, trying them in order."""
    return _lazy("or", tests)


def _lazy(op: str, parts: list[ColumnElement[bool]]) -> ColumnElement[bool]:
    """`and` / `or` of true/false tests as CASE, which stops at the first operand deciding."""
    if len(parts) == 1:
        return parts[0]
    if op == "and":
        return sa.case(*((sa.not_(p), sa.false()) for p in parts[:-1]), else_=parts[-1])
    return sa.case(*((p, sa.true()) for p in parts[:-1]), else_=parts[-1])


def _needed(op: str, operands: tuple[ast.Expr, ...]) -> tuple[ast.Expr, ...]:
    """The operands of `and` left to test: `customer.orders >= 1` (or `> 0`, `!= 0`) goes when
    another operand compares a metric that is set only once there is a paid order (`customer.
    orders >= 1 and customer.days_since_last_order <= 180`: the second says it all)."""
    if op != "and" or not any(_needs_an_order(o) for o in operands):
        return operands
    return tuple(o for o in operands if not _some_order(o))  # the metric's test stays


def _needs_an_order(expr: ast.Expr) -> bool:
    match expr:
        case ast.Compare(op=op, left=left, right=right) if op in COMPARISONS:
            return any(_order_metric(side) for side in (left, right))
        case ast.Between(value=value, low=low, high=high):
            return any(_order_metric(side) for side in (value, low, high))
    return False


def _order_metric(expr: ast.Expr) -> bool:
    match expr:
        case ast.Ref(entity="customer", name=name):
            return name in _SET_BY_AN_ORDER
    return False


def _some_order(expr: ast.Expr) -> bool:
    """`customer.orders >= 1`, `> 0` or `!= 0` (either way round): there is a paid order."""
    if not isinstance(expr, ast.Compare):
        return False
    return _existence_test(expr.op, expr.left, expr.right) == ((ORDER, None), True)


def _existence_test(
    op: str, left: ast.Expr, right: ast.Expr
) -> tuple[tuple[str, ast.Duration | None], bool] | None:
    """For a comparison of a count with a number that only asks whether the count is 0: what
    is counted, and whether the test is "there is one" (else "there is none")."""
    if isinstance(left, ast.Number) and not isinstance(right, ast.Number):
        left, right, op = right, left, _FLIPPED.get(op, op)
    counted = _counted(left)
    if counted is None or not isinstance(right, ast.Number):
        return None
    n = float(right.value)
    # A count is a whole number >= 0: these tests only ask whether it is 0.
    if {">=": 0 < n <= 1, ">": 0 <= n < 1, "!=": n == 0}.get(op, False):
        return counted, True
    if {"<": 0 < n <= 1, "<=": 0 <= n < 1, "==": n == 0}.get(op, False):
        return counted, False
    return None


# A cap on the days of `days_since_last_order <= N`: 2,700 years reach back before any stored
# instant, and in microseconds they stay far within a BIGINT.
_ANY_DAYS = 1_000_000


def _microseconds(within: ast.Duration | None) -> int | None:
    return None if within is None else within.seconds * US


def _recency_test(op: str, left: ast.Expr, right: ast.Expr) -> int | None:
    """For `customer.days_since_last_order <= N` or `< N` (either way round), which asks only
    whether there is a paid order in the last whole days: how many days (the test holds when
    one was paid less than that many days before the due time). None for other tests."""
    if isinstance(left, ast.Number) and not isinstance(right, ast.Number):
        left, right, op = right, left, _FLIPPED.get(op, op)
    if not (_is_ref(left, "days_since_last_order") and isinstance(right, ast.Number)):
        return None
    n = float(right.value)
    if not math.isfinite(n) or op not in ("<", "<="):
        return None
    # The days are whole and >= 0: `<= 7.5` is `<= 7`, is "paid less than 8 days ago"; `< 8` too.
    days = math.floor(n) + 1 if op == "<=" else math.ceil(n)
    return min(max(days, 0), _ANY_DAYS)


def _is_ref(expr: ast.Expr, name: str) -> bool:
    return isinstance(expr, ast.Ref) and expr.entity == "customer" and expr.name == name


def _counted(expr: ast.Expr) -> tuple[str, ast.Duration | None] | None:
    """The event type (and window) a count expression counts, if `expr` is one."""
    match expr:
        case ast.Ref(entity="customer", name="orders"):
            return ORDER, None
        case ast.Ref(entity="customer", name="returns"):
            return RETURN, None
        case ast.Aggregate(func="count", event=event, within=within):
            return event, within
    return None


def _json(column: ColumnElement[Any], key: str, want: Kind) -> ColumnElement[Any]:
    if want in ("number", "duration", "instant"):
        return json_num(column, key)
    if want == "bool":
        return json_bool(column, key)
    return json_text(column, key)
