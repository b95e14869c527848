"""Nearest known names, for "did you mean ...?" help lines."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def nearest(word: str, candidates: Iterable[str], cutoff: float = 0.75) -> str | None:
    """The candidate closest to `word` (difflib's ratio at least `cutoff`), or None."""
    options = sorted({c for c in candidates if c != word})
    matches = difflib.get_close_matches(word, options, n=1, cutoff=cutoff)
    if not matches:
        folded = {c.casefold(): c for c in options}
        return folded.get(word.casefold())
    return matches[0]


def did_you_mean(word: str, candidates: Iterable[str], cutoff: float = 0.75) -> str | None:
    """ "did you mean `X`?" for the nearest candidate, or None."""
    match = nearest(word, candidates, cutoff)
    return f"did you mean `{match}`?" if match else None
