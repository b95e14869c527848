"""Scenario files (tests/scenarios/*.yaml) through the reference evaluator and the real engine.

The expected records of each scenario were worked out by hand from LANGUAGE.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert

from engine.checking.ruleset import load_rule_set
from engine.config import Config
from engine.evaluation.simulate import simulate_records
from engine.importing import importers
from engine.language import ast
from engine.storage import tables
from engine.storage.db import open_database
from tests.reference import scenario as scenarios
from tests.reference.evaluator import simulate
from tests.reference.shop import Ledger

SCENARIOS = sorted((Path(__file__).parent / "scenarios").glob("*.yaml"))


def checked(scenario: scenarios.Scenario, folder: Path) -> tuple[ast.RuleSet, Config]:
    rules_dir, config = scenarios.materialize(scenario, folder)
    return load_rule_set(rules_dir, config), config


def explain(scenario: scenarios.Scenario, records: list[dict[str, Any]]) -> str:
    problems = scenarios.differences(scenario, records)
    lines = "\n".join(json.dumps(record, ensure_ascii=False) for record in records)
    return "\n".join([*problems, "records:", lines])


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_reference_evaluator(path: Path, tmp_path: Path) -> None:
    scenario = scenarios.load(path)
    ruleset, config = checked(scenario, tmp_path)
    start, end = scenarios.window(scenario)
    ledger = scenarios.ledger(scenario, ruleset)
    records = simulate(ruleset, scenarios.shop(scenario), config, start, end, ledger)
    assert not scenarios.differences(scenario, records), explain(scenario, records)


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_engine(path: Path, tmp_path: Path, db_url: str) -> None:
    scenario = scenarios.load(path)
    ruleset, config = checked(scenario, tmp_path)
    start, end = scenarios.window(scenario)
    engine = open_database(db_url)
    try:
        importers.import_customer_rows(
            engine, scenarios.customer_rows(scenario), config.timezone, "customers"
        )
        importers.import_event_rows(
            engine, scenarios.event_rows(scenario), config.timezone, "events"
        )
        record_ledger(engine, scenarios.ledger(scenario, ruleset), ruleset)
        records = simulate_records(engine, ruleset, config, start, end)
    finally:
        engine.dispose()
    assert not scenarios.differences(scenario, records), explain(scenario, records)


def record_ledger(engine: Engine, ledger: Ledger, ruleset: ast.RuleSet) -> None:
    """Write what the daemon recorded: occurrences, their actions and the actions' effects."""
    names = {rule.position: rule.name for rule in ruleset.rules}
    with engine.begin() as conn:
        occurrence_ids: dict[tuple[str, str, int], int] = {}
        for index, occurrence in enumerate(ledger.occurrences):
            key = (occurrence.rule, occurrence.customer, occurrence.due_us)
            occurrence_ids[key] = conn.execute(
                insert(tables.occurrences)
                .values(
                    rule=occurrence.rule,
                    customer_id=occurrence.customer,
                    occurrence_key=f"ledger-{index}",
                    due_us=occurrence.due_us,
                    status="acted",
                    recorded_us=occurrence.due_us,
                )
                .returning(tables.occurrences.c.id)
            ).scalar_one()
        for action in ledger.actions:
            rule = names[action.rule_position]
            action_id = conn.execute(
                insert(tables.actions)
                .values(
                    occurrence_id=occurrence_ids[rule, action.customer, action.due_us],
                    position=action.position,
                    rule=rule,
                    rule_position=action.rule_position,
                    customer_id=action.customer,
                    kind=action.kind,
                    amount=action.amount,
                    due_us=action.due_us,
                    at_us=action.at_us,
                    status=action.status,
                    reason=None if action.status == "sent" else "cap",
                    detail={"tag": action.tag} if action.tag else {},
                )
                .returning(tables.actions.c.id)
            ).scalar_one()
            if action.kind in ("tag", "untag", "points"):
                conn.execute(
                    insert(tables.effects).values(
                        action_id=action_id,
                        customer_id=action.customer,
                        kind=action.kind,
                        tag=action.tag,
                        amount=action.amount,
                        at_us=action.at_us,
                        rule_position=action.rule_position,
                        position=action.position,
                    )
                )
