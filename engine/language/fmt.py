"""`nudge fmt`: one canonical layout for rule files, comments kept.

Layout: a named rule is a block, `rule "NAME"` and then one clause per line indented two
spaces, in the order when, if, unless, once, then; an unnamed rule is one line when it fits in
`WIDTH` columns (else a block like a named rule, without the name line); segments and policies
are one line each. Multi-line statements are separated by one blank line; one-line statements
that were on consecutive lines stay together. Own-line comments stay where they were (between
statements or between clauses); a trailing comment stays on the line it followed, or, when that
line is joined to another that keeps its own, goes on its own line above (comments keep their
order). Durations
keep the form they were written in (`3d` or `3 days`), numbers their digits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.language import ast
from engine.language.parse import parse_file
from engine.language.source import SourceFile

WIDTH = 100
INDENT = "  "
_UNIT_WORDS = {"m": "minute", "h": "hour", "d": "day", "w": "week"}
# Binding strength of expression nodes: a child weaker than its parent needs parentheses.
_OR, _AND, _NOT, _COMPARE, _SUM, _PRODUCT, _UNARY, _ATOM = range(8)


# ---------------------------------------------------------------------------------------------
# Values and expressions


def duration_text(duration: ast.Duration) -> str:
    if not duration.spelled:
        return f"{duration.amount}{duration.unit}"
    word = _UNIT_WORDS[duration.unit]
    return f"{duration.amount} {word}{'' if duration.amount == 1 else 's'}"


def string_text(value: str) -> str:
    out = []
    for index, char in enumerate(value):
        if char == '"':
            out.append('\\"')
        elif char == "\\" and (index + 1 == len(value) or value[index + 1] in '"\\'):
            out.append("\\\\")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def clock_text(clock: ast.ClockTime) -> str:
    return f"{clock.hour:02d}:{clock.minute:02d}"


def _strength(expr: ast.Expr) -> int:
    match expr:
        case ast.Logic(op="or"):
            return _OR
        case ast.Logic(op="and"):
            return _AND
        case ast.Not():
            return _NOT
        case ast.Compare() | ast.Between() | ast.IsSet() | ast.InSegment():
            return _COMPARE
        case ast.Arith(op="+" | "-"):
            return _SUM
        case ast.Arith():
            return _PRODUCT
        case ast.Negate():
            return _UNARY
    return _ATOM


def _operand(expr: ast.Expr, minimum: int) -> str:
    """`expr` printed where it must bind at least as tightly as `minimum`."""
    text = expr_text(expr)
    return text if _strength(expr) >= minimum else f"({text})"


def expr_text(expr: ast.Expr) -> str:
    """The canonical text of an expression; parsing it gives back an equal AST."""
    match expr:
        case ast.Number():
            return expr.text
        case ast.String():
            return string_text(expr.value)
        case ast.Bool():
            return "yes" if expr.value else "no"
        case ast.DurationValue():
            return duration_text(expr.duration)
        case ast.DateValue():
            return expr.value.isoformat()
        case ast.ListValue():
            return "[" + ", ".join(expr_text(i) for i in expr.items) + "]"
        case ast.Ref():
            return expr.dotted
        case ast.Aggregate():
            inner = expr.event + (f".{expr.prop}" if expr.prop else "")
            if expr.within is not None:
                inner += f" within {duration_text(expr.within)}"
            return f"{expr.func}({inner})"
        case ast.InSegment():
            return f"customer {'not in' if expr.negated else 'in'} {string_text(expr.segment)}"
        case ast.Compare():
            # Operands of a comparison are sums: anything looser needs parentheses.
            return f"{_operand(expr.left, _SUM)} {expr.op} {_operand(expr.right, _SUM)}"
        case ast.Between():
            parts = (_operand(e, _SUM) for e in (expr.value, expr.low, expr.high))
            value, low, high = parts
            return f"{value} between {low} and {high}"
        case ast.IsSet():
            return f"{_operand(expr.value, _SUM)} is {'not ' if expr.negated else ''}set"
        case ast.Arith():
            level = _strength(expr)
            # Left-associative: the right operand of equal strength needs parentheses.
            return f"{_operand(expr.left, level)} {expr.op} {_operand(expr.right, level + 1)}"
        case ast.Negate():
            return "-" + _operand(expr.operand, _UNARY)
        case ast.Logic():
            level = _strength(expr)
            # A nested `and` inside `and` was written with parentheses: keep them.
            return f" {expr.op} ".join(_operand(o, level + 1) for o in expr.operands)
        case ast.Not():
            return "not " + _operand(expr.operand, _NOT)
    raise AssertionError(f"unknown expression {expr!r}")


# ---------------------------------------------------------------------------------------------
# Clauses and statements


def _offset_text(offset: ast.Offset | None) -> str:
    if offset is None:
        return ""
    return f" {'+' if offset.sign > 0 else '-'} {duration_text(offset.duration)}"


def trigger_text(trigger: ast.Trigger) -> str:
    match trigger:
        case ast.EventTrigger():
            return trigger.event + _offset_text(trigger.offset)
        case ast.CustomerTrigger():
            return f"customer.{trigger.name}" + _offset_text(trigger.offset)
        case ast.HolidayTrigger():
            return f"holiday {string_text(trigger.name)}" + _offset_text(trigger.offset)
        case ast.ScheduleTrigger(every="day"):
            return "every day"
        case ast.ScheduleTrigger(every="week"):
            return f"every {ast.WEEKDAYS[trigger.weekday or 0]}"
        case ast.ScheduleTrigger():
            return f"every month on {trigger.day_of_month}"
        case ast.DateTrigger():
            return f"on {trigger.date.isoformat()}"
    raise AssertionError(f"unknown trigger {trigger!r}")


def _via(channel: str | None) -> str:
    return f" via {channel}" if channel else ""


def action_text(action: ast.Action) -> str:
    match action:
        case ast.Message():
            return f"{action.kind} {string_text(action.template)}{_via(action.channel)}"
        case ast.Coupon():
            text = f"coupon {string_text(action.template)} worth {action.worth.text}"
            text += "%" if action.percent else ""
            if action.min_spend is not None:
                text += f" min {action.min_spend.text}"
            if action.expires is not None:
                text += f" expires {duration_text(action.expires)}"
            return text + _via(action.channel)
        case ast.Points():
            return f"points {expr_text(action.amount)}"
        case ast.Task(kind="gift"):
            return f"gift {string_text(action.title)}"
        case ast.Task():
            assignee = f" for {string_text(action.assignee)}" if action.assignee else ""
            return f"task {string_text(action.title)}{assignee}"
        case ast.TagAction():
            return f"{action.kind} {string_text(action.tag)}"
    raise AssertionError(f"unknown action {action!r}")


@dataclass
class _Line:
    """One output line of a statement and the source line it came from."""

    text: str
    origin: int
    trailing: list[str] = field(default_factory=list)


def _rule_lines(rule: ast.Rule) -> list[_Line]:
    when = f"when {trigger_text(rule.when.trigger)}"
    if rule.when.at is not None:
        when += f" at {clock_text(rule.when.at)}"
    lines = [_Line(when, rule.when.span.line)]
    if rule.condition is not None:
        lines.append(_Line(f"if {expr_text(rule.condition)}", rule.condition.span.line))
    if rule.unless is not None:
        within = f" within {duration_text(rule.unless.within)}" if rule.unless.within else ""
        lines.append(_Line(f"unless {rule.unless.event}{within}", rule.unless.span.line))
    if rule.once is not None:
        every = f" every {duration_text(rule.once.every)}" if rule.once.every else ""
        lines.append(_Line(f"once{every}", rule.once.span.line))
    actions = " and ".join(action_text(a) for a in rule.actions)
    lines.append(_Line(f"then {actions}", rule.actions[0].span.line))
    return lines


def statement_lines(statement: ast.Statement, block: bool) -> list[_Line]:
    """The canonical lines of a statement; `block` forces an unnamed rule into block form."""
    line = statement.span.line
    match statement:
        case ast.Rule():
            clauses = _rule_lines(statement)
            if statement.name is not None:
                name_line = statement.name_span.line if statement.name_span else line
                head = _Line(f"rule {string_text(statement.name)}", name_line)
                return [head] + [_Line(INDENT + c.text, c.origin) for c in clauses]
            one = " ".join(c.text for c in clauses)
            if not block and len(one) <= WIDTH:
                return [_Line(one, line)]
            return [clauses[0]] + [_Line(INDENT + c.text, c.origin) for c in clauses[1:]]
        case ast.Segment():
            text = f"segment {string_text(statement.name)} = {expr_text(statement.condition)}"
        case ast.Limit():
            text = f"limit marketing to {statement.count} per {duration_text(statement.per)}"
        case ast.QuietHours():
            text = f"quiet hours {clock_text(statement.start)} to {clock_text(statement.end)}"
        case ast.Exclude():
            text = f"exclude if {expr_text(statement.condition)}"
    return [_Line(text, line)]


# ---------------------------------------------------------------------------------------------
# Files


def format_file(rule_file: ast.RuleFile) -> str:
    """The canonical text of a parsed file."""
    items: list[tuple[int, int, object]] = [
        (s.span.line, s.span.end_line, s) for s in rule_file.statements
    ]
    own = [c for c in rule_file.comments if c.own_line]
    trailing = _trailing_by_statement(rule_file)
    out: list[str] = []
    # The last item written: its last source line, whether it is a multi-line statement, and
    # whether it is a statement at all (else a comment).
    previous: tuple[int, bool, bool] | None = None

    def gap(start: int, multi: bool, is_statement: bool) -> None:
        if previous is None:
            return
        end, was_multi, was_statement = previous
        if start - end > 1 or (is_statement and was_statement and (multi or was_multi)):
            out.append("")

    statements = sorted(items, key=lambda item: item[0])
    own_iter = sorted(own, key=lambda c: c.span.line)
    position = 0
    for start, end, statement in statements:
        # Own-line comments before this statement.
        while position < len(own_iter) and own_iter[position].span.line < start:
            comment = own_iter[position]
            gap(comment.span.line, False, False)
            out.append(comment.text)
            previous = (comment.span.line, False, False)
            position += 1
        inner = []
        while position < len(own_iter) and own_iter[position].span.line <= end:
            inner.append(own_iter[position])
            position += 1
        mine = trailing.get(id(statement), [])
        block = bool(inner) or len({c.span.line for c in mine}) > 1
        lines = statement_lines(statement, block)  # type: ignore[arg-type]
        multi = len(lines) > 1
        gap(start, multi, True)
        out.extend(_with_comments(lines, inner, mine))
        previous = (end, multi, True)
    for comment in own_iter[position:]:
        gap(comment.span.line, False, False)
        out.append(comment.text)
        previous = (comment.span.line, False, False)
    return "\n".join(out) + "\n" if out else ""


def _trailing_by_statement(rule_file: ast.RuleFile) -> dict[int, list[ast.Comment]]:
    """The comments at the end of a line, by the statement each follows (by `id`): the last one
    begun before it, so that a comment after two statements on one line goes with the second."""
    found: dict[int, list[ast.Comment]] = {}
    for comment in rule_file.comments:
        if comment.own_line:
            continue
        at = (comment.span.line, comment.span.column)
        before = [
            s
            for s in rule_file.statements
            if (s.span.line, s.span.column) <= at and s.span.end_line >= comment.span.line
        ]
        if before:
            owner = max(before, key=lambda s: (s.span.line, s.span.column))
            found.setdefault(id(owner), []).append(comment)
    return found


def _with_comments(
    lines: list[_Line], inner: list[ast.Comment], trailing: list[ast.Comment]
) -> list[str]:
    """`lines` with the comments written inside the statement put back next to their clause, in
    the order they were written. A line keeps the last comment that ended one of its source
    lines; those before it (`if …  # one` joined with `and …  # two`) go on their own lines
    above it, as do the own-line comments written before that last one."""
    mine: dict[int, list[ast.Comment]] = {}
    for comment in sorted(trailing, key=lambda c: (c.span.line, c.span.column)):
        mine.setdefault(_line_for(lines, comment.span.line), []).append(comment)
    before: dict[int, list[ast.Comment]] = {}
    for index, comments in mine.items():
        *above, kept = comments
        lines[index].trailing.append(kept.text)
        before.setdefault(index, []).extend(above)
    kept_at = {index: comments[-1].span.line for index, comments in mine.items()}
    for comment in inner:
        found = next((i for i, line in enumerate(lines) if line.origin > comment.span.line), None)
        index = len(lines) - 1 if found is None else found
        if index > 0 and kept_at.get(index - 1, 0) > comment.span.line:
            index -= 1  # written before the comment the line above keeps: above that line
        before.setdefault(index, []).append(comment)
    out: list[str] = []
    for index, line in enumerate(lines):
        indent = line.text[: len(line.text) - len(line.text.lstrip())]
        above = sorted(before.get(index, []), key=lambda c: (c.span.line, c.span.column))
        out.extend(indent + comment.text for comment in above)
        out.append(line.text + "".join(f"  {t}" for t in line.trailing))
    return out


def _line_for(lines: list[_Line], source_line: int) -> int:
    """The output line that the source line `source_line` belongs to."""
    candidates = [i for i, line in enumerate(lines) if line.origin <= source_line]
    return max(candidates, key=lambda i: (lines[i].origin, i)) if candidates else 0


def format_source(source: SourceFile) -> str:
    """The canonical text of a source file; raises `RuleError` when it does not parse."""
    return format_file(parse_file(source))


def unnamed_moves(source: SourceFile, text: str) -> list[tuple[int, int]]:
    """The first lines, before and after, of the unnamed rules that formatting `source` as
    `text` moves. Such a rule is named `FILE:LINE`: moved, it is another rule to the daemon,
    whose `once` starts afresh."""

    def lines(rule_file: ast.RuleFile) -> list[int]:
        return [
            statement.span.line
            for statement in rule_file.statements
            if isinstance(statement, ast.Rule) and statement.name is None
        ]

    before = lines(parse_file(source))
    after = lines(parse_file(SourceFile(source.name, text)))
    return [(old, new) for old, new in zip(before, after, strict=True) if old != new]
