"""A file read in blocks shared between two readers (the import's two processes) gives, once the
blocks are put back in order, exactly the rows and problems one reader of the whole file gives;
its lines and encoding are read in bounded memory, however long a line is."""

from __future__ import annotations

import heapq
import io
import re
import tracemalloc
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import DataError
from engine.importing import sources
from engine.importing.report import Problem
from engine.importing.sources import Format, LongLine, Share, file_lines, read_blocks

JSON_LINES = [
    b'{"customer": "c1", "type": "a.b"}\n',
    b'{"customer": "c2", "n": 1, "gone": null}\n',
    b"\n",
    b"   \r\n",
    b'{"customer": \n',  # not JSON
    b"[1, 2]\n",  # not an object
    b'{"name": "\xff"}\n',  # not UTF-8
    b'\xef\xbb\xbf{"bom": true}\n',
    LongLine(b'[{"customer": "c3"}, {'),  # a line too long for a row
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
    LongLine(b"c8,"),  # a line too long for a row
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


class Reads(io.BytesIO):
    """A file that remembers how much each `readline` gave."""

    def __init__(self, content: bytes) -> None:
        super().__init__(content)
        self.given: list[int] = []

    def readline(self, size: int | None = -1, /) -> bytes:
        line = super().readline(size)
        self.given.append(len(line))
        return line


def test_a_line_longer_than_the_limit_is_not_read_whole(monkeypatch):
    monkeypatch.setattr(sources, "LINE_LIMIT", 10)
    monkeypatch.setattr(sources, "_SCAN", 4)
    content = b"short\n" + b"x" * 9 + b"\n" + b"y" * 50 + b"\nafter\nend"
    stream = Reads(content)
    lines = list(file_lines(stream))
    assert lines == [b"short\n", b"x" * 9 + b"\n", b"", b"after\n", b"end"]
    assert isinstance(lines[2], LongLine) and lines[2].head == b"y" * 11
    assert max(stream.given) == 11
    # Within the size the import began with, the last line cut there.
    assert list(file_lines(io.BytesIO(content), 8)) == [b"short\n", b"xx"]
    assert list(file_lines(io.BytesIO(content), 40)) == [b"short\n", b"x" * 9 + b"\n", b""]


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.sampled_from([b"a", b"bb", b"\n", b"\r\n", b"x" * 9]), max_size=12).map(b"".join),
    st.one_of(st.none(), st.integers(0, 120)),
)
def test_a_file_s_lines_are_its_lines_within_its_size(content, size):
    # Each line of the file's first `size` bytes (the last one cut there); one longer than the
    # limit as a LongLine of its first bytes.
    region = content if size is None else content[:size]
    expected = [
        (b"", line[:4]) if len(line) > 8 else (line, None)
        for line in re.findall(b"[^\n]*\n|[^\n]+$", region)
    ]
    with (
        patch.object(sources, "LINE_LIMIT", 8),
        patch.object(sources, "_SCAN", 3),
        patch.object(sources, "_HEAD", 4),
    ):
        lines = list(file_lines(io.BytesIO(content), size))
    assert [(bytes(line), getattr(line, "head", None)) for line in lines] == expected


@pytest.mark.parametrize("scan", [1, 2, 3, 5, 1 << 20])
def test_the_first_line_not_utf8_is_found_wherever_blocks_cut_the_file(monkeypatch, scan):
    # A block may end inside a character, or the bad one; the file may be one line.
    monkeypatch.setattr(sources, "_SCAN", scan)
    text = "id,name\nc1,叶子\nc2,李娜\n"
    content = text.encode("gbk")
    assert sources.text_encoding(io.BytesIO(content), len(content)) == ("gb18030", 2)
    content = text.encode() + "c3,王芳\n".encode("gbk") + b"c4,Bo\n"
    assert sources.text_encoding(io.BytesIO(content), len(content)) is None  # one line in GBK
    one_line = "叶" * 9 + "王"
    content = one_line.encode()[:-1]  # the last character cut
    assert sources._first_line_not(io.BytesIO(content), len(content), "utf-8") == (1, 0)
    content = b"ab\ncd\n" + one_line.encode("gbk")
    assert sources._first_line_not(io.BytesIO(content), len(content), "utf-8") == (3, 6)
    assert sources._first_line_not(io.BytesIO(content), len(content), "gb18030") is None


def test_the_encoding_of_a_file_of_one_long_line_is_told_in_bounded_memory(monkeypatch):
    # The line was gathered whole before it was decoded, and copied for every block read: a
    # JSON array of 100 MB on one line took 2.4 s and 200 MB of memory before the import began.
    monkeypatch.setattr(sources, "_SCAN", 4096)
    content = b'[{"customer": "c1", "type": "order.paid"}, ' * 50_000 + b"{}]\n"
    tracemalloc.start()
    try:
        assert sources.text_encoding(io.BytesIO(content), len(content)) is None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(content) > 2 * 2**20 and peak < 2**18
