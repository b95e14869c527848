"""Long lists of keys, cut for `IN (...)`: SQLite takes at most 32,766 bound parameters in a
statement and PostgreSQL 65,535, and a tick for a large shop can concern more customers."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

IN_LIST = 5000  # bound parameters per IN list


def chunks(values: Iterable[T]) -> Iterator[Sequence[T]]:
    """`values` in lists of at most `IN_LIST`, in order."""
    items = list(values)
    for start in range(0, len(items), IN_LIST):
        yield items[start : start + IN_LIST]
