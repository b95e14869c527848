"""SQL that differs between SQLite and PostgreSQL, in one place (SQLAlchemy `@compiles`).

Rule queries read JSON properties and attributes as numbers, text or yes/no. Values imported
from CSV are text, so text written as a number reads as that number: the JSON number syntax
(`3`, ` 3.50 `, `-0.5`, `1e5`), at most 45 characters with an exponent of at most two digits,
so that it stays a finite double on both databases. Anything else reads as unset (NULL), never
as an error.
"""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import Boolean, Double, String, Text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.visitors import InternalTraversal

# Blanks as JSON has them, which are what SQLite's `json_valid` allows around a number: space,
# tab, CR and LF. (PostgreSQL's `\s` takes more: a vertical tab, a form feed and, with a UTF-8
# locale, Unicode's spaces such as the ideographic one.)
_NUMBER_RE = r"^[ \t\n\r]*-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]{1,2})?[ \t\n\r]*$"
_NUMBER_LENGTH = 45


# Arithmetic and sums whose result would be beyond this are not set (`sqlgen.Compiler._arith`,
# `bounded_sum`): below the double's limit, 1.8e308, with room for the rounding of the tests.
LARGEST = 1e308
# Products and quotients below this are 0 (`arith`).
TINIEST = 1e-300


# The operator is written into the SQL: part of the cache key, as a JSON member is (below).
_WITH_SYMBOL = [*FunctionElement._traverse_internals, ("symbol", InternalTraversal.dp_string)]


class arith(FunctionElement[Any]):
    """`left OP right` on numbers (OP one of + - * /), not set (NULL) where the result would be
    beyond about LARGEST, never an error: PostgreSQL fails a query whose arithmetic overflows,
    SQLite gives an infinity. Each database calls a function that tests the operands first
    (`arith_value`, `ARITH_FUNCTION`), so that each operand is written once and nested
    arithmetic stays as long as it is written."""

    type = Double()
    inherit_cache = True
    _traverse_internals = _WITH_SYMBOL

    def __init__(self, symbol: str, left: ColumnElement[Any], right: ColumnElement[Any]) -> None:
        self.symbol = symbol
        super().__init__(left, right)


@compiles(arith, "sqlite")
def _arith_sqlite(element: arith, compiler: SQLCompiler, **kw: Any) -> str:
    left, right = (compiler.process(c, **kw) for c in element.clauses)
    return f"nudge_arith('{element.symbol}', {left}, {right})"


@compiles(arith, "postgresql")
def _arith_pg(element: arith, compiler: SQLCompiler, **kw: Any) -> str:
    left, right = (compiler.process(c, **kw) for c in element.clauses)
    return f"pg_temp.nudge_arith('{element.symbol}', ({left})::float8, ({right})::float8)"


def arith_value(symbol: str, left: object, right: object) -> float | None:
    """`arith` on SQLite (a function of each connection, `engine.storage.db`): the tests of
    `ARITH_FUNCTION`, in the same order."""
    if not isinstance(left, int | float) or not isinstance(right, int | float):
        return None
    a, b = float(left), float(right)
    if symbol in "+-":
        if abs(a) > LARGEST - abs(b):
            return None
        return a + b if symbol == "+" else a - b
    if symbol == "*":
        if abs(a) <= 1 and abs(b) < TINIEST / max(abs(a), TINIEST):
            return 0.0
        return a * b if abs(a) <= 1 or abs(b) <= LARGEST / abs(a) else None
    if b == 0:
        return None
    if abs(b) >= 1:
        return 0.0 if abs(a) < TINIEST * abs(b) else a / b
    return a / b if abs(a) <= LARGEST * abs(b) else None


