"""Timing helpers: medians, percentiles, and `simulate` in a child process for its peak memory.

The child is started with `spawn`, so it holds nothing of the parent (no shop loaded for the
naive baseline, no caches): its peak resident set is the simulation's own, plus the interpreter
with the engine imported, which it reports apart as `baseline_rss_mb`. On Linux that peak is
read as `VmHWM`: `ru_maxrss` survives `exec`, so a spawned child's would start at the size of
the process that started it (the harness, after an import: 241 MB at M).
"""

from __future__ import annotations

import multiprocessing
import resource
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.checking.ruleset import load_rule_set
from engine.config import load_config
from engine.evaluation.simulate import Tally, stream
from engine.storage.db import create

# ru_maxrss is in kilobytes on Linux, bytes on macOS.
_RSS_UNIT = 1 if sys.platform == "darwin" else 1024


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0-100) by the nearest-rank method."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return float(ordered[int(rank) - 1])


def rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """The peak resident set of this process (of its largest child, with RUSAGE_CHILDREN)."""
    if who == resource.RUSAGE_SELF and sys.platform == "linux":
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(who).ru_maxrss * _RSS_UNIT / 2**20


@dataclass(frozen=True)
class SimulateRun:
    seconds: float
    occurrences: int
    actions: int
    peak_rss_mb: float
    baseline_rss_mb: float


def _simulate_child(
    url: str, rules_dir: str, config_path: str, start_us: int, end_us: int, out: object
) -> None:
    config = load_config(Path(config_path))
    ruleset = load_rule_set(Path(rules_dir), config)
    engine = create(url)
    with engine.connect():  # the first connection's setup is not the simulation's
        pass
    baseline = rss_mb()
    began = time.perf_counter()
    tally = Tally()  # `nudge simulate` streams its output: count it as it goes, hold nothing
    actions = sum(1 for _ in stream(engine, ruleset, config, start_us, end_us, tally=tally))
    seconds = time.perf_counter() - began
    # With worker processes (one per CPU): this process's peak plus the largest worker's.
    peak = rss_mb() + rss_mb(resource.RUSAGE_CHILDREN)
    run = SimulateRun(seconds, tally.occurrences, actions, peak, baseline)
    out.send(run)  # type: ignore[attr-defined]


def simulate_in_child(
    url: str, rules_dir: Path, config_path: Path, start_us: int, end_us: int
) -> SimulateRun:
    """Run `simulate` of the rule set in a fresh process; its time and peak memory."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(
        target=_simulate_child,
        args=(url, str(rules_dir), str(config_path), start_us, end_us, send),
    )
    child.start()
    send.close()
    try:
        run = receive.recv()
    except EOFError:
        child.join()
        raise RuntimeError(f"the simulation process failed (exit code {child.exitcode})") from None
    child.join()
    assert isinstance(run, SimulateRun)
    return run
