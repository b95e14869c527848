"""Holiday calendars: which dates a holiday name stands for, from the `holidays` package.

A name is accepted in English and in the country's own language, as `holidays` spells them
(`中秋节`, `Mid-Autumn Festival`). Where the package writes an alias in parentheses
(`Chinese New Year (Spring Festival)`), the alias (`Spring Festival`) and the main name
(`Chinese New Year`) are accepted too. Matching ignores case. Calendars are read without the
days on which a holiday is observed (`observed=False`): a holiday's first day is its own date,
never the weekday before or after on which it is observed (Independence Day 2026 is Saturday
4 July, observed on Friday the 3rd), and "(observed)" is no name of its own.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import lru_cache

import holidays

_ALIAS = re.compile(r"^(?P<main>.+?)\s*[(（](?P<alias>[^()（）]+)[)）]$")


def _key(name: str) -> str:
    return " ".join(name.casefold().split())


def _aliases(name: str) -> set[str]:
    names = {_key(name)}
    match = _ALIAS.match(name.strip())
    if match:
        names |= {_key(match["main"]), _key(match["alias"])}
    return names


@lru_cache(maxsize=64)
def _calendar(country: str, year: int, language: str | None) -> dict[dt.date, str]:
    try:
        cal = holidays.country_holidays(country, years=[year], language=language, observed=False)
    except NotImplementedError:
        return {}
    return dict(cal.items())


@lru_cache(maxsize=64)
def _languages(country: str) -> tuple[str | None, ...]:
    cal = holidays.country_holidays(country)
    return ("en_US", cal.default_language) if cal.default_language else ("en_US",)


def is_country(country: str) -> bool:
    return country.upper() in holidays.list_supported_countries()


def holiday_names(country: str, year: int = 2026) -> list[str]:
    """The names a holiday trigger may use for `country`, as spelled by the package."""
    names: set[str] = set()
    for language in _languages(country):
        names.update(" ".join(n.split()) for n in _calendar(country, year, language).values())
    return sorted(names)


@lru_cache(maxsize=1024)
def first_day(country: str, name: str, year: int) -> dt.date | None:
    """The first day in `year` of the holiday called `name`, or None if it has none that year."""
    wanted = _key(name)
    days = [
        day
        for language in _languages(country)
        for day, label in _calendar(country, year, language).items()
        if any(wanted in _aliases(part) for part in label.split(";"))
    ]
    return min(days) if days else None


def knows(country: str, name: str) -> bool:
    """Whether `name` names a holiday of `country` in this or the next two years."""
    this_year = dt.date.today().year
    return any(first_day(country, name, y) is not None for y in range(this_year, this_year + 3))