# The function of `arith` on PostgreSQL, made in each session's own schema with the scratch
# tables (`engine.evaluation.scratch.reset`). Each test is one that cannot itself overflow or
# underflow (a difference for `+` and `-`, a quotient for `*`, a product with a number of at least 1
# for `/`), and a product or quotient below TINIEST is 0, where PostgreSQL fails on a result that
# underflows to zero.
ARITH_FUNCTION = f"""
CREATE FUNCTION pg_temp.nudge_arith(op text, a float8, b float8) RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $nudge$
SELECT CASE
  WHEN op IN ('+', '-') THEN CASE
    WHEN abs(a) <= {LARGEST!r} - abs(b)
    THEN CASE op WHEN '+' THEN a + b ELSE a - b END END
  WHEN op = '*' THEN CASE
    WHEN abs(a) <= 1 AND abs(b) < {TINIEST!r} / greatest(abs(a), {TINIEST!r}) THEN 0
    WHEN abs(a) <= 1 THEN a * b
    WHEN abs(b) <= {LARGEST!r} / abs(a) THEN a * b END
  ELSE CASE
    WHEN b = 0 THEN NULL
    WHEN abs(b) >= 1 AND abs(a) < {TINIEST!r} * abs(b) THEN 0
    WHEN abs(b) >= 1 THEN a / b
    WHEN abs(a) <= {LARGEST!r} * abs(b) THEN a / b END
END
$nudge$"""


# PostgreSQL sums the values scaled by this power of two (exactly: only the exponent moves), so
# that the sum cannot overflow, which would fail the query, before it is tested.
_SUM_SCALE = 2**-16


class bounded_sum(FunctionElement[Any]):
    """The sum of a number over the rows: 0 over none, not set where beyond LARGEST, never an
    error (SQLite's `sum` of integers fails on overflow; its `total` adds doubles). Each
    database computes the aggregate written twice once."""

    type = Double()
    inherit_cache = True


@compiles(bounded_sum, "sqlite")
def _bounded_sum_sqlite(element: bounded_sum, compiler: SQLCompiler, **kw: Any) -> str:
    total = f"total({compiler.process(element.clauses, **kw)})"
    return f"(CASE WHEN abs({total}) <= {LARGEST!r} THEN {total} END)"


@compiles(bounded_sum, "postgresql")
def _bounded_sum_pg(element: bounded_sum, compiler: SQLCompiler, **kw: Any) -> str:
    value = compiler.process(element.clauses, **kw)
    # a value below TINIEST is left out: scaled, it would underflow, which PostgreSQL fails on
    scaled = f"CASE WHEN abs({value}) >= {TINIEST!r} THEN ({value}) * {_SUM_SCALE!r}::float8 END"
    total = f"coalesce(sum({scaled}), 0)"
    return (
        f"(CASE WHEN abs({total}) <= {LARGEST * _SUM_SCALE!r}::float8"
        f" THEN {total} * {1 / _SUM_SCALE!r}::float8 END)"
    )


# Points are added up in millionths, as whole numbers: exactly, so that a balance does not
# depend on how its gifts are grouped (0.2 + 0.4 + 29.4 is 30 whichever two are added first, as
# floating point would not have it), up to 9 billion points. A gift beyond a trillion points
# makes the balance not set.
MICRO = 1_000_000
LARGEST_GIFT = 1e12


class points_total(FunctionElement[Any]):
    """The sum of a column of points over the rows in millionths (each rounded half away from
    zero), a whole number as a double: 0 over none, not set where a value is beyond
    LARGEST_GIFT. `balance` of such sums gives the points."""

    type = Double()
    inherit_cache = True


@compiles(points_total, "sqlite")
def _points_total_sqlite(element: points_total, compiler: SQLCompiler, **kw: Any) -> str:
    value = compiler.process(element.clauses, **kw)
    micro = f"CAST({value} * {MICRO}.0 + CASE WHEN {value} < 0 THEN -0.5 ELSE 0.5 END AS INTEGER)"
    micro = f"CASE WHEN abs({value}) <= {LARGEST_GIFT!r} THEN {micro} END"
    # `total` adds doubles, exactly while below 2**53; `sum` of integers fails on overflow
    return f"(CASE WHEN max(abs({value})) > {LARGEST_GIFT!r} THEN NULL ELSE total({micro}) END)"


