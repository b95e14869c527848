"""Smoke test of the benchmark harness: a tiny shop (the hidden size XS, 300 customers) on
SQLite, through the command line, producing every figure the issue asks for. No timing is
asserted: figures are printed, and only their presence and kind are checked."""

from __future__ import annotations

import json
import math
from pathlib import Path

from click.testing import CliRunner

from bench import months
from bench.__main__ import main

REQUIRED = (
    "import_events_per_s",
    "simulate_90d_s",
    "naive_90d_s",
    "floor_s",
    "compiled_s",
    "compiled_plan_s",
    "peak_rss_mb",
    "tick_idle_ms",
    "tick_busy_ms",
    "due_to_recorded_p50_ms",
    "due_to_recorded_p99_ms",
    "dispatch_email_per_s",
    "dispatch_webhook_per_s",
    "apscheduler_add_s",
    "apscheduler_run_s",
)


def test_harness_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "XS.json"
    result = CliRunner().invoke(main, ["--size", "XS", "--json", str(out)])
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["machine"]["cores"] >= 1
    assert document["machine"]["memory_gb"] > 0
    assert "commit" in document
    figures = document["results"]["XS"]["sqlite"]
    for key in REQUIRED:
        value = figures[key]
        assert isinstance(value, int | float) and not isinstance(value, bool), key
        assert math.isfinite(value) and value >= 0, (key, value)
    assert figures["customers"] == 300
    assert figures["events"] > 1000
    assert figures["simulate_occurrences"] > 0
    assert figures["due_to_recorded_occurrences"] > 0
    assert figures["dispatch_messages"] > 0
    assert sum(figures["floor_occurrences"].values()) > 0
    assert "simulate 90 d, s" in result.output


def test_months_runs_the_daemon_week_by_week_and_compares_the_last_weeks_with_the_first() -> None:
    """`python -m bench.months` at a tiny size: a row a simulated week, and the summary."""
    result = CliRunner().invoke(months.main, ["--customers", "60", "--days", "14", "--step", "180"])
    assert result.exit_code == 0, result.output
    assert "day 7:" in result.output and "day 14:" in result.output
    assert "the last 1 weeks' median step is" in result.output


def test_months_summary_is_the_ratio_of_the_last_weeks_median_steps_to_the_first() -> None:
    weeks = [months.Week(7 * i, 100 * i, 100.0 + i, 1000, float(i), 9.0) for i in range(1, 11)]
    said = months.summary(weeks)
    # the first four weeks' medians 1-4 (median 2.5), the last four's 7-10 (8.5)
    assert said.startswith("the last 4 weeks' median step is 3.40× the first 4 weeks'")
    assert "resident memory 101 → 110 MB (+9 MB), the ledger 100 → 1,000 actions" in said
