"""Reading one value of an imported row: text, timestamps, yes/no, dates, zones, numbers.

Each reader takes the value as given (text from CSV, any JSON type otherwise) and returns it in
the form Nudge stores, or raises RowError naming the field and what was expected.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import unicodedata
from collections.abc import Iterable
from zoneinfo import ZoneInfo

from engine.importing.report import RowError
from engine.importing.sources import INVISIBLE, json_kind
from engine.storage.tables import NAME_LENGTH
from engine.timeutil import is_zone, to_us, zone_help

# Also Chinese 是 and 否, as shops' own spreadsheets write yes and no, and Y and N.
_TRUE = frozenset({"true", "yes", "y", "1", "是"})
_FALSE = frozenset({"false", "no", "n", "0", "否"})
_BIRTHDAY = re.compile(r"(?:([0-9]{4})-)?([0-9]{2})-([0-9]{2})")
# Decimal numbers as people write them. `007` and `0123` stay text: leading zeros mark codes
# (zip codes, SKUs), whose zeros matter. ASCII digits only (Python's `\d`, `int` and `float`
# also take other scripts' digits).
_NUMBER = re.compile(
    r"[-+]?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?|[-+]?(?:0|[1-9][0-9]*)?\.[0-9]+"
)


# A date as Excel writes one on Chinese Windows (`2026/11/5`, `2026/11/5 14:30`), in words
# (`2026年11月5日`), or with dashes but no zeros (`2026-11-5`), the year first: none is ISO
# 8601, but none can mean another day. A birthday may be `5月1日`, every year.
_YEAR_FIRST = re.compile(
    r"(?P<year>[0-9]{4})(?:(?P<sep>[/-])(?P<month>[0-9]{1,2})(?P=sep)(?P<day>[0-9]{1,2})"
    r"|年(?P<in_words>[0-9]{1,2})月(?P<day_in_words>[0-9]{1,2})日)"
    r"(?:[ T](?P<hour>[0-9]{1,2}):(?P<minute>[0-9]{2})(?::(?P<second>[0-9]{2}))?)?"
)
_MONTH_DAY_IN_WORDS = re.compile(r"([0-9]{1,2})月([0-9]{1,2})日")
# A date as Excel holds it, a number of days (the fraction a time of day), which a CSV file gets
# when the column is not formatted as a date: day 1 is 1900-01-01, counted from 1899-12-30 after
# Excel's 29 February 1900 that never was. Five digits, 1927 to 2173 (four are rather a year).
_EXCEL_SERIAL = re.compile(r"[1-9][0-9]{4}(?:\.[0-9]+)?")
_EXCEL_DAY_0 = dt.datetime(1899, 12, 30)


# A number as Excel shows one of more than 11 digits (`1.38123E+12`, `2.02611E+18`) and writes
# it into a CSV file: the digits past the sixth are lost, so that ids, order numbers and phone
# numbers saved so come out alike. Always with the sign: hexadecimal codes (`3e8`) have none.
_SCIENTIFIC = re.compile(r"[0-9](?:\.[0-9]+)?[eE]\+[0-9]+")
# A whole number with a decimal part of zeros (`13812345678.0`), as pandas writes a column of
# integers that has an empty cell (it holds them as floats): it does not match the same id
# written without it elsewhere. Only digits: `A.01` and `v1.0.3` are ids.
_WHOLE_WITH_ZEROS = re.compile(r"([0-9]+)\.0+")


# `\u0000` in JSON text, not preceded by a backslash of its own (`\\u0000` is text).
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def storable(text: str, what: str, json_text: bool = False) -> str:
    """`text` if both databases can store it: no NUL character (PostgreSQL refuses them, also
    as `\\u0000` in JSON text) and no lone UTF-16 surrogate (not a character); RowError
    otherwise."""
    if "\x00" in text or (json_text and "\\u0000" in text and _NUL_ESCAPE.search(text)):
        raise RowError(f"{what} holds a NUL character, which cannot be stored")
    if text.isascii():  # most ids and keys: no surrogate, without encoding
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise RowError(
            f"{what} holds a lone surrogate (\\ud800-\\udfff), not a character"
        ) from None
    return text


def text(value: object, field: str, limit: int | None = None) -> str:
    """Text; a JSON integer is accepted as its digits (ids are often numbers in JSON)."""
    if isinstance(value, str):
        result = value.strip()
    elif isinstance(value, int) and not isinstance(value, bool):
        result = str(value)
    else:
        raise RowError(f"`{field}` must be text, not {json_kind(value)}")
    if not result:
        raise RowError(f"`{field}` is empty")
    if limit is not None and len(result) > limit:
        raise RowError(f"`{field}` is longer than {limit} characters")
    return storable(result, f"`{field}`")


def code(value: object, field: str, textual: bool, limit: int | None = None) -> str:
    """Text that names one thing (an id, a phone number): from a CSV file (`textual`), which a
    spreadsheet or pandas may have saved, refused when it is a number written in scientific
    notation, which has lost the digits that told such things apart, or a whole number with
    `.0`, which would not be the same thing as the number written without it. A JSON string is
    the shop's own text, whatever it looks like (`1E+5`, `1.0`), as any id is; but from either
    file, text holding a character that shows as nothing (`INVISIBLE`, left by copying and
    pasting) is refused: it would not match the same text typed without it."""
    result = text(value, field, limit)
    if not result.isascii() and (invisible := INVISIBLE.search(result)):
        character = invisible[0]
        raise RowError(
            f"`{field}`: {result!r} holds an invisible character (U+{ord(character):04X}"
            f" {unicodedata.name(character)}), as text copied from a web page or a chat may: it"
            " would not match the same text typed without it; delete the character (in a"
            " spreadsheet, type the cell again)"
        )
    if not textual or not isinstance(value, str):
        return result
    if _SCIENTIFIC.fullmatch(result):
        raise RowError(
            f"`{field}`: {result!r} is a number in scientific notation, as Excel shows a long"
            " number, and its last digits are lost: import the file as the shop exported it, or"
            " open it in Excel with Data > From Text/CSV, this column set to Text (Excel keeps"
            " 15 digits of a number)"
        )
    if whole := _WHOLE_WITH_ZEROS.fullmatch(result):
        raise RowError(
            f"`{field}`: {result!r} is a whole number written with a decimal point, as pandas"
            f" writes a column of numbers that has an empty cell, and would not match"
            f" {whole[1]!r} written elsewhere: write the column without it (pandas: read the"
            " file with dtype=str, or convert the column with .astype('Int64') before to_csv)"
        )
    return result


def timestamp(value: object, field: str, local: ZoneInfo, textual: bool) -> int:
    """An ISO 8601 time as epoch microseconds; without an offset it is read in `local`. A
    `textual` value is a CSV cell (see `_excel_serial`).

    A local time skipped by a clock change moves forward by the gap, a repeated one means the
    first (as LANGUAGE.md 3.2 reads local clock times).
    """
    if isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            moment = _year_first(value.strip(), field, textual)
    elif isinstance(value, dt.datetime):
        moment = value
    else:
        raise RowError(
            f"`{field}` must be an ISO 8601 time as text, not {json_kind(value)}"
            + _excel_serial(value, textual, "")
        )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=local, fold=0)
    return to_us(moment)


def _year_first(given: str, field: str, textual: bool) -> dt.datetime:
    """A time written year first as Excel writes it (`_YEAR_FIRST`), local time."""
    match = _YEAR_FIRST.fullmatch(given)
    try:
        if match is None:
            raise ValueError
        year, month, day = _year_month_day(match)
        hour, minute, second = match.group("hour", "minute", "second")
        return dt.datetime(year, month, day, int(hour or 0), int(minute or 0), int(second or 0))
    except ValueError:
        raise RowError(
            f"`{field}`: {given!r} is not an ISO 8601 time"
            " such as 2026-11-01T10:00:00+08:00 or 2026-11-01 10:00"
            + _excel_serial(given, textual, "a date and time (yyyy-mm-dd hh:mm)")
        ) from None


def _excel_serial(given: object, textual: bool, written: str) -> str:
    """What to add to the message about a date or time `given` when it may be a date as Excel
    holds it (`_EXCEL_SERIAL`): the day (and time) it stands for, and how to have it written.

    A CSV cell (`textual`) may be one, saved by Excel from a column not formatted as a date:
    the column is to be formatted as `written`. So may a JSON number, which a program wrote
    reading the spreadsheet's cell as its number: it is to write the date as text. A JSON
    string is the shop's own text, which no spreadsheet wrote."""
    if isinstance(given, str):
        if not textual or _EXCEL_SERIAL.fullmatch(given) is None:
            return ""
    elif isinstance(given, bool) or not (
        isinstance(given, int | float) and 10_000 <= given < 100_000  # as `_EXCEL_SERIAL`
    ):
        return ""
    moment = _EXCEL_DAY_0 + dt.timedelta(minutes=round(float(given) * 24 * 60))
    shown = f"{moment:%Y-%m-%d}" if moment.time() == dt.time() else f"{moment:%Y-%m-%d %H:%M}"
    if isinstance(given, str):
        return (
            f": it looks like an Excel date serial number, which stands for {shown}; format the"
            f" column as {written} before saving"
        )
    return (
        f": {given} looks like an Excel date serial number, which stands for {shown}; have the"
        f' program that wrote the file write it as text, "{shown}"'
    )


