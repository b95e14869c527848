"""JSON Lines are read by orjson where it reads them as json does, by json elsewhere: the rows
and problems are the same as json alone gives, whatever the line."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.importing import events, sources
from engine.importing.report import RowError

NOT_A_DOUBLE = "refused: a member is a number that a double cannot hold"
# The least integer a double rounds to infinity: halfway between the largest double and 2**1024.
DOUBLE_OVERFLOW = 2**1024 - 2**970


def rows(lines: list[bytes]) -> str:
    """What reading `lines` gives, or the exception it raises."""
    try:
        read = sources.read_blocks(lines, "f.jsonl", "jsonl", (), sources.Share(size=2))
        return repr([row for _, block in read for row in block])
    except Exception as exc:  # json's RecursionError on a deep line, for one
        return repr(exc)


def rows_by_json_alone(lines: list[bytes]) -> str:
    fast = sources._orjson_object
    sources._orjson_object = lambda raw: None  # type: ignore[assignment]
    try:
        return rows(lines)
    finally:
        sources._orjson_object = fast  # type: ignore[assignment]


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 3, max_value=2**64 + 3)
    | st.integers(min_value=-(2**63) - 3, max_value=-(2**63) + 3)
    | st.integers(min_value=DOUBLE_OVERFLOW - 3, max_value=DOUBLE_OVERFLOW + 3)
    | st.floats()
    | st.text(st.characters(exclude_categories=()), max_size=8)  # lone surrogates too
)


values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=8,
)


@st.composite
def lines(draw: st.DrawFn) -> bytes:
    value = draw(st.dictionaries(st.text(max_size=4), values, max_size=5) | values)
    text = json.dumps(value, ensure_ascii=draw(st.booleans()))
    text = draw(st.sampled_from(["", " ", "\t"])) + text + draw(st.sampled_from(["", " ", "\r"]))
    raw = text.encode("utf-8", "surrogatepass")  # a lone surrogate makes it not UTF-8
    damage = draw(st.sampled_from(["none", "none", "cut", "bom", "nan"]))
    if damage == "cut":
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif damage == "bom":
        raw = b"\xef\xbb\xbf" + raw
    elif damage == "nan":
        raw = raw.replace(b"0", b"NaN", 1)
    return raw + b"\n"


@settings(max_examples=400, deadline=None)
@given(st.lists(lines(), min_size=1, max_size=4))
def test_rows_are_those_json_alone_reads(given_lines):
    assert rows(given_lines) == rows_by_json_alone(given_lines)


@pytest.mark.parametrize(
    "line",
    [
        b'{"n": 9223372036854775807, "m": -9223372036854775808}',
        b'{"n": 9223372036854775808, "m": -9223372036854775809}',
        b'{"n": 18446744073709551615, "m": 18446744073709551616}',
        b'{"n": 123456789012345678901234567890}',
        b'{"n": [1, {"m": 99999999999999999999}], "s": "1234567890123456789"}',
        b'{"x": 9.3e18, "y": -9.3e18, "z": 1e400}',
        b'{"x": NaN}',
        b'{"x": -Infinity}',
        b'{"s": "\\ud800"}',
        b'{"s": "\\ud83d\\ude00", "t": "\\u0000"}',
        b'\xef\xbb\xbf{"a": 1}',
        b'{"a": 1, "a": null, "b": null}',
        b'{"a": "caf\xe9"}',
        b'{"a": 1} {"b": 2}',
        b"[1, 2]",
        b"  \r",
        b"[" * 2000 + b"]" * 2000,
        b'{"a": ' + b"9" * 5000 + b"}",  # more digits than Python makes an integer of
    ],
)
def test_lines_orjson_reads_otherwise(line):
    assert rows([line + b"\n"]) == rows_by_json_alone([line + b"\n"])
    assert rows([b"{}\n", line + b"\n"]) == rows_by_json_alone([b"{}\n", line + b"\n"])


def canonical(value: dict[object, object]) -> str:
    """The JSON text of an event's properties, or the error it gives."""
    try:
        return events._canonical_json(value)  # type: ignore[arg-type]
    except RowError:
        return NOT_A_DOUBLE
    except (TypeError, ValueError) as exc:
        return repr(exc)


def canonical_by_json_alone(value: dict[object, object]) -> str:
    """What json alone writes, for properties whose members a double can hold (rules read them
    as doubles)."""
    for item in value.values():
        if type(item) is float and not math.isfinite(item):
            return NOT_A_DOUBLE
        if type(item) is int and abs(item) >= DOUBLE_OVERFLOW:
            return NOT_A_DOUBLE
    try:
        return events._CANONICAL.encode(value)
    except (TypeError, ValueError) as exc:
        return repr(exc)


property_values = st.recursive(
    scalars | st.dates() | st.floats(min_value=1e-5, max_value=1e17),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)
property_names = st.text(st.characters(exclude_categories=()), max_size=4) | st.integers()


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(property_names, property_values, max_size=5))
def test_properties_are_written_as_json_alone_writes_them(properties):
    assert canonical(properties) == canonical_by_json_alone(properties)


@pytest.mark.parametrize(
    "properties",
    [
        {"n": 2**63 - 1, "m": -(2**63), "u": 2**64 - 1, "big": 2**64, "low": -(2**63) - 1},
        {"x": 1e-4, "y": 9.999999999999999e-05, "z": 1e16, "w": 9999999999999998.0},
        {"x": 0.0, "y": -0.0, "z": float("nan")},
        {"x": float("inf")},
        {"x": -float("inf"), "y": 1},
        {"x": DOUBLE_OVERFLOW, "y": float("nan")},
        {"x": DOUBLE_OVERFLOW - 1, "y": -(DOUBLE_OVERFLOW - 1), "z": [DOUBLE_OVERFLOW]},
        {"x": -DOUBLE_OVERFLOW},
        {"s": "\ud800"},
        {"s": '\x00\x1f\x7f\u2028"\\'},
        {"é": 1, "e": 2, "😀": 3, "\uff00": 4},
        {1: "a", "1": "b"},
        {"t": True, "f": False, "n": None},
    ],
)
def test_properties_json_alone_writes_otherwise(properties):
    assert canonical(properties) == canonical_by_json_alone(properties)
