"""Dry-run simulation: exactly what a rule set would do in a window, writing nothing.

It runs the daemon's own evaluation core (`engine.evaluation.evaluate`) on a connection whose work
is rolled back: the clock is the window, the sink is what it returns.

Nothing in the language crosses from one customer to another, so a large shop is simulated in
batches of customers (by id) and the batches' actions, each in order, are merged by send time:
memory stays flat whatever the number of customers. The occurrences due are found once, for
every customer, and each batch evaluates its own.
"""

from __future__ import annotations

import bisect
import functools
import heapq
import itertools
import os
import pickle
import resource
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import IO, Any

from sqlalchemy import Engine

from engine.config import Config
from engine.errors import NudgeError
from engine.evaluation.collector import fewer_collections
from engine.evaluation.evaluate import (
    Evaluation,
    Occurrence,
    evaluate_due,
    find_due,
    listed_horizon,
)
from engine.evaluation.processes import worker_context
from engine.evaluation.records import ActionRecord, Row
from engine.language import ast
from engine.plan.triggers import BATCH_CUSTOMERS, Customers, customer_batches
from engine.storage.db import create

# Actions pickled together (one call per chunk, not per action), at most; the merge holds one
# chunk of every batch at once, so chunks shrink as batches grow in number, down to the least.
SPILL_CHUNK = 4096
MERGED_ROWS = 200_000
LEAST_CHUNK = 256
MAX_WORKERS = 4  # processes sharing a simulation's batches of customers
BATCHES_PER_WORKER = 4
# Batches whose occurrences are found together: the scratch tables a batch's queries read stay
# the size of this many batches' work, however many a worker takes (at L, three batches took
# 1.53 s to evaluate with their occurrences found for 50,000 customers and 2.92 s for 500,000).
GROUP_BATCHES = 10
Spilled = tuple[list[str], int]  # a run's spill files, in order of batches, and its occurrences


@dataclass
class Tally:
    """Counts kept while a simulation streams: how many occurrences acted."""

    occurrences: int = 0


