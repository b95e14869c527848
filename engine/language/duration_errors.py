"""Durations written wrongly, told apart: a merchant who wrote `1.5d`, `3 dys`, `3 Days`,
`1 month`, `90s` or `3d2h` did write a unit, and is told what is wrong with it instead of
being asked for one (E121 is for a number without any unit, `+ 3`).

`duration_slip` looks at the text where a number starts; `engine.language.syntax_diagnosis` calls it
where the parser wanted a duration, or met a word right after a number.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

from engine.language.ast import UNIT_SECONDS
from engine.language.suggest import nearest

_NAMES = {"m": "minute", "h": "hour", "d": "day", "w": "week"}
# The units as the language spells them (LANGUAGE.md 2), each with its one-letter form.
_UNITS = {
    **{letter: letter for letter in _NAMES},
    **{name: letter for letter, name in _NAMES.items()},
    **{name + "s": letter for letter, name in _NAMES.items()},
}
# Other ways of writing the language's units: abbreviations, and the words of a Chinese input.
_ALIASES = {
    "min": "m",
    "mins": "m",
    "hr": "h",
    "hrs": "h",
    "wk": "w",
    "wks": "w",
    "分": "m",
    "分钟": "m",
    "小时": "h",
    "时": "h",
    "天": "d",
    "日": "d",
    "周": "w",
    "星期": "w",
}
_MONTHS = frozenset({"month", "months", "mo", "mon", "mth", "mths", "月", "个月"})
_YEARS = frozenset({"year", "years", "y", "yr", "yrs", "年"})
_SECONDS = frozenset({"s", "sec", "secs", "second", "seconds", "秒"})

# A number, the blanks after it and the word after them (letters of any script, no digits).
_WRITTEN = re.compile(r"([0-9]+(?:\.[0-9]+)?)([ \t]*)([^\W\d_]*)")
# Two or more whole numbers with a unit each: `3d2h`, `3d 2h`, `1 day 12 hours`.
_PART = r"[0-9]+[ \t]*[A-Za-z]+"
_MIXED = re.compile(rf"{_PART}(?:[ \t]*{_PART})+")
_PARTS = re.compile(r"([0-9]+)[ \t]*([A-Za-z]+)")


@dataclass(frozen=True)
class Slip:
    """What is wrong with a duration: a diagnostic's words, at `start`..`end` of the text."""

    code: str
    message: str
    start: int
    end: int
    label: str
    help: str
    # What the merchant meant, where it is one number of one unit: the number as written and
    # the unit's name (`days`, `months`), so that a help may give it as a plain number.
    amount: str | None = None
    unit: str | None = None

    def days(self) -> Fraction | None:
        """The time meant in days (a month taken as 30, a year as 365), if known."""
        if self.amount is None or self.unit is None:
            return None
        return Fraction(self.amount) * _DAYS[self.unit]


_DAYS = {
    "minutes": Fraction(1, 1440),
    "hours": Fraction(1, 24),
    "days": Fraction(1),
    "weeks": Fraction(7),
    "months": Fraction(30),
    "years": Fraction(365),
    "seconds": Fraction(1, 86400),
}


# The words of the units above in Chinese, which follow a number without a space (`3天`).
CHINESE_UNITS = frozenset(w for w in (*_ALIASES, *_MONTHS, *_YEARS, *_SECONDS) if not w.isascii())


def unit_and_size(word: str) -> tuple[str, int] | None:
    """The unit that `word` means, as the language writes it, and how many of that unit one of
    it is: `days`, `Days`, `dys`, `天` one `d`; a month 30 `d`, a year 365, as E134 tells them;
    None for seconds, or a word that is no unit."""
    if word.lower() in _MONTHS or word.lower() in _YEARS:
        return "d", int(_DAYS["months" if word.lower() in _MONTHS else "years"])
    unit = _unit_of(word)
    return None if unit is None else (unit, 1)