@compiles(points_total, "postgresql")
def _points_total_pg(element: points_total, compiler: SQLCompiler, **kw: Any) -> str:
    value = compiler.process(element.clauses, **kw)
    micro = f"trunc({value} * {MICRO}::float8 + CASE WHEN {value} < 0 THEN -0.5 ELSE 0.5 END)"
    # the aggregate is computed whatever the CASE around it says: a gift beyond
    # LARGEST_GIFT is left out of it, or its millionths would overflow
    micro = f"CASE WHEN abs({value}) <= {LARGEST_GIFT!r} THEN {micro}::bigint END"
    return (
        f"(CASE WHEN max(abs({value})) > {LARGEST_GIFT!r} THEN NULL"
        f" ELSE coalesce(sum({micro}), 0)::float8 END)"
    )


def balance(totals: list[ColumnElement[Any]]) -> ColumnElement[Any]:
    """The points of `points_total`s (of the recorded gifts and of the evaluation's own)."""
    whole = totals[0]
    for more in totals[1:]:
        whole = whole + more
    return whole / float(MICRO)


# The member is written into the SQL, so it is part of the statement's cache key: without it,
# SQLAlchemy would reuse the SQL it compiled for another member in a statement of the same shape.
_WITH_MEMBER = [*FunctionElement._traverse_internals, ("member", InternalTraversal.dp_string)]


class _JsonField(FunctionElement[Any]):
    inherit_cache = True
    _traverse_internals = _WITH_MEMBER

    def __init__(self, column: ColumnElement[Any], member: str) -> None:
        self.member = member
        super().__init__(column)

    @property
    def column(self) -> ColumnElement[Any]:
        return next(iter(self.clauses))

    def path(self) -> str:
        escaped = self.member.replace("\\", "\\\\").replace('"', '\\"')
        return f'$."{escaped}"'


class json_num(_JsonField):
    """A JSON member as a number; NULL when missing or not numeric."""

    type = Double()
    inherit_cache = True


class json_set(_JsonField):
    """Whether a JSON member is set: present and not null (a list or an object is set). Never
    NULL."""

    type = Boolean()
    inherit_cache = True


class json_text(_JsonField):
    """A JSON member as text (numbers as written); NULL when missing or null, and when a list
    or an object, which is no text."""

    type = Text()
    inherit_cache = True


class json_bool(_JsonField):
    """A JSON member as yes/no: JSON true/false, or text true/false/yes/no/1/0."""

    type = Boolean()
    inherit_cache = True


ItemKind = Literal["text", "number", "bool"]
_WITH_MEMBER_AND_KIND = [*_WITH_MEMBER, ("kind", InternalTraversal.dp_string)]


class json_contains(_JsonField):
    """Whether a JSON member holds `item`, of kind `kind`: membership when it is a list (a
    member of the same kind equal to it), a substring test when it is text (a number looked for
    as its text, `3` not `3.0`, to 15 significant digits; yes/no as `true`/`false`); NULL
    otherwise (unset)."""

    type = Boolean()
    inherit_cache = True
    _traverse_internals = _WITH_MEMBER_AND_KIND

    def __init__(
        self, column: ColumnElement[Any], member: str, item: ColumnElement[Any], kind: ItemKind
    ) -> None:
        self.member = member
        self.kind = kind
        FunctionElement.__init__(self, column, item)

    @property
    def item(self) -> ColumnElement[Any]:
        return list(self.clauses)[1]


class strpos(FunctionElement[Any]):
    """1-based position of `needle` in `haystack`, 0 when absent."""

    inherit_cache = True


