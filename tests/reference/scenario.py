"""Scenario files (tests/scenarios/*.yaml): a shop, rules and the records expected, by hand.

```yaml
name: fit check three days after delivery
config: {timezone: Asia/Shanghai}          # nudge.yaml settings; email and sms channels exist
rules: |                                   # one file, scenario.rules (or `files:` NAME: TEXT)
  when order.received + 3d at 10:00 then followup "fit_check"
templates: [fit_check]
customers:                                 # rows as `nudge import customers` reads them
  - {id: c1, accepts_marketing: true}
events:                                    # rows as `nudge import events` reads them
  - {customer: c1, type: order.received, at: "2026-11-01T15:30:00+08:00"}
window: {from: "2026-11-01T00:00:00+08:00", to: "2026-12-01T00:00:00+08:00"}
ledger:                                    # optional: what the daemon recorded before `from`
  occurrences: [{rule: NAME, customer: c1, due: TIME}]
  actions: [{rule: NAME, customer: c1, kind: message, position: 0, due: TIME, at: TIME,
             status: sent, tag: null, amount: null}]
expect:                                    # every record, in order; only the keys given
  - {rule: "scenario.rules:1", customer: c1, action: followup, due: "2026-11-04T02:00:00Z"}
```

Times without an offset are shop-local, as on import.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.config import Config, load_config
from engine.language import ast
from engine.timeutil import to_us, zone
from tests.reference.shop import (
    Customer,
    Event,
    Ledger,
    RecordedAction,
    RecordedOccurrence,
    Shop,
)

CHANNELS = {"email": {"type": "email"}, "sms": {"type": "sms"}}
CUSTOMER_FIELDS = ("name", "email", "phone", "birthday", "timezone")


@dataclass(frozen=True)
class Scenario:
    name: str
    path: Path
    config: dict[str, Any]
    files: dict[str, str]
    templates: tuple[str, ...]
    customers: tuple[dict[str, Any], ...]
    events: tuple[dict[str, Any], ...]
    window: tuple[Any, Any]
    expect: tuple[dict[str, Any], ...]
    ledger: dict[str, Any] = field(default_factory=dict)

    @property
    def timezone(self) -> str:
        return str(self.config.get("timezone", "UTC"))


def load(path: Path) -> Scenario:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    files = raw.get("files") or {"scenario.rules": raw.get("rules", "")}
    return Scenario(
        name=raw["name"],
        path=path,
        config=raw.get("config") or {},
        files=files,
        templates=tuple(raw.get("templates") or ()),
        customers=tuple(raw.get("customers") or ()),
        events=tuple(raw.get("events") or ()),
        window=(raw["window"]["from"], raw["window"]["to"]),
        expect=tuple(raw.get("expect") or ()),
        ledger=raw.get("ledger") or {},
    )


def materialize(scenario: Scenario, folder: Path) -> tuple[Path, Config]:
    """Write the scenario's rules, templates and nudge.yaml under `folder`."""
    rules_dir = folder / "rules"
    (rules_dir / "templates").mkdir(parents=True)
    for name, text in scenario.files.items():
        (rules_dir / name).write_text(text, encoding="utf-8")
    for template in scenario.templates:
        (rules_dir / "templates" / f"{template}.txt").write_text(f"{template}\n", encoding="utf-8")
    settings = dict(scenario.config)
    settings["channels"] = {**CHANNELS, **settings.get("channels", {})}
    config_path = folder / "nudge.yaml"
    config_path.write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    return rules_dir, load_config(config_path)


def instant(value: Any, shop_tz: str) -> int:
    """An ISO 8601 time (string, or as YAML read it) as epoch microseconds; shop-local when it
    carries no offset."""
    moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone(shop_tz))
    return to_us(moment)


def window(scenario: Scenario) -> tuple[int, int]:
    start, end = scenario.window
    return instant(start, scenario.timezone), instant(end, scenario.timezone)


def _tags(value: Any) -> frozenset[str]:
    if value is None:
        return frozenset()
    items = value.split(",") if isinstance(value, str) else value
    return frozenset(str(item).strip() for item in items if str(item).strip())


