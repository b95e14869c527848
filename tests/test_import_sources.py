"""A file read in blocks shared between two readers (the import's two processes) gives, once the
blocks are put back in order, exactly the rows and problems one reader of the whole file gives."""

from __future__ import annotations

import heapq

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import DataError
from engine.importing.report import Problem
from engine.importing.sources import Format, Share, read_blocks

JSON_LINES = [
    b'{"customer": "c1", "type": "a.b"}\n',
    b'{"customer": "c2", "n": 1, "gone": null}\n',
    b"\n",
    b"   \r\n",
    b'{"customer": \n',  # not JSON
    b"[1, 2]\n",  # not an object
    b'{"name": "\xff"}\n',  # not UTF-8
    b'\xef\xbb\xbf{"bom": true}\n',
]
CSV_LINES = [
    b"c1,a.b,1\n",
    b"c2,,2\n",
    b",,\n",  # blank
    b"\n",
    b"c3,a.b\n",  # a value short
    b'c4,"two\nlines",3\n',
    b'c5,"unclosed,4\n',
    b'c6,x"y,5\n',
    b"c7,\xff,6\n",  # not UTF-8
]


def whole(lines: list[bytes], fmt: Format, size: int) -> str:
    """What one reader of the whole file gives, or the error it raises."""
    try:
        read = read_blocks(lines, "f", fmt, (), Share(size))
        return repr([row for _, block in read for row in block])
    except DataError as exc:
        return repr(exc)


def shared(lines: list[bytes], fmt: Format, size: int, here: range) -> str:
    """What two readers taking `here` and the rest of each cycle of four give, merged; or the
    error each raises."""
    try:
        mine = list(read_blocks(lines, "f", fmt, (), Share(size, 4, here)))
    except DataError as exc:
        mine_failed = repr(exc)
        with pytest.raises(DataError) as theirs_failed:
            list(read_blocks(lines, "f", fmt, (), Share(size, 4, range(here.stop, 4))))
        assert repr(theirs_failed.value) == mine_failed
        return mine_failed
    theirs = list(read_blocks(lines, "f", fmt, (), Share(size, 4, range(here.stop, 4))))
    assert not {n for n, _ in mine} & {n for n, _ in theirs}
    merged = heapq.merge(mine, theirs, key=lambda block: block[0])
    return repr([row for _, block in merged for row in block])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(JSON_LINES), max_size=14),
    st.integers(1, 3),
    st.sampled_from([range(0), range(1), range(2)]),
)
def test_json_lines_shared_between_readers_are_read_as_by_one(lines, size, here):
    assert shared(lines, "jsonl", size, here) == whole(lines, "jsonl", size)
    assert whole(lines, "jsonl", size) == whole(lines, "jsonl", 1000)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from([b"\n", b" , ,\n", b"\xef\xbb\xbf\n", b"\xff,x\n", b'"a"b\n']), max_size=2
    ),
    st.lists(st.sampled_from(CSV_LINES), max_size=14),
    st.integers(1, 3),
    st.sampled_from([range(0), range(1), range(2)]),
)
def test_csv_shared_between_readers_is_read_as_by_one(before, rows, size, here):
    """Blank, undecodable or broken lines may come before the header, which every reader must
    find (or fail to, alike)."""
    lines = b"".join([*before, b"customer,type,n\n", *rows]).splitlines(keepends=True)
    assert shared(lines, "csv", size, here) == whole(lines, "csv", size)
    assert whole(lines, "csv", size) == whole(lines, "csv", 1000)


def test_json_blocks_count_lines_and_keep_their_numbers():
    lines = [b"\n", b'{"a": 1}\n', b"\n", b"\n", b"[]\n", b'{"b": 2}\n']
    assert list(read_blocks(lines, "f", "jsonl", (), Share(2))) == [
        (0, [(2, {"a": 1})]),
        (2, [Problem("f", 5, "expected a JSON object {...}, got a list"), (6, {"b": 2})]),
    ]


def test_csv_blocks_count_the_records_after_the_header():
    lines = [b"\n", b"customer,type\n", b"c1,a.b\n", b"\n", b'c2,"x\n', b'y"\n', b"c3,a.b\n"]
    blocks = list(read_blocks(lines, "f", "csv", (), Share(2)))
    assert blocks == [
        (0, [(3, {"customer": "c1", "type": "a.b"})]),  # and the blank line 4
        (1, [(5, {"customer": "c2", "type": "x\ny"}), (7, {"customer": "c3", "type": "a.b"})]),
    ]


@pytest.mark.parametrize("here", [range(1), range(1, 4)])
def test_every_reader_checks_the_header(here):
    lines = [b"customer,at\n", b"c1,2026-01-01\n"] * 3
    with pytest.raises(DataError, match="f:1: the header has no 'type' column"):
        list(read_blocks(lines, "f", "csv", ("customer", "type"), Share(1, 4, here)))
