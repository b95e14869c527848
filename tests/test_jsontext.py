"""JSON columns are read by orjson where it reads them as json does, by json elsewhere: every
text gives json's value (or json's error), whoever reads it. What Nudge writes to them is
written by orjson where it writes what json writes, and reads back as json's text does."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.storage.jsontext import dumps, loads
from tests.test_import_json import lines


def outcome(read: Callable[[Any], Any], text: str | bytes) -> tuple[str, str]:
    """What reading `text` gives: the value's repr (NaN equals NaN, 1 is not 1.0), or the
    error's type."""
    try:
        return "value", repr(read(text))
    except (ValueError, RecursionError) as exc:
        return "error", type(exc).__name__


@settings(max_examples=400, deadline=None)
@given(lines())
def test_a_text_reads_as_json_reads_it(raw: bytes) -> None:
    assert outcome(loads, raw) == outcome(json.loads, raw)
    try:  # as text, when it is UTF-8 (a lone surrogate included)
        text = raw.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return
    assert outcome(loads, text) == outcome(json.loads, text)


@pytest.mark.parametrize(
    "text",
    [
        '{"n": 9223372036854775807, "m": -9223372036854775808, "u": 18446744073709551615}',
        '{"n": 18446744073709551616}',
        '{"m": -9223372036854775809}',
        '[1, {"m": 99999999999999999999}]',
        '{"x": 9.3e18, "y": 1e400, "z": -1e400}',
        '{"x": NaN, "y": -Infinity}',
        '{"s": "\\ud800"}',
        '{"a": 1, "a": 2}',
        "[" * 2000 + "]" * 2000,
        '{"a": 1} {"b": 2}',
    ],
)
def test_texts_orjson_reads_otherwise_are_read_by_json(text: str) -> None:
    assert outcome(loads, text) == outcome(json.loads, text)
    assert outcome(loads, text.encode()) == outcome(json.loads, text.encode())


# What Nudge writes to JSON columns: JSON-like values without NaN or infinities, text with any
# character (lone surrogates too), integers of any size.
_ANY_TEXT = st.text(st.characters(codec=None))
_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_ANY_TEXT, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(_VALUES)
def test_a_value_written_reads_back_as_json_writes_it(value: object) -> None:
    assert repr(json.loads(dumps(value))) == repr(json.loads(json.dumps(value)))


@pytest.mark.parametrize(
    "value",
    [
        {"n": 2**64, "m": -(2**63) - 1},
        {1: "a", None: "b", 2.5: "c"},
        {"s": "\ud800"},
        ["上海", {"x": 1e16, "y": -0.0, "z": 5e-324}],
    ],
)
def test_values_orjson_writes_otherwise_are_written_by_json(value: object) -> None:
    assert repr(json.loads(dumps(value))) == repr(json.loads(json.dumps(value)))
