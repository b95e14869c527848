"""Dry-run simulation: exactly what a rule set would do in a window, writing nothing.

It runs the daemon's own evaluation core (`engine.evaluate`) on a connection whose work is
rolled back: the clock is the window, the sink is what it returns.

Nothing in the language crosses from one customer to another, so a large shop is simulated in
batches of customers (by id) and the batches' actions, each in order, are merged by send time:
memory stays flat whatever the number of customers. The occurrences due are found once, for
every customer, and each batch evaluates its own.
"""

from __future__ import annotations

import heapq
import pickle
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from sqlalchemy import Engine

from engine import ast
from engine.config import Config
from engine.evaluate import Evaluation, Occurrence, evaluate_due, find_due
from engine.records import ActionRecord
from engine.triggers import BATCH_CUSTOMERS, customer_batches

SPILL_CHUNK = 4096  # actions pickled together: one call per chunk, not per action


@dataclass
class Tally:
    """Counts kept while a simulation streams: how many occurrences acted."""

    occurrences: int = 0


def stream(
    engine: Engine,
    ruleset: ast.RuleSet,
    config: Config,
    start_us: int,
    end_us: int,
    batch: int = BATCH_CUSTOMERS,
    tally: Tally | None = None,
) -> Iterator[ActionRecord]:
    """Every action of every occurrence due in `[start_us, end_us)`, in order of send time with
    the tie-breaks of LANGUAGE.md 3.8, on the data and ledger as they stand. The shop's tables
    are left exactly as they were. `tally`, when given, counts the occurrences that acted."""
    tally = tally or Tally()
    with engine.connect() as conn:
        try:
            due = find_due(conn, ruleset, config, start_us, end_us)
            batches = customer_batches(conn, batch)
            if len(batches) == 1:
                result = evaluate_due(conn, ruleset, config, due)
                tally.occurrences += len(result.occurrences)
                yield from result.actions
                return
            with tempfile.TemporaryDirectory(prefix="nudge-simulate-") as folder:
                files: list[IO[bytes]] = []
                for who in batches:
                    result = evaluate_due(conn, ruleset, config, due, who)
                    tally.occurrences += len(result.occurrences)
                    spill = open(f"{folder}/{len(files)}.pickle", "w+b")  # noqa: SIM115
                    actions = result.actions
                    for start in range(0, len(actions), SPILL_CHUNK):
                        rows = [a.as_row() for a in actions[start : start + SPILL_CHUNK]]
                        pickle.dump(rows, spill, protocol=pickle.HIGHEST_PROTOCOL)
                    spill.seek(0)
                    files.append(spill)
                try:
                    for row in heapq.merge(*map(_unpickled, files)):
                        yield ActionRecord.from_row(row)
                finally:
                    for handle in files:
                        handle.close()
        finally:
            conn.rollback()


def _unpickled(handle: IO[bytes]) -> Iterator[tuple[Any, ...]]:
    while True:
        try:
            yield from pickle.load(handle)
        except EOFError:
            return


def simulate(
    engine: Engine,
    ruleset: ast.RuleSet,
    config: Config,
    start_us: int,
    end_us: int,
    batch: int = BATCH_CUSTOMERS,
) -> Evaluation:
    """The whole simulation at hand: every occurrence that acted and every action, in order.
    Holds everything in memory; `stream` is for output of any size."""
    occurrences: list[Occurrence] = []
    parts: list[list[ActionRecord]] = []
    with engine.connect() as conn:
        try:
            due = find_due(conn, ruleset, config, start_us, end_us)
            for who in customer_batches(conn, batch):
                result = evaluate_due(conn, ruleset, config, due, who)
                occurrences.extend(result.occurrences)
                parts.append(result.actions)
        finally:
            conn.rollback()
    return Evaluation(occurrences, list(heapq.merge(*parts, key=ActionRecord.sort_key)))


def simulate_records(
    engine: Engine, ruleset: ast.RuleSet, config: Config, start_us: int, end_us: int
) -> list[dict[str, Any]]:
    """The simulation as the JSON Lines objects of LANGUAGE.md section 5, in order."""
    return [action.to_json() for action in stream(engine, ruleset, config, start_us, end_us)]
