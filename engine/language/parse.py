"""Source text → `RuleFile`: the parse, and its recovery from syntax errors.

The grammar (grammar/nudge.lark) is LALR(1), loaded with `strict=True` so that it can hold no
hidden conflict (`engine.language.grammar`). A syntax error does not end the parse: the `on_error`
handler records it, in the words of `engine.language.syntax_diagnosis`, drops the statement it
occurred in and resumes at the next word that starts a statement (`rule`, `when`, `segment`,
`limit`, `quiet`, `exclude`), so one run reports every broken statement.
A misspelt statement word starting a line (`rul`) ends the statement before it where that one
is whole, which is then kept and checked; where it is not, the parser resumes at that word, so
that it is reported too. Where the diagnostic's help names the one edit that
fixes the error (`==` for `=`, `and` between two actions), the parser reads on as if it were
made instead, so that a mistake on a later line of the same statement is reported too; that
statement is not kept.
"""

from __future__ import annotations

from pathlib import Path

from lark import Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.parsers.lalr_analysis import Shift
from lark.parsers.lalr_interactive_parser import InteractiveParser

from engine.errors import Diagnostic, RuleError
from engine.language import ast
from engine.language.grammar import SCAN, SYNC_WORDS, misspelt_start, parser, starts_line
from engine.language.source import SourceFile, Span
from engine.language.syntax_diagnosis import NEEDS_MORE, correction, diagnose
from engine.language.transform import to_statement
from engine.render import remember_source

# The statement words as the parser's terminals (`RULE`, `WHEN`, ...).
_SYNC_TERMINALS = frozenset(w.upper() for w in SYNC_WORDS)


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
    recovery = _Recovery(source.name, text, diagnostics)
    tree = parser().parse(text, on_error=recovery)
    statements: list[ast.Statement] = []
    for child in tree.children:
        assert isinstance(child, Tree)
        if recovery.corrected(child):
            continue  # read with a correction: its words are not all the merchant's
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
    for match in SCAN.finditer(text):
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
    for match in SCAN.finditer(text, start):
        word = match.group()
        if word in SYNC_WORDS:
            return match.start()
        if misspelt_start(text, match.start(), word):
            return match.start()
    return len(text)


# Diagnostics about the word the parser stopped at itself: its spelling, a character in it; and
# those told at the word about the statement before it (no `then`, a `(` not closed).
_OF_THE_WORD = frozenset({"E101", "E102"})
_OF_THE_STATEMENT = frozenset({"E111", "E131"})


