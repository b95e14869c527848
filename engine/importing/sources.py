"""Rows out of a CSV or JSON Lines file, one at a time, each with the line where it starts.

A row is a dict of the values it gives: an empty CSV cell, or a JSON key that is null, is left
out, so that "not in the dict" is the one way a field is unset. CSV cells are text with the
surrounding blanks removed; JSON values keep their type.

Files are read as bytes and decoded line by line (UTF-8, a byte-order mark dropped), so that a
line that is not UTF-8 spoils only the row it belongs to, reported at its own line.

A file is read in numbered blocks of rows, so that two processes can share its parsing: each
reads the whole file, but makes rows only of the blocks its `Share` takes, and the blocks are
put back in order by their numbers.

A JSON line is read by orjson, about four times faster than json; a line orjson refuses, or
whose value it may read differently, is read again by json, so that every line gives the value
and the message json gives (see `_orjson_object`).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from itertools import count, islice
from pathlib import Path
from typing import Any, BinaryIO, Literal, TypeVar

import orjson

from engine.errors import DataError
from engine.importing.report import Problem
from engine.storage.jsontext import LONG_DIGITS_BYTES

Format = Literal["csv", "jsonl"]
Row = tuple[int, dict[str, object]]
T = TypeVar("T")
# A block's number, from 0, and what its lines gave: rows (with the line where each starts) and
# problems, in the file's order. A block of blank lines gives none.
Block = tuple[int, list[Row | Problem]]


@dataclass(frozen=True)
class Share:
    """The blocks of a file one reader takes: the file is cut into blocks of `size` units (JSON
    lines; CSV records, whatever lines they span), and of each `cycle` blocks in turn the reader
    takes those whose place in the cycle is in `taken`."""

    size: int
    cycle: int = 1
    taken: range = range(1)

    def takes(self, block: int) -> bool:
        return block % self.cycle in self.taken


def blocks(items: Iterable[T], size: int) -> Iterator[tuple[int, list[T]]]:
    """`items` in numbered blocks of `size` (the last may hold fewer): a file's lines, or rows
    already read (from Python dicts)."""
    remaining = iter(items)
    for number in count():
        block = list(islice(remaining, size))
        if not block:
            return
        yield number, block


_FORMATS: dict[str, Format] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json-lines": "jsonl",
}


def file_format(path: Path) -> Format:
    """The format of `path`, told by its extension."""
    suffix = path.suffix.lower()
    if suffix not in _FORMATS:
        raise DataError(
            f"{path}: cannot tell the format from the extension {suffix or '(none)'!r};"
            " name the file .csv for CSV, or .jsonl / .ndjson / .json-lines for JSON Lines"
            " (one object per line: a JSON array or an object spread over lines is not that)"
        )
    return _FORMATS[suffix]


# The longest line a file's row may have: twice the largest CSV cell (CELL_LIMIT), or a JSON
# object as long. A longer line is not read into memory whole: it is a JSON array or a file of
# objects on one line, or CSV whose lines end with a carriage return alone, none a row.
LINE_LIMIT = 32 * 2**20
_LIMIT = f"{LINE_LIMIT // 2**20} MB"  # as messages tell it
# How much of a line too long is kept, to tell what it is.
_HEAD = 64


class LongLine(bytes):
    """A line longer than LINE_LIMIT, in the place of the line: empty, as no line read is, with
    its first bytes as `head`."""

    head: bytes

    def __new__(cls, head: bytes) -> LongLine:
        line = super().__new__(cls)
        line.head = head
        return line


def file_lines(stream: BinaryIO, size: int | None = None) -> Iterator[bytes]:
    """The lines of `stream`, within its first `size` bytes when given (the last one cut there):
    a line longer than LINE_LIMIT is read a megabyte at a time, and a `LongLine` stands for it,
    so that memory stays bounded whatever the file."""
    left = sys.maxsize if size is None else size
    # Read by `iter`, which calls `readline` without a Python call of its own: a call and a
    # `min` for each line made parsing an events file 3% slower (both processes read it whole).
    for line in iter(partial(stream.readline, LINE_LIMIT + 1), b""):
        if len(line) >= left:  # the last line within `size`
            if left > 0:
                yield line[:left] if left <= LINE_LIMIT else LongLine(line[:_HEAD])
            return
        left -= len(line)
        if len(line) <= LINE_LIMIT:
            yield line
            continue
        head = line[:_HEAD]
        while left > 0 and not line.endswith(b"\n") and (line := stream.readline(min(_SCAN, left))):
            left -= len(line)
        yield LongLine(head)


def read_blocks(
    lines: Iterable[bytes],
    source: str,
    fmt: Format,
    required: tuple[str, ...],
    share: Share,
    known: frozenset[str] = frozenset(),
) -> Iterator[Block]:
    """The blocks `share` takes of the file whose `lines` are given, in order: every row, or a
    Problem for a row that cannot be read.

    A CSV header lacking a `required` column is a DataError: no row of such a file can be read.
    A CSV header's name that differs from one of the `known` columns (and `required`) only in
    case, or in blanks, dashes or underscores between its words (`ID`, `Accepts Marketing`,
    `Time Zone`, as spreadsheets write them), is that column.
    """
    if fmt == "csv":
        return _csv_blocks(lines, source, required, known | set(required), share)
    return _jsonl_blocks(lines, source, share)


# What Chinese Excel saves a CSV file in unless told "CSV UTF-8": the system's code page, GBK,
# of which GB18030 is the superset that Python decodes.
CHINESE = "gb18030"
# How much of a file `text_encoding` decodes at once.
_SCAN = 1 << 20


# Files a spreadsheet saves that are not text in lines of UTF-8, by their first bytes.
_NOT_TEXT = {
    b"\xff\xfe": 'UTF-16 text (Excel\'s "Unicode Text")',
    b"\xfe\xff": "UTF-16 text",
    b"PK\x03\x04": "a workbook (.xlsx) or a zip archive",
    b"\xd0\xcf\x11\xe0": "an Excel 97-2003 workbook (.xls)",
}


def refuse_binary(head: bytes, source: str) -> None:
    """DataError when a file beginning with `head` is a spreadsheet's file other than CSV or
    JSON Lines: each of its lines would be a bad row, or the header one that says little."""
    for magic, what in _NOT_TEXT.items():
        if head.startswith(magic):
            raise DataError(
                f"{source}: the file is {what}, not CSV or JSON Lines in UTF-8: in Excel, save it"
                ' with "Save As" and the type "CSV UTF-8 (comma delimited)"'
            )


def text_encoding(stream: BinaryIO, size: int) -> tuple[str, int] | None:
    """None when the first `size` bytes of `stream` are UTF-8; else, when they are GB18030
    text of Chinese Excel's (`_chinese`), (CHINESE, the first line that is not UTF-8): the file
    is read in that encoding. Leaves `stream` at its start."""
    try:
        first = _first_line_not(stream, size, "utf-8")
        if first is None:
            return None
        stream.seek(0)
        if _first_line_not(stream, size, CHINESE) is not None:
            return None
        stream.seek(0)
        line, offset = first
        return (CHINESE, line) if _chinese(stream, size, offset) else None
    finally:
        stream.seek(0)


def _first_line_not(stream: BinaryIO, size: int, encoding: str) -> tuple[int, int] | None:
    """The first line of the first `size` bytes of `stream` that is not text in `encoding`, and
    the offset where it starts; or None. Decoded a megabyte at a time, however long its lines
    (the bytes of a character that a block cuts are held for the next)."""
    decoder = codecs.getincrementaldecoder(encoding)()
    left, lines, offset, line_start = size, 0, 0, 0  # lines and offset: before `block`
    while True:
        block = stream.read(min(_SCAN, left)) if left > 0 else b""
        left -= len(block)
        held = len(decoder.getstate()[0])  # a character's first bytes, on the line going on
        try:
            decoder.decode(block, final=not block)
        except UnicodeDecodeError as exc:
            bad = max(0, exc.start - held)  # where in `block`
            newline = block.rfind(b"\n", 0, bad)
            start = line_start if newline < 0 else offset + newline + 1
            return lines + block.count(b"\n", 0, bad) + 1, start
        if not block:
            return None
        lines += block.count(b"\n")
        if (newline := block.rfind(b"\n")) >= 0:
            line_start = offset + newline + 1
        offset += len(block)


# How many lines `_chinese` weighs from the first line that is not UTF-8 on, and how far before
# it: enough to tell, and quick at any size.
_SAMPLE = 10_000
_BEFORE = 4 * _SCAN


# A character of two bytes in GB18030 (the second in `latin` when it is an ASCII letter or sign),
# or one of four; between them, ASCII.
_DOUBLE = re.compile(
    rb"[\x81-\xfe](?:[\x30-\x39][\x81-\xfe][\x30-\x39]|(?P<latin>[\x40-\x7e])|.)", re.S
)
# In UTF-8 text, what Chinese text in GBK seldom makes by chance: a character of three or four
# bytes (Chinese, full-width signs, `’`, `€`), one of two after or before an ASCII letter (`é`
# of André, Hélène), one of two whose second byte is \x80 to \xa0, as half the Cyrillic,
# Greek, Arabic and Hebrew letters' (`И`, `р`, `ل`, `א`), or `°` or `±` beside an ASCII digit or
# a space, as products and sizes write them (`360°`, `±0.5 mm`, `5 ± 1`: GBK's `掳` and `卤`,
# the same bytes, are seldom beside either). Chinese characters in GBK that happen to be UTF-8
# are characters of two bytes, beside each other or signs (`,女装,` reads `,Ůװ,`; `,叶,` reads
# `,Ҷ,`), ending in \xa1 to \xbf: GB2312's characters, most of Chinese text, end in a byte
# from \xa1 on. Each match starts at the first byte of a character, which makes the search
# quick.
_UTF8_TEXT = re.compile(
    rb"[\xc2-\xf4](?:(?<=[\xe0-\xf4])|(?<=[A-Za-z].)|[\x80-\xa0]|[\x80-\xbf][A-Za-z]"
    rb"|(?<=[0-9 ]\xc2)[\xb0\xb1]|(?<=\xc2)[\xb0\xb1][0-9 ])",
    re.S,
)


def _chinese(stream: BinaryIO, size: int, start: int) -> bool:
    """Whether `stream`, GB18030 text but not UTF-8 from its line at offset `start` on, is of
    Chinese Excel's: it begins with no UTF-8 byte-order mark; of the lines weighed, more are
    not UTF-8 than are UTF-8 holding `_UTF8_TEXT`; and in those that are not, most characters
    of two bytes end in a byte beyond ASCII.

    Weighed are the lines before `start`, UTF-8 all, among the file's first _SAMPLE lines
    beyond ASCII and in the _BEFORE bytes before `start`, and the first _SAMPLE lines beyond
    ASCII from `start` on (within `size` bytes). A UTF-8 file with a line or two of another
    encoding has more lines holding such text, and is read as UTF-8, even when its text beyond
    ASCII is far before them (a file sorted by country). Lines of a GBK file that happen to be
    UTF-8 (`女装`, `叶`) hold none: when a column repeats a few words, as many lines may be
    UTF-8 as not, or all of those before the first that is not (a file sorted by that
    column). Chinese text is mostly of GB2312's characters, both of whose bytes are beyond
    ASCII (GBK's others, such as traditional ones, may end in an ASCII byte); Windows-1252, as
    Excel saves CSV on Western Windows, puts an ASCII letter after most accented ones (`ü l`
    of Müller, `é n` of Hélène), which GB18030 reads as rare characters of GBK's."""
    if stream.read(min(3, size)) == b"\xef\xbb\xbf":
        return False
    stream.seek(0)
    utf8, seen, reached = 0, 0, 0
    for line in _pieces(stream) if start > 0 else ():
        reached += len(line)
        if not line.isascii():
            seen += 1
            utf8 += _UTF8_TEXT.search(line) is not None
        if reached >= start or seen >= _SAMPLE:
            break
    before = max(reached, start - _BEFORE)
    stream.seek(before)
    utf8 += _lines_holding_utf8_text(stream.read(max(0, start - before)))
    left, seen, other, latin, wide = size - start, 0, 0, 0, 0
    for line in _pieces(stream):
        if left <= 0 or seen >= _SAMPLE:
            break
        line = line[:left]
        left -= len(line)
        if line.isascii():
            continue
        seen += 1
        try:
            line.decode()
        except UnicodeDecodeError:
            other += 1
            for char in _DOUBLE.finditer(line):
                if char["latin"] is None:
                    wide += 1
                else:
                    latin += 1
            continue
        if _UTF8_TEXT.search(line):
            utf8 += 1
    return other > utf8 and latin < wide


def _pieces(stream: BinaryIO) -> Iterator[bytes]:
    """The lines of `stream`, one longer than LINE_LIMIT in pieces of that size."""
    while line := stream.readline(LINE_LIMIT):
        yield line


def _lines_holding_utf8_text(text: bytes) -> int:
    """How many lines of `text`, UTF-8 lines each ending in a line feed (the first may be cut),
    hold `_UTF8_TEXT`. The lines between them are skipped by the search."""
    found, position = 0, 0
    while match := _UTF8_TEXT.search(text, position):
        found += 1
        position = text.index(b"\n", match.end()) + 1
    return found


# How much of a pipe is weighed as a file is, before its rows are read: a pipe cannot be read
# twice, and this much of it is kept to be read again.
PIPE_HEAD = 8 * 2**20


def pipe_encoding(pipe: BinaryIO, source: str) -> tuple[BinaryIO, tuple[str, int] | None]:
    """`refuse_binary` and `text_encoding` for a pipe, which weigh its first PIPE_HEAD bytes (to
    the end of their last whole line, when it goes on); and a stream of the pipe's bytes from
    its start, which reads those again."""
    head = pipe.read(PIPE_HEAD)
    refuse_binary(head, source)
    weighed = head if len(head) < PIPE_HEAD else head[: head.rfind(b"\n") + 1]
    encoding = text_encoding(io.BytesIO(weighed), len(weighed))
    return io.BufferedReader(_Replayed(head, pipe)), encoding


class _Replayed(io.RawIOBase):
    """`head`, read from `rest` already, then what `rest` gives."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        super().__init__()
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._head:
            return self._rest.readinto1(buffer)  # type: ignore[attr-defined]
        given = min(len(buffer), len(self._head))
        buffer[:given] = self._head[:given]
        self._head = self._head[given:]
        return given


def transcoded(lines: Iterable[bytes], encoding: str) -> Iterator[bytes]:
    """`lines` of text in `encoding`, as UTF-8 (a `LongLine` as it is). A line that is not (of a
    pipe, past what was weighed) is left as it is: read as UTF-8, or a bad row."""
    for line in lines:
        try:
            yield line.decode(encoding).encode() if line else line
        except UnicodeDecodeError:
            yield line


class _Decoded:
    """The lines of a file as text, remembering which ones were not UTF-8."""

    def __init__(self, lines: Iterable[bytes]) -> None:
        self._lines = iter(lines)
        self.count = 0
        self.undecodable: list[int] = []
        self.long: list[int] = []  # lines longer than LINE_LIMIT, read as blank

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        raw = next(self._lines)
        self.count += 1
        if not raw:  # a LongLine
            self.long.append(self.count)
            return "\n"
        if self.count == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            return raw.decode()
        except UnicodeDecodeError:
            self.undecodable.append(self.count)
            return raw.decode(errors="replace")


_NOT_UTF8 = "not UTF-8 text (save the file as UTF-8)"
_LONG = f"the line is longer than {_LIMIT}, more than any row"
_LONG_CSV = (
    f"{_LONG}: if the file's lines end with a carriage return alone, save it with LF or CRLF"
    " line ends"
)


def _csv_blocks(
    lines: Iterable[bytes],
    source: str,
    required: tuple[str, ...],
    known: frozenset[str],
    share: Share,
) -> Iterator[Block]:
    """Blocks of records after the header (each record the reader gives, or fails to, counts);
    what comes before the header is block 0's."""
    decoded = _Decoded(lines)
    # A stray or unclosed quote is an error; a quote after the blanks that begin a cell opens it.
    reader = csv.reader(decoded, strict=True, skipinitialspace=True)
    header: list[str] | None = None
    unnamed = False  # whether the header leaves a column without a name
    end = 0  # the last physical line the reader has consumed
    number, block, taken = 0, list[Row | Problem](), share.takes(0)
    after_header = 0  # records read after the header
    while True:
        start = end + 1
        problem: str | None = None
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            cells, problem = [], _csv_problem(str(exc), start, reader.line_num)
        end = reader.line_num
        if header is not None:
            if after_header // share.size != number:  # the record starts a block
                if block:
                    yield number, block
                number, block = after_header // share.size, []
                taken = share.takes(number)
            after_header += 1
            if not taken:
                continue
        if problem is None and decoded.long and decoded.long[-1] >= start:
            problem = _LONG_CSV if end == start else f"{_LONG_CSV} (line {decoded.long[-1]})"
        if problem is None and decoded.undecodable and decoded.undecodable[-1] >= start:
            problem = _NOT_UTF8
        if problem is not None:
            if header is None:  # no row can be read without it
                raise DataError(f"{source}:{start}: the header: {problem}")
            if taken:
                block.append(Problem(source, start, problem))
            continue
        stripped = [cell.strip() for cell in cells]
        if not any(stripped):
            continue  # blank line
        if header is None:  # every reader finds it, whichever reports the lines before it
            if not any(map(_visible, stripped)):
                continue  # blank but for characters that show as nothing
            header = _header(stripped, source, start, required, known)
            unnamed = not all(header)
        elif len(stripped) == len(header) and not unnamed:
            values = zip(header, stripped, strict=True)
            block.append((start, {name: cell for name, cell in values if cell}))
        elif misfit := _misfit(stripped, header):
            block.append(Problem(source, start, misfit))
        else:  # the cells past the header's columns, and under those it names not, are empty
            values = zip(header, stripped, strict=False)
            block.append((start, {name: cell for name, cell in values if cell}))
    if block:
        yield number, block


def _misfit(cells: list[str], header: list[str]) -> str | None:
    """What is wrong with a row of `cells` under a `header` that names some of its columns not,
    or has as many columns: too few cells, a cell past the header's columns or under one it
    does not name that is not empty (spreadsheets write such columns, empty)."""
    named = max(position for position, name in enumerate(header, 1) if name)
    values = f"{len(cells)} value{'' if len(cells) == 1 else 's'}"
    if len(cells) < named:
        if all(header[:named]):
            return f"the row has {values} but the header names {named} columns"
        return f"the row has {values} but the header names columns up to column {named}"
    if any(cells[len(header) :]):
        return f"the row has {values} but the header has {len(header)} columns"
    for position, (name, cell) in enumerate(zip(header, cells, strict=False), 1):
        if cell and not name:
            return f"column {position} holds {cell[:20]!r}, but the header gives it no name"
    return None


# Python's limit on a cell is 128 KB; a note or a description may be longer. Past this, a cell
# is taken for a quote that is never closed (it would hold the rest of the file in memory).
CELL_LIMIT = 16 * 2**20
csv.field_size_limit(CELL_LIMIT)


def _csv_problem(message: str, start: int, end: int) -> str:
    """What is wrong with the CSV record from line `start` to `end`, told by csv's `message`."""
    lines = f"lines {start}-{end}" if end > start else f"line {start}"
    if message == "unexpected end of data":
        return (
            f"a quote opens a cell that is never closed: {lines}, the rest of the file, were read"
            ' as that cell (write a quote inside a cell as two: "")'
        )
    if message.startswith("field larger than field limit"):
        return (
            f"a cell is larger than {CELL_LIMIT // 2**20} MB ({lines}): a quote that is never"
            " closed makes the lines after it one cell"
        )
    if message.startswith("',' expected after '\"'"):
        return (
            f"a quoted cell goes on after its closing quote ({lines}): write a quote inside a"
            ' cell as two: ""'
        )
    if message.startswith("new-line character seen in unquoted field"):
        return "a line ends with a carriage return alone: save the file with LF or CRLF line ends"
    return f"not valid CSV ({lines}): {message}"


# Characters that show as nothing, which text copied from a web page, a chat or a document
# may hold: the soft hyphen, the zero-width space, non-joiner and joiner, the marks and
# controls of writing direction, the word joiner and invisible operators, and the byte-order
# mark (U+FEFF, also a zero-width no-break space) in the midst of text.
INVISIBLE = re.compile("[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


def _visible(name: str) -> str:
    """`name` without the invisible characters a name copied from elsewhere may hold
    (`\u200bid`), and the blanks they hid."""
    return INVISIBLE.sub("", name).strip()


def _folded(name: str) -> str:
    """`name` as a known column's is found: in any case, its words apart or together
    (`Accepts Marketing`, `signed-up`, `Time Zone`, `SignedUp`, as spreadsheets write them)."""
    return "".join(name.casefold().replace("-", " ").replace("_", " ").split())


def _header(
    names: list[str], source: str, line: int, required: tuple[str, ...], known: frozenset[str]
) -> list[str]:
    where = f"{source}:{line}"
    folded = {_folded(name): name for name in known}
    written = names
    names = [_visible(name) for name in names]
    names = [name if name in known else folded.get(_folded(name), name) for name in names]
    seen: dict[str, tuple[int, str]] = {}  # the column of each name, and how it is written
    for position, (name, as_written) in enumerate(zip(names, written, strict=True), 1):
        if not name:
            continue  # a column of a spreadsheet's that is empty, whose cells must be too
        if name in seen:
            first, spelt = seen[name]
            columns = (
                f"columns {first} and {position}"
                if spelt == as_written
                else f"columns {first} ({spelt!r}) and {position} ({as_written!r}), which mean"
                " the same field"
            )
            raise DataError(
                f"{where}: the header names the column {name!r} twice, in {columns}: keep one of"
                " them (delete or rename the other)"
            )
        seen[name] = position, as_written
    missing = [name for name in required if name not in seen]
    if missing:
        separator = next((s for s in ";\t|" if len(names) == 1 and s in names[0]), None)
        hint = (
            f"; its cells seem separated by {'a tab' if separator == chr(9) else repr(separator)}:"
            " save the file as CSV with commas"
            if separator
            else ""
        )
        raise DataError(
            f"{where}: the header has no {', '.join(repr(m) for m in missing)} column"
            f" (it has {', '.join(names)}{hint})"
        )
    return names


def _jsonl_blocks(lines: Iterable[bytes], source: str, share: Share) -> Iterator[Block]:
    opening = True  # before the file's first line that is not blank, which every reader reads
    for number, raw_lines in blocks(lines, share.size):
        if opening:
            opening = _opening(raw_lines, number * share.size + 1, source)
        if share.takes(number):
            block = list(_jsonl_rows(raw_lines, number * share.size + 1, source))
            if block:
                yield number, block


def _jsonl_rows(lines: list[bytes], first: int, source: str) -> Iterator[Row | Problem]:
    """The rows of `lines`, the first of which is the file's line `first`."""
    for line, raw in enumerate(lines, first):
        fast = _orjson_object(raw)
        if fast is not None:
            yield line, fast
            continue
        if not raw:  # a LongLine
            yield Problem(source, line, f"{_LONG}: write one object per line")
            continue
        try:
            text = raw.decode("utf-8-sig" if line == 1 else "utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            yield Problem(source, line, _NOT_UTF8)
            continue
        if not text.strip():
            continue
        try:
            value = json.loads(text, parse_int=_json_integer)
        except json.JSONDecodeError as exc:
            yield Problem(source, line, _not_json(exc))
            continue
        except RecursionError:  # orjson refuses more than 1,024 levels, json about as many
            yield Problem(source, line, "lists and objects nested too deep to read")
            continue
        if not isinstance(value, dict):
            yield Problem(source, line, _not_an_object(value))
            continue
        if None in value.values():  # JSON values only, so `in` compares them safely
            value = {key: item for key, item in value.items() if item is not None}
        yield line, value


def _not_json(error: json.JSONDecodeError) -> str:
    """What is wrong with a line json cannot read: its message, but for a line of several
    objects (JSON Lines saved without line breaks between them), which is told so, and for an
    object followed by a comma or a bracket (a JSON array's line, its brackets deleted)."""
    if error.msg != "Extra data":
        return f"not valid JSON: {error.msg} (column {error.colno})"
    what = "object" if error.doc.lstrip().startswith("{") else "value"
    after = error.doc[error.pos :].strip()
    if not after.strip(",] \t"):
        return (
            f"not valid JSON: `{after}` follows the end of the {what} (column {error.colno}):"
            " JSON Lines have no commas or brackets between objects, delete it"
        )
    return (
        f"not valid JSON: more follows the end of the {what} (column {error.colno}): write one"
        " object per line"
    )


def _opening(lines: list[bytes], first: int, source: str) -> bool:
    """Whether `lines` (from the file's line `first`) are all blank; a DataError when the first
    that is not opens a JSON array or an object spread over several lines: the file is JSON,
    not JSON Lines, and each of its lines would be a bad row but those that happen to hold a
    whole object. Refused before anything is imported."""
    for line, raw in enumerate(lines, first):
        if isinstance(raw, LongLine):
            _long_json(raw, source, line)
        text = raw.decode("utf-8-sig" if line == 1 else "utf-8", errors="replace")
        if text.strip():
            _not_plain_json(text, source, line)
            return False
    return True


def _not_plain_json(text: str, source: str, line: int) -> None:
    opened = text.strip()
    if opened.startswith("[") and not opened.endswith("]"):
        what = "a JSON array spread over lines"
    elif opened == "{":
        what = "a JSON object spread over lines"
    else:
        return
    raise DataError(
        f"{source}:{line}: the file holds {what}, not JSON Lines: write one object per line,"
        ' such as {"id": "c1", "name": "Li Lei"}, without `[`, `]` or commas between them'
    )


def _long_json(line: LongLine, source: str, number: int) -> None:
    """The DataError of a file whose first line that is not blank is longer than LINE_LIMIT:
    a JSON array on one line, or objects without line breaks between them."""
    example = '{"id": "c1", "name": "Li Lei"}'
    if line.head.lstrip(b"\xef\xbb\xbf \t\r").startswith(b"["):
        raise DataError(
            f"{source}:{number}: the file holds a JSON array on one line of more than {_LIMIT},"
            f" not JSON Lines: write one object per line, such as {example}, without `[`, `]`"
            " or commas between them"
        )
    raise DataError(
        f"{source}:{number}: the line is longer than {_LIMIT}, more than any row: JSON Lines hold"
        f" one object per line, such as {example}, each line ending with a line break"
    )


def _not_an_object(value: object) -> str:
    found = f"expected a JSON object {{...}}, got {json_kind(value)}"
    if isinstance(value, list) and any(isinstance(item, dict) for item in value):
        return f"{found}: write one object per line, without `[`, `]` or commas between them"
    return found


def _json_integer(digits: str) -> int | float:
    """A JSON integer as json reads it; beyond the digits Python converts to an integer (4,300
    by default), the infinity a double makes of it, which the row's checks then refuse
    (`fields.json_values`), rather than an error that stops the import."""
    try:
        return int(digits)
    except ValueError:
        return float(digits)


# What orjson reads otherwise than json: `engine.storage.jsontext`. The integer outside 64 bits
# it makes a float of magnitude 2**63 or more.
_FLOAT_FROM_INTEGER = float(2**63)


def _orjson_object(raw: bytes) -> dict[str, object] | None:
    """The JSON object on the line `raw`, without its null values, when orjson reads it as json
    would; None when json must read the line (it may not be an object, or not JSON at all)."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if type(value) is not dict:
        return None
    nulls = False
    for item in value.values():
        kind = type(item)
        if kind is float:
            if not -_FLOAT_FROM_INTEGER < item < _FLOAT_FROM_INTEGER:
                return None
        elif kind is dict or kind is list:
            if LONG_DIGITS_BYTES.search(raw):
                return None
        elif item is None:
            nulls = True
    if nulls:
        return {key: item for key, item in value.items() if item is not None}
    return value


def json_kind(value: object) -> str:
    """How a JSON value is called in an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    return "an object"