def duration_slip(text: str, start: int) -> Slip | None:
    """What is wrong with the duration written at `start` of `text` (where a number begins),
    or None when it is no duration with a unit of some kind (`3` alone, `3 then`)."""
    mixed = _mixed(text, start)
    if mixed is not None:
        return mixed
    written = _WRITTEN.match(text, start)
    if written is None or not written[3]:
        return None
    number, word = written[1], written[3]
    if word.lower() in _MONTHS or word.lower() in _YEARS:
        return _calendar_unit(written, Fraction(number), word.lower() in _MONTHS)
    if word.lower() in _SECONDS:
        return _seconds(written, Fraction(number))
    unit = _unit_of(word)
    if unit is None:
        return None
    if "." in number:
        return _fraction(written, Fraction(number), unit)
    if word in _UNITS:
        return None  # written right: the problem is elsewhere
    return Slip(
        "E134",
        f"`{word}` is not a unit of durations",
        written.start(3),
        written.end(3),
        "not a unit",
        f"did you mean `{_spelling(word, unit, Fraction(number))}`?",
        number,
        _NAMES[unit] + "s",
    )


def _unit_of(word: str) -> str | None:
    """The unit (`m`, `h`, `d`, `w`) that `word` means: as written, in another case, as an
    abbreviation (`hrs`) or misspelt (`dys`); None when it is not close to one."""
    for form in (word, word.lower()):
        if form in _UNITS:
            return _UNITS[form]
        if form in _ALIASES:
            return _ALIASES[form]
    if len(word) < 3:  # `x`, `dy`: too short to tell what was meant
        return None
    match = nearest(word.lower(), [name for name in _UNITS if len(name) > 1])
    return _UNITS[match] if match else None


def _spelling(word: str, unit: str, amount: Fraction) -> str:
    """How to write `unit` where the merchant wrote `word`: a letter for a letter or a Chinese
    word (`3天` is `3d`), else the word, singular for one (`1 day`, `3 days`)."""
    if len(word) == 1 or not word.isascii():
        return unit
    return _NAMES[unit] + ("" if amount == 1 else "s")


def _fraction(written: re.Match[str], amount: Fraction, unit: str) -> Slip:
    """`1.5d`: the same time in a smaller unit, where it is whole (`36h`)."""
    seconds = amount * UNIT_SECONDS[unit]
    exact = _largest_whole(seconds)
    return Slip(
        "E133",
        "a duration is a whole number of its unit",
        written.start(),
        written.end(),
        f"not a whole number of {_NAMES[unit]}s",
        f"write `{exact}`, the same time in a smaller unit"
        if exact
        else f"the smallest unit is the minute: write `{max(1, math.ceil(seconds / 60))}m`",
        written[1],
        _NAMES[unit] + "s",
    )


def _largest_whole(seconds: Fraction) -> str | None:
    """`seconds` in the largest unit that holds them a whole number of times (`36h`)."""
    for unit in ("w", "d", "h", "m"):
        amount = seconds / UNIT_SECONDS[unit]
        if amount.denominator == 1 and amount > 0:
            return f"{amount}{unit}"
    return None


def _calendar_unit(written: re.Match[str], amount: Fraction, month: bool) -> Slip:
    """`1 month`, `2 years`: not of one length; in days, 30 to a month and 365 to a year."""
    days = max(1, round(amount * (30 if month else 365)))
    name = "month" if month else "year"
    also = " (to act on a day of each month, the trigger is `every month on N`)" if month else ""
    return Slip(
        "E134",
        f"a {name} is not a unit of durations: {name}s differ in length",
        written.start(3),
        written.end(3),
        "not a unit",
        f"write it in days, such as `{days}d`{also}",
        written[1],
        name + "s",
    )


def _seconds(written: re.Match[str], amount: Fraction) -> Slip:
    """`90s`: the minutes on either side (`1m` or `2m`), the one when it is exact."""
    minutes = amount / 60
    options = sorted({max(1, math.floor(minutes)), max(1, math.ceil(minutes))})
    return Slip(
        "E134",
        "seconds are not a unit of durations",
        written.start(3),
        written.end(3),
        "not a unit",
        "the smallest unit is the minute: write " + " or ".join(f"`{m}m`" for m in options),
        written[1],
        "seconds",
    )


def _mixed(text: str, start: int) -> Slip | None:
    """`3d2h`, `1 day 12 hours`: one duration in two units, as one in the largest that fits."""
    match = _MIXED.match(text, start)
    if match is None:
        return None
    parts = [(int(n), _UNITS.get(word)) for n, word in _PARTS.findall(match[0])]
    if any(unit is None for _, unit in parts):
        return None
    whole = _largest_whole(Fraction(sum(n * UNIT_SECONDS[unit] for n, unit in parts if unit)))
    if whole is None:
        return None
    return Slip(
        "E134",
        "a duration has a single unit",
        match.start(),
        match.end(),
        "two units",
        f"write `{whole}`, the same time in one unit",
    )
