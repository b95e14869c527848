"""Instants and local time.

Inside Nudge every instant is an `int` of microseconds since the Unix epoch (UTC), the form the
database stores. Local time exists only at the edges the contract names (clock times, calendar
dates, quiet hours, input without an offset, output), and is computed here with `zoneinfo`.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from engine.errors import ConfigError
from engine.language.suggest import did_you_mean

US = 1_000_000
DAY_US = 86_400 * US
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """The IANA zone `name`; raises ConfigError for a name the zone database does not know."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: a folder, `America`
        raise ConfigError(
            f"unknown time zone {name!r} (expected an IANA name such as 'Asia/Shanghai')"
        ) from exc


def is_zone(name: str) -> bool:
    """Whether `name` may be given as a time zone (in `nudge.yaml`, in a customer's row): an
    IANA name this machine knows. Not `localtime` (whatever zone the machine running Nudge is
    set to: a simulation on a laptop and the daemon on a server would differ), `Factory` (no
    place's time), nor the copies under `posix/` and `right/` (the latter counts leap seconds,
    putting every time 27 s off). Names read back from the database are taken as stored."""
    return name in zone_names()


_OFFSET = re.compile(r"(?i)\s*(utc|gmt)?\s*[+\-−]\s*\d")
# Places people name for the zone of a country, whose zone is named after another city.
_PLACES = {"beijing": "Asia/Shanghai", "china": "Asia/Shanghai"}


def zone_help(name: str) -> str | None:
    """Help for a time zone `name` that `is_zone` refuses: the zone of the place it names
    (`shanghai`, `Asia/Beijing`, `New York`), the nearest name, or, for an offset (`GMT+8`),
    to name the place instead: the nearest name there would be `GMT+0`, eight hours off, and
    `Etc/GMT+8` is UTC−8."""
    if _OFFSET.match(name):
        return (
            "name the place rather than the offset (`Asia/Shanghai` for China's UTC+8):"
            " a place's zone follows its clock changes, and in `Etc/GMT-8` the sign is reversed"
        )
    place = name.rsplit("/", 1)[-1].strip().replace(" ", "_").casefold()
    by_place = {zone.rsplit("/", 1)[-1].casefold(): zone for zone in sorted(zone_names())}
    found = _PLACES.get(place) or by_place.get(place)
    if found is not None and found != name:
        return f"did you mean `{found}`?"
    return did_you_mean(name, zone_names())


@lru_cache(maxsize=1)
def zone_names() -> frozenset[str]:
    """The time zones `is_zone` allows."""
    return frozenset(available_timezones() - {"localtime", "Factory"})


def to_us(moment: dt.datetime) -> int:
    """An aware datetime as epoch microseconds."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * US + delta.microseconds


def from_us(us: int, tz: dt.tzinfo = dt.UTC) -> dt.datetime:
    return (EPOCH + dt.timedelta(microseconds=us)).astimezone(tz)


def local_wall(day: dt.date, clock: dt.time, tz: ZoneInfo) -> int:
    """The instant of wall-clock `clock` on `day` in `tz`, as LANGUAGE.md 3.2 resolves gaps/folds.

    A time skipped when clocks go forward is moved forward by the gap (02:30 → 03:30); a time
    that happens twice (clocks go back) means the first of the two.
    """
    # zoneinfo with fold=0 reads a wall time with the offset in force before a transition: in a
    # gap that lands `gap` later on the wall clock (02:30 → 03:30), in a fold it is the first.
    return to_us(dt.datetime.combine(day, clock).replace(tzinfo=tz, fold=0))


def local_date(us: int, tz: ZoneInfo) -> dt.date:
    return from_us(us, tz).date()


def local_text(us: int, tz: str) -> str:
    """The instant as the local clock of `tz` reads it, to the minute: `2026-11-25 19:00`."""
    return from_us(us, zone(tz)).strftime("%Y-%m-%d %H:%M")


def clock_text(us: int, tz: str) -> str:
    """The instant as the tables show shop time: `local_text`, and in the hour that happens
    twice when clocks go back, its UTC offset too, so that the two 01:30s of that night read
    apart (`2026-11-01 01:30 -04:00`, then `2026-11-01 01:30 -05:00`)."""
    moment = from_us(us, zone(tz))
    text = moment.strftime("%Y-%m-%d %H:%M")
    offset = moment.utcoffset()
    if offset is None or moment.replace(fold=1 - moment.fold).utcoffset() == offset:
        return text
    minutes = int(offset.total_seconds()) // 60
    return f"{text} {'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


@lru_cache(maxsize=1 << 16)
def iso(us: int) -> str:
    """ISO 8601 with an offset, UTC, seconds precision unless there are microseconds.

    Cached: the actions printed or recorded together share their due and send times by the
    thousand (every Friday's group buy, quiet hours ending at 08:00), and formatting one costs
    more than the JSON around it."""
    moment = from_us(us)
    spec = "microseconds" if moment.microsecond else "seconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


_WRITTEN_DATE = re.compile(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})(?![0-9])")


def _not_a_moment(text: str) -> str:
    """Why `parse_moment` refuses `text`: a day the calendar does not have (`2026-02-30`), a
    month or day written with one digit (`2026-12-1`), or else the forms it takes."""
    written = _WRITTEN_DATE.match(text)
    if written and int(written[1]) >= 1:
        year, month, day = (int(part) for part in written.groups())
        if not 1 <= month <= 12:
            return f"{text!r} is not a date: there is no month {month} (months are 01 to 12)"
        days = calendar.monthrange(year, month)[1]
        if not 1 <= day <= days:
            in_month = f"{calendar.month_name[month]} {year} has {days} days"
            return f"{text!r} is not a date: there is no such day ({in_month})"
        padded = f"{year:04d}-{month:02d}-{day:02d}{text[written.end() :]}"
        if written.end() != 10 and _reads(padded):
            return f"{text!r}: write the month and the day with two digits each: {padded}"
    return f"{text!r} is not a date or time (expected YYYY-MM-DD or YYYY-MM-DDTHH:MM[+HH:MM])"


def _reads(text: str) -> bool:
    try:
        dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def parse_moment(text: str, shop_tz: str) -> int:
    """`2026-11-01`, `2026-11-01T10:00`, `2026-11-01 10:00:00+08:00` → epoch microseconds.

    A date without a time means 00:00 shop-local; a time without an offset is shop-local.
    Raises ValueError with the expected forms.
    """
    text = text.strip()
    try:
        if len(text) == 10:
            return local_wall(dt.date.fromisoformat(text), dt.time(0, 0), zone(shop_tz))
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(_not_a_moment(text)) from None
    if moment.tzinfo is None:
        return local_wall(moment.date(), moment.time(), zone(shop_tz))
    return to_us(moment)