def _year_month_day(match: re.Match[str]) -> tuple[int, int, int]:
    month, day = match.group("month", "day")
    if month is None:
        month, day = match.group("in_words", "day_in_words")
    return int(match["year"]), int(month), int(day)


def local_time_note(found: tuple[str, object] | None, assumed: ZoneInfo) -> tuple[str, str] | None:
    """A time without an offset read in the shop's zone `assumed`, which no configuration gave
    (`nudge import` without nudge.yaml): the note that says so, else None."""
    if found is None:
        return None
    field, value = found
    if isinstance(value, dt.datetime):
        local = value.tzinfo is None
    elif isinstance(value, str):
        after_date = value.strip()[10:]  # an offset: Z, or a sign after the date's own
        local = not (after_date.endswith(("Z", "z")) or "+" in after_date or "-" in after_date)
    else:
        return None
    if not local:
        return None
    return (
        "local time",
        f"`{field}` `{value}` has no offset, and no configuration gives the shop's `timezone`"
        f" (nudge.yaml in this folder, or --config FILE, such as --config rules/shop/nudge.yaml):"
        f" such times are read as {assumed.key} time",
    )


def flag(value: object, field: str) -> bool:
    """`true`/`false`, also `yes`/`no`, `y`/`n`, `1`/`0` and `是`/`否`, in any case."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise RowError(f"`{field}`: expected true or false (or yes/no, y/n, 1/0, 是/否), got {value!r}")


def birthday(value: object, textual: bool) -> tuple[str, str]:
    """`YYYY-MM-DD` or `MM-DD` (the same day every year; `02-29` allowed), also as `_YEAR_FIRST`
    (stored as `YYYY-MM-DD`) and `M月D日` (as `MM-DD`), as the text and its `MM-DD`. A
    `textual` value is a CSV cell (see `_excel_serial`)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise RowError(
            "`birthday` must be a date written YYYY-MM-DD or MM-DD, as text, not a number"
            + _excel_serial(value, textual, "")
        )
    written = given = text(value, "birthday")
    excel = _YEAR_FIRST.fullmatch(given)
    in_words = _MONTH_DAY_IN_WORDS.fullmatch(given)
    if excel is not None and excel["hour"] is None:  # a date as Excel writes it, no time
        given = "{:04}-{:02}-{:02}".format(*_year_month_day(excel))
    elif in_words is not None:
        given = f"{int(in_words[1]):02}-{int(in_words[2]):02}"
    match = _BIRTHDAY.fullmatch(given)
    problem = f"`birthday`: {written!r} is not a date written YYYY-MM-DD or MM-DD"
    if match is None:
        raise RowError(problem + _excel_serial(written, textual, "a date (yyyy-mm-dd)"))
    year, month, day = match.groups()
    try:
        dt.date(int(year) if year else 2000, int(month), int(day))  # 2000 has a 29 February
    except ValueError:
        raise RowError(f"{problem}: there is no such day") from None
    return given, f"{month}-{day}"


