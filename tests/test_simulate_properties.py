"""`simulate` on the denser random shops of `tests.gen.shops.dense_worlds` and the policies the
rule generator does not make (`test_tick_properties.EXTRA`): against the reference evaluator,
and against `explain`, which must list for each customer the actions the simulation gives
them, and say why each occurrence that did not act was skipped."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import given
from sqlalchemy import Engine

from engine.config import Config
from engine.evaluation.explain import explain
from engine.evaluation.simulate import simulate_records
from tests.gen.shops import World
from tests.reference.evaluator import simulate
from tests.test_differential import canonical, checked, describe
from tests.test_tick_properties import EXAMPLES, cases, database

__all__ = ["database"]  # the fixture


@EXAMPLES
@given(case=cases())
def test_engine_matches_reference_with_more_policies(
    database: Callable[[World, Config], Engine], case: tuple[World, dict[str, str], Any]
) -> None:
    world, files, _ = case
    ruleset, config = checked(files, world.timezone)
    expected = simulate(ruleset, world.shop, config, world.start_us, world.end_us)
    engine = database(world, config)
    actual = simulate_records(engine, ruleset, config, world.start_us, world.end_us)
    assert canonical(actual, ruleset) == canonical(expected, ruleset), describe(world, files)


@EXAMPLES
@given(case=cases())
def test_explain_lists_what_the_simulation_does(
    database: Callable[[World, Config], Engine], case: tuple[World, dict[str, str], Any]
) -> None:
    world, files, _ = case
    ruleset, config = checked(files, world.timezone)
    engine = database(world, config)
    start, end = world.start_us, world.end_us
    expected = simulate_records(engine, ruleset, config, start, end)
    for customer in world.shop.customers:
        stories = explain(engine, ruleset, config, customer.id, start, end)
        told = [a.to_json() for s in stories if s.outcome == "acted" for a in s.actions]
        unsaid = [(s.rule, s.key) for s in stories if s.outcome == "skipped" and not s.reasons]
        assert not unsaid, (customer.id, unsaid, describe(world, files))
        theirs = [r for r in expected if r["customer"] == customer.id]
        assert canonical(told, ruleset) == canonical(theirs, ruleset), (
            customer.id,
            describe(world, files),
        )
