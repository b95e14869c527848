"""`python -m bench.months [--customers N] [--days D] [--db URL]`: the daemon over months.

Every figure of `python -m bench` that concerns the daemon starts from an empty ledger; this
one shows what months of recorded work do to it. A synthetic shop (`engine.demo.shop`, the same
seed as the harness) is imported with its history up to the start, then the daemon of
`rules/shop` runs on a simulated clock, a step every `--step` (10 minutes), for `--days` days,
the events of each step imported just before it, as a shop that feeds Nudge as things happen
does. Each simulated week it prints the ledger's size, the process's resident memory, the
objects Python tracks and the steps' median and slowest times. The last line compares the
last weeks with the first: a daemon whose steps or memory grow with the ledger shows it there.
No figure goes to the harness's JSON: the machine's load moves step times, so read the ratio.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import logging
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from bench.databases import Scratch
from bench.run import REPO
from bench.shop import SEED, SHOP_TZ
from engine.clock import FixedClock
from engine.config import Channel, load_config
from engine.daemon import Daemon
from engine.demo.shop import generate_shop
from engine.importing.importers import import_customer_rows, import_event_rows
from engine.storage.db import open_database
from engine.storage.tables import actions
from engine.timeutil import DAY_US, US, parse_moment, to_us, zone

RULES = REPO / "rules" / "shop"
START = dt.datetime(2026, 3, 1)  # shop time; the history before it starts six months earlier
HISTORY_DAYS = 181
WEEK_US = 7 * DAY_US
COMPARED_WEEKS = 4  # the first and last weeks whose steps and memory the summary compares


@dataclasses.dataclass(frozen=True)
class Week:
    day: int  # days since the start at its end
    actions: int  # recorded in the ledger by then
    rss_mb: float
    objects: int
    median_ms: float
    slowest_ms: float


def resident_mb() -> float:
    """This process's resident set now (not its peak), from /proc on Linux."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _arrivals(rows: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    timed = [(parse_moment(str(row["at"]), SHOP_TZ), row) for row in rows]
    timed.sort(key=lambda pair: pair[0])
    return timed


def run_months(url: str, customers: int, days: int, step_us: int, folder: Path) -> Iterator[Week]:
    """The daemon's weeks, as they are simulated."""
    start_us = to_us(START.replace(tzinfo=zone(SHOP_TZ)))
    end_us = start_us + days * DAY_US
    people, happenings = generate_shop(
        SEED,
        customers,
        start=START - dt.timedelta(days=HISTORY_DAYS),
        end=START + dt.timedelta(days=days),
        tz=SHOP_TZ,
    )
    engine = open_database(url)
    try:
        import_customer_rows(engine, people, SHOP_TZ)
        arrivals = _arrivals(list(happenings))
        history = sum(1 for at_us, _ in arrivals if at_us < start_us)
        import_event_rows(engine, [row for _, row in arrivals[:history]], SHOP_TZ)
        config = load_config(RULES / "nudge.yaml", url)
        on_disk = {"path": str(folder / "outbox.jsonl")}
        channels = {name: Channel(name, "file", on_disk) for name in config.channels}
        config = dataclasses.replace(config, channels=channels, base_dir=folder)
        clock = FixedClock(start_us)
        daemon = Daemon(RULES, config, engine, clock)
        next_arrival, steps = history, []
        for now_us in range(start_us, end_us + 1, step_us):
            due = next_arrival
            while due < len(arrivals) and arrivals[due][0] < now_us:
                due += 1
            if due > next_arrival:
                import_event_rows(engine, [row for _, row in arrivals[next_arrival:due]], SHOP_TZ)
                next_arrival = due
            clock.advance_to(now_us)
            began = time.perf_counter()
            daemon.step()
            steps.append(time.perf_counter() - began)
            if now_us > start_us and (now_us - start_us) % WEEK_US < step_us:
                gc.collect()
                with engine.connect() as conn:
                    recorded = conn.scalar(sa.select(sa.func.count()).select_from(actions))
                yield Week(
                    (now_us - start_us) // DAY_US,
                    int(recorded or 0),
                    resident_mb(),
                    len(gc.get_objects()),
                    statistics.median(steps) * 1000,
                    max(steps) * 1000,
                )
                steps = []
    finally:
        engine.dispose()


def summary(weeks: list[Week]) -> str:
    """The last weeks' median step and memory against the first weeks'."""
    n = min(COMPARED_WEEKS, len(weeks) // 2) or 1
    first, last = weeks[:n], weeks[-n:]
    steps = statistics.median(w.median_ms for w in last) / statistics.median(
        w.median_ms for w in first
    )
    grown = last[-1].rss_mb - first[0].rss_mb
    return (
        f"the last {n} weeks' median step is {steps:.2f}× the first {n} weeks'; resident memory"
        f" {first[0].rss_mb:.0f} → {last[-1].rss_mb:.0f} MB ({grown:+.0f} MB), the ledger"
        f" {first[0].actions:,} → {last[-1].actions:,} actions"
    )


@click.command()
@click.option("--customers", type=click.IntRange(1), default=3000, show_default=True)
@click.option("--days", type=click.IntRange(7), default=182, show_default=True)
@click.option(
    "--step",
    "step_minutes",
    type=click.IntRange(1),
    default=10,
    show_default=True,
    help="Minutes of simulated time between two steps of the daemon.",
)
@click.option("--db", "server_url", default=None, help="A PostgreSQL server (scratch database).")
def main(customers: int, days: int, step_minutes: int, server_url: str | None) -> None:
    """The daemon on a simulated clock for months: memory and step times, week by week."""
    logging.basicConfig(level=logging.ERROR)
    console = Console()
    scratch = Scratch(server_url)
    table = Table(title=f"{customers:,} customers, {days} days, a step every {step_minutes} min")
    for column in ("day", "ledger actions", "RSS, MB", "objects", "median step, ms", "slowest"):
        table.add_column(column, justify="right")
    weeks = []
    try:
        url = scratch.new("months")
        step_us = step_minutes * 60 * US
        for week in run_months(url, customers, days, step_us, scratch.folder):
            weeks.append(week)
            console.print(
                f"day {week.day}: {week.actions:,} actions, {week.rss_mb:.0f} MB,"
                f" median step {week.median_ms:.1f} ms"
            )
            table.add_row(
                str(week.day),
                f"{week.actions:,}",
                f"{week.rss_mb:.0f}",
                f"{week.objects:,}",
                f"{week.median_ms:.1f}",
                f"{week.slowest_ms:.0f}",
            )
    finally:
        scratch.close()
    console.print(table)
    console.print(summary(weeks))


if __name__ == "__main__":
    main()