class _Recovery:
    """The `on_error` handler: record the error, then read on with the correction its help
    names, or else resume at the next statement."""

    def __init__(self, file: str, text: str, diagnostics: list[Diagnostic]) -> None:
        self.file = file
        self.text = text
        self.diagnostics = diagnostics
        self.corrections: list[int] = []  # where the parser read words not written

    def corrected(self, statement: Tree) -> bool:
        """Whether `statement` was read with a correction."""
        meta = statement.meta
        return any(meta.start_pos <= at < meta.end_pos for at in self.corrections)

    def __call__(self, error: UnexpectedInput) -> bool:
        diagnostic = diagnose(self.file, self.text, error)
        self.diagnostics.append(diagnostic)
        interactive = error.interactive_parser
        if isinstance(error, UnexpectedToken):
            token = error.token
            # A misspelt statement word starting a line begins the next statement, and so does
            # a rule's name without `rule` (E128 at text in quotes).
            misspelt = misspelt_start(self.text, token.start_pos or 0, str(token))
            new_statement = misspelt or (diagnostic.code == "E128" and token.type == "STRING")
            if token.type == "$END":
                resume = len(self.text)
            elif token.type in _SYNC_TERMINALS:
                resume = token.start_pos or 0
            elif misspelt and diagnostic.code not in _OF_THE_WORD and not _at_start(interactive):
                # The error is the statement's before the misspelt word (`>` ending the line
                # above, a rule without `then`): the word is read again where a statement
                # starts, so that it is reported too, with the keyword it misspells. An error
                # that read the word as the unfinished statement's value (`tag`, then `rul` on
                # the next line: E117 "text goes in quotes") is not told: it would contradict
                # that reading.
                if _points_at(diagnostic, token) and diagnostic.code not in _OF_THE_STATEMENT:
                    self.diagnostics.pop()
                resume = token.start_pos or 0
            else:
                resume = _next_statement(self.text, token.end_pos or 0)
        else:
            assert isinstance(error, UnexpectedCharacters)
            position = error.pos_in_stream or 0
            # A stray character starting a line (`!oops`) most likely does too.
            new_statement = starts_line(self.text, position)
            if self.text[position] == '"':  # an unclosed string: the rest of its line is lost
                end_of_line = self.text.find("\n", position)
                position = len(self.text) if end_of_line < 0 else end_of_line
            resume = _next_statement(self.text, position + 1)
        if new_statement:
            _end_statement(interactive)
        if isinstance(error, UnexpectedToken) and self._correct(error, diagnostic):
            return True
        _drop_unfinished(interactive)
        lexer_state = interactive.lexer_thread.state
        assert lexer_state is not None
        _move_lexer(lexer_state.line_ctr, self.text, resume)
        return True

    def _correct(self, error: UnexpectedToken, diagnostic: Diagnostic) -> bool:
        """Read on as if the edit that the help of `diagnostic` names were made, when there is
        one and the rest of the line shown then reads, so that a mistake on a later line of the
        same statement is reported too (`tag "y"` under `... = 1 then tag "x"`). A second
        mistake on the line shown is not: it may be the first one's doing."""
        token = error.token
        if token.type == "$END" or token.type in _SYNC_TERMINALS:
            return False  # the statement ends here: nothing of it is left to read
        words = correction(error, diagnostic)
        assert diagnostic.span is not None
        if words is None or not _reads_on(error.interactive_parser, words, diagnostic.span.line):
            return False
        for word in words:
            error.interactive_parser.feed_token(word)
        self.corrections.append(token.start_pos or 0)
        return True


def _reads_on(interactive: InteractiveParser, words: list[Token], line: int) -> bool:
    """Whether the parser takes `words`, and after them what is left of `line`, up to its end:
    a line that then ends in a word needing more (`and 3 <=`, read for `and <=`) does not read
    on when what comes next cannot follow that word, as its error would be the same mistake
    told twice."""
    trial = interactive.copy()  # a deep copy: the parser appends finished statements in place
    last = words[-1].type if words else None
    try:
        for word in words:
            trial.feed_token(word)
        for token in trial.iter_parse():  # each token is fed after it is seen
            if token.line != line:
                if last in NEEDS_MORE:
                    trial.copy().feed_token(token)
                break
            last = token.type
        else:
            return last not in NEEDS_MORE  # the file ends after the line
    except UnexpectedInput:
        return False
    return True


def _drop_unfinished(interactive: InteractiveParser) -> None:
    """Drop the unfinished statement: back to a state that can start a new one."""
    state = interactive.parser_state
    states = state.parse_conf.states
    while len(state.state_stack) > 1 and not _starts_statement(states[state.position]):
        state.state_stack.pop()
        state.value_stack.pop()


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


def _points_at(diagnostic: Diagnostic, token: Token) -> bool:
    """Whether `diagnostic` is told at `token`."""
    span = diagnostic.span
    return span is not None and (span.line, span.column) == (token.line, token.column)


def _at_start(interactive: InteractiveParser) -> bool:
    """Whether the parser is where a statement may start (and none is unfinished)."""
    state = interactive.parser_state
    return _starts_statement(state.parse_conf.states[state.position])


def _starts_statement(actions: dict[str, tuple]) -> bool:
    return actions.get("SEGMENT", (None,))[0] is Shift


def _move_lexer(line_ctr: object, text: str, position: int) -> None:
    """Put Lark's line counter at `position` of `text`, forward or back."""
    line_start = text.rfind("\n", 0, position) + 1
    line_ctr.char_pos = position  # type: ignore[attr-defined]
    line_ctr.line = text.count("\n", 0, position) + 1  # type: ignore[attr-defined]
    line_ctr.line_start_pos = line_start  # type: ignore[attr-defined]
    line_ctr.column = position - line_start + 1  # type: ignore[attr-defined]
