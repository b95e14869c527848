"""The shop's configuration (`nudge.yaml`), with the defaults LANGUAGE.md section 6 names."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.errors import ConfigError
from engine.timeutil import is_zone

DEFAULT_DB = "sqlite:///nudge.db"
CHANNEL_TYPES = ("file", "email", "webhook", "sms")


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
    max_attempts: int = 8
    retry_base_seconds: float = 30.0
    rfm: Rfm = field(default_factory=Rfm)
    base_dir: Path = field(default_factory=Path.cwd)
    # `shop:` free details for templates (`{{ shop.name }}`), beside timezone and country.
    shop: dict[str, Any] = field(default_factory=dict)
    # A `file` or `webhook` channel that also receives tasks and gifts (for an agent), or None.
    tasks_channel: str | None = None

    def templates_dir(self, rules_dir: Path) -> Path:
        return self.templates if self.templates is not None else rules_dir / "templates"

    def channel(self, name: str | None) -> Channel:
        key = name or self.default_channel
        if key not in self.channels:
            raise ConfigError(f"no channel named {key!r} is configured")
        return self.channels[key]


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


_DURATION = re.compile(r"([0-9]+)[ \t]*([smhd])")


def _seconds(path: Path, key: str, value: object) -> float:
    """`30`, `30s`, `6h`: a number of seconds or a whole number with a unit."""
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < math.inf:
        return float(value)
    match = _DURATION.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is not None:
        return float(match[1]) * _DURATION_UNITS[match[2]]
    raise ConfigError(
        f"{path}: {key}: expected seconds or a duration such as 30s, 5m, 6h; got {value!r}"
    )


def _count(path: Path, key: str, value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise ConfigError(f"{path}: {key}: expected a whole number of 1 or more; got {value!r}")


def _channels(path: Path, raw: object) -> dict[str, Channel]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: channels: expected a mapping of channel name to settings")
    result: dict[str, Channel] = {}
    for name, spec in raw.items():
        if spec is not None and not isinstance(spec, dict):
            raise ConfigError(
                f"{path}: channels.{name}: expected settings such as `type: email`; got {spec!r}"
            )
        spec = dict(spec or {})
        kind = spec.pop("type", name)
        if kind not in CHANNEL_TYPES:
            raise ConfigError(
                f"{path}: channels.{name}: unknown type {kind!r}"
                f" (expected one of {', '.join(CHANNEL_TYPES)})"
            )
        result[str(name)] = Channel(str(name), kind, spec)
    return result


def _rfm(path: Path, raw: object) -> Rfm:
    """`rfm:` with up to three ladders of four ascending numbers each."""
    fields = {f.name for f in dataclasses.fields(Rfm)}
    if not isinstance(raw, dict) or set(raw) - fields:
        raise ConfigError(f"{path}: rfm: expected the keys {', '.join(sorted(fields))}")
    ladders: dict[str, tuple[float, float, float, float]] = {}
    for name, value in raw.items():
        try:
            cuts = tuple(float(x) for x in value)
        except (TypeError, ValueError):
            cuts = ()
        if len(cuts) != 4 or list(cuts) != sorted(cuts):
            raise ConfigError(f"{path}: rfm.{name}: expected four ascending numbers, got {value!r}")
        ladders[name] = (cuts[0], cuts[1], cuts[2], cuts[3])
    return Rfm(**ladders)


def load_config(path: Path | None = None, db: str | None = None) -> Config:
    """Read `path` (default `nudge.yaml` in the current folder, optional) and apply `--db`."""
    explicit = path is not None
    path = path or Path("nudge.yaml")
    raw: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of settings")
        raw = loaded or {}
    elif explicit:
        raise ConfigError(f"{path}: no such configuration file")

    known = {
        "database",
        "timezone",
        "country",
        "templates",
        "default_channel",
        "channels",
        "tick_seconds",
        "grace",
        "max_attempts",
        "retry_base",
        "rfm",
        "shop",
        "tasks_channel",
    }
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)}")

    base = path.parent.resolve()
    config = Config(base_dir=base)
    changes: dict[str, Any] = {}
    if "database" in raw:
        changes["database"] = str(raw["database"])
    if "timezone" in raw:
        if not is_zone(str(raw["timezone"])):
            raise ConfigError(f"{path}: timezone {raw['timezone']!r} is not an IANA time zone")
        changes["timezone"] = str(raw["timezone"])
    if raw.get("country") is not None:
        changes["country"] = str(raw["country"]).upper()
    if raw.get("templates") is not None:
        changes["templates"] = (base / str(raw["templates"])).resolve()
    channels = dict(config.channels)
    channels.update(_channels(path, raw.get("channels")))
    changes["channels"] = channels
    if "default_channel" in raw:
        changes["default_channel"] = str(raw["default_channel"])
    if "tick_seconds" in raw:
        changes["tick_seconds"] = _seconds(path, "tick_seconds", raw["tick_seconds"])
    if "grace" in raw:
        changes["grace_seconds"] = _seconds(path, "grace", raw["grace"])
    if "max_attempts" in raw:
        changes["max_attempts"] = _count(path, "max_attempts", raw["max_attempts"])
    if "retry_base" in raw:
        changes["retry_base_seconds"] = _seconds(path, "retry_base", raw["retry_base"])
    if "rfm" in raw:
        changes["rfm"] = _rfm(path, raw["rfm"] or {})
    if "shop" in raw:
        shop = raw["shop"] or {}
        if not isinstance(shop, dict):
            raise ConfigError(f"{path}: shop: expected a mapping such as `name: My Shop`")
        changes["shop"] = {str(k): v for k, v in shop.items()}
    if raw.get("tasks_channel") is not None:
        changes["tasks_channel"] = str(raw["tasks_channel"])
    if db is not None:
        changes["database"] = db
    config = dataclasses.replace(config, **changes)
    if config.default_channel not in config.channels:
        raise ConfigError(f"{path}: default_channel {config.default_channel!r} is not configured")
    if config.tasks_channel is not None:
        tasks = config.channels.get(config.tasks_channel)
        if tasks is None or tasks.type not in ("file", "webhook"):
            raise ConfigError(
                f"{path}: tasks_channel {config.tasks_channel!r} must name a configured"
                " file or webhook channel"
            )
    return config
