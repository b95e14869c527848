"""The shop's configuration (`nudge.yaml`), with the defaults LANGUAGE.md section 6 names."""

from __future__ import annotations

import codecs
import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import holidays
import yaml
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.util import asbool
from yaml.constructor import ConstructorError
from yaml.error import MarkedYAMLError
from yaml.reader import ReaderError

from engine.errors import ConfigError, ConfigErrors
from engine.language.source import SAVE_AS_UTF8, NotUtf8, SourceFile, Span
from engine.language.suggest import did_you_mean, nearest
from engine.render import remember_source
from engine.storage.tables import CHANNEL_NAME_LENGTH
from engine.timeutil import US, is_zone, zone_help

DEFAULT_DB = "sqlite:///nudge.db"
MIN_TICK_SECONDS = 1.0
MIN_RETRY_BASE_SECONDS = 1.0
# What a tick may start late in its interval and still be on time (`Config.late_us`).
ON_TIME_SLACK_SECONDS = 1.0
CHANNEL_TYPES = ("file", "email", "webhook", "sms")

# Where the file holds each setting: its key and its value, by the path of keys to it.
Places = dict[tuple[str, ...], tuple[Span, Span]]


@dataclass(frozen=True)
class Channel:
    """A configured delivery channel. `options` are the type's own settings (host, url...)."""

    name: str
    type: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rfm:
    """Score thresholds for `customer.rfm` (LANGUAGE.md 3.3). Each list has four ascending cuts.

    Recency: days since the last order; at most `recency_days[0]` scores 5, above the last cut
    scores 1. Frequency (orders) and monetary (total spent): below `cuts[0]` scores 1, at or
    above `cuts[3]` scores 5.
    """

    recency_days: tuple[float, float, float, float] = (30, 90, 180, 365)
    frequency: tuple[float, float, float, float] = (2, 3, 5, 10)
    monetary: tuple[float, float, float, float] = (200, 500, 1000, 3000)


@dataclass(frozen=True)
class Config:
    database: str = DEFAULT_DB
    timezone: str = "UTC"
    country: str | None = None
    templates: Path | None = None  # None: `templates/` inside the rules folder
    default_channel: str = "file"
    channels: dict[str, Channel] = field(
        default_factory=lambda: {"file": Channel("file", "file", {"path": "outbox.jsonl"})}
    )
    tick_seconds: float = 30.0
    grace_seconds: float = 6 * 3600.0
    # A message that fails for now is retried until `retry_for` has passed since its first
    # failure, or it has had `max_attempts` tries when that is set; then it is a dead letter.
    retry_for_seconds: float = 86400.0
    max_attempts: int | None = None
    retry_base_seconds: float = 30.0
    rfm: Rfm = field(default_factory=Rfm)
    base_dir: Path = field(default_factory=Path.cwd)
    # `shop:` free details for templates (`{{ shop.name }}`), beside timezone and country.
    shop: dict[str, Any] = field(default_factory=dict)
    # A `file` or `webhook` channel that also receives tasks and gifts (for an agent), or None.
    tasks_channel: str | None = None
    file: str | None = None  # the configuration file read, as it was named
    places: Places = field(default_factory=dict, compare=False, repr=False)

    @property
    def late_us(self) -> int:
        """How late the daemon still acts on a due time, and sends a message: `grace`, counted
        from one tick interval and a second after it. What falls due between two ticks is never
        late, though the second began a little later in its interval than the first (the
        scheduler's wake-up, reading the rule files: with `grace: 0s` an occurrence due in
        those first microseconds of a window was missed). Beyond it an occurrence is missed,
        and so is a message to a customer that could go out that long before the daemon came
        back from downtime (`outbox.miss_after_downtime`)."""
        return int((self.grace_seconds + self.tick_seconds + ON_TIME_SLACK_SECONDS) * US)

    def locate(self, error: ConfigError) -> ConfigError:
        """`error`, about one of this configuration's settings, at that setting in its file."""
        return error if self.file is None else _locate(error, self.file, self.places)

    def templates_dir(self, rules_dir: Path) -> Path:
        return self.templates if self.templates is not None else rules_dir / "templates"

    def channel(self, name: str | None) -> Channel:
        key = name or self.default_channel
        if key not in self.channels:
            raise ConfigError(f"no channel named {key!r} is configured")
        return self.channels[key]


