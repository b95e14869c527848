"""Dry-run simulation: exactly what a rule set would do in a window, writing nothing.

It runs the daemon's own evaluation core (`engine.evaluate`) on a connection whose work is
rolled back: the clock is the window, the sink is the returned list.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from engine import ast
from engine.config import Config
from engine.evaluate import Evaluation, evaluate


def simulate(
    engine: Engine, ruleset: ast.RuleSet, config: Config, start_us: int, end_us: int
) -> Evaluation:
    """Every action of every occurrence due in `[start_us, end_us)`, on the data and ledger as
    they stand; the shop's tables are left exactly as they were."""
    with engine.connect() as conn:
        try:
            return evaluate(conn, ruleset, config, start_us, end_us)
        finally:
            conn.rollback()


def simulate_records(
    engine: Engine, ruleset: ast.RuleSet, config: Config, start_us: int, end_us: int
) -> list[dict[str, Any]]:
    """The simulation as the JSON Lines objects of LANGUAGE.md section 5, in order."""
    return [a.to_json() for a in simulate(engine, ruleset, config, start_us, end_us).actions]
