"""The daemon's tick against `simulate` and against its own promises, on random shops and rule
sets (`tests/gen`), ticking at random moments, on SQLite and PostgreSQL:

- ticks through a window record exactly what a simulation of it says, and a simulation from a
  moment the daemon reached predicts what it does next (LANGUAGE.md section 5);
- after a rule edit, a simulation of the new rules from the edit says what the daemon does;
- with events imported late and a rule edit, `once` still acts at most once per customer,
  `once every D` never twice within D, and `limit` never lets more than N marketing actions
  into a span D (LANGUAGE.md 3.4, 3.7; docs/semantics.md, late events).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from engine.config import Config
from engine.evaluation.simulate import simulate_records
from engine.evaluation.tick import tick
from engine.importing.importers import import_event_rows
from engine.language import ast
from engine.outbox.history import history
from engine.storage.db import open_database
from engine.storage.tables import actions, metadata, occurrences, outbox
from engine.timeutil import US, from_us, iso
from tests.gen.rules import rule_set_files
from tests.gen.shops import World, dense_worlds, event_rows, import_customers
from tests.test_differential import SETTINGS, canonical, checked, describe

EXAMPLES = settings(SETTINGS, max_examples=25)
PAST_END_US = 2 * 86400 * US  # ticks go on past the window, to decide what is sent after it
GRACE_S = 365 * 86400.0
# Policies the rule generator does not make: several limits and quiet windows, `exclude if`
# reading tags and points that rules give.
EXTRA = (
    "limit marketing to 1 per 2h",
    "limit marketing to 2 per 3d",
    "quiet hours 12:00 to 14:00",
    "quiet hours 21:00 to 23:30",
    "quiet hours 23:00 to 07:00",
    'exclude if "t0" in customer.tags',
    'exclude if "t1" in customer.tags or customer.points > 20',
    "exclude if customer.points >= 10",
)
# Tick moments: quarter seconds after the window's start, some on due times, some between.
moment_points = st.lists(st.integers(1, 14 * 86400 * 4), max_size=30)


@st.composite
def rule_sets(draw: st.DrawFn, world: World) -> dict[str, str]:
    files = draw(rule_set_files(from_us(world.start_us).date()))
    extra = draw(st.sets(st.sampled_from(EXTRA)))
    return {**files, "z.rules": "\n".join(sorted(extra)) + "\n"} if extra else files


@st.composite
def cases(draw: st.DrawFn, edited: bool = False) -> tuple[World, dict[str, str], Any]:
    """A shop, a rule set, and (with `edited`) maybe a second rule set it is edited into."""
    world = draw(dense_worlds())
    then = draw(st.none() | rule_sets(world)) if edited else None
    return world, draw(rule_sets(world)), then


@pytest.fixture
def database(db_url: str) -> Iterator[Callable[[World, Config], Engine]]:
    engines: list[Engine] = []

    def fresh(world: World, config: Config) -> Engine:
        """The database emptied and holding the shop's customers and events."""
        engine = open_database(db_url)
        engines.append(engine)
        with engine.begin() as conn:
            for table in reversed(metadata.sorted_tables):
                conn.execute(table.delete())
        import_customers(engine, world.shop, config.timezone)
        import_event_rows(engine, event_rows(world.shop), config.timezone, "events")
        return engine

    yield fresh
    for engine in engines:
        engine.dispose()


