"""Smoke test of the benchmark harness: a tiny shop (the hidden size XS, 300 customers) on
SQLite, through the command line, producing every figure the issue asks for. No timing is
asserted: figures are printed, and only their presence and kind are checked."""

from __future__ import annotations

import json
import math
from pathlib import Path

from click.testing import CliRunner

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
