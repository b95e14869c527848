"""Source text → `RuleFile`: the Lark parser, error recovery and syntax diagnostics.

The grammar (grammar/nudge.lark) is LALR(1), loaded with `strict=True` so that it can hold no
hidden conflict. A syntax error does not end the parse: the `on_error` handler records it, drops
the statement it occurred in and resumes at the next word that starts a statement (`rule`,
`when`, `segment`, `limit`, `quiet`, `exclude`), so one run reports every broken statement.
A misspelt statement word starting a line (`rul`) ends the statement before it where that one
is whole, which is then kept and checked.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from functools import cache
from pathlib import Path

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.parsers.lalr_analysis import Shift
from lark.parsers.lalr_interactive_parser import InteractiveParser
from lark.parsers.lalr_parser_state import ParserState

from engine import ast
from engine.duration_errors import Slip, duration_slip
from engine.errors import Diagnostic, RuleError
from engine.render import remember_source
from engine.source import SourceFile, Span
from engine.syntax_errors import ACTIONS, MISTAKES, Mistake, describe_expected, keyword_of
from engine.transform import to_statement

# The words that start a statement: where the parser picks up again after an error.
SYNC_WORDS = frozenset({"rule", "when", "segment", "limit", "quiet", "exclude"})
_SYNC_TERMINALS = frozenset(w.upper() for w in SYNC_WORDS)
# Strings, comments and words, to find the next statement and the comments without the parser.
_SCAN = re.compile(r'"(?:[^"\\\n]|\\.)*"?|#[^\n]*|[A-Za-z0-9_.]+|\s+|.')


@cache
def parser() -> Lark:
    """The Lark parser of the rule language, built once (and cached on disk by Lark)."""
    return Lark.open_from_package(
        "engine.grammar",
        "nudge.lark",
        parser="lalr",
        lexer="basic",
        strict=True,
        propagate_positions=True,
        cache=True,
    )


@cache
def keywords() -> frozenset[str]:
    """The words of the language (`when`, `followup`, ...), as the grammar spells them."""
    return frozenset(
        t.pattern.value
        for t in parser().terminals
        if t.pattern.type == "str" and t.pattern.value.isalpha()
    )


def parse_file(source: SourceFile) -> ast.RuleFile:
    """Parse one file; raises `RuleError` with every syntax problem found."""
    rule_file, diagnostics = parse_source(source)
    if diagnostics:
        raise RuleError(diagnostics)
    return rule_file


def parse_text(text: str, name: str = "<text>") -> ast.RuleFile:
    """Parse rule text given as a string (tests, tools); raises `RuleError`."""
    return parse_file(SourceFile(name, text))


def parse_source(source: SourceFile) -> tuple[ast.RuleFile, list[Diagnostic]]:
    """The file's AST and its syntax diagnostics. With syntax errors, the AST holds the
    statements that parsed, so that the checker can still report their problems."""
    remember_source(source)
    text = source.text.removeprefix("\ufeff")
    diagnostics: list[Diagnostic] = []
    tree = parser().parse(text, on_error=_Recovery(source.name, text, diagnostics))
    statements: list[ast.Statement] = []
    for child in tree.children:
        assert isinstance(child, Tree)
        too_large = _too_large(child, source.name)
        if too_large is not None:
            diagnostics.append(too_large)
            continue
        node, problems = to_statement(child, source.name)
        diagnostics.extend(problems)
        if node is not None:
            statements.append(node)
    rule_file = ast.RuleFile(Path(source.name).name, tuple(statements), comments(source.name, text))
    return rule_file, diagnostics


# A statement's parse tree nested deeper than this (each `(` adds about ten levels) or larger
# than this is refused: Python's recursion, and SQLite's expression trees (1,000 deep at most),
# would fail on it later. Real rules stay far below both.
MAX_TREE_DEPTH = 200
MAX_TREE_NODES = 5_000


def _too_large(statement: Tree, file: str) -> Diagnostic | None:
    """E132 when `statement` is nested too deep or holds too much to evaluate."""
    deepest, nodes = 0, 0
    pending: list[tuple[Tree | Token, int]] = [(statement, 1)]
    while pending:
        node, depth = pending.pop()
        nodes += 1
        deepest = max(deepest, depth)
        # A list is one value, however long (`in [...]` with 3,000 SKUs): its items add no
        # depth to the SQL, and are not counted.
        if isinstance(node, Tree) and node.data != "list_value":
            pending.extend((child, depth + 1) for child in node.children)
    if deepest <= MAX_TREE_DEPTH and nodes <= MAX_TREE_NODES:
        return None
    meta = statement.meta
    span = Span(file, meta.line, meta.column, meta.line, meta.column + 1)
    return Diagnostic(
        "error",
        "E132",
        "this statement is too large to evaluate"
        if nodes > MAX_TREE_NODES
        else "this statement is nested too deep to evaluate",
        span,
        label="the statement starts here",
        help="split the condition into segments, or into several rules",
    )


def comments(file: str, text: str) -> tuple[ast.Comment, ...]:
    """Every `# ...` comment of `text` (outside strings), with whether it has a line of its own."""
    found = []
    line, line_start = 1, 0
    for match in _SCAN.finditer(text):
        piece = match.group()
        if piece.startswith("#"):
            column = match.start() - line_start + 1
            own_line = not text[line_start : match.start()].strip()
            span = Span(file, line, column, line, column + len(piece))
            found.append(ast.Comment(piece.rstrip(), span, own_line))
        newlines = piece.count("\n")
        if newlines:
            line += newlines
            line_start = match.start() + piece.rindex("\n") + 1
    return tuple(found)


def _next_statement(text: str, start: int) -> int:
    """Where the next statement begins at or after `start` (len(text) if none): a statement
    word, or a line that starts with a misspelling of one (`wen`), so that it is reported."""
    for match in _SCAN.finditer(text, start):
        word = match.group()
        if word in SYNC_WORDS:
            return match.start()
        if _misspelt_start(text, match.start(), word):
            return match.start()
    return len(text)


def _starts_line(text: str, start: int) -> bool:
    """Whether only blanks come before `start` on its line of `text`."""
    return not text[text.rfind("\n", 0, start) + 1 : start].strip()


def _misspelt_start(text: str, start: int, word: str) -> bool:
    """Whether `word`, at `start` of `text`, starts its line and misspells a statement word."""
    return (
        word.isalpha()
        and _starts_line(text, start)
        and word not in keywords()
        and bool(difflib.get_close_matches(word, SYNC_WORDS, n=1, cutoff=0.8))
    )


class _Recovery:
    """The `on_error` handler: record the error, then resume at the next statement."""

    def __init__(self, file: str, text: str, diagnostics: list[Diagnostic]) -> None:
        self.file = file
        self.text = text
        self.diagnostics = diagnostics

    def __call__(self, error: UnexpectedInput) -> bool:
        self.diagnostics.append(_diagnose(self.file, self.text, error))
        interactive = error.interactive_parser
        state = interactive.parser_state
        if isinstance(error, UnexpectedToken):
            token = error.token
            # A misspelt statement word starting a line begins the next statement.
            new_statement = _misspelt_start(self.text, token.start_pos or 0, str(token))
            if token.type == "$END":
                resume = len(self.text)
            elif token.type in _SYNC_TERMINALS:
                resume = token.start_pos or 0
            else:
                resume = _next_statement(self.text, token.end_pos or 0)
        else:
            assert isinstance(error, UnexpectedCharacters)
            position = error.pos_in_stream or 0
            # A stray character starting a line (`!oops`) most likely does too.
            new_statement = _starts_line(self.text, position)
            if self.text[position] == '"':  # an unclosed string: the rest of its line is lost
                end_of_line = self.text.find("\n", position)
                position = len(self.text) if end_of_line < 0 else end_of_line
            resume = _next_statement(self.text, position + 1)
        if new_statement:
            _end_statement(interactive)
        # Drop the unfinished statement: back to a state that can start a new one.
        states = state.parse_conf.states
        while len(state.state_stack) > 1 and not _starts_statement(states[state.position]):
            state.state_stack.pop()
            state.value_stack.pop()
        lexer_state = interactive.lexer_thread.state
        assert lexer_state is not None
        _move_lexer(lexer_state.line_ctr, self.text, resume)
        return True


def _end_statement(interactive: InteractiveParser) -> None:
    """End the statement before a misspelt statement word or a stray character starting a line
    (`rul "two"` or `!` after a whole rule), when it is whole, so that it is kept and checked:
    the parser waits for the next word before it knows a statement has ended."""
    start = Token("RULE", "rule")
    try:
        interactive.copy().feed_token(start)
    except UnexpectedInput:
        return  # the statement is unfinished: it is dropped
    interactive.feed_token(start)
    state = interactive.parser_state
    state.state_stack.pop()  # the `rule` fed, not written: back before it
    state.value_stack.pop()


def _starts_statement(actions: dict[str, tuple]) -> bool:
    return actions.get("SEGMENT", (None,))[0] is Shift


def _move_lexer(line_ctr: object, text: str, position: int) -> None:
    """Put Lark's line counter at `position` of `text`, forward or back."""
    line_start = text.rfind("\n", 0, position) + 1
    line_ctr.char_pos = position  # type: ignore[attr-defined]
    line_ctr.line = text.count("\n", 0, position) + 1  # type: ignore[attr-defined]
    line_ctr.line_start_pos = line_start  # type: ignore[attr-defined]
    line_ctr.column = position - line_start + 1  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------
