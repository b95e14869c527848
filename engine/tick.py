"""One tick of the daemon: evaluate what fell due since the last tick and record it, once.

The rule set's row in `rule_set_state` holds its watermark: every occurrence due before it has
been decided. A tick locks that row (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so a second daemon
skips the tick instead of waiting), evaluates `[watermark, now)` with the same core as
`simulate`, records the result under the ledger's unique keys and moves the watermark, all in one
transaction: a crash anywhere leaves either everything or nothing, and the next tick redoes it.
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
from engine.triggers import BATCH_CUSTOMERS, EVERYONE, customer_batches

LONG_WINDOW_US = DAY_US  # longer than this (catching up after downtime): in batches


@dataclass
class TickReport:
    start_us: int = 0
    end_us: int = 0
    skipped: bool = False  # another daemon held the rule set's lock
    recorded: ledger.Recorded = field(default_factory=ledger.Recorded)
    queued: int = 0  # outbox rows created
    # Events imported since the last tick that happened before its watermark: what they made
    # due since then is evaluated now (`late`); those that happened before `too_late_before_us`
    # (the grace period, or the rule set's first start: `too_late`) do not act on what they
    # made due before it.
    late: int = 0
    too_late: int = 0
    too_late_before_us: int = 0


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
            seen = newest
            grace_end = max(watermark, now_us - int(config.grace_seconds * US))
            oldest_acting = max(now_us - int(config.grace_seconds * US), state.first_run_us)
            start = _since_late_events(conn, state, newest, oldest_acting, grace_end, report)
            # A long window (catching up) is taken in batches of customers to keep memory flat;
            # an ordinary tick has little due and reads everyone at once.
            long = now_us - start > LONG_WINDOW_US
            batches = customer_batches(conn, batch) if long else [EVERYONE]
            if grace_end > watermark:  # downtime longer than the grace period: missed
                missed = find_due(conn, ruleset, config, watermark, grace_end)
                for who in batches:
                    late = evaluate_due(conn, ruleset, config, missed, who, with_actions=False)
                    report.recorded.add(ledger.record(conn, late, config, now_us, grace_end))
            due = find_due(conn, ruleset, config, start, now_us)
            for who in batches:
                result = evaluate_due(conn, ruleset, config, due, who, decide_before_us=now_us)
                recorded = ledger.record(conn, result, config, now_us, start)
                report.recorded.add(recorded)
                report.queued += recorded.outbox + ledger.decide(
                    conn, result.decided, config, now_us
                )
        conn.execute(
            rule_set_state.update()
            .where(rule_set_state.c.name == name)
            .values(watermark_us=max(watermark, now_us), last_tick_us=now_us, events_seen_pk=seen)
        )
    return report


def _since_late_events(
    conn: Connection,
    state: _State,
    newest: int,
    oldest_acting: int,
    grace_end: int,
    report: TickReport,
) -> int:
    """Where this tick's window starts: at `grace_end` (the watermark, unless the daemon was
    down longer than the grace period), or earlier, for the events imported since the last
    tick that happened before the watermark. What they made due was evaluated before they were
    there: it acts now, late, as after downtime, if due after `oldest_acting` (within the grace
    period, and after the rule set first started); the ledger's unique keys keep what acted
    already from acting again. A rule set whose ticks have seen no event yet starts seeing from
    here."""
    seen = state.events_seen_pk
    if seen is None or newest <= seen:
        return grace_end
    imported = sa.and_(events.c.pk > seen, events.c.pk <= newest)
    earliest, report.late = conn.execute(
        sa.select(sa.func.min(events.c.at_us), sa.func.count()).where(
            imported, events.c.at_us < state.watermark_us
        )
    ).one()
    if not report.late:
        return grace_end
    report.too_late_before_us = oldest_acting
    report.too_late = conn.execute(
        sa.select(sa.func.count()).where(imported, events.c.at_us < oldest_acting)
    ).scalar_one()
    return min(grace_end, max(earliest, oldest_acting))


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