def moments_of(world: World, points: list[int]) -> list[int]:
    inside = sorted({world.start_us + p * US // 4 for p in points})
    return [world.start_us, *inside, world.end_us + PAST_END_US]


def records(found: list[Any]) -> list[dict[str, Any]]:
    return [r if isinstance(r, dict) else r.to_json() for r in found]


@EXAMPLES
@given(case=cases(), points=moment_points, batch=st.sampled_from([1, 2, 5000]))
def test_ticks_record_what_the_simulation_says(database, case, points, batch) -> None:
    world, files, _ = case
    ruleset, config = checked(files, world.timezone)
    config = replace(config, grace_seconds=GRACE_S)
    engine = database(world, config)
    start, end = world.start_us, world.end_us
    expected = simulate_records(engine, ruleset, config, start, end)
    moments = moments_of(world, points)
    middle = moments[len(moments) // 2]
    prediction = None
    for moment in moments:
        if moment > middle and prediction is None:
            prediction = simulate_records(engine, ruleset, config, middle, end)
        assert not tick(engine, ruleset, config, "rules", moment, batch).skipped
    context = describe(world, files) + f"\nticks {moments}"
    done = records(history(engine, start, end))
    assert canonical(done, ruleset) == canonical(expected, ruleset), context
    again = simulate_records(engine, ruleset, config, start, end)
    assert canonical(again, ruleset) == canonical(expected, ruleset), context
    if middle < end:
        done = canonical(records(history(engine, middle, end)), ruleset)
        assert prediction is not None
        assert canonical(prediction, ruleset) == done, (iso(middle), context)
        from_middle = simulate_records(engine, ruleset, config, middle, end)
        assert canonical(from_middle, ruleset) == done, (iso(middle), context)


@EXAMPLES
@given(case=cases(edited=True), points=st.lists(st.integers(1, 14 * 86400 * 4), min_size=1))
def test_after_an_edit_the_daemon_does_what_a_simulation_of_the_new_rules_says(
    database, case, points
) -> None:
    world, files, edited = case
    if edited is None:
        return
    before, config = checked(files, world.timezone)
    after, _ = checked(edited, world.timezone)
    config = replace(config, grace_seconds=GRACE_S)
    engine = database(world, config)
    moments = moments_of(world, points)
    middle = moments[len(moments) // 2]
    prediction = None
    for moment in moments:
        if moment > middle and prediction is None:
            prediction = simulate_records(engine, after, config, middle, world.end_us)
        ruleset = before if moment <= middle else after
        assert not tick(engine, ruleset, config, "rules", moment).skipped
    if middle >= world.end_us:
        return
    context = describe(world, files) + "\n=== edited\n" + "\n".join(edited.values())
    context += f"\nticks {moments}, edited after {iso(middle)}"
    done = canonical(records(history(engine, middle, world.end_us)), after)
    assert prediction is not None
    assert canonical(prediction, after) == done, context
    again = simulate_records(engine, after, config, middle, world.end_us)
    assert canonical(again, after) == done, context


@EXAMPLES
@given(
    case=cases(edited=True),
    points=moment_points,
    late=st.lists(st.integers(0, 40), max_size=60),
    grace=st.sampled_from([0.0, 3600.0, 6 * 3600.0, GRACE_S]),
)
def test_once_once_every_and_the_cap_hold_whatever_comes_late(
    db_url, case, points, late, grace
) -> None:
    world, files, edited = case
    first, config = checked(files, world.timezone)
    then = checked(edited, world.timezone)[0] if edited is not None else first
    config = replace(config, grace_seconds=grace)
    rows = event_rows(world.shop)
    moments = moments_of(world, points)
    middle = moments[len(moments) // 2]
    # Event i is imported before tick `late[i]` (0: before the first), the others before the first.
    when = [(late[i] if i < len(late) else 0) % len(moments) for i in range(len(rows))]
    engine = open_database(db_url)
    try:
        with engine.begin() as conn:
            for table in reversed(metadata.sorted_tables):
                conn.execute(table.delete())
        import_customers(engine, world.shop, config.timezone)
        for index, moment in enumerate(moments):
            now = [row for row, i in zip(rows, when, strict=True) if i == index]
            if now:
                import_event_rows(engine, now, config.timezone, f"events {index}")
            ruleset = first if moment <= middle else then
            assert not tick(engine, ruleset, config, "rules", moment).skipped
        acted, sent = _acted_and_sent(engine)
    finally:
        engine.dispose()
    context = describe(world, files) + f"\nticks {moments}\nimported before tick {when}"
    if edited is not None:
        context += f"\n=== edited after {iso(middle)}\n" + "\n".join(edited.values())
    for ruleset, ours in ((first, lambda us: us <= middle), (then, lambda us: us > middle)):
        _assert_once_held(ruleset, acted, ours, context)
        _assert_cap_held(ruleset, sent, ours, context)


def _acted_and_sent(
    engine: Engine,
) -> tuple[list[tuple[str, str, int, int]], list[tuple[str, int, int]]]:
    """(rule, customer, due, recorded) of the occurrences that acted; (customer, send time,
    queued) of the marketing actions sent."""
    with engine.connect() as conn:
        acted = conn.execute(
            sa.select(
                occurrences.c.rule,
                occurrences.c.customer_id,
                occurrences.c.due_us,
                occurrences.c.recorded_us,
            ).where(occurrences.c.status == "acted")
        ).all()
        sent = conn.execute(
            sa.select(actions.c.customer_id, actions.c.at_us, outbox.c.created_us)
            .join(outbox, outbox.c.action_id == actions.c.id)
            .where(actions.c.status == "sent", actions.c.kind.in_(sorted(ast.MARKETING)))
        ).all()
    return [tuple(row) for row in acted], [tuple(row) for row in sent]


def _assert_once_held(
    ruleset: ast.RuleSet,
    acted: list[tuple[str, str, int, int]],
    ours: Callable[[int], bool],
    context: str,
) -> None:
    """No occurrence the rule set recorded (`ours`, by when) acted within `once every D` of
    another of its rule and customer, nor beside another under `once`."""
    rules = {rule.name: rule.rule.once for rule in ruleset.rules}
    dues: dict[tuple[str, str], list[tuple[int, bool]]] = defaultdict(list)
    for rule, customer, due, recorded in acted:
        dues[rule, customer].append((due, ours(recorded)))
    for (rule, customer), times in dues.items():
        once = rules.get(rule)
        if once is None:
            continue
        for index, (due, mine) in enumerate(times):
            others = [u for i, (u, _) in enumerate(times) if i != index]
            if not mine:
                continue
            if once.every is None:
                assert not others, (rule, customer, sorted(times), context)
            else:
                span = once.every.seconds * US
                assert all(abs(u - due) >= span for u in others), (rule, customer, times, context)


def _assert_cap_held(
    ruleset: ast.RuleSet,
    sent: list[tuple[str, int, int]],
    ours: Callable[[int], bool],
    context: str,
) -> None:
    """No span of a `limit` that holds a marketing action the rule set queued (`ours`) holds
    more than the limit's count."""
    per_customer: dict[str, list[tuple[int, bool]]] = defaultdict(list)
    for customer, at, queued in sent:
        per_customer[customer].append((at, ours(queued)))
    for limit in ruleset.limits:
        span = limit.per.seconds * US
        for customer, times in per_customer.items():
            for end, _ in times:
                inside = [mine for at, mine in times if end - span < at <= end]
                if any(inside):
                    assert len(inside) <= limit.count, (customer, end, sorted(times), context)