# Syntax diagnostics


def _diagnose(file: str, text: str, error: UnexpectedInput) -> Diagnostic:
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

    dangling = _dangling(file, text, token, expected)
    if dangling is not None:
        return dangling
    if token.type == "NUMBER" and "DURATION" in expected:
        slip = duration_slip(text, token.start_pos or 0)
        if slip is not None:
            return _slip_diagnostic(file, text, slip)
    word_slip = _operator_slip(file, text, token) or _every_weekday(span, token, expected)
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
    slip = _slip_before(text, token)
    if slip is not None:
        return _slip_diagnostic(file, text, slip)
    mistake = _match_mistake(error)
    if (mistake is not None and mistake.code == "E131") or expected == {"RPAR"}:
        unclosed = _unclosed(file, text, token)
        if unclosed is not None:
            return unclosed
    if mistake is not None:
        return Diagnostic("error", mistake.code, mistake.message, span, mistake.label, mistake.help)
    return Diagnostic(
        "error",
        "E100",
        f"unexpected {found}",
        span,
        label=f"expected {describe_expected(expected)}",
    )


# The last word or operator of a line, and the words and operators that need something after
# them: a line ending in one goes on at the next, where the parser stops.
_LAST_WORD = re.compile(r"(>=|<=|==|!=|[<>+\-*/]|[A-Za-z_][A-Za-z0-9_.]*)[ \t]*$")
_NEEDS_A_VALUE = frozenset({"==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/"})
_NEEDS_A_CONDITION = frozenset({"and", "or", "not", "if"})
_ACTION_WORDS = frozenset({"MESSAGE", "FOLLOWUP", "COUPON", "POINTS", "TASK", "GIFT", "TAG"})


