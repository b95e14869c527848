"""Long lists of keys, cut for `IN (...)`: SQLite takes at most 32,766 bound parameters in a
statement and PostgreSQL 65,535, and a tick for a large shop can concern more customers."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

T = TypeVar("T")

IN_LIST = 5000  # bound parameters per IN list


def chunks(values: Iterable[T]) -> Iterator[Sequence[T]]:
    """`values` in lists of at most `IN_LIST`, in order."""
    items = list(values)
    for start in range(0, len(items), IN_LIST):
        yield items[start : start + IN_LIST]


def among(column: sa.ColumnElement[Any], name: str, dialect: str) -> sa.ColumnElement[bool]:
    """`column` is one of the values of the parameter `name`, a list (one of `chunks`). On
    PostgreSQL `= ANY` of an array: one parameter, so the statement's text stays short and the
    same whatever the list's length (as an `IN` list of 5,000 parameters, writing and parsing
    it took twice as long as the query). Elsewhere an expanding `IN (...)`."""
    if dialect == "postgresql":
        return column == sa.any_(sa.bindparam(name, type_=postgresql.ARRAY(column.type)))
    return column.in_(sa.bindparam(name, expanding=True))
