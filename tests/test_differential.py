"""The engine against the reference evaluator, on random shops and random rule sets, on SQLite
and PostgreSQL. Both must produce the same JSONL records (LANGUAGE.md section 5)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete

from engine.checking.ruleset import check_rule_set
from engine.config import Config, load_config
from engine.evaluation.simulate import simulate_records
from engine.importing.importers import import_event_rows
from engine.language import ast
from engine.storage.db import open_database
from engine.storage.tables import metadata
from engine.timeutil import from_us
from tests.gen.rules import CHANNELS, TEMPLATES, rule_set_files
from tests.gen.shops import World, customer_rows, event_rows, import_customers, worlds
from tests.reference.evaluator import simulate
from tests.reference.scenario import instant

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


def write_rule_set(folder: Path, files: dict[str, str], timezone: str) -> tuple[Path, Config]:
    rules_dir = folder / "rules"
    (rules_dir / "templates").mkdir(parents=True)
    for name, text in files.items():
        (rules_dir / name).write_text(text, encoding="utf-8")
    for template in TEMPLATES:
        (rules_dir / "templates" / f"{template}.txt").write_text(template, encoding="utf-8")
    settings = {
        "timezone": timezone,
        "country": "CN",
        "channels": {name: {"type": name} for name in CHANNELS if name != "file"},
    }
    (folder / "nudge.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")
    return rules_dir, load_config(folder / "nudge.yaml")


def checked(files: dict[str, str], timezone: str) -> tuple[ast.RuleSet, Config]:
    with tempfile.TemporaryDirectory() as folder:
        rules_dir, config = write_rule_set(Path(folder), files, timezone)
        ruleset, diagnostics = check_rule_set(rules_dir, config)
    problems = [f"{d.span}: {d.message}" for d in diagnostics if d.severity == "error"]
    assert ruleset is not None, "generated rule set does not check:\n" + "\n".join(problems)
    return ruleset, config


@st.composite
def cases(draw: st.DrawFn) -> tuple[World, dict[str, str]]:
    world = draw(worlds())
    return world, draw(rule_set_files(from_us(world.start_us).date()))


def canonical(records: list[dict[str, Any]], ruleset: ast.RuleSet) -> list[str]:
    """The records as comparable text: instants and amounts as numbers (amounts to nine digits,
    `30` and `30.0` alike), sorted by
    send time, rule position and customer, then content (the order the contract leaves open
    between identical occurrences)."""
    positions = {rule.name: rule.position for rule in ruleset.rules}
    rows = []
    for record in records:
        row = dict(record)
        row["due"], row["at"] = instant(row["due"], "UTC"), instant(row["at"], "UTC")
        if isinstance(row.get("amount"), int | float):
            row["amount"] = round(float(row["amount"]), 9)
        rows.append((row["at"], positions[row["rule"]], row["customer"], row))
    rows.sort(key=lambda r: (*r[:3], json.dumps(r[3], sort_keys=True, ensure_ascii=False)))
    return [json.dumps(r[3], sort_keys=True, ensure_ascii=False) for r in rows]


def in_order(records: list[dict[str, Any]], ruleset: ast.RuleSet) -> bool:
    """Whether the records are in order of send time, then rule position, then customer."""
    positions = {rule.name: rule.position for rule in ruleset.rules}
    keys = [(instant(r["at"], "UTC"), positions[r["rule"]], r["customer"]) for r in records]
    return keys == sorted(keys)


def describe(world: World, files: dict[str, str]) -> str:
    lines = [f"timezone {world.timezone}, window {world.start_us}..{world.end_us}"]
    lines += [f"--- {name}\n{text}" for name, text in files.items()]
    lines += [f"customer {row}" for row in customer_rows(world.shop)]
    lines += [
        f"consent of {customer.id} changed {customer.consent_changes}"
        for customer in world.shop.customers
        if customer.consent_changes
    ]
    lines += [f"event {row}" for row in event_rows(world.shop)]
    return "\n".join(lines)


@SETTINGS
@given(case=cases())
def test_generated_rule_sets_check_clean(case: tuple[World, dict[str, str]]) -> None:
    world, files = case
    checked(files, world.timezone)


@pytest.fixture
def database(db_url: str) -> Iterator[Engine]:
    engine = open_database(db_url)
    yield engine
    engine.dispose()


@pytest.mark.slow
@SETTINGS
@given(case=cases())
def test_engine_matches_reference(database: Engine, case: tuple[World, dict[str, str]]) -> None:
    world, files = case
    ruleset, config = checked(files, world.timezone)
    expected = simulate(ruleset, world.shop, config, world.start_us, world.end_us)
    with database.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(delete(table))
    import_customers(database, world.shop, config.timezone)
    import_event_rows(database, event_rows(world.shop), config.timezone, "events")
    actual = simulate_records(database, ruleset, config, world.start_us, world.end_us)
    context = describe(world, files)
    assert in_order(actual, ruleset), context
    assert canonical(actual, ruleset) == canonical(expected, ruleset), context
