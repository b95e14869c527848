"""Parse tree → typed AST (`engine.language.ast`).

The Lark parse tree of one statement becomes one AST node; every node keeps the `Span` it was
written at (`propagate_positions=True` plus `v_args(meta=True)`). Problems that the grammar
cannot see — a date that is not on the calendar, a clause given twice — are recorded as
diagnostics; a statement with such a problem is left out of the file.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, cast

from lark import Token, Transformer, Tree, v_args
from lark.tree import Meta

from engine.errors import Diagnostic
from engine.language import ast
from engine.language.source import Span
from engine.language.syntax_diagnosis import NUMBERS, date_written_otherwise

_DURATION = re.compile(r"(\d+)\s*([a-z]+)")
# Rules count and compare amounts, counts and thresholds: numbers beyond these are slips of the
# keyboard, and would leave what the databases compute exactly (a double holds every whole
# number up to 2**53) or the calendar (year 9999).
MAX_NUMBER = 10**15
MAX_DURATION_S = 36_500 * 86_400
_ESCAPE = re.compile(r"\\([\\\"])")
_DOTTED_PARTS = {"event": 2, "ref": 2, "aggregate": 3}


def span_of(file: str, where: Meta | Token) -> Span:
    return Span(
        file,
        cast(int, where.line),
        cast(int, where.column),
        cast(int, where.end_line),
        cast(int, where.end_column),
    )


def unquote(token: str) -> str:
    """The text of a string literal: `\\"` is a quote, `\\\\` a backslash, all else as written."""
    return _ESCAPE.sub(r"\1", token[1:-1])


# A number written with thousands separators inside a list, `[1,000, 2,000]`: its commas are
# read as the list's, so it parses, as numbers never meant (1, 0, 2, 0). The first part of such a
# number, then parts of three digits, each after a comma with no space on either side.
_FIRST_PART = re.compile(r"[1-9][0-9]{0,2}")
_NEXT_PART = re.compile(r"[0-9]{3}(?:\.[0-9]+)?")


def _thousands_in_list(file: str, children: list[Any], numbers: bool = False) -> list[Diagnostic]:
    """E137 at each number of a list written with thousands separators, once a part after a
    comma starts with `0` (`1,000`, `2,050`), which no number of a list is written with.

    A part `000`, or a third part (`1,050,300`), proves separators: no code is `000`. A part
    such as `050` alone does not: it may be a code with a leading zero after another value
    (`[1,050]`, the codes 1 and 050) as well as 1050, and the help gives both readings, the
    codes in quotes, as the shop's data holds them (text); or, where the list's values are
    `numbers` (`customer.orders in [1,050]`, `order.total in [...]`), which are never codes,
    the numbers 1 and 50. Once a list holds a proof, its numbers written so are all told: with
    a part starting with `0`, as one number; else (`1,500` beside `2,000`) with both readings,
    as the merchant is to choose."""
    runs: list[list[ast.Number]] = []
    for before, comma, value in zip(children, children[1:], children[2:], strict=False):
        if not (isinstance(comma, Token) and comma.type == "COMMA"):
            continue
        left = before.operand if isinstance(before, ast.Negate) else before
        if not (isinstance(left, ast.Number) and isinstance(value, ast.Number)):
            continue
        joined = (
            (left.span.end_line, left.span.end_column) == (comma.line, comma.column)
            and (comma.end_line, comma.end_column) == (value.span.line, value.span.column)
            and _NEXT_PART.fullmatch(value.text) is not None
        )
        if joined and runs and runs[-1][-1] is left and "." not in left.text:
            runs[-1].append(value)
        elif joined and _FIRST_PART.fullmatch(left.text):
            runs.append([left, value])

    def zero_led(run: list[ast.Number]) -> bool:
        return any(part.text.startswith("0") for part in run[1:])

    def proven(run: list[ast.Number]) -> bool:
        return len(run) > 2 or any(part.text.startswith("000") for part in run[1:])

    if not any(zero_led(run) for run in runs):
        return []
    in_a_proof = any(proven(run) for run in runs)
    texts = any(isinstance(child, ast.String) for child in children)
    problems = []
    for run in runs:
        plain = "".join(part.text for part in run)
        parts = [part.text for part in run]
        first, last = run[0].span, run[-1].span
        if proven(run) or (in_a_proof and zero_led(run)):
            help = f"write `{plain}`" if not texts else f'write `"{plain}"`'
        elif zero_led(run) and numbers:  # `customer.orders in [1,050]`: 1050, or 1 and 50
            values = ", ".join(_LEADING_ZEROS.sub("", part) for part in parts)
            help = f"write `{plain}`, or `{values}` if it is {len(run)} numbers"
        elif zero_led(run):
            # `[1,050]`: 1050, or the codes 1 and 050, which the shop's data holds as text.
            codes = ", ".join(f'"{part}"' for part in parts)
            number = f'"{plain}"' if texts else plain
            help = (
                f"write `{number}`, or `{codes}` if these are {len(run)} codes (a code with a "
                "leading zero is written in quotes, as the shop's data holds it)"
            )
        elif texts:  # a list of text: each value in quotes
            values = ", ".join(f'"{part}"' for part in parts)
            help = f'write `"{plain}"`, or `{values}` if these are {len(run)} values'
        else:
            help = f"write `{plain}`, or `{', '.join(parts)}` if it is {len(run)} numbers"
        problems.append(
            Diagnostic(
                "error",
                "E137",
                "a number is written without thousands separators"
                if proven(run) or in_a_proof
                else "a comma with no space in a list: one number, or two values?",
                Span(file, first.line, first.column, last.end_line, last.end_column),
                label="in a list, a comma separates two values",
                help=help,
            )
        )
    return problems


_LEADING_ZEROS = re.compile(r"^0+(?=[0-9])")


def _as_written(arith: ast.Arith) -> str | None:
    """Numbers joined by one operator written with no space (`2026/01/05`), as written; None for
    anything else (`2026 - 1`, `order.total / 2`)."""
    parts: list[ast.Number] = []
    node: ast.Expr = arith
    while isinstance(node, ast.Arith) and node.op == arith.op:
        if not isinstance(node.right, ast.Number):
            return None
        parts.insert(0, node.right)
        node = node.left
    if not isinstance(node, ast.Number):
        return None
    parts.insert(0, node)
    span = arith.span
    written = arith.op.join(part.text for part in parts)
    if span.line != span.end_line or span.end_column - span.column != len(written):
        return None
    return written


def _a_number(value: Any) -> bool:
    """Whether `value`, compared with a list, is a number, never a code: a customer's metric
    (`customer.orders`), an order's total (which `customer.total_spent` sums), a count or a sum,
    arithmetic."""
    match value:
        case ast.Ref(entity="customer"):
            return value.dotted in NUMBERS
        case ast.Ref(name=name):
            return name == "total"
        case ast.Aggregate() | ast.Arith() | ast.Number() | ast.Negate():
            return True
    return False


@dataclass(frozen=True)
class _Clause:
    """An `if`, `unless` or `once` clause on its way into a `Rule`."""

    kind: str
    value: Any
    span: Span


def to_statement(tree: Tree, file: str) -> tuple[ast.Statement | None, list[Diagnostic]]:
    """The AST of one statement's parse tree, or None and the problems that prevent it."""
    builder = _ToAst(file)
    node = builder.transform(tree)
    return (None if builder.problems else cast(ast.Statement, node)), builder.problems


