"""JSON columns are read by orjson where it reads them as json does, by json elsewhere: every
text gives json's value (or json's error), whoever reads it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings

from engine.storage.jsontext import loads
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