# A duration's units, as the rule language writes them (`30m`, `6 hours`, `1w`), and seconds.
_DURATION_UNITS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hour", "hours"), 3600),
    **dict.fromkeys(("d", "day", "days"), 86400),
    **dict.fromkeys(("w", "week", "weeks"), 7 * 86400),
}


def duration_text(seconds: float) -> str:
    """`seconds` as `nudge.yaml` writes a duration, in the largest unit that holds it whole:
    `6h`, `90m`, `1d`, `45s` (`0.5s`)."""
    for unit, size in (("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


_DURATION = re.compile(r"([0-9]+)[ \t]*([a-z]*)")


def setting_seconds(key: str, value: object) -> float:
    """Setting `key`'s `value` in seconds: `30`, `30s`, `6h`, `6 hours`, `1w`, a number of
    seconds, or a whole number with a unit (a bare number in quotes is seconds too)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < math.inf:
        return float(value)
    match = _DURATION.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is not None and (not match[2] or match[2] in _DURATION_UNITS):
        return float(match[1]) * _DURATION_UNITS.get(match[2], 1)
    raise ConfigError(
        f"{key}: expected seconds or a duration such as 30s, 5m, 6h, 1d, 1w;"
        f" got {shown_value(value)}",
        (key,),
        help=did_you_mean(match[2], _DURATION_UNITS) if match is not None else None,
    )


# What else an operator may call a channel's type, and the type meant.
_TYPE_WORDS = {
    **dict.fromkeys(("smtp", "mail", "e-mail", "mailer", "smtps"), "email"),
    **dict.fromkeys(("http", "https", "hook", "web", "post", "url", "api"), "webhook"),
    **dict.fromkeys(("text", "texts", "phone", "mobile"), "sms"),
    **dict.fromkeys(("jsonl", "json", "disk", "log", "outbox"), "file"),
}
_TYPE_MEANING = {
    "email": " sends through an SMTP server (`host`, `port`, `from`)",
    "webhook": " posts each message as JSON to a `url`",
    "sms": " posts the phone number and the text to your SMS gateway's `url`",
    "file": " writes each message as a line of JSON to a file (`path`)",
}


_CHANNEL_HELP = "name a channel of `channels`, or `file` (JSON Lines on disk, the default)"


def shown_value(value: object) -> str:
    """A setting's value in a message, in the words of `nudge.yaml` rather than Python's."""
    if value is None:
        return "nothing (the setting is empty)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return f"`{value}`"
    return str(value)


def _count(key: str, value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise ConfigError(
        f"{key}: expected a whole number of 1 or more; got {shown_value(value)}", (key,)
    )


_DATABASES = ("sqlite", "postgresql", "postgres")


def _in_memory(path: str | None, query: Mapping[str, str | tuple[str, ...]]) -> bool:
    """Whether a SQLite URL's database is in memory: no file named, `:memory:`, or a SQLite
    URI of one (`file::memory:?uri=true`, `file:shop?mode=memory&uri=true`)."""
    if not path or path == ":memory:":
        return True
    uri = query.get("uri")
    if not (path.startswith("file:") and isinstance(uri, str) and asbool(uri)):
        return False
    return path.removeprefix("file:").startswith(":memory:") or query.get("mode") == "memory"


def _database(key: str, value: object, base: Path | None = None) -> str:
    """A SQLAlchemy URL of SQLite or PostgreSQL, checked for its form (not opened). A SQLite
    file's relative path is taken from `base` when given (the configuration file's folder, as
    its other paths are), else from the current folder."""
    if value is None:
        raise ConfigError(
            f"{key}: no URL given",
            ("database",),
            help="a URL such as sqlite:///nudge.db or postgresql://user@host/shop; leave the"
            " setting out for nudge.db in the current folder",
        )
    url = str(value)
    try:
        parsed = make_url(url)
        backend = parsed.get_backend_name()
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        backend = None
    if backend in _DATABASES:
        path = parsed.database
        if backend == "sqlite" and _in_memory(path, parsed.query):
            # Each command is a process of its own: what one stores there the next never sees
            # (`import` said "4 customers imported" of a database gone as it ended).
            raise ConfigError(
                f"{key}: {url!r} is a database in memory, gone when the command ends",
                ("database",),
                help="name the SQLite file after the three slashes: sqlite:///nudge.db",
            )
        if base is None or backend != "sqlite" or not path:
            return url
        if path.startswith("file:") or Path(path).is_absolute():
            return url
        beside = base / path
        if not beside.exists() and Path(path).exists():
            raise ConfigError(  # as Nudge took it before 2026-11-24: not a new, empty one
                f"{key}: `{path}` is taken from this file's folder, where there is no such"
                f" database, while the current folder has one ({Path(path).resolve()})",
                ("database",),
                help="write the path of the database you mean in full (sqlite:////srv/shop.db)",
            )
        return parsed.set(database=str(beside)).render_as_string(hide_password=False)
    example = "a URL such as sqlite:///nudge.db or postgresql://user@host/shop"
    if backend is None:
        raise ConfigError(f"{key}: not a database URL: {url!r}", ("database",), help=example)
    raise ConfigError(
        f"{key}: Nudge works with SQLite and PostgreSQL, not {backend} ({url!r})",
        ("database",),
        help=did_you_mean(backend, _DATABASES[:2]) or example,
    )


def _country(value: object) -> str:
    """An ISO 3166 code of a country whose holiday calendar the `holidays` package has."""
    code = str(value).strip().upper()
    known = holidays.list_supported_countries()
    if code in known:
        return code
    raise ConfigError(
        f"country: no holiday calendar for {value!r}",
        ("country",),
        help=did_you_mean(code, [k for k in known if len(k) == 2])
        or "an ISO 3166 code such as CN, HK, TW, SG or US",
    )


def _channels(raw: object) -> dict[str, Channel]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError("channels: expected a mapping of channel name to settings", ("channels",))
    result: dict[str, Channel] = {}
    for name, spec in raw.items():
        setting = ("channels", str(name))
        if len(str(name)) > CHANNEL_NAME_LENGTH:
            raise ConfigError(
                f"a channel's name holds at most {CHANNEL_NAME_LENGTH} characters;"
                f" this one has {len(str(name)):,}",
                setting,
            )
        if spec is not None and not isinstance(spec, dict):
            raise ConfigError(
                f"channels.{name}: expected settings such as `type: email`; got {spec!r}", setting
            )
        spec = dict(spec or {})
        given = "type" in spec
        kind = spec.pop("type", name)
        if kind not in CHANNEL_TYPES:
            meant = _TYPE_WORDS.get(str(kind).lower()) or nearest(str(kind), CHANNEL_TYPES)
            raise ConfigError(
                (
                    f"channels.{name}: unknown type {kind!r}"
                    if given
                    else f"channels.{name}: no `type`, and {name!r} is not the name of one"
                )
                + f" (expected one of {', '.join(CHANNEL_TYPES)})",
                (*setting, "type"),
                help=f"`type: {meant}`{_TYPE_MEANING[meant]}" if meant else None,
            )
        result[str(name)] = Channel(str(name), kind, spec)
    return result


def _rfm(raw: object) -> Rfm:
    """`rfm:` with up to three ladders of four ascending numbers each."""
    fields = {f.name for f in dataclasses.fields(Rfm)}
    expected = f"rfm: expected the keys {', '.join(sorted(fields))}"
    if not isinstance(raw, dict):
        raise ConfigError(expected, ("rfm",))
    unknown = sorted(str(key) for key in set(raw) - fields)
    if unknown:
        raise ConfigError(expected, ("rfm", unknown[0]), code="E601", unknown=True)
    ladders: dict[str, tuple[float, float, float, float]] = {}
    for name, value in raw.items():
        try:
            cuts = tuple(float(x) for x in value)
        except (TypeError, ValueError):
            cuts = ()
        if len(cuts) != 4 or list(cuts) != sorted(cuts):
            raise ConfigError(
                f"rfm.{name}: expected four ascending numbers, got {value!r}", ("rfm", name)
            )
        ladders[name] = (cuts[0], cuts[1], cuts[2], cuts[3])
    return Rfm(**ladders)


_SETTINGS = (
    "database",
    "timezone",
    "country",
    "templates",
    "default_channel",
    "channels",
    "tick_seconds",
    "grace",
    "retry_for",
    "max_attempts",
    "retry_base",
    "rfm",
    "shop",
    "tasks_channel",
)


def load_config(path: Path | None = None, db: str | None = None) -> Config:
    """Read `path` (default `nudge.yaml` in the current folder, optional) and apply `--db`.
    An error in the file is a ConfigError at the setting it is about (`Config.locate`)."""
    if db is not None:
        _database("--db", db)
    explicit = path is not None
    path = path or Path("nudge.yaml")
    if not path.exists():
        if explicit:
            raise ConfigError(f"{path}: no such configuration file", code="E600")
        return _settings({}, path.parent.resolve(), db)
    raw, places = _read(path)
    try:
        config = _settings(raw, path.parent.resolve(), db)
    except ConfigError as exc:
        raise _locate(exc, str(path), places) from None
    except ConfigErrors as exc:
        located = [_locate(error, str(path), places) for error in exc.errors]
        located.sort(key=lambda e: (e.span.line, e.span.column) if e.span else (0, 0))
        raise ConfigErrors(located) from None
    return dataclasses.replace(config, file=str(path), places=places)


def _read(path: Path) -> tuple[dict[Any, Any], Places]:
    """The file's settings, and where it holds each."""
    file = str(path)
    try:
        data = path.read_bytes()
        text = data.decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot be read ({exc.strerror or exc})", code="E600") from None
    except UnicodeDecodeError as exc:
        raise _not_utf8(file, data, exc.start) from None
    where = _Text(file, text)
    loader: _Loader | None = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        if node is not None:
            _refuse_duplicates(node, (), where, set())
        loaded = None if node is None else loader.construct_document(node)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        if mark is None or (exc.context_mark is not None and mark.index >= len(text.rstrip())):
            mark = exc.context_mark  # at the end of the file: where the unclosed thing began
        span = None if mark is None else where.span(mark.index, mark.index + 1)
        problem = ", ".join(part for part in (exc.context, exc.problem) if part)
        raise ConfigError(f"not valid YAML: {problem}", code="E600").located(span, file) from None
    except ReaderError as exc:  # a character YAML does not allow (a control character)
        span = where.span(exc.position, exc.position + 1)
        error = ConfigError(f"not valid YAML: {str(exc).splitlines()[0]}", code="E600")
        raise error.located(span, file) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}", code="E600") from None
    finally:
        if loader is not None:
            loader.dispose()
    if node is not None and not isinstance(loaded, dict):
        span = where.span(node.start_mark.index, node.end_mark.index)
        error = ConfigError("expected settings such as `timezone: Asia/Shanghai`", code="E600")
        raise error.located(span, file)
    places: Places = {}
    if node is not None:
        _walk(node, (), places, where, set())
    return loaded or {}, places


