"""One benchmark run: a shop of one size on one kind of database, every workload in turn, the
figures each the median of their runs."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console

from bench import apscheduler_jobs, daemon_work, floor, naive
from bench.databases import Scratch
from bench.loopback import Receivers
from bench.measure import median, simulate_in_child
from bench.shop import SEED, Size, import_shop, shop_files, window_us
from engine.checking.ruleset import load_rule_set
from engine.config import load_config
from engine.storage.db import open_database

REPO = Path(__file__).resolve().parents[1]
RULES_DIR = REPO / "rules" / "shop"
CONFIG_PATH = RULES_DIR / "nudge.yaml"

T = TypeVar("T")


class Steps:
    """Prints each step as it ends, with its wall time."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def __call__(self, label: str, work: Callable[[], T]) -> T:
        began = time.perf_counter()
        result = work()
        self.console.log(f"{label}: {time.perf_counter() - began:.1f} s")
        return result


def run(size: Size, server_url: str | None, cache: Path, console: Console) -> dict[str, Any]:
    scratch = Scratch(server_url)
    try:
        return _run(size, scratch, cache, Steps(console))
    finally:
        scratch.close()


def _run(size: Size, scratch: Scratch, cache: Path, step: Steps) -> dict[str, Any]:
    config = load_config(CONFIG_PATH)
    ruleset = load_rule_set(RULES_DIR, config)
    start_us, end_us = window_us()
    files = step(f"shop of {size.customers:,} customers", lambda: shop_files(cache, size))
    runs: dict[str, list[float]] = {}

    imports = []
    url = ""
    for i in range(size.import_runs):
        url = scratch.new(f"shop{i}")
        engine = open_database(url)
        imports.append(step(f"import {i + 1}", functools.partial(import_shop, engine, files)))
        engine.dispose()
    runs["import_events_per_s"] = [i.events_per_s for i in imports]
    engine = open_database(url)
    figures: dict[str, Any] = {
        "customers": size.customers,
        "events": imports[-1].events,
        "window_days": (end_us - start_us) // 86_400_000_000,
        "rules": len(ruleset.rules),
        "import_events_per_s": median(runs["import_events_per_s"]),
        "import_customers_per_s": median([size.customers / i.customers_s for i in imports]),
    }

    sims = [
        step(
            f"simulate {i + 1}",
            lambda: simulate_in_child(url, RULES_DIR, CONFIG_PATH, start_us, end_us),
        )
        for i in range(size.runs)
    ]
    runs["simulate_90d_s"] = [s.seconds for s in sims]
    figures.update(
        simulate_90d_s=median(runs["simulate_90d_s"]),
        simulate_occurrences=sims[0].occurrences,
        simulate_actions=sims[0].actions,
        peak_rss_mb=max(s.peak_rss_mb for s in sims),
        baseline_rss_mb=min(s.baseline_rss_mb for s in sims),
    )
    figures["occurrences_per_s"] = figures["simulate_occurrences"] / figures["simulate_90d_s"]

    ids, population = naive.sample_ids(engine, size.naive_customers, SEED)
    shop = naive.load_shop(engine, ids)
    naive_runs = [
        step(
            f"naive {i + 1} ({len(ids):,} customers)",
            lambda: naive.run_naive(ruleset, shop, population, config, start_us, end_us),
        )
        for i in range(size.runs)
    ]
    runs["naive_90d_s"] = [n.scaled_s for n in naive_runs]
    figures.update(
        naive_90d_s=median(runs["naive_90d_s"]),
        naive_sample_customers=len(ids),
        naive_scaled=len(ids) < population,
        naive_sample_actions=naive_runs[0].actions,
    )
    figures["speedup_vs_naive"] = figures["naive_90d_s"] / figures["simulate_90d_s"]

    three = floor.floor_ruleset(ruleset)
    floors, compileds, plans = [], [], []
    for i in range(size.runs):
        compileds.append(
            step(
                f"3 rules compiled {i + 1}",
                lambda: floor.compiled(engine, three, config, start_us, end_us),
            )
        )
        plans.append(
            step(
                f"3 rules compiled plan alone {i + 1}",
                lambda: floor.plan_only(engine, three, config, start_us, end_us),
            )
        )
        floors.append(
            step(
                f"3 rules hand SQL {i + 1}",
                lambda: floor.hand_written(engine, config, start_us, end_us),
            )
        )
    for found in (compileds[0][1], plans[0][1]):
        if floors[0][1] != found:
            raise RuntimeError(
                f"hand-written SQL and the engine disagree: {floors[0][1]} vs {found}"
            )
    runs["floor_s"] = [f[0] for f in floors]
    runs["compiled_s"] = [c[0] for c in compileds]
    runs["compiled_plan_s"] = [p[0] for p in plans]
    figures.update(
        floor_s=median(runs["floor_s"]),
        compiled_s=median(runs["compiled_s"]),
        compiled_plan_s=median(runs["compiled_plan_s"]),
        floor_occurrences=floors[0][1],
    )
    figures["compiled_vs_floor"] = figures["compiled_s"] / figures["floor_s"]
    figures["compiled_plan_vs_floor"] = figures["compiled_plan_s"] / figures["floor_s"]

    ids, population = naive.sample_ids(engine, size.apscheduler_customers, SEED)
    jobs = apscheduler_jobs.due_jobs(engine, ruleset, config, ids, start_us, end_us)
    aps = step(
        f"APScheduler ({len(jobs):,} jobs, {len(ids):,} customers)",
        lambda: apscheduler_jobs.run_jobs(scratch.new("apscheduler"), jobs, len(ids), population),
    )
    figures.update(
        apscheduler_jobs=aps.jobs * aps.scale,
        apscheduler_add_s=aps.add_s * aps.scale,
        apscheduler_run_s=aps.run_s * aps.scale,
        apscheduler_store_mb=aps.store_mb * aps.scale,
        apscheduler_sample_customers=len(ids),
        apscheduler_scaled=len(ids) < population,
    )

    idle = [
        step(f"idle ticks {i + 1}", lambda: daemon_work.idle_ticks(engine, ruleset, config))
        for i in range(size.runs)
    ]
    runs["tick_idle_ms"] = [t.ms for t in idle]
    figures.update(
        tick_idle_ms=median(runs["tick_idle_ms"]),
        tick_idle_share=f"{idle[0].idle}/{idle[0].ticks}",
        tick_seconds=config.tick_seconds,
    )
    latency = [
        step(
            f"due-to-recorded {i + 1} ({size.latency_hours:g} h of ticks)",
            lambda: daemon_work.due_to_recorded(engine, ruleset, config, size.latency_hours),
        )
        for i in range(1)  # one span: its p50 and p99 already pool every occurrence recorded
    ]
    runs["due_to_recorded_p50_ms"] = [t.p50_ms for t in latency]
    runs["due_to_recorded_p99_ms"] = [t.p99_ms for t in latency]
    figures.update(
        due_to_recorded_p50_ms=median(runs["due_to_recorded_p50_ms"]),
        due_to_recorded_p99_ms=median(runs["due_to_recorded_p99_ms"]),
        due_to_recorded_occurrences=latency[0].recorded,
        due_to_recorded_ticks=latency[0].ticks,
        slowest_tick_ms=max(t.slowest_tick_ms for t in latency),
    )
    busy = [
        step(f"a day's tick {i + 1}", lambda: daemon_work.busy_tick(engine, ruleset, config))
        for i in range(size.runs)
    ]
    runs["tick_busy_ms"] = [t.ms for t in busy]
    figures.update(
        tick_busy_ms=median(runs["tick_busy_ms"]),
        tick_busy_occurrences=busy[0].occurrences,
        tick_busy_actions=busy[0].actions,
    )

    with Receivers() as receivers:
        sent = step(
            "dispatch",
            lambda: daemon_work.dispatch_throughput(
                engine,
                config,
                config.templates_dir(RULES_DIR),
                receivers.smtp_port,
                receivers.webhook_url,
                size.dispatch_messages,
                size.runs,
            ),
        )
    figures.update(
        dispatch_email_per_s=sent.email_per_s,
        dispatch_webhook_per_s=sent.webhook_per_s,
        dispatch_messages=sent.email_messages + sent.webhook_messages,
    )
    engine.dispose()
    figures["runs"] = runs
    return figures
