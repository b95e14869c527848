"""The benchmark's output: the JSON file (merged with the figures already in it, so that sizes
and databases run one at a time accumulate) and the table on the terminal."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

from rich.table import Table

from bench.shop import WINDOW_DAYS

# Figure, label, format: the rows of the terminal table.
ROWS: tuple[tuple[str, str, str], ...] = (
    ("customers", "customers", "{:,.0f}"),
    ("events", "events", "{:,.0f}"),
    ("import_events_per_s", "import, events/s", "{:,.0f}"),
    ("simulate_90d_s", f"simulate {WINDOW_DAYS} d, s", "{:.2f}"),
    ("simulate_occurrences", "  occurrences", "{:,.0f}"),
    ("occurrences_per_s", "  occurrences/s", "{:,.0f}"),
    ("peak_rss_mb", "  peak RSS, MB", "{:.0f}"),
    ("naive_90d_s", "naive loop, s (scaled)", "{:.1f}"),
    ("speedup_vs_naive", "  simulate is x faster", "{:.1f}"),
    ("floor_s", "3 rules: hand SQL, s", "{:.3f}"),
    ("compiled_s", "3 rules: compiled, s", "{:.3f}"),
    ("compiled_vs_floor", "  compiled / hand SQL", "{:.2f}"),
    ("compiled_plan_s", "3 rules: compiled plan alone, s", "{:.3f}"),
    ("compiled_plan_vs_floor", "  plan alone / hand SQL", "{:.2f}"),
    ("apscheduler_jobs", "APScheduler: jobs (scaled)", "{:,.0f}"),
    ("apscheduler_add_s", "  add jobs, s (scaled)", "{:.1f}"),
    ("apscheduler_run_s", "  fire jobs, s (scaled)", "{:.1f}"),
    ("apscheduler_store_mb", "  job store, MB (scaled)", "{:.0f}"),
    ("tick_idle_ms", "tick, nothing due, ms", "{:.1f}"),
    ("tick_busy_ms", "tick, a day's work, ms", "{:.0f}"),
    ("tick_busy_occurrences", "  occurrences that day", "{:,.0f}"),
    ("due_to_recorded_p50_ms", "due to recorded p50, ms", "{:,.0f}"),
    ("due_to_recorded_p99_ms", "due to recorded p99, ms", "{:,.0f}"),
    ("dispatch_email_per_s", "dispatch SMTP, msg/s", "{:,.0f}"),
    ("dispatch_webhook_per_s", "dispatch webhook, msg/s", "{:,.0f}"),
)


def machine() -> dict[str, Any]:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    cpu = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(memory / 2**30, 1),
        "cpu": cpu,
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }


def git_commit(folder: Path) -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain"))}


def write_json(path: Path, size: str, database: str, figures: dict[str, Any], repo: Path) -> None:
    """Add one size and database's figures to `path`, keeping the others already there."""
    document: dict[str, Any] = {}
    if path.exists():
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            document = {}
    if not isinstance(document.get("results"), dict):
        document = {"results": {}}
    document["machine"] = machine()
    document.update(git_commit(repo))
    document["written"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    document["results"].setdefault(size, {})[database] = figures
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def table(title: str, columns: dict[str, dict[str, Any]]) -> Table:
    """One column of figures per `size/database`."""
    view = Table(title=title)
    view.add_column("figure")
    for name in columns:
        view.add_column(name, justify="right")
    for key, label, fmt in ROWS:
        cells = []
        for figures in columns.values():
            value = figures.get(key)
            cells.append("—" if value is None else fmt.format(value))
        view.add_row(label, *cells)
    return view
