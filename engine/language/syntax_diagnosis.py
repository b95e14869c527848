"""Syntax errors told in plain words: from Lark's error to the diagnostic a merchant reads.

The parser stops at the first word that cannot come next, which is often not where the mistake
is. `diagnose` looks around that word before it falls back on what Lark says: a line that ends
in an operator or `and` and goes on at the next, or an operator before `then` (E135, at that
operator), an action without `then` or `and` before it (E110, E113, asked of the parser), a
trigger compared as a value (E136), an unclosed `(` (E131, at it), a typographic or full-width
character that stands for one of the language's (E101), a duration written wrongly
(`engine.language.duration_errors`), `=>` for `>=`, `every weekday`, a misspelt keyword (E102), and
the table of typical mistakes of `engine.language.syntax_errors`, matched with Lark's
`match_examples`; else E100 with the words that may come there.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
import unicodedata
from decimal import Decimal
from functools import cache

from lark import Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.parsers.lalr_parser_state import ParserState

from engine.errors import Diagnostic
from engine.language.duration_errors import CHINESE_UNITS, Slip, duration_slip, unit_and_size
from engine.language.grammar import SCAN, SYNC_WORDS, keywords, misspelt_start, parser, starts_line
from engine.language.source import Span
from engine.language.syntax_errors import ACTIONS, MISTAKES, Mistake, describe_expected, keyword_of


def diagnose(file: str, text: str, error: UnexpectedInput) -> Diagnostic:
    """The diagnostic for the syntax error `error`, met in `text`, the text of `file`."""
    if isinstance(error, UnexpectedCharacters):
        return _bad_character(file, text, error)
    assert isinstance(error, UnexpectedToken)
    token = error.token
    span = _token_span(file, text, token)
    expected = set(error.accepts or error.expected)
    found = "the end of the file" if token.type == "$END" else f"`{_shorten(token)}`"

    # `10：00`: the parser stops at the word before a look-alike, which the lexer has not read.
    if token.type != "$END" and token.end_pos is not None:
        look_alike_after = _look_alike_at(file, text, token.end_pos)
        if look_alike_after is not None:
            return look_alike_after

    dangling = (
        _no_upper_bound(file, text, error)
        or _half_comparison(file, text, error)
        or _is_for_equals(file, text, error)
        or _dangling(file, text, error)
        or _nothing_after(file, text, error)
    )
    if dangling is not None:
        return dangling
    # `wen` starting a line after an unfinished statement: what that statement lacks, as before
    # any statement word (`this rule has no then`); the word itself is reported next.
    if token.type == "NAME" and misspelt_start(text, token.start_pos or 0, str(token)):
        as_start = _as_statement_start(error)
        if as_start is not None:
            before = diagnose(file, text, as_start)
            if before.code != "E100":
                return before
    if token.type == "NUMBER" and "DURATION" in expected:
        window = _window_range(file, text, error)
        if window is not None:
            return window
        slip = duration_slip(text, token.start_pos or 0)
        if slip is not None:
            return _slip_diagnostic(file, text, slip)
    word_slip = (
        _offset_after_at(file, text, error)
        or _quote_run_on(file, text, error)
        or _name_without_rule(span, text, error)
        or _unit_without_number(file, text, error)
        or _twelve_hour(file, text, error)
        or _decimal_comma(file, text, error)
        or _thousands(file, text, token)
        or _spaced_thousands(file, text, error)
        or _shorthand(file, text, token.start_pos or 0)
        or _unit_of_amount(file, text, error)
        or _worth_off(file, text, error)
        or _worth_after(file, text, error)
        or _spoken_window(file, text, error)
        or _date_otherwise(file, text, token.start_pos or 0)
        or _date_without_year(file, text, error)
        or _between_to(file, text, error)
        or _once_a_period(file, text, error)
        or _limit_period(file, text, error)
        or _operator_slip(file, text, token)
        or _every_weekday(span, token, expected)
        or _delay_first(file, text, error)
        or _compared_trigger(span, text, error)
        or _two_slots(file, text, error)
        or _joined_to_trigger(span, text, error)
        or _segments_listed(span, text, error)
    )
    if word_slip is not None:
        return word_slip
    suggestion = _nearest_keyword(token, expected)
    if suggestion is not None:
        return Diagnostic(
            "error",
            "E102",
            f"unknown word `{token}`",
            span,
            label="not a word of the rule language here",
            help=f"did you mean `{suggestion}`?",
        )
    action = _action_said(file, text, error)
    if action is not None:
        return action
    slip = _slip_before(text, token)
    if slip is not None:
        stack = error.interactive_parser.parser_state.value_stack
        return _compared_slip(file, text, slip, stack) or _slip_diagnostic(file, text, slip)
    in_parentheses = _list_in_parentheses(file, text, token)
    if in_parentheses is not None:
        return in_parentheses
    mistake = (
        _missing_joint(error)
        or _or_between_actions(error, text)
        or _after_actions(error)
        or _match_mistake(error)
    )
    if (mistake is not None and mistake.code == "E131") or expected == {"RPAR"}:
        unclosed = _unclosed(file, text, token)
        if unclosed is not None:
            return unclosed
    if mistake is not None:
        help = mistake.help
        if mistake.code == "E139" and str(token)[1:-1].isidentifier():
            help = f"write it without quotes: `via {str(token)[1:-1]}`"
        return Diagnostic("error", mistake.code, mistake.message, span, mistake.label, help)
    return Diagnostic(
        "error",
        "E100",
        f"unexpected {found}",
        span,
        label=f"expected {describe_expected(expected)}",
    )


# The one edit that the help of these diagnostics names: a word to write before the one the
# parser stopped at (`then` before the first action, a value where one is missing, ...), or
# instead of it (`==` for `=`, a word in quotes, a number with a unit).
_WRITE_BEFORE = {
    "E110": Token("THEN", "then"),
    "E113": Token("AND", "and"),
    "E122": Token("AT", "at"),
    "E131": Token("RPAR", ")"),
    "E135": Token("NUMBER", "3"),
}
_WRITE_INSTEAD = {
    "E115": Token("EQ", "=="),
    "E116": Token("STRING", '"x"'),
    "E117": Token("STRING", '"x"'),
    "E118": Token("STRING", '"x"'),
    "E121": Token("DURATION", "3d"),
    "E139": Token("NAME", "email"),
    "E142": Token("AND", "and"),
}


def correction(error: UnexpectedToken, diagnostic: Diagnostic) -> list[Token] | None:
    """The words to read in place of the one the parser stopped at, when the help of
    `diagnostic` names the one edit that mends the error: the keyword a word misspells, `==`
    for `=`, `and` between two actions, `then` before the first, a word put in quotes, ...
    None when it names none (the fix is the merchant's to choose)."""
    token = error.token
    code = diagnostic.code
    if code == "E102":
        keyword = _nearest_keyword(token, set(error.accepts or error.expected))
        return [_borrow(Token(keyword.upper(), keyword), token)] if keyword else None
    if code == "E113" and token.type in ("COMMA", "OR", "THEN"):  # `and` in their place
        return [_borrow(_WRITE_BEFORE[code], token)]
    if code in ("E112", "E146") and token.type == "NAME":
        # `off` after a worth, a verb before an action, deleted; not a channel for an action
        return [] if diagnostic.help and diagnostic.help.startswith("delete") else None
    if code == "E136" and token.type in ("AND", "COMMA"):  # `if` for `and`; `,` deleted
        return [_borrow(Token("IF", "if"), token)] if token.type == "AND" else []
    if code == "E148" and diagnostic.span is not None:
        if diagnostic.span.end_column != token.end_column:
            return None  # `in the last`: more than the word to replace
        if diagnostic.help and diagnostic.help.startswith("delete"):
            return []  # `expires in 7d`
        return [_borrow(Token("WITHIN", "within"), token)]
    if code == "E115" and token.type != "ASSIGN":
        return None  # `is` for `==`: the word to replace is behind the parser
    if code == "E141":  # a currency is deleted, `percent` is written `%` where one may come
        if _currency(token):
            return []
        expected = set(error.accepts or error.expected)
        percent = token.type == "NAME" and "PERCENT" in expected
        return [_borrow(Token("PERCENT", "%"), token)] if percent else None
    if code in _WRITE_INSTEAD:
        return [_borrow(_WRITE_INSTEAD[code], token)]
    if code in _WRITE_BEFORE:
        return [_borrow(_WRITE_BEFORE[code], token), token]
    return None


def _borrow(word: Token, token: Token) -> Token:
    """`word` as if written where `token` was."""
    return Token.new_borrow_pos(word.type, word.value, token)


# The last word or operator of a line, and the words and operators that need something after
# them: a line ending in one goes on at the next, where the parser stops.
_LAST_WORD = re.compile(r"(>=|<=|==|!=|[<>+\-*/]|[A-Za-z_][A-Za-z0-9_.]*)[ \t]*$")
_NEEDS_A_VALUE = frozenset({"==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/"})
_NEEDS_A_CONDITION = frozenset({"and", "or", "not", "if"})
_ACTION_WORDS = frozenset({"MESSAGE", "FOLLOWUP", "COUPON", "POINTS", "TASK", "GIFT", "TAG"})


def _dangling(file: str, text: str, error: UnexpectedToken) -> Diagnostic | None:
    """The error at the end of the line before `token`, when that line ends in an operator,
    `and`, `or`, `not`, `if` or `then` and `token` starts the next one (or ends the file):
    `customer.orders >` then a line `then tag "x"`. The line that is unfinished is the one to
    show, not the next, which is right as written. Not where a statement may start: the
    statement of that line was dropped, and told, already."""
    token = error.token
    expected = set(error.accepts or error.expected)
    start = len(text) if token.type == "$END" else token.start_pos or 0
    if token.type != "$END" and not starts_line(text, start):
        return None
    if "SEGMENT" in expected:
        return None
    last = _last_word(text, start)
    if last is None:
        return None
    position, word = last
    stack = error.interactive_parser.parser_state.value_stack
    if stack and isinstance(stack[-1], Token) and stack[-1].type in _ACTION_TERMINALS:
        unfinished = _action_unfinished(word)  # `then tag`, its text left out
    else:
        unfinished = _unfinished(word, bool(expected & _ACTION_WORDS), _in_segment(error))
    if unfinished is None:
        return None
    span = _offset_span(file, text, position, position + len(word))
    code, message, help = unfinished
    return Diagnostic("error", code, message, span, _goes_on(token, span.line), help)


# The terminals of the words and operators that need something after them, on the stack of
# the parser that stopped after one.
NEEDS_MORE = frozenset(
    {
        *("EQ", "NE", "LT", "LE", "GT", "GE", "PLUS", "MINUS", "STAR", "SLASH"),
        *("IN", "CONTAINS", "BETWEEN", "IS", "AND", "OR", "NOT", "IF"),
    }
)


def _nothing_after(file: str, text: str, error: UnexpectedToken) -> Diagnostic | None:
    """E135 at an operator, `and`, `or`, `not`, `if`, `in`, `is`, ... with nothing after it
    before a word that cannot follow it on its line (`customer.orders > then`): what is
    missing is told at that operator, as at the end of a line. Not before another operator
    (`>>`), which is more likely a slip of its own."""
    stack = error.interactive_parser.parser_state.value_stack
    token = error.token
    last = stack[-1] if stack else None
    if not isinstance(last, Token) or last.type not in NEEDS_MORE:
        return None
    if token.type != "$END" and not (
        keyword_of(token.type) or token.type in ("RPAR", "RSQB", "COMMA")
    ):
        return None
    if token.type in _TEXT_LIKE and last.type in _COMPARISONS:
        # Not a word that would follow the value (`then`), but one written as the value:
        # `order.kind == gift`, a keyword as text, which is to be quoted (E118), not added to.
        mistake = next(m for m in MISTAKES if m.code == "E118")
        span = _token_span(file, text, token)
        help = f'write it in quotes: `{last} "{token}"`'
        return Diagnostic("error", "E118", mistake.message, span, mistake.label, help)
    expected = set(error.accepts or error.expected)
    unfinished = _unfinished(str(last), bool(expected & _ACTION_WORDS), _in_segment(error))
    if unfinished is None:
        return None
    code, message, help = unfinished
    span = _token_span(file, text, last)
    return Diagnostic("error", code, message, span, _goes_on(token, span.line), help)


_COMPARISONS = frozenset({"EQ", "NE", "LT", "LE", "GT", "GE", "ASSIGN"})

# The language's words that are also words of a shop's data (`order.kind == gift`,
# `order.weekday == monday`): after a comparison, one is a value written without its quotes.
_TEXT_LIKE = frozenset(
    {
        *("MESSAGE", "FOLLOWUP", "COUPON", "POINTS", "TASK", "GIFT", "TAG", "UNTAG"),
        *("MARKETING", "HOLIDAY", "DAY", "MONTH", "MIN", "CUSTOMER"),
        *("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"),
    }
)


# A duration as the language writes it (grammar/nudge.lark's DURATION), or a number in words
# and a unit (`two weeks`), after blanks: the delay of `after 3d`, the offset of `at 10:00 - 1d`.
_DURATION = re.compile(
    r"[ \t]*([0-9]+[ \t]*(?:minutes?|hours?|days?|weeks?|m|h|d|w)(?![A-Za-z0-9_])"
    r"|[A-Za-z]+[ \t]+[A-Za-z]+)"
)


def _duration_at(text: str, position: int) -> str | None:
    """The duration written at `position` of `text`, past blanks, in the language's words:
    `3 days` as written, `two weeks` as `2w`; None when there is none (`3` without a unit)."""
    found = _DURATION.match(text, position)
    if found is None:
        return None
    if found[1][0].isdigit():
        return found[1]
    number, unit = found[1].lower().split()
    name = unit.removesuffix("s")
    if number not in _NUMBER_WORDS or name not in _UNITS:
        return None
    return f"{_NUMBER_WORDS[number] * _DAYS_IN.get(name, 1)}{_UNITS[name]}"


def _compared_trigger(span: Span, text: str, error: UnexpectedToken) -> Diagnostic | None:
    """E136 for a trigger compared as a value (`when order.received > 3d`, `when order.total >
    100`): a delay is `+ 3d`, and a condition goes after `if`; or followed by `after` or
    `before` (`when order.received after 3d`): the delay is written with `+` or `-`."""
    token = error.token
    word = str(token).lower() if token.type == "NAME" else None
    if token.type not in _COMPARISONS and word not in ("after", "before"):
        return None
    stack = error.interactive_parser.parser_state.value_stack
    starts = [i for i, v in enumerate(stack) if _is_a(v, "WHEN")]
    if not starts:
        return None
    trigger = stack[starts[-1] + 1 :]
    if not trigger or not _is_a(trigger[0], "DOTTED"):
        return None
    if not all(_is_an_offset(v) for v in trigger[1:]):
        return None
    if word is not None:  # `when order.received after 3d`
        if len(trigger) > 1:
            return None  # it has a delay already
        sign = "+" if word == "after" else "-"
        delay = _duration_at(text, token.end_pos or 0)
        return Diagnostic(
            "error",
            "E136",
            f"a delay {word} the trigger is written with `{sign}`",
            span,
            f"`{token}` cannot follow the trigger",
            f"write `{trigger[0]} {sign} {delay}`"
            if delay
            else f"write `{trigger[0]} {sign}` and the delay, such as `{trigger[0]} {sign} 3d`",
        )
    operator = "==" if token.type == "ASSIGN" else str(token)
    return Diagnostic(
        "error",
        "E136",
        "`when` takes an event, not a comparison",
        span,
        f"`{token}` cannot follow the trigger",
        "to wait after the event, write `+` and a duration: `when order.received + 3d`; to "
        f"test a value, write it after `if`: `when order.paid if order.total {operator} 100`",
    )


# A clock time, on the 24-hour clock or with `am` or `pm` (`6pm`, E123 where it stands).
_A_CLOCK = r"[0-9]{1,2}:[0-9]{2}(?:[ \t]*[ap]m)?|[0-9]{1,2}[ \t]*[ap]m"
_TWELVE_HOUR = re.compile(r"(1[0-2]|0?[1-9])(?::([0-9]{2}))?[ \t]*([ap])m", re.IGNORECASE)
_CLOCK_AFTER = re.compile(rf"[ \t]*(?:{_A_CLOCK})(?![\w.:])", re.IGNORECASE)
_THEN_AN_EVENT = re.compile(
    r"[ \t]+(after|before)[ \t]+"
    r"([a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*(?![\w.])|holiday[ \t]+\"[^\"\n]*\")",
    re.IGNORECASE,
)


def _delay_first(file: str, text: str, error: UnexpectedToken) -> Diagnostic | None:
    """E130 at a delay said before its event (`when 3 days after order.received`), as in
    speech: the help gives the trigger, the event and then the delay (`when order.received +
    3 days`). It was told what a trigger is."""
    token, stack = error.token, error.interactive_parser.parser_state.value_stack
    if token.type != "DURATION" or not stack or not _is_a(stack[-1], "WHEN"):
        return None
    event = _THEN_AN_EVENT.match(text, token.end_pos or 0)
    if event is None:
        return None
    sign = "+" if event[1].lower() == "after" else "-"
    return Diagnostic(
        "error",
        "E130",
        "`when` is followed by the event, then the delay",
        _offset_span(file, text, token.start_pos or 0, event.end()),
        "the delay before the event",
        f"write `{event[2]} {sign} {token}`",
    )


_WEEKDAYS = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
# `at 10:00 and 18:00`, `every monday, thursday`: the first of two slots, before the joint, and
# the second, after it.
_FIRST_SLOT = re.compile(
    rf"(?<![\w.])(at[ \t]+[0-9]{{1,2}}:[0-9]{{2}}|every[ \t]+{_WEEKDAYS})[ \t]*$"
)
_SECOND_SLOT = re.compile(rf"[ \t]*({_A_CLOCK}|{_WEEKDAYS})(?![\w.:])", re.IGNORECASE)


def _two_slots(file: str, text: str, error: UnexpectedToken) -> Diagnostic | None:
    """E149 for two times or two weekdays given to one trigger (`at 10:00 and 18:00`, `every
    monday, thursday`): a rule has one; the help gives one for each. It was E100."""
    token = error.token
    if token.type not in ("AND", "COMMA") or token.start_pos is None:
        return None
    line_start = text.rfind("\n", 0, token.start_pos) + 1
    first = _FIRST_SLOT.search(text, line_start, token.start_pos)
    second = _SECOND_SLOT.match(text, token.end_pos or 0)
    a_day = second is not None and re.fullmatch(_WEEKDAYS, second[1], re.IGNORECASE)
    if first is None or second is None or first[1][0] != ("e" if a_day else "a"):
        return None
    word, what = ("at", "clock time") if first[1].startswith("at") else ("every", "weekday")
    twelve = _TWELVE_HOUR.fullmatch(second[1])
    if twelve is not None:  # `at 10:00 and 6pm`: `at 18:00` to write, not E123 to come
        second_slot = _on_24_hours(int(twelve[1]), twelve[2] or "00", twelve[3])
    else:
        second_slot = second[1]
    return Diagnostic(
        "error",
        "E149",
        f"a trigger takes one {what}",
        _offset_span(file, text, first.start(), second.end()),
        f"two {what}s",
        f"write a rule for each: one with `{first[1]}`, one with `{word} {second_slot}`, the rest "
        "alike",
    )


def _joined_to_trigger(span: Span, text: str, error: UnexpectedToken) -> Diagnostic | None:
    """E136 for a condition joined to the trigger with `and` (`when order.paid and order.total
    > 100`), as said: it goes after `if`, which the help writes in place of `and` (the parser
    reads on so); also after `unless` or `once`. A comma before a clause (`when order.paid, if
    ...`) is deleted. Not `at 10:00 and 18:00`, two times, nor a comma before a value."""
    token = error.token
    expected = set(error.accepts or error.expected)
    if token.type not in ("AND", "COMMA") or "IF" not in expected or "THEN" not in expected:
        return None
    if _CLOCK_AFTER.match(text, token.end_pos or 0):
        return None  # `at 10:00 and 18:00`: two times, not a condition
    if token.type == "COMMA":
        after = _word_after(text, token.end_pos or 0)
        if after not in ("if", "unless", "once", "then"):
            return None
        return Diagnostic(
            "error", "E136", f"no comma before `{after}`", span, "not needed", "delete `,`"
        )
    return _two_events(span.file, text, error) or Diagnostic(
        "error",
        "E136",
        "a condition goes after `if`",
        span,
        "`and` joins two conditions, after `if`",
        "write `if` in place of `and`",
    )


# An event after the `and` of `when order.paid and order.shipped`: a name with no comparison
# after it (`order.total > 100` is a condition), nor a customer's value.
_EVENT_AFTER = re.compile(
    r"[ \t]*((?!customer\.)[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*(?:[ \t]*[+-][ \t]*[0-9]+[ \t]*"
    r"[a-z]+)?)(?![\w.])(?=[ \t]*(?:$|#|(?:then|if|unless|once|at)(?![\w.])))",
    re.IGNORECASE | re.MULTILINE,
)


def _two_events(file: str, text: str, error: UnexpectedToken) -> Diagnostic | None:
    """E149 for two events joined with `and` as one trigger (`when order.paid and
    order.shipped`): a rule has one; the help gives a rule for each. `if` in place of `and`
    would make the second a condition, `order.shipped == yes`, which holds for no customer."""
    token, stack = error.token, error.interactive_parser.parser_state.value_stack
    when = next((v for v in reversed(stack) if _is_a(v, "WHEN")), None)
    second = _EVENT_AFTER.match(text, token.end_pos or 0)
    if when is None or second is None or any(_is_a(v, "UNLESS") for v in stack):
        return None
    first = text[when.end_pos or 0 : token.start_pos or 0].strip()
    start = when.start_pos or 0
    if "\n" in text[start : token.start_pos]:  # `when` on the line above
        start = token.start_pos or 0
    return Diagnostic(
        "error",
        "E149",
        "a rule has one trigger",
        _offset_span(file, text, start, second.end()),
        "two events",
        f"write a rule for each: one with `when {first}`, one with `when {second[1]}`, the rest "
        "alike",
    )


def _is_an_offset(value: object) -> bool:
    """Whether `value`, on the parser's stack after a trigger's name, is (part of) its offset."""
    if isinstance(value, Tree):
        return value.data == "offset"
    return any(_is_a(value, t) for t in ("PLUS", "MINUS", "DURATION"))


# The words that start a value: what `is` was followed by when it meant `==`.
_VALUE_STARTS = frozenset({"NUMBER", "STRING", "DOTTED", "DURATION", "DATE", "YES", "NO", "NAME"})


def _is_for_equals(file: str, text: str, error: UnexpectedToken) -> Diagnostic | None:
    """E115 at `is` (`is not`) followed by a value, `customer.vip is yes`: `==` (`!=`) compares,
    `is` only asks whether a value is set."""
    stack = error.interactive_parser.parser_state.value_stack
    if error.token.type not in _VALUE_STARTS or not stack:
        return None
    negated = _is_a(stack[-1], "NOT")
    is_ = stack[-2] if negated and len(stack) > 1 else stack[-1]
    if not _is_a(is_, "IS"):
        return None
    word = str(error.token).lower() if error.token.type == "NAME" else None
    if (
        word is not None
        and word not in _NOT_SET_WORDS
        and (
            _nearest_keyword(error.token, set(error.accepts or error.expected))
            or _word_after(text, error.token.end_pos or 0) == "set"
        )
    ):
        return None  # `set` or `not` misspelt (`is sett`, `is Set`, `is nto set`): not a value
    if word in _NOT_SET_WORDS or word in _TRUTH_WORDS:
        # `is null`, `is not empty`: not a comparison with a value, the question `is` asks;
        # `is true`: a comparison with `yes`. `==` in place of `is` would mean neither.
        written = f"{'is not' if negated else 'is'} {error.token}"
        if word in _NOT_SET_WORDS:
            instead = "is set" if negated else "is not set"
        else:
            instead = f"{'!=' if negated else '=='} {_TRUTH_WORDS[word]}"
        return Diagnostic(
            "error",
            "E115",
            f"`{written}` is written `{instead}`",
            _offset_span(file, text, is_.start_pos or 0, error.token.end_pos or 0),
            "`is` only asks whether a value is set: `is set`, `is not set`",
            f"write `{instead}` in place of `{written}`",
        )
    operator, written = ("!=", "is not") if negated else ("==", "is")
    return Diagnostic(
        "error",
        "E115",
        f"use `{operator}` to compare",
        _offset_span(file, text, is_.start_pos or 0, stack[-1].end_pos or 0),
        "`is` only asks whether a value is set: `is set`, `is not set`",
        f"write `{operator}` in place of `{written}`",
    )


# Words after `is` that ask whether a value is missing (`is null`: `is not set`), and those
# that stand for `yes` and `no` (`is true`: `== yes`).
_NOT_SET_WORDS = frozenset(
    {"null", "none", "nil", "empty", "blank", "unset", "missing", "undefined", "nothing"}
)
_TRUTH_WORDS = {"true": "yes", "false": "no"}


def _half_comparison(file: str, text: str, error: UnexpectedToken) -> Diagnostic | None:
    """E135 at `and` or `or` followed by an operator, the value before it left out as in speech
    (`customer.orders >= 1 and <= 3`): the help repeats the value the comparison before reads."""
    token, stack = error.token, error.interactive_parser.parser_state.value_stack
    if token.type not in _COMPARISONS - {"ASSIGN"} or len(stack) < 2:
        return None
    joint = stack[-1]
    if not (_is_a(joint, "AND") or _is_a(joint, "OR")):
        return None
    before = _last_comparison(stack[-2])
    if before is None:
        return None
    left = before.children[0]
    meta = getattr(left, "meta", None)
    if meta is None or getattr(meta, "empty", True):
        return None
    compared = f"{joint} {text[meta.start_pos : meta.end_pos]} {token}"
    value = _one_value(text, token.end_pos or 0)
    if value is not None:
        help = f"write the value it compares again: `{compared} {value}`"
    elif _value_after(text, token.end_pos or 0) is not None or _word_after(
        text, token.end_pos or 0
    ) in ("(", "[", "count", "sum"):
        # A value that goes on (`customer.orders + 1`, `count(order.paid)`): not cut short.
        help = f"write the value it compares again: `{compared}` in place of `{joint} {token}`"
    else:
        help = f"write the value it compares again, and the value to compare with: `{compared} 3`"
    where = "" if token.line == joint.line else f"line {token.line} goes on with "
    return Diagnostic(
        "error",
        "E135",
        f"`{joint}` needs a whole condition after it",
        _token_span(file, text, joint),
        f"{where}`{token}`, which cannot follow it: a comparison needs a value on each side"
        if where
        else f"`{token}` cannot follow it: a comparison needs a value on each side",
        help,
    )


def _value_after(text: str, position: int) -> str | None:
    """The value written after `position` of `text` (`3`, `-3`, `"bags"`, `customer.orders`),
    None when a word of the language or nothing comes first (`<= then`)."""
    word = _word_after(text, position)
    sign = ""
    if word == "-":
        sign, word = "-", _word_after(text, text.index("-", position) + 1)
    if word is None or word in keywords():
        return None
    if word.startswith('"') or re.fullmatch(r"[A-Za-z0-9_.]+", word):
        return sign + word
    return None


def _last_comparison(value: object) -> Tree | None:
    """The comparison that `value`, a condition on the parser's stack, ends with, if any."""
    while isinstance(value, Tree):
        if value.data == "compare":
            return value
        if not value.children:
            return None
        value = value.children[-1]
    return None


def _in_segment(error: UnexpectedToken) -> bool:
    """Whether the parser stopped after the `in` of `customer in` or `customer not in`."""
    stack = error.interactive_parser.parser_state.value_stack
    if not stack or not _is_a(stack[-1], "IN"):
        return False
    before = [v for v in stack[-3:-1] if not _is_a(v, "NOT")]
    return bool(before) and _is_a(before[-1], "CUSTOMER")


def _segments_listed(span: Span, text: str, error: UnexpectedToken) -> Diagnostic | None:
    """E117 for a list after `customer in` (`customer in ["vip", "gold"]`): a segment is
    named alone, and being in one of several is written with `or`."""
    if error.token.type != "LSQB" or not _in_segment(error):
        return None
    start = error.token.start_pos or 0
    end = text.find("]", start)
    line_end = text.find("\n", start)
    listed = text[start : end if end >= 0 and (line_end < 0 or end < line_end) else start]
    names = re.findall(r'"[^"\n]*"', listed) or ['"big spenders"', '"vip"']
    stack = error.interactive_parser.parser_state.value_stack
    test = "customer not in" if len(stack) > 1 and _is_a(stack[-2], "NOT") else "customer in"
    joint = " and " if test == "customer not in" else " or "
    written = joint.join(f"{test} {name}" for name in names)
    if joint == " or " and len(names) > 1:
        written = f"({written})"  # whatever `and` stands beside it
    return Diagnostic(
        "error",
        "E117",
        f"`{test}` takes one segment's name, not a list",
        span,
        "a list of segments",
        f"write `{written}`",
    )


def _as_statement_start(error: UnexpectedToken) -> UnexpectedToken | None:
    """The error the parser meets when a statement word (`when`) comes where `error.token` is,
    None when that word would be read: the statement before is whole."""
    trial = error.interactive_parser.copy()
    try:
        trial.feed_token(Token.new_borrow_pos("WHEN", str(error.token), error.token))
    except UnexpectedToken as as_start:
        as_start.interactive_parser = trial
        return as_start
    return None


def _no_upper_bound(file: str, text: str, error: UnexpectedToken) -> Diagnostic | None:
    """E135 at the `and` of `between 1 and` when the upper bound is missing: what comes after
    that `and` starts the next line or ends the file, or would follow a bound if there were one
    (`between 1 and then`). Not the `and` of two conditions: that one needs a condition."""
    stack = error.interactive_parser.parser_state.value_stack
    if len(stack) < 3 or not (_is_a(stack[-1], "AND") and _is_a(stack[-3], "BETWEEN")):
        return None
    word, token = stack[-1], error.token
    if token.type != "$END" and token.line == word.line:
        with_bound = error.interactive_parser.copy()
        with_bound.feed_token(Token("NUMBER", "3"))
        if token.type not in with_bound.accepts():
            return None  # something else is wrong with what follows (`between 1 and shoes`)
    return Diagnostic(
        "error",
        "E135",
        "`between` needs its upper bound after `and`",
        _token_span(file, text, word),
        _goes_on(token, word.line),
        "write the upper bound after `and` on this line, such as `between 1 and 3`",
    )


def _is_a(value: object, terminal: str) -> bool:
    return isinstance(value, Token) and value.type == terminal


def _goes_on(token: Token, line: int) -> str:
    """The label at a word of `line` that needs more, when the parser met `token` after it."""
    if token.type == "$END":
        return "the file ends after it"
    if token.line == line:
        return f"`{_shorten(token)}` cannot follow it"
    return f"line {token.line} goes on with `{_shorten(token)}`, which cannot follow it"


def _open_parenthesis(text: str, token: Token) -> int | None:
    """Where the innermost `(` still open before `token` is, if one is."""
    stop = len(text) if token.type == "$END" else token.start_pos or 0
    opened: list[int] = []
    for match in SCAN.finditer(text, 0, stop):
        piece = match.group()
        if piece in SYNC_WORDS:
            opened.clear()  # parentheses do not go on from one statement to the next
        elif piece == "(":
            opened.append(match.start())
        elif piece == ")" and opened:
            opened.pop()
    return opened[-1] if opened else None


_AFTER_IN = re.compile(r"(?<![\w.])(?:in|contains)[ \t]*$")


def _list_in_parentheses(file: str, text: str, token: Token) -> Diagnostic | None:
    """E138 at the `(` of `in ("shoes", "bags")`, where the parser met the comma: a list is
    written in square brackets. The help gives it so when its `)` is on the same line."""
    if token.type != "COMMA":
        return None
    opened = _open_parenthesis(text, token)
    if opened is None or not _AFTER_IN.search(text, text.rfind("\n", 0, opened) + 1, opened):
        return None
    help = 'write the list in square brackets, such as `in ["shoes", "bags"]`'
    for match in SCAN.finditer(text, opened + 1):
        piece = match.group()
        if piece in ("\n", "(") or piece.startswith("#") or "\n" in piece:
            break
        if piece == ")":
            help = f"write the list in square brackets: `[{text[opened + 1 : match.start()]}]`"
            break
    return Diagnostic(
        "error",
        "E138",
        "a list is written in square brackets",
        _offset_span(file, text, opened, opened + 1),
        "`(` groups conditions; it does not start a list",
        help,
    )


def _unclosed(file: str, text: str, token: Token) -> Diagnostic | None:
    """E131 at the `(` that is not closed, the innermost one before `token`, where the parser
    wanted its `)`; the help says where that was. None when no `(` is open there."""
    opened = _open_parenthesis(text, token)
    if opened is None:
        return None
    stop = len(text) if token.type == "$END" else token.start_pos or 0
    span = _offset_span(file, text, opened, opened + 1)
    line = text.count("\n", 0, stop) + 1
    where = (
        "at the end of the file"
        if token.type == "$END"
        else f"at the latest before `{_shorten(token)}`"
        + ("" if line == span.line else f" on line {line}")
    )
    return Diagnostic(
        "error",
        "E131",
        "this `(` is not closed",
        span,
        "opened here, never closed",
        f"add the missing `)` where what it holds ends, {where}",
    )


# What comes after the words that need a value other than a number, in the help.
_VALUE_AFTER = {
    "in": '["shoes", "bags"]',
    "contains": '"vip"',
    "between": "1 and 3",
}
# The actions' words and what each takes after it, as `help:` shows it.
_ACTION_TAKES = {
    "message": '"thank_you"',
    "followup": '"fit_check"',
    "coupon": '"thank_you" worth 20',
    "points": "50",
    "task": '"Call about the low rating"',
    "gift": '"mooncake box"',
    "tag": '"vip"',
    "untag": '"new"',
}


def _action_unfinished(word: str) -> tuple[str, str, str] | None:
    """Code, message and help for an action whose line ends in its word (`then tag`)."""
    takes = _ACTION_TAKES.get(word)
    if takes is None:
        return None
    what = "an amount" if word == "points" else "its text in double quotes"
    return (
        "E135",
        f"`{word}` needs {what} after it",
        f"write it after `{word}` on this line, such as `{word} {takes}`",
    )


def _unfinished(word: str, in_actions: bool, segment: bool) -> tuple[str, str, str] | None:
    """Code, message and help for a statement whose line ends in `word`, which needs more
    (`segment`: `word` is the `in` of `customer in`, which takes a segment's name)."""
    if word == "in" and segment:
        return (
            "E135",
            "`in` needs a segment's name after it",
            'write the name in quotes after `in`, such as `customer in "big spenders"`',
        )
    if word in _VALUE_AFTER:
        return (
            "E135",
            f"`{word}` needs a value after it",
            f"write the value after `{word}` on this line, such as `{word} {_VALUE_AFTER[word]}`",
        )
    if word == "is":
        return "E135", "`is` needs `set` or `not set` after it", "write `is set` or `is not set`"
    if word == "then":
        return "E112", "`then` must be followed by an action", f"the actions are {ACTIONS}"

    if word == "and" and in_actions:
        return (
            "E135",
            "`and` must be followed by another action",
            f"write the next action after `and` on this line ({ACTIONS}), or remove `and`",
        )
    if word in _NEEDS_A_VALUE:
        return (
            "E135",
            f"`{word}` needs a value after it",
            f"write the value after `{word}` on this line, such as `{word} 3`",
        )
    if word in _NEEDS_A_CONDITION:
        return (
            "E135",
            f"`{word}` needs a condition after it",
            f"write the condition after `{word}` on this line, or remove `{word}`",
        )
    return None


def _last_word(text: str, position: int) -> tuple[int, str] | None:
    """The last word or operator before `position` of `text`, past blank lines and comments,
    with where it starts; None when what comes last is something else (a string, a number)."""
    end = position
    while end > 0:
        line_start = text.rfind("\n", 0, end) + 1
        code = _without_comment(text[line_start:end])
        if code.strip():
            match = _LAST_WORD.search(code)
            return (line_start + match.start(1), match[1]) if match else None
        end = line_start - 1
    return None


def _without_comment(line: str) -> str:
    """`line` up to its comment, if it has one (a `#` in a string is none)."""
    for match in SCAN.finditer(line):
        if match.group().startswith("#"):
            return line[: match.start()]
    return line


# A number, and perhaps a word, just before a token on its line: `1.5` before `d`, `3d ` before
# `2h`.
_NUMBER_BEFORE = re.compile(r"(?<![\w.])[0-9]+(?:\.[0-9]+)?[ \t]*(?:[A-Za-z]+[ \t]*)?$")


def _slip_before(text: str, token: Token) -> Slip | None:
    """A duration written wrongly that ends with `token`, a word right after a number
    (`1.5d`, `3 dys`, `3d2h` where a value may be a number)."""
    if token.type == "$END":
        return None
    start = token.start_pos or 0
    before = _NUMBER_BEFORE.search(text, text.rfind("\n", 0, start) + 1, start)
    if before is None:
        return None
    slip = duration_slip(text, before.start())
    return slip if slip is not None and slip.end >= (token.end_pos or 0) else None


def _slip_diagnostic(file: str, text: str, slip: Slip) -> Diagnostic:
    span = _offset_span(file, text, slip.start, slip.end)
    return Diagnostic("error", slip.code, slip.message, span, slip.label, slip.help)


def _an_amount(value: object) -> bool:
    """Whether `value`, on the parser's stack, is an amount, of money or points, which a shop
    owner may write in 万 (`2W`): as `engine.checking.types` tells it for E301 (`order.total >=
    2w`)."""
    if isinstance(value, Tree) and value.data == "aggregate":
        return _is_a(value.children[0], "SUM")
    name = _dotted(value) or ""
    return name.endswith(".total") or name in AMOUNTS


# The customer's metrics that are amounts, of money or of points, and all that are numbers
# (engine.checking.types.CUSTOMER_FIELDS, which imports this module through engine.language.fmt).
AMOUNTS = frozenset({"customer.total_spent", "customer.average_order", "customer.points"})
NUMBERS = AMOUNTS | {
    "customer.orders",
    "customer.returns",
    "customer.return_rate",
    "customer.days_since_last_order",
}


# The customer's fields that are a point in time or a date (engine.checking.types.CUSTOMER_FIELDS,
# which imports this module through engine.language.fmt): compared with a date, never with a
# number.
POINTS_IN_TIME = frozenset(
    {"customer.signed_up", "customer.first_order", "customer.last_order", "customer.birthday"}
)


# Weeks written with the letter apart from the number (`2 W`), which an amount may mean as 万.
_SPACED_WAN = re.compile(r"([0-9]+(?:\.[0-9]+)?)[ \t]+[wW]")


def _compared_slip(file: str, text: str, slip: Slip, stack: list) -> Diagnostic | None:
    """The diagnostic of `slip`, a duration written wrongly (`30天`, `30 dys`, `1 month`), where
    its number, on top of the parser's stack, is compared with a value: no value of the shop's
    data is a duration (E301), so the help gives what E301 would ask for, the plain number (in
    days for `customer.days_since_last_order`), under the number and its unit, not the unit to
    write (`30d`), which would only lead to E301. None where the number is not compared."""
    number = stack[-1] if stack and _is_a(stack[-1], "NUMBER") else None
    if number is None or number.start_pos is None or not _compared(stack):
        return None
    compared = _compared(stack)
    name = _dotted(compared)
    days = slip.days()
    written = text[number.start_pos : slip.end]
    if slip.unit == "weeks" and _an_amount(compared):  # `order.total >= 2W`, `1.5w`: 万
        wan = _shorthand(file, text, number.end_pos or 0, amount=True)
        if wan is not None:
            return wan
    spaced_wan = _SPACED_WAN.fullmatch(written) if _an_amount(compared) else None
    if spaced_wan is not None:  # `2 W`, as E301 tells `2 w`
        full = format((Decimal(spaced_wan[1]) * 10_000).normalize(), "f")
        help = f"an amount is a plain number: write `{full}` if `{written}` means {spaced_wan[1]}万"
        span = _offset_span(file, text, number.start_pos, slip.end)
        return Diagnostic("error", slip.code, slip.message, span, "compared as a number", help)
    if name == "customer.days_since_last_order":
        if days is not None and days.denominator == 1 and days > 0:
            month = " (a month taken as 30 days)" if slip.unit == "months" else ""
            help = f"`{name}` is a number of days: write `{days}`{month}"
        elif slip.unit == "days":  # `1.5d`
            help = f"`{name}` is a number of days: write `{slip.amount}`"
        else:
            help = f"`{name}` is a number of days: write the number of days"
    elif isinstance(compared, Tree) and compared.data == "aggregate":
        help = f"`{compared.children[0]}(...)` is a number, not a duration: write a plain number"
    elif name in NUMBERS:  # `customer.orders > 3天`: a count, no value of the shop's data
        help = f"`{name}` is a number, not a duration: write a plain number"
    elif name in POINTS_IN_TIME:
        help = (
            f"`{name}` is a point in time, not a number: dates are written YYYY-MM-DD; to compare "
            "an age, use e.g. `customer.days_since_last_order > 60`"
        )
    elif slip.amount is None:
        help = "write a plain number, in the unit the value counts in"
    else:
        help = (
            "the shop's data holds numbers, not durations: write the number in the unit it "
            f"counts in, such as `{slip.amount}` if it counts {slip.unit}"
        )
    span = _offset_span(file, text, number.start_pos, slip.end)
    return Diagnostic("error", slip.code, slip.message, span, "compared as a number", help)


def _offset_span(file: str, text: str, start: int, end: int) -> Span:
    """The span of `text[start:end]`, which lies on one line."""
    line = text.count("\n", 0, start) + 1
    column = start - (text.rfind("\n", 0, start) + 1) + 1
    return Span(file, line, column, line, column + (end - start))


def _operator_slip(file: str, text: str, token: Token) -> Diagnostic | None:
    """E115 for `=>` and `=<`, "greater or equal" written the other way round."""
    if token.type != "ASSIGN" or token.end_pos is None:
        return None
    after = text[token.end_pos : token.end_pos + 1]
    if after not in ("<", ">"):
        return None
    start = token.start_pos or 0
    return Diagnostic(
        "error",
        "E115",
        f"`={after}` is not an operator",
        _offset_span(file, text, start, start + 2),
        f"`{after}=` written the other way round",
        f"did you mean `{after}=`?",
    )


def _offset_after_at(file: str, text: str, error: UnexpectedToken) -> Diagnostic | None:
    """E140 for an offset after the clock time (`when customer.birthday at 09:00 - 1d`), on a
    trigger that takes one and has none: the help gives the two the other way round."""
    token = error.token
    stack = error.interactive_parser.parser_state.value_stack
    if token.type not in ("PLUS", "MINUS") or len(stack) < 3:
        return None
    trigger, at, clock = stack[-3:]
    if not (_is_a(at, "AT") and _is_a(clock, "CLOCK")) or not isinstance(trigger, Tree):
        return None
    if trigger.data == "_trigger" and trigger.children:  # not inlined yet, on the stack
        trigger = trigger.children[0]
        if not isinstance(trigger, Tree):
            return None
    if trigger.data not in ("event_trigger", "holiday_trigger") or any(
        isinstance(child, Tree) and child.data == "offset" for child in trigger.children
    ):
        return None  # a trigger that takes no offset, or has one already
    duration = _duration_at(text, token.end_pos or 0)
    return Diagnostic(
        "error",
        "E140",
        "the offset comes before `at`",
        _token_span(file, text, token),
        f"after `at {clock}`",
        f"write the offset first: `{token} {duration} at {clock}`"
        if duration
        else f"write the offset, a number and a unit, first: such as `{token} 1d at {clock}`",
    )


_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')


def _quote_run_on(file: str, text: str, error: UnexpectedToken) -> Diagnostic | None:
    """E103 at text in quotes that a word follows with no space (`"中秋节 then tag "x"`): its
    closing quote is missing, and it ran on to the next text's opening one."""
    token = error.token
    stack = error.interactive_parser.parser_state.value_stack
    if token.type not in ("NAME", "DOTTED", "NUMBER") or not stack:
        return None
    before = stack[-1]
    if not _is_a(before, "STRING") or before.end_pos != token.start_pos or " " not in before:
        return None
    closing = _STRING.match(text, token.end_pos or 0)
    if closing is not None:
        line_end = text.find("\n", closing.end())
        rest = text[closing.end() : len(text) if line_end < 0 else line_end]
        if len(re.findall(r'(?<!\\)"', rest)) % 2 == 0:
            # `"Call the "VIP" customer"`: the text goes on after the word, to a quote that
            # closes it, and the quotes after it pair up: quotes inside the text, each to be
            # written `\"`, not one missing.
            inner = f'{str(before)[1:-1]}\\"{token}\\"{closing[0][1:-1]}'
            return Diagnostic(
                "error",
                "E103",
                'a quote inside text is written `\\"`',
                _token_span(file, text, before),
                f'this text ends at the `"` before `{token}`',
                f'write `\\"` for each quote inside the text: `"{inner}"`',
            )
    return Diagnostic(
        "error",
        "E103",
        "this text has no closing quote",
        _token_span(file, text, before),
        'it runs on to the next `"`',
        'close it with `"` where it ends (write `\\"` for a quote inside the text)',
    )


def _name_without_rule(span: Span, text: str, error: UnexpectedToken) -> Diagnostic | None:
    """E128 for text in quotes starting a line where a statement may start, followed by `when`:
    a rule's name without `rule` before it."""
    token = error.token
    if token.type != "STRING" or "RULE" not in set(error.accepts or error.expected):
        return None
    if (
        not starts_line(text, token.start_pos or 0)
        or _word_after(text, token.end_pos or 0) != "when"
    ):
        return None
    return Diagnostic(
        "error",
        "E128",
        "a rule's name comes after `rule`",
        span,
        "`rule` is missing before it",
        f"write `rule {_shorten(token)}`",
    )


# A unit written where a duration was wanted, perhaps after a number in words: the unit as
# the language writes it, and how many days a month and a year are taken to be.
_UNITS = {"minute": "m", "hour": "h", "day": "d", "week": "w", "month": "d", "year": "d"}
_DAYS_IN = {"month": 30, "year": 365}
_NUMBER_WORDS = {
    **dict.fromkeys(("a", "an", "one"), 1),
    **{w: n for n, w in enumerate(("two", "three", "four", "five", "six", "seven"), 2)},
    **{"eight": 8, "nine": 9, "ten": 10},
}
_WORD_AFTER = re.compile(r"[ \t]+([A-Za-z]+)")


def _unit_without_number(file: str, text: str, error: UnexpectedToken) -> Diagnostic | None:
    """E121 for a unit without its number where a duration was wanted (`once every month`,
    `per week`, `within a week`, `three days`): the help gives the duration to write (`30d`
    for a month)."""
    token = error.token
    if token.type == "$END" or "DURATION" not in set(error.accepts or error.expected):
        return None
    word, end, number = str(token).lower(), token.end_pos or 0, 1
    if word in _NUMBER_WORDS:
        after = _WORD_AFTER.match(text, end)
        if after is None:
            return None
        word, end, number = after[1].lower(), after.end(), _NUMBER_WORDS[word]
    name = word.removesuffix("s")
    if name not in _UNITS:
        return None
    amount = number * _DAYS_IN.get(name, 1)
    note = f" (a {name} taken as {_DAYS_IN.get(name)} days)"
    return Diagnostic(
        "error",
        "E121",
        "a duration is a number and a unit",
        _offset_span(file, text, token.start_pos or 0, end),
        "expected a duration such as 1w",
        f"write `{amount}{_UNITS[name]}`" + (note if name in _DAYS_IN else ""),
    )


# `am` or `pm` after a clock time or an hour: `10:00am`, `10 pm`, `10p.m.`.
_MERIDIEM = re.compile(r"[ \t]*([ap])\.?m\b\.?", re.IGNORECASE)


def _on_24_hours(hour: int, minute: str, meridiem: str) -> str:
    """`hour`:`minute` `am` or `pm` (`meridiem`, `a` or `p`) on the 24-hour clock: `18:00`."""
    return f"{hour % 12 + (12 if meridiem.lower() == 'p' else 0):02d}:{minute}"


def _twelve_hour(file: str, text: str, error: UnexpectedToken) -> Diagnostic | None:
    """E123 for a clock time with `am` or `pm` (`at 10:00am`, `quiet hours 10pm to 8am`): the
    help gives it on the 24-hour clock (`22:00`)."""
    token = error.token
    stack = error.interactive_parser.parser_state.value_stack
    if token.type == "NUMBER" and "CLOCK" in set(error.accepts or error.expected):
        time = token  # `at 10am`: the hour where a clock time was wanted
    elif token.type in ("NAME", "DOTTED") and stack and _is_a(stack[-1], "CLOCK"):
        time = stack[-1]  # `at 10:00am`: the clock time is read, `am` is not
    else:
        return None
    start, end = time.start_pos or 0, time.end_pos or 0
    meridiem = _MERIDIEM.match(text, end)
    hour, _, minute = str(time).partition(":")
    if meridiem is None or not hour.isdigit() or not 1 <= int(hour) <= 12:
        return None
    plain = _on_24_hours(int(hour), minute or "00", meridiem[1])
    return Diagnostic(
        "error",
        "E123",
        "a clock time is written HH:MM, 24-hour",
        _offset_span(file, text, start, meridiem.end()),
        "not `am` or `pm`",
        f"write `{plain}`",
    )


# A number written with thousands separators, `1,000` or `10,000.50`; also with the full-width
# comma of a Chinese input method (`1，000`) or with spaces (`1 000`).
_GROUPED_NUMBER = re.compile(r"[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?(?![0-9])")
_OTHER_GROUPED = re.compile(r"(?<![0-9.])[0-9]{1,3}(?:(?:，|[ \t])[0-9]{3})+(?:\.[0-9]+)?(?![0-9])")


def _grouped_otherwise(file: str, text: str, position: int) -> Diagnostic | None:
    """E137 for a number written with thousands separators other than `,` (`1，000`, `1 000`)
    where `position`, in it, is a separator or a part after one: not E101 for the `，`, whose
    help (`,`) gave `1,000`, nor E100 for the `000`. Not `1，000` inside `[...]`, where a comma
    may part two values (`[1 000, 2 000]` is told: a space parts none)."""
    start = position
    while start > 0 and (text[start - 1].isdigit() or text[start - 1] in "， \t"):
        start -= 1
    while start < position and not text[start].isdigit():
        start += 1
    line_end = text.find("\n", position)
    for number in _OTHER_GROUPED.finditer(text, start, len(text) if line_end < 0 else line_end):
        if number.start() <= position < number.end():
            break
    else:
        return None
    line_start = text.rfind("\n", 0, number.start()) + 1
    in_a_list = text.rfind("[", line_start, number.start()) > text.rfind(
        "]", line_start, number.start()
    )
    if in_a_list and "，" in number[0]:
        return None
    plain = re.sub(r"[，, \t]", "", number[0])
    return Diagnostic(
        "error",
        "E137",
        "a number is written without thousands separators",
        _offset_span(file, text, number.start(), number.end()),
        "a number has no separators",
        f"write `{plain}`",
    )


def _thousands(file: str, text: str, token: Token) -> Diagnostic | None:
    """E137 at the comma of `1,000` where the comma cannot come: a number has no separator;
    nor at that of `1.000,50`, written with dots for thousands and a decimal comma."""
    if token.type != "COMMA" or token.start_pos is None:
        return None
    start = token.start_pos
    while start > 0 and (text[start - 1].isdigit() or text[start - 1] == "."):
        start -= 1
    number = _GROUPED_NUMBER.match(text, start) or _DOTS_GROUPED.match(text, start)
    if start == token.start_pos or number is None or number.end() <= token.start_pos:
        return None
    plain = _plain(number[0])
    return Diagnostic(
        "error",
        "E137",
        "a number is written without thousands separators",
        _offset_span(file, text, number.start(), number.end()),
        _DECIMAL_POINT
        if _DOTS_GROUPED.fullmatch(number[0])
        else "a comma cannot be part of a number",
        f"write `{plain}`",
    )


# A number written with a decimal comma, as in much of Europe (`19,90`, `0,5`, `0,125`): not
# three digits after a first part other than `0`, which are thousands (`1,000`).
_DECIMAL_COMMA = re.compile(r"(?<![0-9.,])([0-9]+),([0-9]+)(?![0-9.,])")


def _decimal_comma(file: str, text: str, error: UnexpectedToken) -> Diagnostic | None:
    """E137 at `19,90` where a number is a value (compared, `points 1,5`, a coupon's `worth
    9,90`, which was told that actions are joined with `and`): the decimal point is `.`. Not
    a number that is no value (`every month on 1,15`, two days)."""
    token, stack = error.token, error.interactive_parser.parser_state.value_stack
    if token.type != "COMMA" or token.start_pos is None or len(stack) < 2:
        return None
    start = token.start_pos
    while start > 0 and text[start - 1].isdigit():
        start -= 1
    number = _DECIMAL_COMMA.match(text, start)
    if number is None or number.start(2) != token.end_pos:
        return None
    if len(number[2]) == 3 and number[1] != "0":  # `1,000`: thousands
        return None
    if _is_a(stack[-1], "NUMBER") and not (_is_a(stack[-2], "WORTH") or _is_a(stack[-2], "MIN")):
        return None  # not read as a value: `on 1,15`, `limit marketing to 2,3`
    return Diagnostic(
        "error",
        "E137",
        "a number's decimal point is `.`",
        _offset_span(file, text, number.start(), number.end()),
        "a comma cannot be part of a number",
        f"write `{number[1]}.{number[2]}`",
    )


# A number written with dots for thousands, as in much of Europe, and perhaps a decimal comma:
# `1.000,50`, `1.000.000`; a single dot and three digits (`1.000`) is a decimal point.
_DOTS_GROUPED = re.compile(
    r"(?<![0-9.])[0-9]{1,3}(?:(?:\.[0-9]{3})+,[0-9]+|(?:\.[0-9]{3}){2,}(?:,[0-9]+)?)(?![0-9])"
)


_DECIMAL_POINT = "a number has no separators, and `.` for its decimal point"


def _plain(number: str) -> str:
    """`number`, written with thousands separators, as the rules write it: `1,000.50` and
    `1.000,50` are `1000.50`."""
    if _DOTS_GROUPED.fullmatch(number):
        return number.replace(".", "").replace(",", ".")
    return number.replace(",", "")


def _grouped_with_dots(file: str, text: str, position: int) -> Diagnostic | None:
    """E137 at `1.000.000`, where the lexer cannot read the second dot (`position`)."""
    start = position
    while start > 0 and (text[start - 1].isdigit() or text[start - 1] == "."):
        start -= 1
    number = _DOTS_GROUPED.match(text, start)
    if text[position] != "." or number is None or number.end() <= position:
        return None
    help = f"write `{_plain(number[0])}`"
    if number[0].count(".") >= 3 and "," not in number[0]:  # `10.100.100.100`: an address?
        help += f', or `"{number[0]}"` if it is text'
    return Diagnostic(
        "error",
        "E137",
        "a number is written without thousands separators",
        _offset_span(file, text, number.start(), number.end()),
        _DECIMAL_POINT if "," in number[0] else "a number has no separators",
        help,
    )


# A number written with a shorthand for its size, as in speech: `1k`, `1.5K`, `2万`, `3千`
# (and `元` after it, which is no part of an amount either).
_SIZES = {"k": 1000, "K": 1000, "w": 10_000, "W": 10_000}
_SIZES |= {"千": 1000, "万": 10_000, "亿": 100_000_000}
_SHORTHAND = re.compile(
    r"(?<![\w.:\-])([0-9]+(?:\.[0-9]+)?)[ \t]*(k|K|w|W|千|万|亿)(?:元|块钱|块)?(?![A-Za-z0-9_])"
)


def _shorthand(file: str, text: str, position: int, amount: bool = False) -> Diagnostic | None:
    """E147 at a number written with a shorthand for thousands (`1k`, `2万`), `position` being
    where the parser or the lexer stopped, at the shorthand: the number in full digits. `w`
    or `W` for 万 only where the number is an `amount`: elsewhere it is more likely weeks."""
    start = position
    while start > 0 and (text[start - 1].isdigit() or text[start - 1] in ". \t"):
        start -= 1
    while start < position and not text[start].isdigit():
        start += 1
    number = _SHORTHAND.match(text, start)
    if number is None or number.start(2) != position or (number[2] in "wW" and not amount):
        return None
    if number[2] in "kKwW" and number.end(1) != position:
        return None  # `1 k`: not a shorthand said as one word
    full = Decimal(number[1]) * _SIZES[number[2]]
    return Diagnostic(
        "error",
        "E147",
        "a number is written in full",
        _offset_span(file, text, number.start(), number.end()),
        f"`{number[2]}` for {_SIZES[number[2]]:,}",
        f"write `{format(full.normalize(), 'f')}`",
    )


def _spaced_thousands(file: str, text: str, error: UnexpectedToken) -> Diagnostic | None:
    """E137 at `1 000`, where the parser meets a part of three digits after a number."""
    token, stack = error.token, error.interactive_parser.parser_state.value_stack
    if token.type != "NUMBER" or not stack or not _is_a(stack[-1], "NUMBER"):
        return None
    if not re.fullmatch(r"[0-9]{3}(?:\.[0-9]+)?", str(token)) or stack[-1].line != token.line:
        return None
    return _grouped_otherwise(file, text, token.start_pos or 0)


# Units written as words after an amount (`worth 30 percent`, `> 200 RMB`) or before it
# (`worth RMB 200`): a percentage is written `30%`, and an amount in the shop's currency.
_PERCENT_WORDS = frozenset({"percent", "percents", "percentage", "pct"})
_CURRENCY_WORDS = frozenset(
    {
        *("rmb", "cny", "yuan", "kuai", "usd", "dollar", "dollars", "bucks"),
        *("eur", "euro", "euros", "gbp", "jpy", "yen", "hkd"),
    }
)

_CENT = re.compile(r"[ \t]*cent\b", re.IGNORECASE)  # after `per`
_AMOUNT_AFTER = re.compile(r"[ \t]*([0-9]+(?:\.[0-9]+)?)(?![0-9A-Za-z_.])")  # `RMB 200`


def _currency(token: Token) -> bool:
    return token.type == "NAME" and str(token).lower() in _CURRENCY_WORDS


def _unit_of_amount(file: str, text: str, error: UnexpectedToken) -> Diagnostic | None:
    """E141 at a unit written as a word with an amount, the two together: a currency (`200
    RMB`, `RMB 200`), to be deleted, as amounts are plain numbers in the shop's currency;
    `percent` (`per cent`, or `%` where it cannot come) after a number, written `%` after a
    coupon's worth, a fraction or a plain number elsewhere. The caret is under what the help
    writes anew, the amount with its unit, so that the help written there mends the rule."""
    token = error.token
    stack = error.interactive_parser.parser_state.value_stack
    number = stack[-1] if stack and _is_a(stack[-1], "NUMBER") else None
    word = str(token).lower()
    if number is not None and number.line == token.line:
        start, end = number.start_pos or 0, token.end_pos or 0
        cent = _CENT.match(text, end) if word == "per" else None
        if cent is not None:
            word, end = "percent", cent.end()
        if token.type == "PERCENT" or (word in _PERCENT_WORDS and token.type in ("NAME", "PER")):
            span = _offset_span(file, text, start, end)
            if "PERCENT" in set(error.accepts or error.expected):
                off = _OFF_AFTER.match(text, end)  # `worth 30 percent off`: all of it
                span = span if off is None else _offset_span(file, text, start, off.end())
                return Diagnostic(
                    "error",
                    "E141",
                    "a percentage is written with `%`",
                    span,
                    "a percentage written as a word",
                    f"write `{number}%`",
                )
            return _percent_elsewhere(file, text, (start, end), str(number), stack)
        amount = str(number)
        if not _currency(token):
            return None
    else:
        after = _AMOUNT_AFTER.match(text, token.end_pos or 0)
        if not _currency(token) or after is None:
            return None
        if "NUMBER" not in set(error.accepts or error.expected):
            return None
        start, end, amount = token.start_pos or 0, after.end(), after[1]  # `worth RMB 200`
    return Diagnostic(
        "error",
        "E141",
        "an amount is a plain number",
        _offset_span(file, text, start, end),
        "an amount takes no currency",
        f"write `{amount}`: amounts are plain numbers, in the shop's currency",
    )


# Words after a coupon's worth that say what the worth says already (`worth 30% off`).
_OFF_WORDS = frozenset({"off", "discount"})
_OFF_AFTER = re.compile(r"[ \t]+(?:off|discount)(?![\w.])", re.IGNORECASE)


def _worth(stack: list) -> tuple[str, bool] | None:
    """The amount of the coupon's worth on top of the parser's stack, and whether it is a
    percentage (`worth 30%`: `30`, True); None when no worth is on top of it."""
    percent = bool(stack) and _is_a(stack[-1], "PERCENT")
    values = stack[:-1] if percent else stack
    if len(values) < 2 or not _is_a(values[-1], "NUMBER") or not _is_a(values[-2], "WORTH"):
        return None
    return str(values[-1]), percent


_WORTH_LATER = re.compile(r"[^\n#]*?(?<![\w.])worth[ \t]+([0-9]+(?:\.[0-9]+)?%?)")


def _worth_after(file: str, text: str, error: UnexpectedToken) -> Diagnostic | None:
    """E119 at a coupon's option written before its worth (`coupon "x" min 200 worth 30`), told
    that the worth comes first; it was told that the coupon has none."""
    token, stack = error.token, error.interactive_parser.parser_state.value_stack
    if token.type not in ("MIN", "EXPIRES", "VIA") or len(stack) < 2:
        return None
    if not (_is_a(stack[-1], "STRING") and _is_a(stack[-2], "COUPON")):
        return None
    worth = _WORTH_LATER.match(text, token.end_pos or 0)
    if worth is None:
        return None
    return Diagnostic(
        "error",
        "E119",
        "a coupon's worth comes first, after its template",
        _token_span(file, text, token),
        f"`{token}` before `worth`",
        f"move `worth {worth[1]}` before `{token}`: `coupon {stack[-1]} worth {worth[1]} {token} "
        "...`",
    )


def _worth_off(file: str, text: str, error: UnexpectedToken) -> Diagnostic | None:
    """E146 at `off` after a coupon's worth (`worth 30% off`): the worth is what the coupon
    takes off, so the word is deleted; it was E100 listing what may come after the worth."""
    token = error.token
    worth = _worth(error.interactive_parser.parser_state.value_stack)
    if token.type != "NAME" or str(token).lower() not in _OFF_WORDS or worth is None:
        return None
    amount = worth[0] + ("%" if worth[1] else "")
    return Diagnostic(
        "error",
        "E146",
        f"`worth {amount}` says what the coupon takes off",
        _token_span(file, text, token),
        "not needed",
        f"delete `{token}`: `worth {amount}` is {amount} off",
    )


# A date written otherwise than YYYY-MM-DD: with slashes or dots (`2026/11/11`), in Chinese
# (`2026年11月11日`), without leading zeros (`2026-1-5`), or with the year last, as in Europe or
# America (`25/12/2026`); of a year from 1900 to 2199, as no rule reads others, and arithmetic
# (`1000/10/10`) may look the same.
_YEAR = r"(19[0-9]{2}|2[01][0-9]{2})"
_OTHER_DATE = re.compile(
    rf"{_YEAR}(?:([-/.])([0-9]{{1,2}})\2([0-9]{{1,2}})|年([0-9]{{1,2}})月([0-9]{{1,2}})[日号]?)"
    r"(?![0-9])"
)
_YEAR_LAST = re.compile(rf"([0-9]{{1,2}})([-/.])([0-9]{{1,2}})\2{_YEAR}(?![0-9])")


def date_written_otherwise(written: str) -> str | None:
    """The help to write `written` as the rules write a date (`2026/1/5`: "write
    `2026-01-05`"), when it is a date on the calendar written otherwise; with the year last
    (`03/02/2026`), the day first or the month first, both where both are dates. None else
    (`2026-01-05` as it stands, `2026/13/01`)."""
    first = ""  # the number written first, when the year is last
    if found := _OTHER_DATE.fullmatch(written):
        readings = [(found[1], found[3] or found[5], found[4] or found[6])]
    elif found := _YEAR_LAST.fullmatch(written):
        first, second, year = found[1], found[3], found[4]
        readings = [(year, second, first), (year, first, second)]  # day first, month first
    else:
        return None
    dates: list[str] = []
    for year, month, day in readings:
        iso = f"{year}-{int(month):02d}-{int(day):02d}"
        try:
            dt.date.fromisoformat(iso)
        except ValueError:
            continue
        if iso != written and iso not in dates:
            dates.append(iso)
    if len(dates) == 2:  # `03/02/2026`
        return f"write `{dates[0]}` if `{first}` is the day, or `{dates[1]}` if it is the month"
    return f"write `{dates[0]}`" if dates else None


def _date_otherwise(file: str, text: str, position: int) -> Diagnostic | None:
    """E150 at a date written otherwise than YYYY-MM-DD (`on 2026/11/11`, `2026.11.11`,
    `2026年11月11日`, `25/12/2026`) that starts where the parser or the lexer stopped, or just
    before: the date to write."""
    line_start = text.rfind("\n", 0, position) + 1
    start = position
    while start > line_start and (text[start - 1].isdigit() or text[start - 1] in "-/.年月"):
        start -= 1
    while start < position and not text[start].isdigit():
        start += 1
    found = _OTHER_DATE.match(text, start) or _YEAR_LAST.match(text, start)
    help = date_written_otherwise(found[0]) if found is not None else None
    if found is None or help is None or found.end() <= position:
        return None
    return Diagnostic(
        "error",
        "E150",
        "a date is written YYYY-MM-DD",
        _offset_span(file, text, found.start(), found.end()),
        "a date written otherwise",
        help,
    )


_NO_YEAR = re.compile(r"([0-9]{1,2})[-/.]([0-9]{1,2})(?![0-9./-])")


def _date_without_year(file: str, text: str, error: UnexpectedToken) -> Diagnostic | None:
    """E150 at a date without its year where a date goes (`when on 11-11`): the year to give,
    as a date trigger is one day, not one in each year."""
    token = error.token
    if "DATE" not in set(error.accepts or error.expected) or token.type != "NUMBER":
        return None
    found = _NO_YEAR.match(text, token.start_pos or 0)
    if found is None or not (1 <= int(found[1]) <= 12 and 1 <= int(found[2]) <= 31):
        return None
    return Diagnostic(
        "error",
        "E150",
        "a date is written with its year, YYYY-MM-DD",
        _offset_span(file, text, found.start(), found.end()),
        "no year",
        f"write the year too, such as `2026-{int(found[1]):02d}-{int(found[2]):02d}`: `on` is "
        "one day, not one in each year (each year, a holiday or a customer's date comes back)",
    )


# Words said before a duration (`expires in 7 days`, `unless order.placed in the last 7 days`)
# where the language writes `within` and the duration, or, after `expires`, the duration alone.
_SAID_BEFORE = re.compile(
    r"(?:in|after|for|during|within)(?:[ \t]+(?:the[ \t]+)?(?:last|past))?(?![\w.])",
    re.IGNORECASE,
)


# Of those, the words that say a window before the due time, as `within` does: `in`, `during`,
# `in the last`, `for the past`; not `after 7d` nor `for 7d`, which may mean another time.
_A_WINDOW = re.compile(
    r"(?:in|during)(?:[ \t]+.*)?|(?:for|within)[ \t]+.*(?:last|past)", re.IGNORECASE
)


# `within the last 7 days`: `within` says it already.
_THE_LAST = re.compile(r"the[ \t]+(?:last|past)(?![\w.])", re.IGNORECASE)

_DATE_AFTER = re.compile(r"[ \t]+[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _is_a_count(value: object) -> bool:
    return _is_a(value, "COUNT") or _is_a(value, "SUM")


def _spoken_window(file: str, text: str, error: UnexpectedToken) -> Diagnostic | None:
    """E148 at a duration written as in speech: after `expires`, a word before it (`expires in
    7 days`: the help deletes it) or a date (`expires 2026-12-31`: a coupon lasts a duration
    from its issue); after the event of `unless`, `count` or `sum`, `in` (`in the last`) for
    `within`. They were E121 asking for a unit, and E100."""
    token, stack = error.token, error.interactive_parser.parser_state.value_stack
    start = token.start_pos or 0
    after_expires = bool(stack) and _is_a(stack[-1], "EXPIRES")
    on_a_date = _DATE_AFTER.match(text, token.end_pos or 0) if str(token) == "on" else None
    if after_expires and (token.type == "DATE" or on_a_date):
        end = on_a_date.end() if on_a_date else token.end_pos or 0
        return Diagnostic(
            "error",
            "E148",
            "a coupon expires a time after it is issued",
            _offset_span(file, text, start, end),
            "a date",
            "write how long it lasts, such as `expires 14d`: a coupon is not given a last day",
        )
    the_last = _THE_LAST.match(text, start) if stack and _is_a(stack[-1], "WITHIN") else None
    duration = _duration_at(text, the_last.end()) if the_last else None
    if the_last is not None and duration is not None:  # `within the last 7 days`
        return Diagnostic(
            "error",
            "E148",
            "`within` is followed by the duration alone",
            _offset_span(file, text, start, the_last.end()),
            "not needed",
            f"delete `{the_last[0]}`: write `within {duration.strip()}`",
        )
    said = _SAID_BEFORE.match(text, start)
    if said is None:
        return None
    duration = _duration_at(text, said.end())
    if duration is None:
        return None
    span = _offset_span(file, text, start, said.end())
    if after_expires:
        return Diagnostic(
            "error",
            "E148",
            "`expires` is followed by the duration alone",
            span,
            "not needed",
            f"delete `{said[0]}`: write `expires {duration.strip()}`",
        )
    event = stack[-1] if stack and _is_a(stack[-1], "DOTTED") else None
    windowed = len(stack) > 1 and _is_a(stack[-2], "UNLESS")
    counted = len(stack) > 2 and _is_a(stack[-2], "LPAR") and _is_a_count(stack[-3])
    if event is None or not (windowed or counted) or not _A_WINDOW.fullmatch(said[0]):
        return None
    return Diagnostic(
        "error",
        "E148",
        "a window is written `within` and a duration",
        span,
        "in place of `within`",
        f"write `within` in place of `{said[0]}`",
    )


# After a percentage: `*` or `/`, a factor (`10% * order.total`), or `of` and a value (`10% of
# order.total`), a share of it.
_FACTOR_AFTER = re.compile(r"[ \t]*[*/]")
_OF_A_VALUE = re.compile(r"[ \t]+of[ \t]+([a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*)(?![\w.(])", re.I)


def _percent_elsewhere(
    file: str, text: str, written: tuple[int, int], number: str, stack: list
) -> Diagnostic:
    """E141 for a percentage where `%` cannot come, `written` being where it is: after
    `points`, in a condition, in arithmetic. The help gives what is true there: a share of a
    value is a fraction (`order.total * 0.3`, `10% of order.total`, which the caret takes in),
    points are a number of points, and the shop's data holds a rate as a fraction
    (`customer.return_rate`, `0.5` for 50%)."""
    start, end = written
    fraction = format((Decimal(number) / 100).normalize(), "f")
    before = stack[-2] if len(stack) > 1 else None
    message, label = "a number here is written without `%`", "`%` comes only after a coupon's worth"
    of = _OF_A_VALUE.match(text, end)
    if _is_a(before, "STAR") or _FACTOR_AFTER.match(text, end):
        # `order.total * 30 percent`, `30% * order.total`: a share of a value
        help = f"write the share as a fraction: `{fraction}` for {number}%"
    elif of is not None:  # `10% of order.total`: under it all, written anew
        end, label = of.end(), "a percentage of a value"
        help = f"write `{of[1]} * {fraction}` for {number}% of `{of[1]}`"
    elif _is_a(before, "POINTS"):
        message, label = "points are a number of points, not a percentage", "a percentage"
        help = f"write `{number}` for {number} points"
        if _trigger_entity(stack) == "order":
            help = (
                f"write `order.total * {fraction}` for {number}% of the order's total, or "
                f"`{number}` for {number} points"
            )
    elif _compared_ref(stack) == "customer.return_rate":
        help = f"write `{fraction}`: `customer.return_rate` is a fraction, {fraction} for {number}%"
    else:
        help = (
            f"write the number as the shop's data holds it: `{fraction}` if it holds a fraction "
            f"(as `customer.return_rate` is), `{number}` if it holds percentages"
        )
    span = _offset_span(file, text, start, end)
    return Diagnostic("error", "E141", message, span, label, help)


def _trigger_entity(stack: list) -> str | None:
    """The entity of the event that triggers the rule on the parser's stack (`order` for
    `when order.paid`), if an event triggers it."""
    for value in stack:
        if isinstance(value, Tree) and value.data == "when_clause":
            for trigger in value.children:
                if isinstance(trigger, Tree) and trigger.data == "event_trigger":
                    name = trigger.children[0]
                    return str(name).split(".")[0] if _is_a(name, "DOTTED") else None
    return None


def _compared_ref(stack: list) -> str | None:
    """The name of the value that the number on top of the parser's stack is compared with
    (`customer.return_rate` in `customer.return_rate > 50`), if it is a name."""
    return _dotted(_compared(stack))


def _compared(stack: list) -> object | None:
    """The value that the number on top of the parser's stack is compared with, as it stands on
    the stack (`customer.return_rate` in `customer.return_rate > 50`); None when the number is
    not compared with a value (`points 50`, `order.total * 50`)."""
    if len(stack) >= 5 and _is_a(stack[-2], "AND") and _is_a(stack[-4], "BETWEEN"):
        return stack[-5]  # the upper end of a `between`
    if len(stack) < 3:
        return None
    operator, left = stack[-2], stack[-3]
    if not (
        _is_a(operator, "BETWEEN") or (isinstance(operator, Tree) and operator.data == "compare_op")
    ):
        return None
    return left


# A range written with a dash, a tilde or a Chinese word between its ends (`100-200`, `100 ~
# 200`, `100至200`, `2026-01-01-2026-02-01`), after `between` and its lower end: a date, whose
# own dashes are not the mark, or a number.
_RANGE_END = r"(?:[0-9]{4}-[0-9]{2}-[0-9]{2}(?![0-9])|-?[0-9]+(?:\.[0-9]+)?)"
_RANGE_MARK = re.compile(r"[ \t]*(?:-|~|～|–|—|至|到)[ \t]*")
_RANGE_LOWER = re.compile(rf"(?<![\w.])between[ \t]+({_RANGE_END})[ \t]*$")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# The value a `between` tests, written just before it (`customer.days_since_last_order`).
_TESTED = re.compile(r"(?<![\w.])([a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*)[ \t]+$")


def _between_range(file: str, text: str, position: int) -> Diagnostic | None:
    """E142 for the ends of `between` joined with a dash, a tilde or `至` (`between 100-200`),
    `position` being where that mark is: the parser read `100-200` as a subtraction, or
    stopped at the `~`. Under the whole `between 100-200`, the help joins them with `and`."""
    line_start = text.rfind("\n", 0, position) + 1
    lower = _RANGE_LOWER.search(text, line_start, position)
    mark = _RANGE_MARK.match(text, position)
    if lower is None or mark is None:
        return None
    upper = _BOUND.match(text, mark.end())
    if upper is None or not re.match(r"-?[0-9]", upper[1]):
        return None
    if bool(_DATE.fullmatch(lower[1])) != bool(_DATE.fullmatch(upper[1])):
        return None  # not two dates, nor two numbers
    tested = _TESTED.search(text, line_start, lower.start())
    start = lower.start()
    point = _point_in_time(lower[1], upper[1], tested and tested[1])
    if point is not None:
        help = point[0]
        start = tested.start() if tested is not None and point[1] else start
    else:
        in_numbers = _in_numbers(lower[1], upper[1], tested and tested[1])
        help = in_numbers or f"write `between {lower[1]} and {upper[1]}`"
    return Diagnostic(
        "error",
        "E142",
        "the two ends of `between` are joined with `and`",
        _offset_span(file, text, start, upper.end()),
        f"its ends joined with `{text[position : mark.end()].strip()}`",
        help,
    )


# `within 1 to 3 days`: two ends where `within` takes one duration; also in months or years,
# which are not units (E134: a month is taken as 30 days), and in Chinese (`1到3天`).
_WINDOW_RANGE = re.compile(
    r"([0-9]+)[ \t]*(?:to|-|~|～|至|到)[ \t]*([0-9]+)[ \t]*"
    rf"([A-Za-z]+(?![A-Za-z0-9_])|{'|'.join(sorted(CHINESE_UNITS, key=len, reverse=True))})"
)


def _window_range(file: str, text: str, error: UnexpectedToken) -> Diagnostic | None:
    """E145 at `within 1 to 3 days`: a window is the last D before the due time, one duration.
    The help gives the longer (`3d`); in `count` or `sum`, the count between the two, one count
    taken from another. It was E121 at the `1`, asking for its unit."""
    token, stack = error.token, error.interactive_parser.parser_state.value_stack
    if not stack or not _is_a(stack[-1], "WITHIN"):
        return None
    found = _WINDOW_RANGE.match(text, token.start_pos or 0)
    if found is None or "\n" in found[0]:
        return None
    unit_and_one = unit_and_size(found[3])
    if unit_and_one is None:  # `1 to 3 then`, `1 to 90s`: no unit, or seconds
        return None
    unit, size = unit_and_one
    # `within 3 to 1 days` alike
    near, far = sorted((int(found[1]) * size, int(found[2]) * size))
    word = _LETTERS[unit]  # `day`
    help = f"write `{far}{unit}` for the last {far} {word if far == 1 else f'{word}s'}"
    if size == 30:
        help += " (a month taken as 30 days)"
    elif size == 365:
        help += " (a year taken as 365 days)"
    counted = [v for v in stack if _is_a(v, "COUNT") or _is_a(v, "SUM")]
    event = stack[-2] if len(stack) > 1 and _is_a(stack[-2], "DOTTED") else None
    if counted and event is not None and 0 < near < far:  # from 0, the longer is all
        what = f"{counted[-1]}({event} within {{}})"
        help += (
            f"; for those between {near} and {far} {word}s before the due time, take one from "
            f"the other: `{what.format(f'{far}{unit}')} - {what.format(f'{near}{unit}')}`"
        )
    return Diagnostic(
        "error",
        "E145",
        "`within` takes one duration: the last D before the due time",
        _offset_span(file, text, found.start(), found.end()),
        "two ends",
        help,
    )


def _between_to(file: str, text: str, error: UnexpectedToken) -> Diagnostic | None:
    """E142 at the `to` of `between 1 to 3`: the two ends of `between` are joined with `and`;
    also `between 100-200`, read as a subtraction up to the word after it."""
    token = error.token
    stack = error.interactive_parser.parser_state.value_stack
    starts = [i for i, v in enumerate(stack) if _is_a(v, "BETWEEN")]
    if not starts or "AND" not in set(error.accepts or error.expected):
        return None
    if token.type != "TO":
        if any(_is_a(v, "AND") for v in stack[starts[-1] :]) or token.type == "$END":
            return None
        written = text[stack[starts[-1]].end_pos or 0 : token.start_pos or 0]
        dash = re.fullmatch(rf"[ \t]*{_RANGE_END}[ \t]*(-)[^\n]*", written)
        if dash is None:
            return None
        at = (stack[starts[-1]].end_pos or 0) + dash.start(1)
        return _between_range(file, text, at)
    if any(_is_a(v, "AND") for v in stack[starts[-1] :]):
        return None  # `between 1 and 3 to`: not its lower bound
    between = stack[starts[-1]]
    lower = text[between.end_pos or 0 : token.start_pos or 0].strip()
    upper = _one_value(text, token.end_pos or 0)
    whole = upper is not None and "\n" not in lower and "#" not in lower
    tested_value = stack[starts[-1] - 1] if starts[-1] else None
    tested = _dotted(tested_value)
    point = _point_in_time(lower, upper, tested) if upper is not None and whole else None
    if point is not None and upper is not None:
        name = tested_value.children[0] if isinstance(tested_value, Tree) else None
        start = name.start_pos if point[1] and isinstance(name, Token) else between.start_pos
        end = text.index(upper, token.end_pos or 0) + len(upper)
        return Diagnostic(
            "error",
            "E142",
            "the two ends of `between` are joined with `and`",
            _offset_span(file, text, start or 0, end),
            "its ends joined with `to`",
            point[0],
        )
    in_numbers = _in_numbers(lower, upper, tested) if whole else None
    if upper is None or not whole or (in_numbers is None and _with_a_unit(lower, upper)):
        # Not one whole value each, or ends with units that cannot be written as numbers of one
        # unit (`1d to 36h`): only the word to write.
        return Diagnostic(
            "error",
            "E142",
            "the two ends of `between` are joined with `and`",
            _token_span(file, text, token),
            "not `to`",
            "write `and` in place of `to`",
        )
    # The help writes the whole `between`, which the caret is under.
    end = text.index(upper, token.end_pos or 0) + len(upper)
    return Diagnostic(
        "error",
        "E142",
        "the two ends of `between` are joined with `and`",
        _offset_span(file, text, between.start_pos or 0, end),
        "its ends joined with `to`",
        in_numbers or f"write `between {lower} and {upper}`",
    )


# A bound that is a number with a unit (`60 days`, `2w`) or without one (`30`).
_COUNTED = re.compile(r"([0-9]+)[ \t]*(minutes?|hours?|days?|weeks?|[mhdw])?")


def _with_a_unit(*ends: str) -> bool:
    """Whether one of `ends`, the bounds of a `between`, is a number with a unit (`60 days`)."""
    return any((m := _COUNTED.fullmatch(end)) is not None and m[2] for end in ends)


def _in_numbers(lower: str, upper: str | None, tested: str | None) -> str | None:
    """The help of E142 for ends of which one at least has a unit (`between 30 to 60 days`,
    said as in speech): written with `and`, as they stand, they compare a number with a
    duration, which no value of the shop's data is. The ends as plain numbers: in days for
    `customer.days_since_last_order`, else in the one unit written. An end without a unit has
    the other's, as in speech (`1 to 2 weeks` is 7 to 14 days). None when the ends are not
    numbers with a unit, or cannot be given so."""
    if upper is None or not _with_a_unit(lower, upper):
        return None
    ends = [_COUNTED.fullmatch(end) for end in (lower, upper)]
    if not all(ends):
        return None
    counted = [(int(end[1]), (end[2] or "").lower()[:1]) for end in ends if end]
    units = {unit for _, unit in counted if unit}
    if len(units) == 1:
        counted = [(n, unit or min(units)) for n, unit in counted]
    if tested == "customer.days_since_last_order":
        days = _in_days(lower, upper)
        if days is None:
            return None
        return f"write `between {days[0]} and {days[1]}`: `{tested}` is a number of days"
    if len(units) > 1:  # `1d to 36h`
        return None
    low, high = (n for n, _ in counted)
    return (
        f"write `between {low} and {high}`: the shop's data holds numbers, not durations (the "
        "ends in the unit it counts in)"
    )


def _in_days(lower: str, upper: str) -> tuple[int, int] | None:
    """The ends of a `between`, numbers of which one at least has a unit of days or weeks
    (`30 to 60 days`, `1 to 2 weeks`), in days; an end without a unit has the other's."""
    ends = [_COUNTED.fullmatch(end) for end in (lower, upper)]
    if not all(ends) or not _with_a_unit(lower, upper):
        return None
    counted = [(int(end[1]), (end[2] or "").lower()[:1]) for end in ends if end]
    units = {unit for _, unit in counted if unit}
    if units - {"d", "w"}:
        return None
    counted = [(n, unit or min(units)) for n, unit in counted]
    low, high = (n * 7 if unit == "w" else n for n, unit in counted)
    return low, high


# What else a point in time is compared with, or starts: the help of E142 says it.
_POINT_IN_TIME_ALSO = {
    "customer.last_order": "; the days since it are `customer.days_since_last_order`, a number",
    "customer.signed_up": "; to act a time after it, the trigger is `when customer.signed_up + 7d`",
    "customer.birthday": "; to act before each birthday, the trigger is `when customer.birthday "
    "- 7d`",
}


def _point_in_time(lower: str, upper: str, tested: str | None) -> tuple[str, bool] | None:
    """The help of E142 where the value tested is a point in time (`customer.last_order`) and
    its ends are not dates (`between 30 to 60 days`, as said): a point in time lies between two
    dates, never two numbers (E301), which `between 30 and 60` would compare it with. For
    `customer.last_order` with ends in days or weeks, the comparison of the days since it, to be
    written from the value tested on (True); else what its ends are (False). None for another
    value, or dates."""
    if tested not in POINTS_IN_TIME or _DATE.fullmatch(lower) or _DATE.fullmatch(upper):
        return None
    days = _in_days(lower, upper)
    if tested == "customer.last_order" and days is not None:
        return (
            f"write `customer.days_since_last_order between {days[0]} and {days[1]}`: "
            f"`{tested}` is a point in time, the days since it a number",
            True,
        )
    kind = "a date" if tested == "customer.birthday" else "a point in time"
    return (
        f"`{tested}` is {kind}, between two dates (`between 2026-01-01 and 2026-02-01`)"
        + _POINT_IN_TIME_ALSO.get(tested, ""),
        False,
    )


def _dotted(value: object) -> str | None:
    """The name of a value on the parser's stack (`customer.orders`), if it is a name."""
    if isinstance(value, Tree) and value.data == "ref" and _is_a(value.children[0], "DOTTED"):
        return str(value.children[0])
    return None


# A value that a help may write again as it stands, when it is one value: a date, a duration,
# a number, a name, text in quotes.
_BOUND = re.compile(
    r"[ \t]*(-?(?:[0-9]{4}-[0-9]{2}-[0-9]{2}(?![0-9])"
    r"|[0-9]+(?:\.[0-9]+)?(?:[ \t]*(?:minutes?|hours?|days?|weeks?|m|h|d|w)(?![A-Za-z0-9_]))?)"
    r'|"(?:[^"\\\n]|\\.)*"|[A-Za-z_][A-Za-z0-9_.]*)(?![A-Za-z0-9_.])'
)


def _one_value(text: str, position: int) -> str | None:
    """The value written after `position` of `text`, on its line, when it is one whole value
    (`3`, `-3`, `2026-02-01`, `3 days`, `"bags"`, `customer.orders`, `yes`); None when there is
    none or when it goes on (`customer.orders + 1`, `count(...)`, `3 dys`), which a help would
    cut short, changing the rule."""
    value = _BOUND.match(text, position)
    if value is None or value[1] in keywords() - {"yes", "no"}:
        return None
    after = _word_after(text, value.end())
    if after is None or after in keywords() or after in (")", "]", ","):
        return value[1]
    return None


# A period after `once`, written as in speech (`once a month`, `once per week`, `once in 30
# days`, `once weekly`): `once every` and a duration. The connecting words, the words that say
# "each such period" alone, and a period: a number (in digits or a word) and a unit, or a unit.
_ONCE_JOINTS = frozenset({"a", "an", "each", "per", "in", "within"})
_ONCE_ADVERBS = {"hourly": "hour", "daily": "day", "weekly": "week", "monthly": "month"}
_ONCE_ADVERBS |= {"yearly": "year", "annually": "year"}
_PERIOD = re.compile(
    r"[ \t]*(?:([0-9]+)[ \t]*|([A-Za-z]+)[ \t]+)?"
    r"(minutes?|hours?|days?|weeks?|months?|years?|[mhdw])(?![A-Za-z0-9_])",
    re.IGNORECASE,
)
_LETTERS = {"m": "minute", "h": "hour", "d": "day", "w": "week"}


_PER_CUSTOMER = re.compile(
    r"(?:per|for|for each|each|a)[ \t]+(?:customer|person|user|buyer|member)(?![\w.])",
    re.IGNORECASE,
)


def _once_a_period(file: str, text: str, error: UnexpectedToken) -> Diagnostic | None:
    """E143 at a period after `once` written without `every` (`once a month`, `once per week`,
    `once daily`, `once 30d`): the help gives `once every` and the duration (`30d` for a month,
    as E121 takes one)."""
    token = error.token
    stack = error.interactive_parser.parser_state.value_stack
    if not stack or not _is_a(stack[-1], "ONCE") or token.type == "$END":
        return None
    start = token.start_pos or 0
    per_customer = _PER_CUSTOMER.match(text, start)
    if per_customer is not None:  # `once per customer`
        return Diagnostic(
            "error",
            "E143",
            "`once` is once for each customer already",
            _offset_span(file, text, start, per_customer.end()),
            "not needed",
            f"delete `{per_customer[0]}`: `once` acts at most once per customer, ever",
        )
    period = _spoken_period(text, start, _ONCE_JOINTS)
    if period is None:
        return None
    duration, note, end = period
    return Diagnostic(
        "error",
        "E143",
        "a period after `once` is written `once every` and a duration",
        _offset_span(file, text, start, end),
        "expected `every` and a duration",
        f"write `once every {duration}`{note}",
    )


# Words between a limit's number and its period (`2 times a week`, `2 messages per week`).
_LIMIT_COUNTED = re.compile(r"(?:times?|messages?|x)[ \t]+", re.IGNORECASE)


def _limit_period(file: str, text: str, error: UnexpectedToken) -> Diagnostic | None:
    """E144 at a limit's period written as in speech (`limit marketing to 2 a week`, `2 times
    per week`, `2 weekly`): `per` takes a duration, which the help gives (`per 1w`)."""
    token = error.token
    stack = error.interactive_parser.parser_state.value_stack
    if len(stack) < 2 or not _is_a(stack[-1], "NUMBER") or not _is_a(stack[-2], "TO"):
        return None
    if token.type == "$END" or set(error.accepts or error.expected) != {"PER"}:
        return None
    start = token.start_pos or 0
    counted = _LIMIT_COUNTED.match(text, start)
    period = _spoken_period(text, counted.end() if counted else start, _LIMIT_JOINTS)
    if period is None:
        return None
    duration, note, end = period
    return Diagnostic(
        "error",
        "E144",
        "a limit's period is written `per` and a duration",
        _offset_span(file, text, start, end),
        "expected `per` and a duration",
        f"write `limit marketing to {stack[-1]} per {duration}`{note}",
    )


_LIMIT_JOINTS = _ONCE_JOINTS | {"every"}
_SPOKEN_WORD = re.compile(r"[A-Za-z]+(?![A-Za-z0-9_])")


def _spoken_period(text: str, start: int, joints: frozenset[str]) -> tuple[str, str, int] | None:
    """The period written as in speech at `start` of `text` (`a month`, `per week`, `in 2 weeks`,
    `weekly`, `30d`, after one of `joints`): the duration to write, a note on how a month or a
    year is taken, and where the period ends."""
    period = _PERIOD.match(text, start)
    if period is None or period[1] is None:  # not `30d`, `30 days`: a word first
        word = _SPOKEN_WORD.match(text, start)
        if word is None:
            return None
        if word[0].lower() in _ONCE_ADVERBS:
            return _duration_of(1, _ONCE_ADVERBS[word[0].lower()], word.end())
        if word[0].lower() not in joints:
            return None
        # `a month`: the word is the period's number; `per month`: the period follows it.
        period = _PERIOD.match(text, start if word[0].lower() in ("a", "an") else word.end())
        if period is None:
            return None
    digits, number, unit = period.groups()
    if number is not None and number.lower() not in _NUMBER_WORDS:
        return None
    amount = int(digits) if digits else _NUMBER_WORDS[number.lower()] if number else 1
    unit = unit.lower()
    return _duration_of(amount, _LETTERS.get(unit, unit.removesuffix("s")), period.end())


def _duration_of(amount: int, name: str, end: int) -> tuple[str, str, int]:
    duration = f"{amount * _DAYS_IN.get(name, 1)}{_UNITS[name]}"
    note = f" (a {name} taken as {_DAYS_IN[name]} days)" if name in _DAYS_IN else ""
    return duration, note, end


_ANY_WEEKDAY = frozenset({"weekday", "weekdays", "weekend", "weekends", "workday", "workdays"})


def _every_weekday(span: Span, token: Token, expected: set[str]) -> Diagnostic | None:
    """E125 for `every weekday`, which names no one day: not "did you mean `wednesday`?"."""
    if "MONDAY" not in expected or str(token).lower() not in _ANY_WEEKDAY:
        return None
    return Diagnostic(
        "error",
        "E125",
        "`every` takes one weekday name, `day` or `month on N`",
        span,
        "not one day of the week",
        "write a rule for each day, such as `every monday`, or `every day` for all seven",
    )


def _bad_character(file: str, text: str, error: UnexpectedCharacters) -> Diagnostic:
    pos = error.pos_in_stream or 0
    line, column = error.line or 1, error.column or 1
    char = text[pos]
    if char == '"':
        end = text.find("\n", pos)
        end = len(text) if end < 0 else end
        span = Span(file, line, column, line, column + max(1, end - pos))
        return Diagnostic(
            "error",
            "E103",
            "this text has no closing quote",
            span,
            label="the string starts here",
            help='close it with `"` on the same line (write `\\"` for a quote inside the text)',
        )
    span = Span(file, line, column, line, column + 1)
    in_between = _between_range(file, text, pos)  # `between 100 ~ 200`, `between 100至200`
    if in_between is not None:
        return in_between
    look_alike_here = _look_alike_at(file, text, pos)
    if look_alike_here is not None:
        return look_alike_here
    on_a_number = (
        _date_otherwise(file, text, pos)
        or _seconds_of_a_clock(file, text, pos)
        or _unit_on_a_number(file, text, error)
        or _zhe(file, text, error)
        or _shorthand(file, text, pos)
        or _grouped_with_dots(file, text, pos)
    )
    if on_a_number is not None:
        return on_a_number
    joint = _CHINESE_JOINTS.match(text, pos)
    # `且`, `或者` where `and` or `or` may come: the language's words are English. Not the first
    # character of a word (`== 和服`, `tag 和风`: text, which goes in quotes).
    if joint is not None and {"AND", "OR"} & error.interactive_parser.accepts():
        word = _CHINESE_JOINTS_MEAN[joint[0]]
        return Diagnostic(
            "error",
            "E101",
            f"unexpected `{joint[0]}`",
            _offset_span(file, text, pos, joint.end()),
            f"`{word}` in Chinese",
            f"write `{word}` instead: the rules' words are English",
        )
    instead = _instead(char)
    if instead is not None:
        label, help = instead
        # `&&` and `||` as a whole: `and` is written in place of both characters.
        run = 2 if char in "&|" and text[pos + 1 : pos + 2] == char else 1
        span = Span(file, line, column, line, column + run)
        what = f"character `{char}`" if run == 1 else f"`{text[pos : pos + run]}`"
        return Diagnostic("error", "E101", f"unexpected {what}", span, label, help)
    mistake = None if _shown(char).startswith("U+") else _match_mistake(error)
    if mistake is not None:
        return Diagnostic("error", mistake.code, mistake.message, span, mistake.label, mistake.help)
    return Diagnostic(
        "error",
        "E101",
        f"unexpected character {_shown(char)}",
        span,
        label="not part of the rule language",
        help=(
            "write a plain space instead (a word processor may have put this one in)"
            if char.isspace()
            else "delete it: it cannot be seen"
            if unicodedata.category(char) == "Cf"
            else "text other than names and numbers goes in double quotes"
        ),
    )


_SECONDS = re.compile(r"([0-9]{1,2}:[0-9]{2}):[0-9]{2}(?![0-9])")


def _seconds_of_a_clock(file: str, text: str, position: int) -> Diagnostic | None:
    """E123 at a clock time with seconds (`10:00:00`), where the lexer stops at the second `:`:
    HH:MM, the minute. It was E101 saying `:` is written only inside a clock time."""
    found = _SECONDS.match(text, max(0, position - 5))
    if found is None or found.end(1) != position:
        return None
    return Diagnostic(
        "error",
        "E123",
        "a clock time is written HH:MM, 24-hour",
        _offset_span(file, text, found.start(), found.end()),
        "no seconds",
        f"write `{found[1]}`",
    )


# A number ending just before a character the lexer could not read (`30` before `天`).
_NUMBER_ENDING = re.compile(r"(?<![\w.:\-])[0-9]+(?:\.[0-9]+)?[ \t]*$")


def _unit_on_a_number(file: str, text: str, error: UnexpectedCharacters) -> Diagnostic | None:
    """A unit of time in Chinese after a number where the parser took a number (`>= 30天`,
    `30 小时`), which the lexer cannot read: the duration's own E134 (or E133), told as where a
    duration is written wrongly (`within 3天`), with the plain number to write where it is
    compared (`_compared_slip`); it was E101 saying text goes in quotes."""
    position = error.pos_in_stream or 0
    number = _NUMBER_ENDING.search(text, text.rfind("\n", 0, position) + 1, position)
    if number is None:
        return None
    slip = duration_slip(text, number.start())
    if slip is None or slip.start != position:
        return None
    stack = error.interactive_parser.parser_state.value_stack
    return _compared_slip(file, text, slip, stack) or _slip_diagnostic(file, text, slip)


def _zhe(file: str, text: str, error: UnexpectedCharacters) -> Diagnostic | None:
    """E146 at a coupon's worth written as a Chinese discount (`worth 8折`, `85折`): the price
    paid, in tenths, where the worth is what the coupon takes off (`8折` is 20% off)."""
    position = error.pos_in_stream or 0
    number = _NUMBER_ENDING.search(text, text.rfind("\n", 0, position) + 1, position)
    stack = error.interactive_parser.parser_state.value_stack
    if text[position] != "折" or number is None or _worth(stack) is None:
        return None
    written = number[0].strip()
    paid = Decimal(written)
    if "." not in written and 10 < paid < 100:  # `85折`: 8.5 tenths, 85% of the price
        paid /= 10
    span = _offset_span(file, text, number.start(), position + 1)
    label = "the price paid, not what is taken off"
    if not 0 < paid < 10:  # `10折`, the full price: nothing off
        help = "write what the coupon takes off, as a percentage: `20%` for 8折, where 80% is paid"
        return Diagnostic(
            "error", "E146", "a coupon's worth is what it takes off", span, label, help
        )
    off = format(((10 - paid) * 10).normalize(), "f")
    return Diagnostic(
        "error",
        "E146",
        "a coupon's worth is what it takes off",
        span,
        label,
        f"write `{off}%`: `{written}折` is {off}% off",
    )


# Typographic and full-width characters that stand for one of the language's, which NFKC does
# not give: curly quotes (a string is in straight double quotes, single ones included), the
# ideographic comma and full stop, brackets, dashes and the minus sign.
_LOOK_ALIKES = {
    **dict.fromkeys("“”„‟″〝〞‘’‚‛′「」『』", '"'),
    "、": ",",
    "。": ".",
    "【": "[",
    "】": "]",
    "〔": "(",
    "〕": ")",
    **dict.fromkeys("‐‑‒–—−", "-"),
    **dict.fromkeys("≥≧", ">="),
    **dict.fromkeys("≤≦", "<="),
    "≠": "!=",
    "×": "*",
    "÷": "/",
}

_NOT_OURS = "not part of the rule language"

# `and` and `or` in Chinese, the longest first.
_CHINESE_JOINTS_MEAN = {
    **dict.fromkeys(("并且", "而且", "以及", "且", "和", "与", "及"), "and"),
    **dict.fromkeys(("或者", "或"), "or"),
}
_CHINESE_JOINTS = re.compile("|".join(sorted(_CHINESE_JOINTS_MEAN, key=len, reverse=True)))

# Characters written as in other languages, or with amounts, with what to write instead.
_WRITTEN_ELSEWHERE = {
    "&": "write `and` instead",
    "|": "write `or` instead",
    ":": "delete it: `:` is written only inside a clock time, such as `10:00`",
    ";": "delete it: a statement needs nothing at its end",
}


def _instead(char: str) -> tuple[str, str] | None:
    """The label and the help for a character that is not the language's but means something
    in it."""
    if char in _WRITTEN_ELSEWHERE:
        return _NOT_OURS, _WRITTEN_ELSEWHERE[char]
    if unicodedata.category(char) == "Sc" or char == "元":
        return "a currency sign", f"amounts are plain numbers: delete `{char}`"
    return None


def _look_alike(char: str) -> str | None:
    """The character of the language that `char` stands for, when it is another character
    that looks like it (`（` for `(`, `“` for `"`, `３` or `٣` for `3`), or None."""
    if not char or char.isascii():
        return None  # a plain character stands for itself (`0` after `1,`)
    if char in _LOOK_ALIKES:
        return _LOOK_ALIKES[char]
    digit = unicodedata.decimal(char, None)
    if digit is not None:
        return str(digit)
    plain = unicodedata.normalize("NFKC", char)
    if plain == char or not plain.isascii() or not plain.isprintable() or plain.isspace():
        return None  # a space of another width has help of its own
    return plain


def _look_alike_at(file: str, text: str, position: int) -> Diagnostic | None:
    """E101 for a character at `position` of `text` that stands for one of the language's."""
    char = text[position : position + 1]
    plain = _look_alike(char)
    if plain is None:
        return None
    if char == "，":
        grouped = _grouped_otherwise(file, text, position)
        if grouped is not None:
            return grouped
    clock = plain == ":" and text[position - 1 : position].isdigit()
    if plain in _WRITTEN_ELSEWHERE and not clock:
        # `；`, `：` after a rule's name, `＆`: what the plain one would be told, not to write it.
        return Diagnostic(
            "error",
            "E101",
            f"unexpected character {_shown(char)}",
            _offset_span(file, text, position, position + 1),
            _NOT_OURS,
            _WRITTEN_ELSEWHERE[plain],
        )
    return Diagnostic(
        "error",
        "E101",
        f"unexpected character {_shown(char)}",
        _offset_span(file, text, position, position + 1),
        label=f"not a plain `{plain}`",
        help=f"write `{plain}` instead (an input method or a word processor may have put this "
        "one in)",
    )


def _shown(char: str) -> str:
    """`@` as itself; a character that cannot be seen or told apart (a no-break space, a
    zero-width space, a control character) by its code point and name."""
    if char.isprintable() and not char.isspace() and unicodedata.category(char) != "Cf":
        return f"`{char}`"
    return f"U+{ord(char):04X} ({unicodedata.name(char, 'a control character').lower()})"


def _token_span(file: str, text: str, token: Token) -> Span:
    if token.type == "$END":
        # Lark places the end of input on the last token; point just after it instead.
        line = token.end_line or text.count("\n") + 1
        column = token.end_column or 1
        return Span(file, line, column, line, column + 1)
    return Span(
        file,
        token.line or 1,
        token.column or 1,
        token.end_line or token.line or 1,
        token.end_column or (token.column or 1) + len(token),
    )


def _shorten(token: str, width: int = 30) -> str:
    return token if len(token) <= width else token[: width - 1] + "…"


def _nearest_keyword(token: Token, expected: set[str]) -> str | None:
    """The keyword acceptable here that `token`, an unknown word, most likely misspells."""
    if token.type not in ("NAME", "DOTTED"):
        return None
    words = [w for w in (keyword_of(name) for name in expected) if w]
    matches = difflib.get_close_matches(str(token).lower(), words, n=1, cutoff=0.75)
    return matches[0] if matches else None


# The words that start an action, and the word that is missing before one: `then` before the
# first action of a rule (E110), `and` before each further one (E113).
_ACTION_TERMINALS = frozenset({*_ACTION_WORDS, "UNTAG"})
_JOINTS = (("E110", Token("THEN", "then")), ("E113", Token("AND", "and")))


# Verbs said before an action (`then send message "x"`), and channels named as one (`then email
# "x"`).
_ACTION_VERBS = frozenset({"send", "give", "issue", "add", "create", "do", "make", "award"})
# Each channel word, with the channel's name as the example configuration spells it (`then
# text "x"`: `via sms`, as `via text` names no channel).
_CHANNEL_WORDS = {
    **{"email": "email", "mail": "email", "sms": "sms", "text": "sms"},
    **{"wechat": "wechat", "whatsapp": "whatsapp", "push": "push"},
}


def _action_said(file: str, text: str, error: UnexpectedToken) -> Diagnostic | None:
    """E112 at a word where an action goes that says it as in speech: a verb before the action
    (`then send message "x"`: the help deletes it, and the parser reads on), or a channel for
    the action (`then email "x"`: `message "x" via email`). They were told what the actions are."""
    token = error.token
    expected = set(error.accepts or error.expected)
    if token.type != "NAME" or not expected & _ACTION_TERMINALS:
        return None
    word = str(token).lower()
    after = _word_after(text, token.end_pos or 0)
    if word in _ACTION_VERBS and after in _ACTIONS:
        stack = error.interactive_parser.parser_state.value_stack
        joint = stack[-1] if stack and _is_a(stack[-1], "AND") else "then"
        return Diagnostic(
            "error",
            "E112",
            f"`{token}` is not needed before an action",
            _token_span(file, text, token),
            "not needed",
            f"delete `{token}`: `{joint} {after} ...`",
        )
    if word in _CHANNEL_WORDS and after is not None and after.startswith('"'):
        return Diagnostic(
            "error",
            "E112",
            f"`{token}` is a way to send, not an action",
            _token_span(file, text, token),
            "expected an action here",
            f"write `message {after} via {_CHANNEL_WORDS[word]}` (or `followup`, for after-sales)",
        )
    return None


def _missing_joint(error: UnexpectedToken) -> Mistake | None:
    """E110 or E113 for an action where `then` or `and` is missing before it, told by the
    parser itself: the action could come after that word. The table of mistakes cannot tell
    them apart where the word before the action ends a condition as well as an action
    (`if customer.orders > 1` then a line `tag "x"`: the LALR state after `1` is one)."""
    token = error.token
    if token.type not in _ACTION_TERMINALS:
        return None
    for code, word in _JOINTS:
        trial = error.interactive_parser.copy()
        try:
            trial.feed_token(_borrow(word, token))
        except UnexpectedInput:
            continue
        if token.type in trial.accepts():
            return next(m for m in MISTAKES if m.code == code)
    return None


_OR_BETWEEN_ACTIONS = Mistake(
    "E113",
    "actions are joined with `and`, not with `or`",
    "expected `and` here",
    "a rule takes every action after `then`: write `and` between two actions; to take one or "
    "the other, write a rule for each, with its own `if`",
    ('when a.b then tag "x" or tag "y"',),
)


def _or_between_actions(error: UnexpectedToken, text: str) -> Mistake | None:
    """E113 for `or` between two actions, where `and` could come."""
    if error.token.type != "OR" or _word_after(text, error.token.end_pos or 0) not in _ACTIONS:
        return None
    trial = error.interactive_parser.copy()
    try:
        trial.feed_token(_borrow(Token("AND", "and"), error.token))
    except UnexpectedInput:
        return None
    return _OR_BETWEEN_ACTIONS if trial.accepts() & _ACTION_TERMINALS else None


_ACTIONS = frozenset(t.lower() for t in _ACTION_TERMINALS)
_AT_AFTER_ACTIONS = Mistake(
    "E114",
    "`at` comes with the trigger, before `then`",
    "this comes after the actions",
    "move it to the `when` line, e.g. `when order.received + 13d at 10:00`",
    ('when a.b then tag "x" at 10:00',),
)
_THEN_AGAIN = Mistake(
    "E113",
    "a rule has one `then`: its actions are joined with `and`",
    "a second `then`",
    'write `and` in place of this `then`, e.g. `then tag "vip" and points 50`',
    ('when a.b then tag "x" then tag "y"',),
)


# The mistakes told before the table of `MISTAKES` is read, with their examples (tested alike).
READ_BEFORE_THE_TABLE = (_OR_BETWEEN_ACTIONS, _AT_AFTER_ACTIONS, _THEN_AGAIN)


def _after_actions(error: UnexpectedToken) -> Mistake | None:
    """E114 for `if`, `unless`, `once` or `at` after a rule's actions, E113 for a second `then`,
    after any action (the table knows only some of the words an action may end with)."""
    token = error.token
    if token.type not in ("IF", "UNLESS", "ONCE", "AT", "THEN"):
        return None
    stack = error.interactive_parser.parser_state.value_stack
    if "AND" not in set(error.accepts or error.expected):
        return None
    if not any(_is_a(v, "THEN") for v in stack[::-1] if not isinstance(v, Tree)):
        return None
    if token.type == "THEN":
        return _THEN_AGAIN
    if token.type == "AT":
        return _AT_AFTER_ACTIONS
    return next(m for m in MISTAKES if m.code == "E114")


def _word_after(text: str, position: int) -> str | None:
    """The first word or character after `position` of `text`, past blanks and comments."""
    for match in SCAN.finditer(text, position):
        piece = match.group()
        if not piece.isspace() and not piece.startswith("#"):
            return piece
    return None


def _match_mistake(error: UnexpectedInput) -> Mistake | None:
    """The entry of `MISTAKES` this error resembles (Lark's `match_examples`), if any fits."""
    state = error.state
    # Lark compares whole parser states, stack depth included, so an example would only match
    # a mistake made at the same depth (a named rule is one deeper, and so is every statement
    # after the first). The LALR state alone decides what may come next: compare just that.
    error.state = _SameState(state.position) if isinstance(state, ParserState) else state
    try:
        mistake = error.match_examples(
            parser().parse,
            [(m, m.examples) for m in MISTAKES],
            token_type_match_fallback=True,
            use_accepts=False,  # equal LALR states accept the same words
        )
    finally:
        error.state = state
    if mistake is None:
        return None
    found = error.token.type if isinstance(error, UnexpectedToken) else "<character>"
    return mistake if mistake.any_word or found in _example_words(mistake) else None


class _SameState:
    """Equal to any parser state at the same LALR state, whatever the depth of its stack."""

    def __init__(self, position: object) -> None:
        self.position = position

    def __eq__(self, other: object) -> bool:
        return getattr(other, "position", None) == self.position

    __hash__ = None  # type: ignore[assignment]


@cache
def _example_words(mistake: Mistake) -> frozenset[str]:
    """The kinds of word on which the examples of `mistake` fail."""
    kinds = set()
    for example in mistake.examples:
        try:
            parser().parse(example)
        except UnexpectedToken as error:
            kinds.add(error.token.type)
        except UnexpectedCharacters:
            kinds.add("<character>")
    return frozenset(kinds)
