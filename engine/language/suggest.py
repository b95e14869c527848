"""Nearest known names, for "did you mean ...?" help lines."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# Candidates this close to the best one's ratio are told apart by how much of `word` they begin
# with: a typo is rarely in the first letters (`order.payed` is `order.paid`, not
# `order.placed`, whose ratio is a little higher).
NEAR_TIE = 0.05


def nearest(word: str, candidates: Iterable[str], cutoff: float = 0.75) -> str | None:
    """The candidate closest to `word` (difflib's ratio at least `cutoff`), or None. Two
    neighbouring letters swapped (`ordres`, `pionts`) are close whatever the ratio: difflib
    scores such a typo of a short word below a high cutoff."""
    options = sorted({c for c in candidates if c != word})
    scored = [
        (difflib.SequenceMatcher(None, word, option).ratio(), option)
        for option in difflib.get_close_matches(word, options, n=5, cutoff=cutoff)
    ]
    if not scored:
        swapped = [option for option in options if _one_swap(word, option)]
        if swapped:
            return swapped[0]
        folded = {c.casefold(): c for c in options}
        return folded.get(word.casefold())
    best = max(ratio for ratio, _ in scored)
    close = [(ratio, option) for ratio, option in scored if ratio >= best - NEAR_TIE]
    return max(close, key=lambda c: (_shared_start(word, c[1]), c[0]))[1]


def _one_swap(one: str, other: str) -> bool:
    """Whether `other` is `one` with two neighbouring letters swapped."""
    if len(one) != len(other):
        return False
    differ = [i for i, (a, b) in enumerate(zip(one, other, strict=True)) if a != b]
    return (
        len(differ) == 2
        and differ[1] == differ[0] + 1
        and one[differ[0]] == other[differ[1]]
        and one[differ[1]] == other[differ[0]]
    )


def _shared_start(one: str, other: str) -> int:
    """How many first characters the two have in common."""
    pairs = zip(one, other, strict=False)
    return next((i for i, (a, b) in enumerate(pairs) if a != b), min(len(one), len(other)))


def did_you_mean(word: str, candidates: Iterable[str], cutoff: float = 0.75) -> str | None:
    """ "did you mean `X`?" for the nearest candidate, or None."""
    match = nearest(word, candidates, cutoff)
    return f"did you mean `{match}`?" if match else None
