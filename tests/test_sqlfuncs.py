"""`arith`, the rules' arithmetic: the same results on SQLite (a Python function of each
connection) and on PostgreSQL (a function in the session's temporary schema), never an error."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, text

from engine.evaluation import scratch
from engine.plan.sqlfuncs import LARGEST, TINIEST, arith_value
from engine.storage.db import open_database

EDGES = [0.0, -0.0, 1.0, -1.0, 0.5, 2.0, LARGEST, -LARGEST, 1.7e308, 5e307, 1e154, TINIEST]
EDGES += [1e-150, 1e-200, 1e-310, 3e-300, 1e300]
NUMBERS = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(EDGES))
SYMBOLS = st.sampled_from("+-*/")


def test_results_beyond_the_largest_are_not_set_and_below_the_tiniest_are_zero() -> None:
    assert arith_value("-", 3, 1) == 2.0
    assert arith_value("+", 1.7e308, 5e307) is None  # beyond the double's range
    assert arith_value("-", -LARGEST, 1e300) is None
    assert arith_value("*", 1e200, 1e200) is None
    assert arith_value("/", 1e300, 1e-10) is None
    assert arith_value("/", 1, 0) is None
    assert arith_value("*", 1e-200, 1e-200) == 0.0  # PostgreSQL would fail on its underflow
    assert arith_value("/", 1e-300, 10) == 0.0
    assert arith_value("+", "3", 1) is None  # text is no number: not set, as in SQL


@given(SYMBOLS, NUMBERS, NUMBERS)
def test_a_result_is_finite_and_within_the_largest_or_not_set(
    symbol: str, a: float, b: float
) -> None:
    result = arith_value(symbol, a, b)
    exact = {"+": a + b, "-": a - b, "*": a * b}.get(symbol, a / b if b else math.inf)
    if result is None:
        assert not abs(exact) <= LARGEST * (1 - 1e-15) or b == 0, (symbol, a, b)
    else:
        assert math.isfinite(result) and abs(result) <= LARGEST * (1 + 1e-15)
        assert result == exact or (result == 0 and abs(exact) < TINIEST), (symbol, a, b)


@pytest.fixture(scope="module")
def pg(request: pytest.FixtureRequest) -> Iterator[Connection]:
    url = request.getfixturevalue("pg_database")
    engine = open_database(url)
    with engine.connect() as conn:
        with conn.begin():
            scratch.reset(conn)
        yield conn
    engine.dispose()


def _pg_arith(conn: Connection, symbol: str, a: float, b: float) -> float | None:
    query = text("SELECT pg_temp.nudge_arith(:op, :a, :b)")
    with conn.begin():
        value = conn.execute(query, {"op": symbol, "a": a, "b": b}).scalar_one()
    return None if value is None else float(value)


@pytest.mark.postgres
@settings(max_examples=300, deadline=None)
@given(symbol=SYMBOLS, a=NUMBERS, b=NUMBERS)
def test_postgresql_computes_what_sqlite_computes(
    pg: Connection, symbol: str, a: float, b: float
) -> None:
    assert _pg_arith(pg, symbol, a, b) == arith_value(symbol, a, b), (symbol, a, b)


@pytest.mark.postgres
def test_postgresql_computes_what_sqlite_computes_at_every_edge(pg: Connection) -> None:
    cases = [(s, a, b) for s in "+-*/" for a in EDGES for b in EDGES]
    query = text(
        "SELECT pg_temp.nudge_arith(op, a, b)"
        " FROM unnest(CAST(:ops AS text[]), CAST(:a AS float8[]), CAST(:b AS float8[]))"
        " WITH ORDINALITY AS t(op, a, b, n) ORDER BY n"
    )
    with pg.begin():
        ops, lefts, rights = (list(column) for column in zip(*cases, strict=True))
        found = pg.execute(query, {"ops": ops, "a": lefts, "b": rights}).scalars()
        computed = [None if value is None else float(value) for value in found]
    differ = [
        (case, got) for case, got in zip(cases, computed, strict=True) if got != arith_value(*case)
    ]
    assert differ == []


@pytest.mark.postgres
def test_postgresql_s_function_is_made_again_after_a_rollback(pg_database: str) -> None:
    # It lives in the session's temporary schema; a rolled-back evaluation takes it away with
    # its transaction, and the next evaluation's reset must make it again.
    engine = open_database(pg_database)
    try:
        with engine.connect() as conn:
            with conn.begin() as first:
                scratch.reset(conn)
                assert _made(conn)
                first.rollback()
            with conn.begin():
                assert not _made(conn)
                scratch.reset(conn)
            assert _pg_arith(conn, "*", 1e200, 1e200) is None
            assert _pg_arith(conn, "+", 2, 3) == 5.0
    finally:
        engine.dispose()


def _made(conn: Connection) -> bool:
    query = text(
        "SELECT count(*) FROM pg_proc"
        " WHERE proname = 'nudge_arith' AND pronamespace = pg_my_temp_schema()"
    )
    return bool(conn.execute(query).scalar_one())
