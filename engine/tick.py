"""One tick of the daemon: evaluate what fell due since the last tick and record it, once.

The rule set's row in `rule_set_state` holds its watermark: every occurrence due before it has
been decided. A tick locks that row (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so a second daemon
skips the tick instead of waiting), evaluates `[watermark, now)` with the same core as
`simulate`, records the result under the ledger's unique keys and moves the watermark, all in one
transaction: a crash anywhere leaves either everything or nothing, and the next tick redoes it.

Events imported since the last tick that happened before its watermark are late: the tick first
takes their own occurrences due before the watermark (`evaluate.Due.late`), then its window.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from engine import ast, ledger
from engine.collector import fewer_collections
from engine.config import Config
from engine.evaluate import evaluate_due, find_due
from engine.ruleset import rule_files
from engine.storage.bulk import insert_or_ignore
from engine.storage.tables import events, rule_set_state
from engine.timeutil import DAY_US, US
from engine.triggers import BATCH_CUSTOMERS, EVERYONE, LateEvents, customer_batches

LONG_WINDOW_US = DAY_US  # longer than this (catching up after downtime): in batches


@dataclass
class TickReport:
    start_us: int = 0
    end_us: int = 0
    skipped: bool = False  # another daemon held the rule set's lock
    recorded: ledger.Recorded = field(default_factory=ledger.Recorded)
    queued: int = 0  # outbox rows created
    # Events imported since the last tick that happened before its watermark (`start_us`), and
    # the earliest of them: what they would have made due before it was decided without them.
    late: int = 0
    late_since_us: int | None = None


def fingerprint(rules_dir: Path, templates: Iterable[Path] = ()) -> str:
    """A digest of the rule files of a folder and of `templates` (those its rules send and
    include: `RuleSet.templates`), to notice edits."""
    digest = hashlib.sha256()
    # The entries the rule set is read from (not an editor's lock file, `.#a.rules`); of those
    # that are not files (a folder, a link to nowhere, a pipe never read), the name alone.
    files = [(path.name, path) for path in rule_files(rules_dir)]
    files += [(str(path), path) for path in templates]
    for name, path in files:
        digest.update(name.encode())
        try:
            digest.update(path.read_bytes() if path.is_file() else b"(not a file)")
        except OSError as exc:  # gone since it was listed (an editor saving), or unreadable:
            digest.update(str(exc).encode())  # reading the rule set says so
    return digest.hexdigest()


class _State(NamedTuple):
    """A rule set's row of `rule_set_state`, as a tick reads it."""

    watermark_us: int
    first_run_us: int
    events_seen_pk: int | None


def tick(
    engine: Engine,
    ruleset: ast.RuleSet,
    config: Config,
    name: str,
    now_us: int,
    batch: int = BATCH_CUSTOMERS,
) -> TickReport:
    """Evaluate and record everything of `ruleset` due since its watermark, up to `now_us`,
    in batches of customers (one transaction for all of them)."""
    report = TickReport(end_us=now_us)
    with fewer_collections(), engine.begin() as conn:
        state = _lock(conn, name, now_us)
        if state is None:
            report.skipped = True
            return report
        watermark = report.start_us = state.watermark_us
        newest = conn.execute(sa.select(sa.func.coalesce(sa.func.max(events.c.pk), 0))).scalar_one()
        seen = state.events_seen_pk if state.events_seen_pk is not None else newest
        if now_us > watermark:
            if state.events_seen_pk is not None:
                _count_late_events(conn, state, newest, report)
            seen = newest
            missed_before = now_us - int(config.grace_seconds * US)
            if report.late:
                assert state.events_seen_pk is not None and report.late_since_us is not None
                late = LateEvents(state.events_seen_pk, newest)
                since = report.late_since_us
                window = (since, watermark, missed_before)
                _record(conn, ruleset, config, window, now_us, batch, report, late)
            window = (watermark, now_us, missed_before)
            _record(conn, ruleset, config, window, now_us, batch, report)
        state_row = rule_set_state.c
        conn.execute(
            rule_set_state.update()
            .where(state_row.name == name)
            .values(
                watermark_us=max(watermark, now_us),
                last_tick_us=now_us,
                events_seen_pk=seen,
                late_events=state_row.late_events + report.late,
            )
        )
    return report


def _record(
    conn: Connection,
    ruleset: ast.RuleSet,
    config: Config,
    window: tuple[int, int, int],
    now_us: int,
    batch: int,
    report: TickReport,
    late: LateEvents | None = None,
) -> None:
    """Evaluate and record what fell due in a window `(start, end, missed_before)`,
    `[start, end)`: occurrences due before `missed_before` (more than `grace` ago) as missed,
    the others as they act. With `late`, only those of these events, in a window decided
    without them (`evaluate.Due.late`)."""
    start_us, end_us, missed_before_us = window
    # A long window (catching up) is taken in batches of customers to keep memory flat; an
    # ordinary tick has little due and reads everyone at once.
    long = end_us - start_us > LONG_WINDOW_US
    batches = customer_batches(conn, batch) if long else [EVERYONE]
    missed_end = min(end_us, max(start_us, missed_before_us))
    if missed_end > start_us:  # downtime longer than the grace period: missed
        missed = find_due(conn, ruleset, config, start_us, missed_end, late=late)
        for who in batches:
            result = evaluate_due(conn, ruleset, config, missed, who, with_actions=False)
            report.recorded.add(ledger.record(conn, result, config, now_us, missed_end))
    if missed_end < end_us:
        due = find_due(conn, ruleset, config, missed_end, end_us, late=late)
        for who in batches:
            result = evaluate_due(conn, ruleset, config, due, who, decide_before_us=now_us)
            recorded = ledger.record(conn, result, config, now_us, missed_end)
            report.recorded.add(recorded)
            report.queued += recorded.outbox + ledger.decide(conn, result.decided, config, now_us)


def _count_late_events(conn: Connection, state: _State, newest: int, report: TickReport) -> None:
    """How many of the events imported since the last tick happened before its watermark (and
    after the rule set first started: history imported later is not late), and the earliest:
    the window before the watermark in which their own occurrences fell due, decided without
    them."""
    assert state.events_seen_pk is not None
    report.late, report.late_since_us = conn.execute(
        sa.select(sa.func.count(), sa.func.min(events.c.at_us)).where(
            events.c.pk > state.events_seen_pk,
            events.c.pk <= newest,
            events.c.at_us < state.watermark_us,
            events.c.at_us >= state.first_run_us,
        )
    ).one()


def _lock(conn: Connection, name: str, now_us: int) -> _State | None:
    """Lock the rule set's state row and return its watermark, first start and the newest event
    its ticks saw; None when another process holds it. The first tick of a rule set starts it:
    nothing due before that moment acts."""
    conn.execute(
        insert_or_ignore(conn, rule_set_state),
        {"name": name, "first_run_us": now_us, "watermark_us": now_us},
    )
    state = rule_set_state.c
    query = sa.select(state.watermark_us, state.first_run_us, state.events_seen_pk).where(
        state.name == name
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    row = conn.execute(query).first()
    return None if row is None else _State(*row)
