"""The rule language as both the parser and its error messages read it: the Lark parser built
from grammar/nudge.lark, its keywords, the words that start a statement, and a scanner that
tells words, strings and comments apart without the parser.

`engine.language.parse` uses them to parse and to resume after a syntax error;
`engine.language.syntax_diagnosis` to tell what a syntax error is.
"""

from __future__ import annotations

import difflib
import re
from functools import cache

from lark import Lark

# The words that start a statement: where the parser picks up again after an error.
SYNC_WORDS = frozenset({"rule", "when", "segment", "limit", "quiet", "exclude"})
# Strings, comments and words, to find the next statement and the comments without the parser.
SCAN = re.compile(r'"(?:[^"\\\n]|\\.)*"?|#[^\n]*|[A-Za-z0-9_.]+|\s+|.')


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


def starts_line(text: str, start: int) -> bool:
    """Whether only blanks come before `start` on its line of `text`."""
    return not text[text.rfind("\n", 0, start) + 1 : start].strip()


def misspelt_start(text: str, start: int, word: str) -> bool:
    """Whether `word`, at `start` of `text`, starts its line and misspells a statement word
    (`wen`, or `When` in capitals): it is taken as the start of a statement."""
    return (
        word.isalpha()
        and starts_line(text, start)
        and word not in keywords()
        and bool(difflib.get_close_matches(word.lower(), SYNC_WORDS, n=1, cutoff=0.8))
    )