def zone_name(value: object) -> str:
    """An IANA time zone name such as `Asia/Shanghai`."""
    name = text(value, "timezone")
    if not is_zone(name):
        hint = zone_help(name)
        raise RowError(
            f"`timezone`: {name!r} is not an IANA time zone"
            + (f" ({hint})" if hint else " such as 'Asia/Shanghai' or 'Europe/Paris'")
        )
    return name


def tags(value: object) -> frozenset[str]:
    """Comma-separated tags (or, from JSON, a list of them); blanks around each are dropped.
    The comma may be the full-width one (`，`) a Chinese input method types."""
    if isinstance(value, str):
        items: list[object] = list(value.replace("，", ",").split(","))
    elif isinstance(value, list):
        items = value
    else:
        raise RowError(f"`tags` must be comma-separated text, not {json_kind(value)}")
    result = set()
    for item in items:
        if not isinstance(item, str):
            raise RowError(f"`tags`: each tag must be text, not {json_kind(item)}")
        tag = item.strip()
        if len(tag) > NAME_LENGTH:
            raise RowError(
                f"`tags`: the tag {tag[:20]!r}... is longer than {NAME_LENGTH} characters"
            )
        if tag:
            result.add(storable(tag, "`tags`"))
    return frozenset(result)


def cell(value: object) -> object:
    """A CSV cell as a property value: a number when it is written as one and a double holds it
    (rules read numbers as doubles), else the text: `1e400` and 400 digits stay text."""
    if not isinstance(value, str) or _NUMBER.fullmatch(value) is None:
        return value
    if value.lstrip("+-").isdigit():
        # Any integer of up to 308 digits is within a double's range: only longer ones are
        # converted to see (converting every integer would make a cell cost a sixth more).
        return int(value) if len(value) < 300 or math.isfinite(float(value)) else value
    number = float(value)
    return number if math.isfinite(number) else value