def stream(
    engine: Engine,
    ruleset: ast.RuleSet,
    config: Config,
    start_us: int,
    end_us: int,
    batch: int = BATCH_CUSTOMERS,
    tally: Tally | None = None,
    workers: int | None = None,
) -> Iterator[ActionRecord]:
    """Every action of every occurrence due in `[start_us, end_us)`, in order of send time with
    the tie-breaks of LANGUAGE.md 3.8, on the data and ledger as they stand. The shop's tables
    are left exactly as they were. `tally`, when given, counts the occurrences that acted.

    A shop of several batches of customers is shared among `workers` processes (default: one
    per CPU, at most `MAX_WORKERS`), each taking a contiguous run of at least
    `BATCHES_PER_WORKER` batches."""
    tally = tally or Tally()
    with engine.connect() as conn:
        batches = customer_batches(conn, batch)
        horizon = listed_horizon(conn, ruleset, config, end_us)
    if len(batches) == 1:
        with engine.connect() as conn:
            try:
                with fewer_collections():
                    due = find_due(conn, ruleset, config, start_us, horizon)
                    result = evaluate_due(conn, ruleset, config, due, listed_before_us=end_us)
                tally.occurrences += len(result.occurrences)
                yield from map(ActionRecord.from_row, result.rows)
            finally:
                conn.rollback()
        return
    with tempfile.TemporaryDirectory(prefix="nudge-simulate-") as folder:
        chunk = max(LEAST_CHUNK, min(SPILL_CHUNK, MERGED_ROWS // len(batches)))
        part = functools.partial(
            _spill_part, ruleset, config, (start_us, end_us, horizon), folder, chunk
        )
        runs = _runs(batches, _workers(engine, workers))
        spilled = _spill_runs(engine, runs, part)
        _allow_open_files(sum(len(paths) for paths, _ in spilled))
        files: list[IO[bytes]] = []
        try:
            for paths, occurrences in spilled:
                tally.occurrences += occurrences
                files.extend(open(path, "rb") for path in paths)  # noqa: SIM115
            # The chunks read in hold rows by the thousand, which reference counting frees: with
            # the default threshold they set off full collections over this process's heap.
            # The threshold stays raised while the consumer runs, until the merge ends.
            # A record is made of each row by the class itself (a row is its fields in order):
            # without `from_row`'s call in between, 0.1 s less of M's 1.1 million.
            with fewer_collections():
                yield from itertools.starmap(ActionRecord, _merged([_chunks(f) for f in files]))
        finally:
            for handle in files:
                handle.close()


def _spill_runs(
    engine: Engine, runs: list[list[Customers]], part: Callable[..., Spilled]
) -> list[Spilled]:
    """The first run in this process, each other in a worker process, at the same time."""
    if len(runs) == 1:
        return [part(engine, 0, runs[0])]
    # A forked worker must not use the connections it inherits (SQLAlchemy does not see the
    # fork): it is given the URL and opens its own. Those of `stream` are all back in the pool
    # here, holding no lock, which SQLite's bookkeeping (copied by a fork) would carry over.
    url = engine.url.render_as_string(hide_password=False)
    pool = ProcessPoolExecutor(len(runs) - 1, mp_context=worker_context())
    try:
        pending = [pool.submit(part, url, i, run) for i, run in enumerate(runs[1:], 1)]
        spilled = [part(engine, 0, runs[0])] + [job.result() for job in pending]
    except BrokenProcessPool as exc:
        pool.shutdown(wait=False, cancel_futures=True)
        raise NudgeError(
            "a simulation worker process ended without finishing (killed, or out of memory?)"
        ) from exc
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return spilled


def _allow_open_files(count: int) -> None:
    """Raise this process's limit of open files to hold `count` spill files at once, as far as
    the hard limit allows (a shop of 10 million customers spills 2,000 batches)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = count + 64  # what the process holds besides
    if soft != resource.RLIM_INFINITY and soft < wanted:
        ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))


def _workers(engine: Engine, asked: int | None) -> int:
    """Processes to simulate with: as asked, else one per CPU (at most `MAX_WORKERS`); one for
    a database other processes cannot open (SQLite in memory)."""
    if engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:"):
        return 1
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return asked or max(1, min(MAX_WORKERS, cpus or 1))


def _runs(batches: list[Customers], workers: int) -> list[list[Customers]]:
    """The batches cut into at most `workers` contiguous runs of (nearly) equal length, each of
    at least `BATCHES_PER_WORKER` (a worker finds its occurrences due on its own, and one spawned,
    not forked, takes a second to start: engine.evaluation.processes)."""
    count = max(1, min(workers, len(batches) // BATCHES_PER_WORKER))
    size, extra = divmod(len(batches), count)
    runs, start = [], 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        runs.append(batches[start:end])
        start = end
    return runs


def _spill_part(
    ruleset: ast.RuleSet,
    config: Config,
    window: tuple[int, int, int],  # start, end, and the horizon (`listed_horizon`)
    folder: str,
    chunk: int,
    database: Engine | str,
    number: int,
    run: list[Customers],
) -> Spilled:
    """Evaluate a contiguous run of batches (in this process or a worker, given the URL), their
    occurrences found `GROUP_BATCHES` batches at a time, and spill each batch's actions, in
    order and `chunk` at a time, to a file of `folder`: the files' names and the occurrences
    that acted."""
    engine = create(database) if isinstance(database, str) else database
    start_us, end_us, horizon = window
    paths: list[str] = []
    occurrences = 0
    try:
        with fewer_collections(), engine.connect() as conn:
            try:
                for i, customers in enumerate(run):
                    if i % GROUP_BATCHES == 0:
                        group = run[i : i + GROUP_BATCHES]
                        who = Customers(low=group[0].low, high=group[-1].high)
                        due = find_due(conn, ruleset, config, start_us, horizon, who)
                    result = evaluate_due(
                        conn, ruleset, config, due, customers, listed_before_us=end_us
                    )
                    occurrences += len(result.occurrences)
                    paths.append(f"{folder}/{number}-{i}.pickle")
                    with open(paths[-1], "wb") as spill:
                        rows = result.rows
                        for start in range(0, len(rows), chunk):
                            pickle.dump(rows[start : start + chunk], spill, pickle.HIGHEST_PROTOCOL)
            finally:
                conn.rollback()
    finally:
        if engine is not database:
            engine.dispose()
    return paths, occurrences


def _chunks(handle: IO[bytes]) -> Iterator[list[Row]]:
    """The chunks of rows of a spill file, in order."""
    while True:
        try:
            rows = pickle.load(handle)
        except EOFError:
            return
        yield rows


def _merged(sources: list[Iterator[list[Row]]]) -> Iterator[Row]:
    """The rows of `sources`, each a sorted run cut into chunks, in order.

    Merged in rounds rather than row by row (`heapq.merge` costs a Python step per row): a round
    takes, from every source, the rows up to the least of the chunks' last rows, and sorts them
    together (timsort merges the runs in C). The source of that least row is then refilled; no
    row still to come from any source is smaller. Two heaps keep the chunks' next and last rows,
    so that a round only visits the sources it takes rows from."""
    chunks: list[list[Row]] = [[] for _ in sources]
    offsets = [0] * len(sources)
    nexts: list[tuple[Row, int]] = []  # the next row of every source not yet done, and its index
    lasts: list[tuple[Row, int]] = []  # the last row of its chunk

    def refill(i: int) -> None:
        chunk = next((chunk for chunk in sources[i] if chunk), None)
        if chunk is not None:
            chunks[i], offsets[i] = chunk, 0
            heapq.heappush(nexts, (chunk[0], i))
            heapq.heappush(lasts, (chunk[-1], i))

    for i in range(len(sources)):
        refill(i)
    while lasts:
        limit, emptied = heapq.heappop(lasts)
        taken: list[Row] = []
        left: list[int] = []
        while nexts and nexts[0][0] <= limit:
            i = heapq.heappop(nexts)[1]
            chunk, offset = chunks[i], offsets[i]
            end = bisect.bisect_right(chunk, limit, offset)
            taken.extend(chunk[offset:end])
            offsets[i] = end
            if end < len(chunk):
                left.append(i)
        for i in left:
            heapq.heappush(nexts, (chunks[i][offsets[i]], i))
        refill(emptied)  # its chunk was taken whole: its last row was the limit
        taken.sort()
        yield from taken


def simulate(
    engine: Engine,
    ruleset: ast.RuleSet,
    config: Config,
    start_us: int,
    end_us: int,
    batch: int = BATCH_CUSTOMERS,
) -> Evaluation:
    """The whole simulation at hand: every occurrence that acted and every action, in order.
    Holds everything in memory; `stream` is for output of any size."""
    occurrences: list[Occurrence] = []
    parts: list[list[Row]] = []
    with fewer_collections(), engine.connect() as conn:
        try:
            horizon = listed_horizon(conn, ruleset, config, end_us)
            due = find_due(conn, ruleset, config, start_us, horizon)
            for who in customer_batches(conn, batch):
                result = evaluate_due(conn, ruleset, config, due, who, listed_before_us=end_us)
                occurrences.extend(result.occurrences)
                parts.append(result.rows)
        finally:
            conn.rollback()
    return Evaluation(occurrences, list(heapq.merge(*parts)))


def simulate_records(
    engine: Engine, ruleset: ast.RuleSet, config: Config, start_us: int, end_us: int
) -> list[dict[str, Any]]:
    """The simulation as the JSON Lines objects of LANGUAGE.md section 5, in order."""
    return [action.to_json() for action in stream(engine, ruleset, config, start_us, end_us)]
