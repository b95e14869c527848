"""`nudge demo`: a synthetic shop in the database, then a simulation of the example rules."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import Engine

from engine.checking.ruleset import load_rule_set
from engine.config import Config
from engine.demo.mark import DEMO_MARK, DEMO_VALUE, made_by_demo
from engine.demo.shop import generate_shop
from engine.errors import DatabaseError
from engine.evaluation.records import ActionRecord
from engine.evaluation.simulate import simulate
from engine.importing.importers import import_customer_rows, import_event_rows
from engine.storage.db import open_database, shown_url
from engine.storage.tables import customers, events
from engine.timeutil import DAY_US, local_wall, zone


def _refuse_a_real_shop(engine: Engine, url: str) -> None:
    """DatabaseError when the database holds customers the demo did not make: it would write
    its synthetic customers over those with the same ids (their names, consent and time zones)
    and add its events to them. A database the demo made before is taken as it is."""
    with engine.connect() as conn:
        real = conn.execute(
            sa.select(sa.func.count()).select_from(customers).where(~made_by_demo())
        ).scalar_one()
    if real:
        shown = shown_url(url)
        raise DatabaseError(
            f"the database {shown!r} holds {real} customer{'s' if real != 1 else ''} that this"
            " version of the demo did not make, and the demo would write its synthetic shop"
            " over them: give it a database of its own, such as `nudge demo --db"
            " sqlite:///demo.db` (or, if only an earlier version of the demo wrote this one,"
            " delete it)"
        )


def _refuse_another_demo(engine: Engine, url: str, count: int, seed: int) -> None:
    """DatabaseError when the database holds a shop an earlier demo made with another number
    of customers or another seed: the new one would be mixed into it (its customers written
    over the first `count`, its events added to theirs beside the earlier ones, the others
    left), and the simulation would be of that mixture, under a heading giving the new shop's
    size. Called once `_refuse_a_real_shop` passed: every customer stored is the demo's."""
    with engine.connect() as conn:
        stored = conn.execute(sa.select(sa.func.count()).select_from(customers)).scalar_one()
        key = conn.execute(sa.select(events.c.key).order_by(events.c.pk).limit(1)).scalar()
    made = re.match(r"d(-?[0-9]+)-c", key or "")  # `shop.py` names the demo's events so
    made_seed = int(made[1]) if made else None
    if not stored or (stored == count and made_seed in (None, seed)):
        return
    earlier = f"nudge demo --customers {stored}" + (
        f" --seed {made_seed}" if made_seed is not None else ""
    )
    raise DatabaseError(
        f"the database {shown_url(url)!r} holds the shop that `{earlier}` made: a shop of"
        f" {count} customer{'s' if count != 1 else ''} with seed {seed} would be mixed into it,"
        f" and the simulation would be of both. Run `{earlier}` to simulate that shop again, or"
        " give the new one a database of its own, such as `--db sqlite:///demo2.db` (or delete"
        " the earlier one)"
    )


@dataclass(frozen=True)
class DemoResult:
    customers: int
    events: int
    start_us: int
    end_us: int
    actions: list[ActionRecord]


def run_demo(
    config: Config,
    rules_dir: Path,
    customers: int,
    seed: int,
    days: int,
    today: dt.date | None = None,
) -> DemoResult:
    """Import a year of history up to `today` (default: the shop's today), then simulate
    `days` days from `today` 00:00 shop-local."""
    ruleset = load_rule_set(rules_dir, config)  # a rule set with errors: before the shop is made
    tz = zone(config.timezone)
    today = today or dt.datetime.now(tz).date()
    history_start = dt.datetime.combine(today - dt.timedelta(days=365), dt.time(0, 0))
    customer_rows, event_rows = generate_shop(
        seed=seed,
        customers=customers,
        start=history_start,
        end=dt.datetime.combine(today, dt.time(0, 0)),
        tz=config.timezone,
    )
    engine = open_database(config.database)
    _refuse_a_real_shop(engine, config.database)
    _refuse_another_demo(engine, config.database, customers, seed)
    marked = ({**row, DEMO_MARK: DEMO_VALUE} for row in customer_rows)
    people = import_customer_rows(engine, marked, config.timezone, "<demo customers>")
    happenings = import_event_rows(engine, event_rows, config.timezone, "<demo events>")
    start = local_wall(today, dt.time(0, 0), tz)
    end = start + days * DAY_US
    result = simulate(engine, ruleset, config, start, end)
    total_events = happenings.added + happenings.unchanged
    return DemoResult(
        people.added + people.updated + people.unchanged, total_events, start, end, result.actions
    )