def shop(scenario: Scenario) -> Shop:
    """The scenario's data as the reference evaluator reads it."""
    customers: dict[str, Customer] = {}
    for row in scenario.customers:
        known = {"id", "signed_up", "accepts_marketing", "tags", *CUSTOMER_FIELDS}
        signed_up = row.get("signed_up")
        customers[str(row["id"])] = Customer(
            id=str(row["id"]),
            **{name: _text(row.get(name)) for name in CUSTOMER_FIELDS},
            signed_up_us=None if signed_up is None else instant(signed_up, scenario.timezone),
            accepts_marketing=bool(row.get("accepts_marketing", False)),
            tags=_tags(row.get("tags")),
            attributes={k: v for k, v in row.items() if k not in known and v is not None},
        )
    events = []
    for index, row in enumerate(scenario.events):
        customer = str(row["customer"])
        customers.setdefault(customer, Customer(id=customer))
        events.append(
            Event(
                key=str(row.get("id", f"event-{index:04d}")),
                customer_id=customer,
                type=row["type"],
                at_us=instant(row["at"], scenario.timezone),
                properties={
                    k: v
                    for k, v in row.items()
                    if k not in ("customer", "type", "at", "id") and v is not None
                },
            )
        )
    return Shop(customers=tuple(customers.values()), events=tuple(events))


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def customer_rows(scenario: Scenario) -> list[dict[str, Any]]:
    """Customer rows for the importer, as JSON Lines objects."""
    rows = []
    for row in scenario.customers:
        converted: dict[str, Any] = {
            k: _text(v) if isinstance(v, dt.date) else v for k, v in row.items()
        }
        tags = converted.get("tags")
        if isinstance(tags, list):
            converted["tags"] = ",".join(str(tag) for tag in tags)
        rows.append(converted)
    return rows


def event_rows(scenario: Scenario) -> list[dict[str, Any]]:
    """Event rows for the importer, as JSON Lines objects, each with an `id`."""
    rows = []
    for index, row in enumerate(scenario.events):
        converted = {k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in row.items()}
        converted.setdefault("id", f"event-{index:04d}")
        rows.append(converted)
    return rows


def ledger(scenario: Scenario, ruleset: ast.RuleSet) -> Ledger:
    positions = {rule.name: rule.position for rule in ruleset.rules}
    tz = scenario.timezone
    return Ledger(
        occurrences=tuple(
            RecordedOccurrence(row["rule"], str(row["customer"]), instant(row["due"], tz))
            for row in scenario.ledger.get("occurrences", ())
        ),
        actions=tuple(
            RecordedAction(
                rule_position=positions[row["rule"]],
                customer=str(row["customer"]),
                kind=row["kind"],
                position=row.get("position", 0),
                due_us=instant(row["due"], tz),
                at_us=instant(row.get("at", row["due"]), tz),
                status=row.get("status", "sent"),
                tag=row.get("tag"),
                amount=row.get("amount"),
            )
            for row in scenario.ledger.get("actions", ())
        ),
    )


def differences(scenario: Scenario, actual: list[dict[str, Any]]) -> list[str]:
    """How `actual` differs from the records the scenario expects (empty when it matches).
    Only the keys an expected record gives are compared; `due`/`at` as instants."""
    problems = []
    if len(actual) != len(scenario.expect):
        problems.append(f"expected {len(scenario.expect)} records, got {len(actual)}")
    for index, (want, got) in enumerate(zip(scenario.expect, actual, strict=False)):
        for key, expected in want.items():
            if not _same(key, expected, got.get(key, "<missing>"), scenario.timezone):
                problems.append(f"record {index}: {key} is {got.get(key)!r}, expected {expected!r}")
    return problems


def _same(key: str, expected: Any, actual: Any, shop_tz: str) -> bool:
    if key in ("due", "at"):
        return isinstance(actual, str) and instant(expected, shop_tz) == instant(actual, shop_tz)
    if key == "amount" and isinstance(expected, int | float) and isinstance(actual, int | float):
        return math.isclose(expected, actual, rel_tol=1e-9, abs_tol=1e-9)
    return bool(expected == actual)
