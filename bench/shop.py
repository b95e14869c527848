"""The benchmark's shops: sizes, the simulated window, generating the files and importing them.

A shop of a size is `engine.demo.shop`'s synthetic shop with that many customers (about 13 events
each), seed 7, events over the calendar year 2026. Its files are generated once per
(seed, customers) into a cache folder and imported with `nudge import`'s own code path.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, func, select

from engine.demo.shop import write_shop
from engine.importing.importers import import_customers, import_events
from engine.storage.tables import customers, events
from engine.timeutil import to_us, zone

SEED = 7
SHOP_TZ = "Asia/Shanghai"
# The simulated quarter: 90 days from 1 September 2026, shop time. It holds Mid-Autumn, Double
# 11, thirteen Fridays of group buys, three points statements, birthdays and every event rule.
WINDOW_START = dt.datetime(2026, 9, 1)
WINDOW_DAYS = 90


@dataclass(frozen=True)
class Size:
    name: str
    customers: int
    runs: int  # runs of each timed workload; the figure is their median
    import_runs: int  # fresh imports (each into a new database)
    naive_customers: int  # the naive baseline runs on at most this many customers, scaled
    apscheduler_customers: int  # likewise for the APScheduler baseline
    latency_hours: float  # span of simulated daemon ticks for due-to-recorded
    dispatch_messages: int  # per channel


SIZES = {
    # XS is for the harness's own smoke test; it is not offered on the command line.
    "XS": Size("XS", 300, 1, 1, 300, 30, 0.55, 20),
    "S": Size("S", 10_000, 3, 2, 1_000, 100, 0.55, 300),
    "M": Size("M", 100_000, 3, 1, 2_000, 100, 1.0, 1000),
    "L": Size("L", 1_000_000, 1, 1, 2_000, 100, 1.0, 1000),
}


def window_us() -> tuple[int, int]:
    start = WINDOW_START.replace(tzinfo=zone(SHOP_TZ))
    return to_us(start), to_us(start + dt.timedelta(days=WINDOW_DAYS))


@dataclass(frozen=True)
class ShopFiles:
    customers: Path
    events: Path
    events_count: int


def shop_files(cache: Path, size: Size) -> ShopFiles:
    """The shop's `customers.csv` and `events.jsonl`, generated unless cached."""
    folder = cache / f"shop-{SEED}-{size.customers}"
    done = folder / "done.json"
    if not done.exists():
        _, events_path = write_shop(folder, SEED, size.customers, tz=SHOP_TZ)
        with events_path.open(encoding="utf-8") as lines:
            count = sum(1 for _ in lines)
        done.write_text(json.dumps({"events": count}), encoding="utf-8")
    count = int(json.loads(done.read_text(encoding="utf-8"))["events"])
    return ShopFiles(folder / "customers.csv", folder / "events.jsonl", count)


@dataclass(frozen=True)
class Imported:
    customers_s: float
    events_s: float
    events: int

    @property
    def events_per_s(self) -> float:
        return self.events / self.events_s


def import_shop(engine: Engine, files: ShopFiles) -> Imported:
    """Import the shop into an empty database, timing customers and events apart."""
    began = time.perf_counter()
    report = import_customers(engine, files.customers, SHOP_TZ)
    customers_s = time.perf_counter() - began
    began = time.perf_counter()
    events_report = import_events(engine, files.events, SHOP_TZ)
    events_s = time.perf_counter() - began
    problems = report.problems + events_report.problems
    if problems:
        raise RuntimeError(f"the generated shop does not import cleanly: {problems[:3]}")
    with engine.connect() as conn:
        stored = conn.scalar(select(func.count()).select_from(events)) or 0
        assert conn.scalar(select(func.count()).select_from(customers)), "no customers stored"
    return Imported(customers_s, events_s, int(stored))