def _dangling(file: str, text: str, token: Token, expected: set[str]) -> Diagnostic | None:
    """The error at the end of the line before `token`, when that line ends in an operator,
    `and`, `or`, `not`, `if` or `then` and `token` starts the next one (or ends the file):
    `customer.orders >` then a line `then tag "x"`. The line that is unfinished is the one to
    show, not the next, which is right as written."""
    start = len(text) if token.type == "$END" else token.start_pos or 0
    if token.type != "$END" and not _starts_line(text, start):
        return None
    last = _last_word(text, start)
    if last is None:
        return None
    position, word = last
    unfinished = _unfinished(word, in_actions=bool(expected & _ACTION_WORDS))
    if unfinished is None:
        return None
    span = _offset_span(file, text, position, position + len(word))
    next_line = text.count("\n", 0, start) + 1
    goes_on = (
        "the file ends after it"
        if token.type == "$END"
        else f"line {next_line} goes on with `{_shorten(token)}`, which cannot follow it"
    )
    code, message, help = unfinished
    return Diagnostic("error", code, message, span, goes_on, help)


def _unclosed(file: str, text: str, token: Token) -> Diagnostic | None:
    """E131 at the `(` that is not closed, the innermost one before `token`, where the parser
    wanted its `)`; the help says where that was. None when no `(` is open there."""
    stop = len(text) if token.type == "$END" else token.start_pos or 0
    opened: list[int] = []
    for match in _SCAN.finditer(text, 0, stop):
        piece = match.group()
        if piece in SYNC_WORDS:
            opened.clear()  # parentheses do not go on from one statement to the next
        elif piece == "(":
            opened.append(match.start())
        elif piece == ")" and opened:
            opened.pop()
    if not opened:
        return None
    span = _offset_span(file, text, opened[-1], opened[-1] + 1)
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


def _unfinished(word: str, in_actions: bool) -> tuple[str, str, str] | None:
    """Code, message and help for a statement whose line ends in `word`, which needs more."""
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
    for match in _SCAN.finditer(line):
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
    look_alike_here = _look_alike_at(file, text, pos)
    if look_alike_here is not None:
        return look_alike_here
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
}


def _look_alike(char: str) -> str | None:
    """The character of the language that `char` stands for, when it is another character
    that looks like it (`（` for `(`, `“` for `"`, `３` or `٣` for `3`), or None."""
    if not char:
        return None
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
    matches = difflib.get_close_matches(str(token), words, n=1, cutoff=0.75)
    return matches[0] if matches else None


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