# JSON values nested deeper than this are refused: Python's json and pickle (which carries rows
# between the import's processes) fail on values some hundreds of levels deep.
MAX_NESTING = 64


def json_values(values: dict[str, object]) -> None:
    """RowError when a member of `values` is a number that a double cannot hold (NaN, an
    infinity, which JSON's `1e400` reads as, or an integer of about 1.8e308 or more: rules read
    numbers as doubles, and PostgreSQL fails the whole query that reads such a number as one),
    or a list or object nested more than MAX_NESTING levels deep."""
    for name, value in values.items():
        if isinstance(value, float) and math.isnan(value):
            raise RowError(f"`{name}`: NaN is not a number; leave the value out when unknown")
        if (isinstance(value, float) and math.isinf(value)) or (
            isinstance(value, int) and not _double_sized(value)
        ):
            raise RowError(f"`{name}`: the number is beyond ±1.8e308, too large to compare")
        if isinstance(value, list | dict) and _deeper_than(value, MAX_NESTING):
            raise RowError(f"`{name}`: lists and objects nested more than {MAX_NESTING} deep")


def _deeper_than(value: object, levels: int) -> bool:
    """Whether `value` holds lists and objects nested more than `levels` deep (itself one)."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            inner: Iterable[object] = item.values()
        elif isinstance(item, list):
            inner = item
        else:
            continue
        if depth > levels:
            return True
        pending.extend((each, depth + 1) for each in inner)
    return False


def _double_sized(integer: int) -> bool:
    try:
        float(integer)
    except OverflowError:
        return False
    return True
