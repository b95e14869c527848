"""The daemon ticks just after due times known in advance, not up to a tick later."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from apscheduler.schedulers.background import BackgroundScheduler
from daemon_helpers import config_for, write_rules
from sqlalchemy import Engine

from engine.checking.ruleset import load_rule_set
from engine.clock import Clock, FixedClock
from engine.config import Config
from engine.daemon import Daemon
from engine.evaluation.tick import TickReport
from engine.evaluation.wakeups import WAKE_AFTER_US, next_wake
from engine.importing.importers import import_customer_rows
from engine.language import ast
from engine.storage.db import open_database
from engine.storage.tables import occurrences
from engine.timeutil import US, to_us, zone

SHANGHAI = zone("Asia/Shanghai")
BERLIN = zone("Europe/Berlin")
FRIDAY_20 = to_us(dt.datetime(2026, 10, 16, 20, 0, tzinfo=SHANGHAI))
S = US

RULES = """\
rule "group buy"
  when every friday at 20:00
  then message "group_buy"

rule "fit check"
  when order.received + 3d at 10:00
  then followup "fit_check"

rule "thanks"
  when order.paid
  then message "thanks"

rule "birthday"
  when customer.birthday
  then message "birthday"

rule "national day"
  when on 2026-10-01 at 08:00
  then message "national_day"
"""
TEMPLATES = ["group_buy", "fit_check", "thanks", "birthday", "national_day"]


def ruleset_of(tmp_path: Path, text: str, config: Config) -> ast.RuleSet:
    rules = write_rules(tmp_path / "rules", {"shop.rules": text}, TEMPLATES)
    return load_rule_set(rules, config)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return config_for(tmp_path, f"sqlite:///{tmp_path / 'shop.db'}", timezone="Asia/Shanghai")


def test_the_next_wake_is_just_after_the_earliest_clock_due_time(tmp_path, config) -> None:
    ruleset = ruleset_of(tmp_path, RULES, config)
    zones = ["Asia/Shanghai"]
    assert next_wake(ruleset, config, zones, FRIDAY_20 - 30 * S, FRIDAY_20 + 30 * S) == (
        FRIDAY_20 + WAKE_AFTER_US
    )
    # A wake-up no earlier than the next run is none: that run covers the due time anyway.
    assert next_wake(ruleset, config, zones, FRIDAY_20 - 30 * S, FRIDAY_20 + 1) is None
    # The window is half-open: a tick at 20:00 exactly has not covered it yet, one after has.
    assert next_wake(ruleset, config, zones, FRIDAY_20, FRIDAY_20 + 30 * S) == (
        FRIDAY_20 + WAKE_AFTER_US
    )
    assert next_wake(ruleset, config, zones, FRIDAY_20 + 1, FRIDAY_20 + 30 * S) is None
    # `at 10:00` after an event: every local day at 10:00, whether or not events are stored.
    ten = to_us(dt.datetime(2026, 10, 17, 10, 0, tzinfo=SHANGHAI))
    assert next_wake(ruleset, config, zones, ten - 60 * S, ten + 60 * S) == ten + WAKE_AFTER_US
    # Birthdays without `at` fall due at local midnight.
    midnight = to_us(dt.datetime(2026, 10, 18, tzinfo=SHANGHAI))
    assert next_wake(ruleset, config, zones, midnight - S, midnight + S) == (
        midnight + WAKE_AFTER_US
    )
    national_day = to_us(dt.datetime(2026, 10, 1, 8, 0, tzinfo=SHANGHAI))
    assert next_wake(ruleset, config, zones, national_day - S, national_day + S) == (
        national_day + WAKE_AFTER_US
    )


def test_event_rules_without_a_clock_time_never_wake_the_daemon(tmp_path, config) -> None:
    ruleset = ruleset_of(
        tmp_path, 'rule "thanks"\n  when order.paid\n  then message "thanks"\n', config
    )
    week = 7 * 86_400 * S
    assert next_wake(ruleset, config, ["Asia/Shanghai"], FRIDAY_20 - week, FRIDAY_20 + week) is None


def test_each_customer_zone_has_its_own_clock_times(tmp_path, config) -> None:
    ruleset = ruleset_of(tmp_path, RULES.split('rule "fit check"')[0], config)
    berlin_20 = to_us(dt.datetime(2026, 10, 16, 20, 0, tzinfo=BERLIN))
    zones = ["Asia/Shanghai", "Europe/Berlin"]
    after_shanghai = FRIDAY_20 + S
    assert next_wake(ruleset, config, zones, after_shanghai, berlin_20 + S) == (
        berlin_20 + WAKE_AFTER_US
    )


@pytest.fixture
def engine(config: Config) -> Iterator[Engine]:
    engine = open_database(config.database)
    yield engine
    engine.dispose()


def running_daemon(tmp_path: Path, config: Config, engine: Engine, clock: Clock) -> Daemon:
    """A daemon whose interval job exists (its scheduler paused) but never fires by itself."""
    rules = write_rules(tmp_path / "rules", {"shop.rules": RULES}, TEMPLATES)
    config = config_for(tmp_path, config.database, timezone="Asia/Shanghai", tick_seconds=30)
    import_customer_rows(engine, [{"id": "c1", "accepts_marketing": True}], "Asia/Shanghai")
    daemon = Daemon(rules, config, engine, clock)
    daemon.scheduler = BackgroundScheduler(timezone="UTC")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    daemon.scheduler.add_job(
        daemon.step_in_turn, "interval", seconds=30, id="tick", next_run_time=later
    )
    daemon.scheduler.start(paused=True)
    return daemon


def group_buys(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.count()).where(occurrences.c.rule == "group buy")
        ).scalar_one()


def test_a_running_daemon_brings_its_next_tick_forward_to_the_due_time(
    tmp_path, config, engine
) -> None:
    clock = FixedClock(FRIDAY_20 - 10 * S)
    daemon = running_daemon(tmp_path, config, engine, clock)
    assert daemon.scheduler is not None
    try:
        daemon.step_in_turn()  # 19:59:50: the group buy is due before the job's next run
        job = daemon.scheduler.get_job("tick")
        assert to_us(job.next_run_time) == FRIDAY_20 + WAKE_AFTER_US
        assert group_buys(engine) == 0
        clock.advance_to(FRIDAY_20 + WAKE_AFTER_US)
        daemon.step_in_turn()
        assert group_buys(engine) == 1
    finally:
        daemon.scheduler.shutdown(wait=False)


def test_a_due_time_that_comes_while_a_step_runs_gets_another_step_at_once(
    tmp_path, config, engine
) -> None:
    # The first tick starts at 19:59:59.5 and ends after 20:00: the group buy came meanwhile.
    clock = FixedClock(FRIDAY_20 - S // 2)
    daemon = running_daemon(tmp_path, config, engine, clock)
    assert daemon.scheduler is not None
    daemon.step()  # the first tick starts the rule set
    steps: list[int] = []
    one_step = daemon.step

    def slow_step() -> TickReport | None:
        report = one_step()
        steps.append(group_buys(engine))
        clock.advance_to(FRIDAY_20 + 2 * S)  # the step ended two seconds after 20:00
        return report

    daemon.step = slow_step  # type: ignore[method-assign]
    try:
        daemon.step_in_turn()
        assert steps == [0, 1]  # the second step, at once, recorded the group buy
    finally:
        daemon.scheduler.shutdown(wait=False)