@v_args(meta=True)
class _ToAst(Transformer):
    """Builds AST nodes bottom-up, recording problems in `problems`."""

    def __init__(self, file: str) -> None:
        super().__init__()
        self.file = file
        self.problems: list[Diagnostic] = []
        # Each list's words and the E137 told of it, by the list's `id`: told anew where the
        # list turns out to hold numbers (`_compared_list`).
        self._lists: dict[int, tuple[list[Any], list[Diagnostic]]] = {}

    # -- helpers ------------------------------------------------------------------------------

    def _span(self, where: Meta | Token) -> Span:
        return span_of(self.file, where)

    def _problem(
        self, code: str, message: str, where: Meta | Token, label: str, help: str | None = None
    ) -> None:
        self.problems.append(
            Diagnostic("error", code, message, self._span(where), label=label, help=help)
        )

    def _duration(self, token: Token) -> ast.Duration:
        match = _DURATION.fullmatch(str(token))
        assert match is not None, token  # the DURATION terminal guarantees the shape
        digits, word = match[1], match[2]
        unit = cast(ast.DurationUnit, word[0])
        longest = MAX_DURATION_S // ast.UNIT_SECONDS[unit]
        amount = int(digits) if len(digits.lstrip("0")) <= len(str(longest)) else longest + 1
        if amount > longest:
            self._problem(
                "E317",
                f"`{token}` is longer than a duration may be",
                token,
                f"at most {MAX_DURATION_S // 86_400}d (about a hundred years)",
            )
            amount = longest
        return ast.Duration(amount, unit, self._span(token), len(word) > 1)

    def _dotted(self, token: Token, what: str) -> list[str]:
        parts = str(token).split(".")
        want = _DOTTED_PARTS[what]
        if len(parts) != want:
            examples = {
                "event": ("an event name", "`order.received`"),
                "ref": ("a value", "`customer.orders` or `order.total`"),
                "aggregate": ("a sum", "`sum(order.paid.total)`"),
            }[what]
            if what == "aggregate" and len(parts) == 2:
                message = f"`{token}` names an event but not what to add up"
            else:
                message = f"`{token}` has {len(parts)} parts; {examples[0]} has {want}"
            self._problem(
                "E108",
                message,
                token,
                f"expected {examples[0]} such as {examples[1]}",
            )
        return parts

    def _whole_number(self, token: Token, what: str) -> int:
        value = self._number(token).value
        if "." in token:
            self._problem("E106", f"{what} must be a whole number", token, "not a whole number")
        return int(value)

    def _tokens(self, children: list[Any]) -> list[Token]:
        return [c for c in children if isinstance(c, Token)]

    def _values(self, children: list[Any]) -> list[Any]:
        return [c for c in children if not isinstance(c, Token)]

    # -- statements -----------------------------------------------------------------------------

    def rule(self, meta: Meta, children: list[Any]) -> ast.Rule:
        when: ast.When | None = None
        clauses: dict[str, _Clause] = {}
        for child in children:
            if isinstance(child, ast.When):
                when = child
            else:
                if child.kind in clauses:
                    first = clauses[child.kind].span
                    self.problems.append(
                        Diagnostic(
                            "error",
                            "E105",
                            f"this rule has two `{child.kind}` clauses",
                            child.span,
                            label=f"second `{child.kind}`",
                            help=f"keep one; the first is at line {first.line}"
                            + (
                                " (join conditions with `and` or `or`)"
                                if child.kind == "if"
                                else ""
                            ),
                        )
                    )
                clauses.setdefault(child.kind, child)
        assert when is not None
        name = clauses.get("name")
        return ast.Rule(
            name=name.value if name else None,
            name_span=name.span if name else None,
            when=when,
            condition=clauses["if"].value if "if" in clauses else None,
            unless=clauses["unless"].value if "unless" in clauses else None,
            once=clauses["once"].value if "once" in clauses else None,
            actions=clauses["then"].value,
            span=self._span(meta),
        )

    def rule_name(self, meta: Meta, children: list[Any]) -> _Clause:
        token = children[1]
        return _Clause("name", unquote(token), self._span(token))

    def when_clause(self, meta: Meta, children: list[Any]) -> ast.When:
        values = self._values(children)
        at = values[1] if len(values) > 1 else None
        return ast.When(values[0], at, self._span(meta))

    def at_time(self, meta: Meta, children: list[Any]) -> ast.ClockTime:
        return self._clock(children[1])

    def offset(self, meta: Meta, children: list[Any]) -> ast.Offset:
        sign = 1 if children[0] == "+" else -1
        return ast.Offset(sign, self._duration(children[1]), self._span(meta))

    def event_trigger(self, meta: Meta, children: list[Any]) -> ast.Trigger:
        token = children[0]
        offset = children[1] if len(children) > 1 else None
        entity, *rest = self._dotted(token, "event")
        name = ".".join(rest)
        if entity == "customer" and name in ast.CUSTOMER_DATE_FIELDS | ast.CUSTOMER_TIME_FIELDS:
            return ast.CustomerTrigger(name, self._span(token), offset, self._span(meta))
        return ast.EventTrigger(str(token), self._span(token), offset, self._span(meta))

    def holiday_trigger(self, meta: Meta, children: list[Any]) -> ast.HolidayTrigger:
        token = children[1]
        offset = children[2] if len(children) > 2 else None
        return ast.HolidayTrigger(unquote(token), self._span(token), offset, self._span(meta))

    def schedule_trigger(self, meta: Meta, children: list[Any]) -> ast.ScheduleTrigger:
        span = self._span(meta)
        what = children[1]
        if isinstance(what, int):
            return ast.ScheduleTrigger("week", weekday=what, span=span)
        if what.type == "DAY":
            return ast.ScheduleTrigger("day", span=span)
        day = self._whole_number(children[3], "a day of the month")
        return ast.ScheduleTrigger("month", day_of_month=day, span=span)

    def weekday(self, meta: Meta, children: list[Any]) -> int:
        return ast.WEEKDAYS.index(str(children[0]))

    def date_trigger(self, meta: Meta, children: list[Any]) -> ast.DateTrigger:
        return ast.DateTrigger(self._date(children[1]), self._span(meta))

    def if_clause(self, meta: Meta, children: list[Any]) -> _Clause:
        return _Clause("if", children[1], self._span(meta))

    def unless_clause(self, meta: Meta, children: list[Any]) -> _Clause:
        token = children[1]
        self._dotted(token, "event")
        within = self._duration(children[3]) if len(children) > 3 else None
        span = self._span(meta)
        return _Clause("unless", ast.Unless(str(token), self._span(token), within, span), span)

    def once_clause(self, meta: Meta, children: list[Any]) -> _Clause:
        every = self._duration(children[2]) if len(children) > 2 else None
        span = self._span(meta)
        return _Clause("once", ast.Once(every, span), span)

    def then_clause(self, meta: Meta, children: list[Any]) -> _Clause:
        return _Clause("then", tuple(self._values(children)), self._span(meta))

    # -- actions ----------------------------------------------------------------------------------

    def _message(self, meta: Meta, children: list[Any]) -> ast.Message:
        kind, template = children[0], children[1]
        channel = children[2] if len(children) > 2 else (None, None)
        return ast.Message(
            kind=cast(Any, str(kind)),
            template=unquote(template),
            template_span=self._span(template),
            channel=channel[0],
            channel_span=channel[1],
            span=self._span(meta),
        )

    message = _message
    followup = _message

    def via(self, meta: Meta, children: list[Any]) -> tuple[str, Span]:
        return str(children[1]), self._span(children[1])

    def coupon_min(self, meta: Meta, children: list[Any]) -> tuple[str, Any, Span]:
        return "min", self._number(children[1]), self._span(meta)

    def coupon_expires(self, meta: Meta, children: list[Any]) -> tuple[str, Any, Span]:
        return "expires", self._duration(children[1]), self._span(meta)

    def coupon(self, meta: Meta, children: list[Any]) -> ast.Coupon:
        template = children[1]
        worth = self._number(children[3])
        percent = len(children) > 4 and isinstance(children[4], Token)
        options: dict[str, Any] = {}
        for option in children[5 if percent else 4 :]:
            key, value, span = option if len(option) == 3 else ("via", option, option[1])
            if key in options:
                word = {"min": "min", "expires": "expires", "via": "via"}[key]
                self.problems.append(
                    Diagnostic(
                        "error",
                        "E105",
                        f"this coupon has `{word}` twice",
                        span,
                        label=f"second `{word}`",
                        help="keep one of them",
                    )
                )
            options.setdefault(key, value)
        channel = options.get("via", (None, None))
        return ast.Coupon(
            template=unquote(template),
            template_span=self._span(template),
            worth=worth,
            percent=percent,
            min_spend=options.get("min"),
            expires=options.get("expires"),
            channel=channel[0],
            channel_span=channel[1],
            span=self._span(meta),
        )

    def points(self, meta: Meta, children: list[Any]) -> ast.Points:
        return ast.Points(children[1], self._span(meta))

    def task(self, meta: Meta, children: list[Any]) -> ast.Task:
        title = children[1]
        team = children[3] if len(children) > 3 else None
        return ast.Task(
            "task",
            unquote(title),
            self._span(title),
            None if team is None else unquote(team),
            self._span(meta),
            None if team is None else self._span(team),
        )

    def gift(self, meta: Meta, children: list[Any]) -> ast.Task:
        item = children[1]
        return ast.Task("gift", unquote(item), self._span(item), ast.GIFT_TEAM, self._span(meta))

    def _tag(self, meta: Meta, children: list[Any]) -> ast.TagAction:
        kind, tag = children
        return ast.TagAction(cast(Any, str(kind)), unquote(tag), self._span(tag), self._span(meta))

    tag = _tag
    untag = _tag

    # -- segments and policies ------------------------------------------------------------------

    def segment(self, meta: Meta, children: list[Any]) -> ast.Segment:
        name = children[1]
        return ast.Segment(unquote(name), self._span(name), children[3], self._span(meta))

    def limit(self, meta: Meta, children: list[Any]) -> ast.Limit:
        count = self._whole_number(children[3], "the number of messages in a limit")
        return ast.Limit(count, self._duration(children[5]), self._span(meta))

    def quiet_hours(self, meta: Meta, children: list[Any]) -> ast.QuietHours:
        start, end = (self._clock(children[2]), self._clock(children[4]))
        return ast.QuietHours(start, end, self._span(meta))

    def exclude(self, meta: Meta, children: list[Any]) -> ast.Exclude:
        return ast.Exclude(children[2], self._span(meta))

    # -- expressions ------------------------------------------------------------------------------

    def or_expr(self, meta: Meta, children: list[Any]) -> ast.Logic:
        return ast.Logic("or", tuple(self._values(children)), self._span(meta))

    def and_expr(self, meta: Meta, children: list[Any]) -> ast.Logic:
        return ast.Logic("and", tuple(self._values(children)), self._span(meta))

    def not_(self, meta: Meta, children: list[Any]) -> ast.Not:
        return ast.Not(children[1], self._span(meta))

    def compare_op(self, meta: Meta, children: list[Any]) -> str:
        return str(children[0])

    def compare(self, meta: Meta, children: list[Any]) -> ast.Compare:
        left, op, right = children
        self._dates_as_arithmetic(left, right)
        if op == "in":
            self._compared_list(left, right)
        elif op == "contains":
            self._compared_list(right, left)
        return ast.Compare(op, left, right, self._span(meta))

    def not_in(self, meta: Meta, children: list[Any]) -> ast.Compare:
        self._dates_as_arithmetic(children[0])
        self._compared_list(children[0], children[3])
        return ast.Compare("not in", children[0], children[3], self._span(meta))

    def _compared_list(self, value: Any, listed: Any) -> None:
        """E137 of `listed` told anew, in its place, where `value`, looked for in it, is a
        number: its values are numbers then, never codes."""
        if not isinstance(listed, ast.ListValue) or not _a_number(value):
            return
        children, told = self._lists.get(id(listed), ([], []))
        if not told:
            return
        at = self.problems.index(told[0])
        self.problems[at : at + len(told)] = _thousands_in_list(self.file, children, numbers=True)

    def between(self, meta: Meta, children: list[Any]) -> ast.Between:
        self._dates_as_arithmetic(children[0], children[2], children[4])
        return ast.Between(children[0], children[2], children[4], self._span(meta))

    def is_set(self, meta: Meta, children: list[Any]) -> ast.IsSet:
        return ast.IsSet(children[0], False, self._span(meta))

    def is_not_set(self, meta: Meta, children: list[Any]) -> ast.IsSet:
        return ast.IsSet(children[0], True, self._span(meta))

    def in_segment(self, meta: Meta, children: list[Any]) -> ast.InSegment:
        name = children[-1]
        return ast.InSegment(unquote(name), False, self._span(name), self._span(meta))

    def not_in_segment(self, meta: Meta, children: list[Any]) -> ast.InSegment:
        name = children[-1]
        return ast.InSegment(unquote(name), True, self._span(name), self._span(meta))

    def arith(self, meta: Meta, children: list[Any]) -> ast.Arith:
        left, op, right = children
        return ast.Arith(cast(Any, str(op)), left, right, self._span(meta))

    def _dates_as_arithmetic(self, *values: Any) -> None:
        """E150 at each of `values`, compared (or listed to compare with), that is a date
        written with slashes or dashes and no space (`2026/01/05`, `2026-1-5`), which parses as
        arithmetic, 2026 / 1 / 5. Not elsewhere: `points 2000/10/10` is a number, never a date."""
        for value in values:
            written = _as_written(value) if isinstance(value, ast.Arith) else None
            help = date_written_otherwise(written or "")
            if help is None or written is None:
                continue
            op = value.op
            self.problems.append(
                Diagnostic(
                    "error",
                    "E150",
                    "a date is written YYYY-MM-DD",
                    value.span,
                    label=f"read as arithmetic: {written.replace(op, f' {op} ')}",
                    help=help,
                )
            )

    def negate(self, meta: Meta, children: list[Any]) -> ast.Negate:
        return ast.Negate(children[1], self._span(meta))

    def group(self, meta: Meta, children: list[Any]) -> ast.Expr:
        return cast(ast.Expr, children[1])

    def number(self, meta: Meta, children: list[Any]) -> ast.Number:
        return self._number(children[0])

    def string(self, meta: Meta, children: list[Any]) -> ast.String:
        return ast.String(unquote(children[0]), self._span(children[0]))

    def yes(self, meta: Meta, children: list[Any]) -> ast.Bool:
        return ast.Bool(True, self._span(children[0]))

    def no(self, meta: Meta, children: list[Any]) -> ast.Bool:
        return ast.Bool(False, self._span(children[0]))

    def duration_value(self, meta: Meta, children: list[Any]) -> ast.DurationValue:
        return ast.DurationValue(self._duration(children[0]), self._span(children[0]))

    def date_value(self, meta: Meta, children: list[Any]) -> ast.DateValue:
        return ast.DateValue(self._date(children[0]), self._span(children[0]))

    def ref(self, meta: Meta, children: list[Any]) -> ast.Ref:
        token = children[0]
        entity, *rest = self._dotted(token, "ref")
        return ast.Ref(entity, ".".join(rest), self._span(token))

    def list_value(self, meta: Meta, children: list[Any]) -> ast.ListValue:
        told = _thousands_in_list(self.file, children)
        self.problems.extend(told)
        self._dates_as_arithmetic(*self._values(children))
        listed = ast.ListValue(tuple(self._values(children)), self._span(meta))
        self._lists[id(listed)] = (children, told)
        return listed

    def aggregate(self, meta: Meta, children: list[Any]) -> ast.Aggregate:
        func, token = str(children[0]), children[2]
        within = self._duration(children[4]) if children[3].type == "WITHIN" else None
        parts = self._dotted(token, "aggregate" if func == "sum" else "event")
        event = ".".join(parts[:2])
        prop = ".".join(parts[2:]) or None
        return ast.Aggregate(
            cast(Any, func), event, self._span(token), prop, within, self._span(meta)
        )

    # -- literals -------------------------------------------------------------------------------

    def _number(self, token: Token) -> ast.Number:
        text = str(token)
        if len(text.split(".")[0].lstrip("0")) > len(str(MAX_NUMBER)) - 1:
            self._problem(
                "E318",
                f"`{text[:24]}{'...' if len(text) > 24 else ''}` is larger than a number may be",
                token,
                f"at most {MAX_NUMBER - 1:_}".replace("_", ","),
            )
            return ast.Number(MAX_NUMBER - 1, text, self._span(token))
        value: float | int = float(text) if "." in text else int(text)
        return ast.Number(value, text, self._span(token))

    def _clock(self, token: Token) -> ast.ClockTime:
        hour, minute = str(token).split(":")
        return ast.ClockTime(int(hour), int(minute), self._span(token))

    def _date(self, token: Token) -> dt.date:
        try:
            return dt.date.fromisoformat(str(token))
        except ValueError:
            self._problem(
                "E107",
                f"`{token}` is not a date on the calendar",
                token,
                "no such day",
                help="dates are written YYYY-MM-DD, for example 2026-11-11",
            )
            return dt.date(1970, 1, 1)