def _not_utf8(file: str, data: bytes, start: int) -> ConfigError:
    """E600 at the first byte of `data` that cannot start a character, as `check` tells a rule
    file that is not UTF-8 (E004); a file saved as UTF-16 is told so."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return ConfigError(
            f"{file}: saved as UTF-16, not UTF-8 text", code="E600", help=SAVE_AS_UTF8
        )
    bad = NotUtf8.at(file, data, start)
    remember_source(SourceFile(file, bad.text))
    error = ConfigError("not UTF-8 text", code="E600", help=SAVE_AS_UTF8)
    return error.located(bad.span, file)


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading each key as it is written, as a setting's name: `null:`,
    `yes:` and `1:` are the keys `null`, `yes` and `1` (not None, True and 1). A key must be a
    word, not a list or a mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        self.flatten_mapping(node)  # `<<: *anchor`, as the safe loader merges it
        mapping = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                raise ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    "a key must be a word",
                    key.start_mark,
                )
            mapping[key.value] = self.construct_object(value, deep=deep)
        return mapping


def _refuse_duplicates(
    node: yaml.Node, path: tuple[str, ...], where: _Text, seen: set[int]
) -> None:
    """Raise E604 for a key given twice in one mapping, at the second (YAML would silently keep
    the later value). The keys a merge (`<<: *anchor`) brings in may be given again: that is
    what a merge is for."""
    if isinstance(node, yaml.ScalarNode) or id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _refuse_duplicates(item, path, where, seen)
        return
    first: dict[str, yaml.Node] = {}
    for key, value in node.value:
        if key.tag == "tag:yaml.org,2002:merge" or not isinstance(key, yaml.ScalarNode):
            _refuse_duplicates(value, path, where, seen)
            continue
        here = (*path, key.value)
        if key.value in first:
            line = first[key.value].start_mark.line + 1
            raise ConfigError(
                f"`{'.'.join(here)}` is given twice: here and on line {line}",
                here,
                code="E604",
                help="a setting holds one value: keep one of the two",
            ).located(where.span(key.start_mark.index, key.end_mark.index), where.file)
        first[key.value] = key
        _refuse_duplicates(value, here, where, seen)


def _walk(
    node: yaml.Node, path: tuple[str, ...], places: Places, where: _Text, seen: set[int]
) -> None:
    """Record where each key of `node`'s mappings is, and its value, by the path of keys to it.
    A node is walked once, however many aliases name it. Run after the loader has merged
    (`<<: *anchor`): a key merged in and given again is where it is given again."""
    if not isinstance(node, yaml.MappingNode) or id(node) in seen:
        return
    seen.add(id(node))
    for key, value in node.value:
        here = (*path, key.value)
        for earlier in [place for place in places if place[: len(here)] == here]:
            del places[earlier]  # merged in, then given again: the later one is the setting
        key_span = where.span(key.start_mark.index, key.end_mark.index)
        places[here] = key_span, where.span(value.start_mark.index, value.end_mark.index)
        _walk(value, here, places, where, seen)


@dataclass(frozen=True)
class _Text:
    """A configuration file's text, to turn YAML's positions into spans as diagnostics count
    lines and columns: lines end at a line feed (YAML also ends them at U+2028 and others), and
    a byte-order mark takes no column."""

    file: str
    text: str

    def span(self, start: int, end: int) -> Span:
        """The characters `[start, end)`, at least one."""
        line, column = self._at(start)
        end_line, end_column = self._at(max(end, start + 1))
        return Span(self.file, line, column, end_line, end_column)

    def _at(self, index: int) -> tuple[int, int]:
        line_start = self.text.rfind("\n", 0, index) + 1
        column = index - line_start + 1
        if line_start == 0 and self.text.startswith("\ufeff") and index > 0:
            column -= 1
        return self.text.count("\n", 0, index) + 1, column


def _locate(error: ConfigError, file: str, places: Places) -> ConfigError:
    """`error` where the file holds the setting it is about: at its value, or at its key when
    the key is unknown; for a setting missing from the file, at the key of the nearest one
    holding it (the channel of a missing `host`)."""
    setting = error.setting
    if setting in places:
        key, value = places[setting]
        return error.located(key if error.unknown else value, file)
    for end in range(len(setting) - 1, 0, -1):
        if setting[:end] in places:
            return error.located(places[setting[:end]][0], file)
    return error.located(None, file)


def _settings(raw: dict[Any, Any], base: Path, db: str | None) -> Config:
    """The configuration `raw` (the file's settings) makes, with `--db` applied. Every setting
    that cannot be used is told at once: a ConfigError for one, ConfigErrors for several."""
    problems: list[ConfigError] = []
    unknown = sorted(str(key) for key in raw if key not in _SETTINGS)
    for key in unknown:
        problems.append(
            ConfigError(
                f"unknown setting {key}",
                (key,),
                code="E601",
                unknown=True,
                help=did_you_mean(key, _SETTINGS),
            )
        )
    config = Config(base_dir=base)
    changes: dict[str, Any] = {"channels": dict(config.channels)}
    readers: list[tuple[str, str, Callable[[Any], Any]]] = [
        ("database", "database", lambda value: _database("database", value, base)),
        ("timezone", "timezone", _timezone),
        ("country", "country", _country),
        ("templates", "templates", lambda value: (base / str(value)).resolve()),
        ("default_channel", "default_channel", _default_channel),
        ("tick_seconds", "tick_seconds", _tick_seconds),
        ("grace", "grace_seconds", lambda value: setting_seconds("grace", value)),
        ("retry_for", "retry_for_seconds", lambda value: setting_seconds("retry_for", value)),
        ("max_attempts", "max_attempts", lambda value: _count("max_attempts", value)),
        ("retry_base", "retry_base_seconds", _retry_base),
        ("rfm", "rfm", lambda value: _rfm(value or {})),
        ("shop", "shop", _shop),
        ("tasks_channel", "tasks_channel", str),
    ]
    # `country`, `templates` and `tasks_channel` may be left empty, meaning their default.
    optional = ("country", "templates", "tasks_channel")
    for key, field_name, read in readers:
        if key not in raw or (key in optional and raw[key] is None):
            continue
        try:
            changes[field_name] = read(raw[key])
        except ConfigError as exc:
            problems.append(exc)
    try:
        changes["channels"].update(_channels(raw.get("channels")))
    except ConfigError as exc:
        problems.append(exc)
    if db is not None:
        changes["database"] = db
    config = dataclasses.replace(config, **changes)
    told = {problem.setting[:1] for problem in problems}
    # With a channel in error none of the file's channels were read: not a word on those named.
    named = ("channels",) not in told
    if named and ("default_channel",) not in told and config.default_channel not in config.channels:
        problems.append(
            ConfigError(
                f"default_channel: {shown_value(config.default_channel)} is not configured",
                ("default_channel",),
                help=did_you_mean(config.default_channel, config.channels),
            )
        )
    if named and config.tasks_channel is not None:
        tasks = config.channels.get(config.tasks_channel)
        if tasks is None or tasks.type not in ("file", "webhook"):
            problems.append(
                ConfigError(
                    f"tasks_channel {config.tasks_channel!r} must name a configured"
                    " file or webhook channel",
                    ("tasks_channel",),
                )
            )
    if len(problems) > 1:
        raise ConfigErrors(problems)
    if problems:
        raise problems[0]
    return config


def _timezone(value: object) -> str:
    if value is None:
        raise ConfigError(
            "timezone: the setting is empty",
            ("timezone",),
            help="a name such as Asia/Shanghai or Europe/Berlin (the default is UTC)",
        )
    if not is_zone(str(value)):
        raise ConfigError(
            f"timezone: `{value}` is not an IANA time zone",
            ("timezone",),
            help=zone_help(str(value)) or "a name such as Asia/Shanghai or Europe/Berlin",
        )
    return str(value)


def _default_channel(value: object) -> str:
    if value is None:
        raise ConfigError(
            "default_channel: the setting is empty", ("default_channel",), help=_CHANNEL_HELP
        )
    return str(value)


def _retry_base(value: object) -> float:
    """A second at least: the first retry comes after a random wait up to `retry_base`. With
    `retry_base: 0` a batch failing for now (its server refusing connections) was tried again
    and again, as fast as the database answered, for half a tick interval at every step (a
    step now tries each message once: `Daemon._dispatch`)."""
    seconds = setting_seconds("retry_base", value)
    if seconds < MIN_RETRY_BASE_SECONDS:
        raise ConfigError(
            f"retry_base: a retry needs at least a second's wait; got {shown_value(value)}",
            ("retry_base",),
            help="30s is the default; to retry nothing, set `retry_for: 0` (one try each)",
        )
    return seconds


def _tick_seconds(value: object) -> float:
    """A second at least: a step sends for up to a second (`Daemon._dispatch`), and a step with
    nothing to do still reads the database and writes a heartbeat, so that a shorter interval
    would tick back to back, keeping a core and the database busy for nothing."""
    seconds = setting_seconds("tick_seconds", value)
    if seconds < MIN_TICK_SECONDS:
        raise ConfigError(
            "tick_seconds: the daemon needs at least a second between ticks; got"
            f" {shown_value(value)}",
            ("tick_seconds",),
            help="30s is the default; a tick also comes just after each due time known in advance"
            " (a schedule, a date, `at HH:MM`), so a short interval is needed for none of them",
        )
    return seconds


def _shop(value: object) -> dict[str, Any]:
    shop = value or {}
    if not isinstance(shop, dict):
        raise ConfigError("shop: expected a mapping such as `name: My Shop`", ("shop",))
    return {str(k): v for k, v in shop.items()}
