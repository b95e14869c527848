"""Baseline 2, what a developer would wire by hand: one APScheduler date job per (rule,
triggering event) in APScheduler's SQLAlchemy job store, on a database of the same kind.

Measured, for the event-triggered rules of the rule set and the occurrences due in the window:
- `add_s`: adding the jobs through a started (paused) scheduler, as an import hook would, one
  `add_job` per event and rule; the store commits each job in its own transaction;
- `run_s`: firing them with a simulated clock: the scheduler's own loop (next wake-up time, due
  jobs, run, remove), driven by hand, the clock jumping to each wake-up. The job itself does
  nothing, so this is a lower bound: a real job would still have to check the rule's `if`,
  `unless`, `once`, consent and limits for its customer, one query at a time;
- `store_mb`: the job store's size once every job is in.
Like the naive baseline it runs on a sample of customers and is scaled linearly.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine, select, text
from sqlalchemy.engine import make_url

from engine.config import Config
from engine.language import ast
from engine.storage.tables import customers, events
from engine.timeutil import US, from_us, local_date, local_wall, zone

CHUNK = 500
fired = 0


def deliver(rule: str, customer_id: str, event_key: str) -> None:
    """The job: here a counter; in a hand-built system, the rule's checks and the sending."""
    global fired
    fired += 1


@dataclass(frozen=True)
class JobsRun:
    jobs: int
    add_s: float
    run_s: float
    store_mb: float
    sample: int
    population: int

    @property
    def scale(self) -> float:
        return self.population / self.sample


def due_jobs(
    engine: Engine,
    ruleset: ast.RuleSet,
    config: Config,
    ids: list[str],
    start_us: int,
    end_us: int,
) -> list[tuple[str, str, str, int]]:
    """(rule, customer, event key, due) for every event-triggered occurrence due in the window."""
    rules = [r for r in ruleset.rules if isinstance(r.when.trigger, ast.EventTrigger)]
    jobs: list[tuple[str, str, str, int]] = []
    with engine.connect() as conn:
        for i in range(0, len(ids), CHUNK):
            chunk = ids[i : i + CHUNK]
            zones = dict(
                conn.execute(
                    select(customers.c.id, customers.c.timezone).where(customers.c.id.in_(chunk))
                ).all()
            )
            rows = conn.execute(
                select(events.c.customer_id, events.c.key, events.c.type, events.c.at_us).where(
                    events.c.customer_id.in_(chunk)
                )
            ).all()
            for rule in rules:
                trigger = rule.when.trigger
                assert isinstance(trigger, ast.EventTrigger)
                offset = trigger.offset.seconds * US if trigger.offset else 0
                for customer_id, key, kind, at_us in rows:
                    if kind != trigger.event:
                        continue
                    tz = zones.get(customer_id) or config.timezone
                    due = _local_due(at_us + offset, tz, rule.when.at)
                    if start_us <= due < end_us:
                        jobs.append((rule.name, customer_id, key, due))
    return jobs


def _local_due(instant_us: int, tz: str, at: ast.ClockTime | None) -> int:
    """`at HH:MM` on the local day of `instant_us`; the instant itself without."""
    if at is None:
        return instant_us
    return local_wall(local_date(instant_us, zone(tz)), at.time, zone(tz))


def run_jobs(
    url: str, jobs: list[tuple[str, str, str, int]], sample: int, population: int
) -> JobsRun:
    """Add the jobs to a fresh job store at `url`, then fire them all on a simulated clock."""
    store = SQLAlchemyJobStore(url=url)
    scheduler = BackgroundScheduler(jobstores={"default": store}, timezone=dt.UTC)
    scheduler.start(paused=True)
    try:
        began = time.perf_counter()
        for n, (rule, customer_id, key, due) in enumerate(jobs):
            scheduler.add_job(
                "bench.apscheduler_jobs:deliver",
                "date",
                run_date=from_us(due),
                args=(rule, customer_id, key),
                id=f"j{n}",
                misfire_grace_time=None,
            )
        add_s = time.perf_counter() - began
        store_mb = _store_mb(store.engine)
        began = time.perf_counter()
        _fire_all(store)
        run_s = time.perf_counter() - began
    finally:
        scheduler.shutdown(wait=False)
    return JobsRun(len(jobs), add_s, run_s, store_mb, sample, population)


def _fire_all(store: SQLAlchemyJobStore) -> None:
    """The scheduler's main loop with a clock that jumps to each next wake-up time."""
    global fired
    fired = 0
    expected = len(store.get_all_jobs())
    while (now := store.get_next_run_time()) is not None:
        for job in store.get_due_jobs(now):
            job.func(*job.args, **job.kwargs)
            store.remove_job(job.id)
    assert fired == expected, f"fired {fired} of {expected} jobs"


def _store_mb(engine: Any) -> float:
    url = make_url(str(engine.url))
    if url.get_backend_name() == "sqlite":
        with engine.connect() as conn:
            pages = conn.execute(text("PRAGMA page_count")).scalar() or 0
            size = conn.execute(text("PRAGMA page_size")).scalar() or 0
        return pages * size / 2**20
    with engine.connect() as conn:
        size = conn.execute(text("SELECT pg_total_relation_size('apscheduler_jobs')")).scalar()
    return float(size or 0) / 2**20