def _lit(compiler: SQLCompiler, value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@compiles(json_num, "sqlite")
def _json_num_sqlite(element: json_num, compiler: SQLCompiler, **kw: Any) -> str:
    col = compiler.process(element.column, **kw)
    path = _lit(compiler, element.path())
    value = f"json_extract({col}, {path})"
    kind = f"json_type({col}, {path})"
    # Text is a number when it is valid JSON of a number type (checked before json_type,
    # which raises on malformed JSON), not too long, with a short exponent.
    number_text = (
        f"CASE WHEN json_valid({value}) THEN json_type({value}) END IN ('integer', 'real')"
        f" AND length({value}) <= {_NUMBER_LENGTH}"
        f" AND {value} NOT GLOB '*[eE]*[0-9][0-9][0-9]*'"
    )
    return (
        f"(CASE WHEN {kind} IN ('integer', 'real') THEN {value}"
        f" WHEN {kind} = 'text' AND {number_text} THEN CAST({value} AS REAL) END)"
    )


@compiles(json_num, "postgresql")
def _json_num_pg(element: json_num, compiler: SQLCompiler, **kw: Any) -> str:
    col = compiler.process(element.column, **kw)
    key = _lit(compiler, element.member)
    text = f"({col} ->> {key})"
    return (
        f"(CASE jsonb_typeof({col} -> {key}) WHEN 'number' THEN {text}::float8"
        f" WHEN 'string' THEN CASE WHEN length({text}) <= {_NUMBER_LENGTH}"
        f" AND {text} ~ '{_NUMBER_RE}' THEN {text}::float8 END END)"
    )


@compiles(json_set, "sqlite")
def _json_set_sqlite(element: json_set, compiler: SQLCompiler, **kw: Any) -> str:
    col = compiler.process(element.column, **kw)
    path = _lit(compiler, element.path())
    return f"(coalesce(json_type({col}, {path}), 'null') <> 'null')"


@compiles(json_set, "postgresql")
def _json_set_pg(element: json_set, compiler: SQLCompiler, **kw: Any) -> str:
    col = compiler.process(element.column, **kw)
    key = _lit(compiler, element.member)
    return f"(coalesce(jsonb_typeof({col} -> {key}), 'null') <> 'null')"


@compiles(json_text, "sqlite")
def _json_text_sqlite(element: json_text, compiler: SQLCompiler, **kw: Any) -> str:
    col = compiler.process(element.column, **kw)
    path = _lit(compiler, element.path())
    return (
        f"(CASE json_type({col}, {path}) WHEN 'text' THEN json_extract({col}, {path})"
        f" WHEN 'integer' THEN CAST(json_extract({col}, {path}) AS TEXT)"
        f" WHEN 'real' THEN CAST(json_extract({col}, {path}) AS TEXT)"
        f" WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' END)"
    )


@compiles(json_text, "postgresql")
def _json_text_pg(element: json_text, compiler: SQLCompiler, **kw: Any) -> str:
    col = compiler.process(element.column, **kw)
    key = _lit(compiler, element.member)
    return (
        f"(CASE WHEN jsonb_typeof({col} -> {key}) IN ('string', 'number', 'boolean')"
        f" THEN {col} ->> {key} END)"
    )


_TRUE = "('true', 'yes', '1')"
_FALSE = "('false', 'no', '0')"


@compiles(json_bool, "sqlite")
def _json_bool_sqlite(element: json_bool, compiler: SQLCompiler, **kw: Any) -> str:
    col = compiler.process(element.column, **kw)
    path = _lit(compiler, element.path())
    kind = f"json_type({col}, {path})"
    text = f"lower(trim(CAST(json_extract({col}, {path}) AS TEXT)))"
    return (
        f"(CASE WHEN {kind} = 'true' THEN 1 WHEN {kind} = 'false' THEN 0"
        f" WHEN {text} IN {_TRUE} THEN 1 WHEN {text} IN {_FALSE} THEN 0 END)"
    )


@compiles(json_bool, "postgresql")
def _json_bool_pg(element: json_bool, compiler: SQLCompiler, **kw: Any) -> str:
    col = compiler.process(element.column, **kw)
    key = _lit(compiler, element.member)
    text = f"lower(trim({col} ->> {key}))"
    return f"(CASE WHEN {text} IN {_TRUE} THEN true WHEN {text} IN {_FALSE} THEN false END)"


@compiles(strpos, "sqlite")
def _strpos_sqlite(element: strpos, compiler: SQLCompiler, **kw: Any) -> str:
    haystack, needle = (compiler.process(c, **kw) for c in element.clauses)
    return f"instr({haystack}, {needle})"


@compiles(strpos, "postgresql")
def _strpos_pg(element: strpos, compiler: SQLCompiler, **kw: Any) -> str:
    haystack, needle = (compiler.process(c, **kw) for c in element.clauses)
    return f"strpos({haystack}, {needle})"


# How SQLite finds an item in a list: JSON's true and false are 1 and 0 there, so a number and
# a yes/no each match only members of their own kind (a text never equals a number).
_SQLITE_MEMBER = {
    "text": "member.value = {item}",
    "number": "member.value = {item} AND member.type IN ('integer', 'real')",
    "bool": "member.value = {item} AND member.type IN ('true', 'false')",
}
# An item as the text looked for in text. PostgreSQL writes a double in the fewest digits that
# read back as it (`3`, `19.9`, `1e-05`), which `%.15g` matches when 15 digits hold it.
_SQLITE_NEEDLE = {
    "text": "{item}",
    "number": "printf('%.15g', {item})",
    "bool": "CASE WHEN {item} THEN 'true' WHEN NOT {item} THEN 'false' END",
}
_PG_NEEDLE = {
    "text": "CAST({item} AS TEXT)",
    "number": "CAST(CAST({item} AS float8) AS TEXT)",
    "bool": "CAST({item} AS TEXT)",
}


@compiles(json_contains, "sqlite")
def _json_contains_sqlite(element: json_contains, compiler: SQLCompiler, **kw: Any) -> str:
    col = compiler.process(element.column, **kw)
    item = compiler.process(element.item, **kw)
    path = _lit(compiler, element.path())
    match = _SQLITE_MEMBER[element.kind].format(item=item)
    needle = _SQLITE_NEEDLE[element.kind].format(item=item)
    return (
        f"(CASE json_type({col}, {path})"
        f" WHEN 'array' THEN EXISTS (SELECT 1 FROM json_each({col}, {path}) AS member"
        f" WHERE {match})"
        f" WHEN 'text' THEN instr(json_extract({col}, {path}), {needle}) > 0 END)"
    )


@compiles(json_contains, "postgresql")
def _json_contains_pg(element: json_contains, compiler: SQLCompiler, **kw: Any) -> str:
    col = compiler.process(element.column, **kw)
    item = compiler.process(element.item, **kw)
    key = _lit(compiler, element.member)
    needle = _PG_NEEDLE[element.kind].format(item=item)
    return (
        f"(CASE jsonb_typeof({col} -> {key})"
        f" WHEN 'array' THEN ({col} -> {key}) @> to_jsonb({item})"
        f" WHEN 'string' THEN strpos({col} ->> {key}, {needle}) > 0 END)"
    )


class unindexed(FunctionElement[Any]):
    """`column`'s value, in a term that no index of `column` may serve: the planner is left the
    indexes of the other terms. SQLite's unary `+` (its documented way to disqualify a term);
    on PostgreSQL the value through an operation that keeps it (`+ 0`, `|| ''`)."""

    inherit_cache = True

    def __init__(self, column: ColumnElement[Any]) -> None:
        super().__init__(column)
        self.type = column.type


@compiles(unindexed, "sqlite")
def _unindexed_sqlite(element: unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    return "+" + compiler.process(element.clauses, **kw)


@compiles(unindexed, "postgresql")
def _unindexed_pg(element: unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    keep = " || ''" if isinstance(element.type, String) else " + 0"
    return f"({compiler.process(element.clauses, **kw)}{keep})"
