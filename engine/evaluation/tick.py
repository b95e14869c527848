"""One tick of the daemon: evaluate what fell due since the last tick and record it, once.

The rule set's row in `rule_set_state` holds its watermark: every occurrence due before it has
been decided. A tick locks that row (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so a second daemon
skips the tick instead of waiting), evaluates `[watermark, now)` with the same core as
`simulate`, records the result under the ledger's unique keys and moves the watermark, all in one
transaction: a crash anywhere leaves either everything or nothing, and the next tick redoes it.

Events imported since the last tick that happened before its watermark are late, as are
customers imported since then whose sign-up was before it: the tick first takes their own
occurrences due before the watermark (`evaluate.Due.late`), then its window.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from engine.checking.ruleset import rule_files
from engine.config import Config
from engine.evaluation.collector import fewer_collections
from engine.evaluation.evaluate import evaluate_due, find_due
from engine.language import ast
from engine.outbox import ledger
from engine.outbox.dispatch import last_tick_us, miss_after_downtime
from engine.plan.triggers import (
    BATCH_CUSTOMERS,
    EVERYONE,
    LateImports,
    customer_batches,
    follows_sign_ups,
    instant_event_types,
)
from engine.storage.bulk import insert_or_ignore
from engine.storage.tables import customers, events, rule_set_state
from engine.timeutil import DAY_US

LONG_WINDOW_US = DAY_US  # longer than this (catching up after downtime): in batches


@dataclass
class TickReport:
    start_us: int = 0
    end_us: int = 0
    skipped: bool = False  # another daemon held the rule set's lock
    recorded: ledger.Recorded = field(default_factory=ledger.Recorded)
    queued: int = 0  # outbox rows created
    # Events imported since the last tick that happened before its watermark (`start_us`), and
    # the earliest of them: the tick first took their own occurrences due before it.
    late: int = 0
    late_since_us: int | None = None
    # The outbox rows to customers marked missed: the daemons were down beyond grace after
    # their time (`outbox.miss_after_downtime`), from `down_since_us`, the last tick of any
    # rule set before this one.
    missed_messages: list[int] = field(default_factory=list)
    down_since_us: int = 0


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
    signups_seen_seq: int | None


class _Newest(NamedTuple):
    """The newest event's key and sign-up's number stored (0 when none)."""

    event_pk: int
    signup_seq: int


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
        newest = _Newest(
            *conn.execute(
                sa.select(
                    sa.select(sa.func.coalesce(sa.func.max(events.c.pk), 0)).scalar_subquery(),
                    sa.select(
                        sa.func.coalesce(sa.func.max(customers.c.signed_up_seq), 0)
                    ).scalar_subquery(),
                )
            ).one()
        )
        seen = _Newest(
            newest.event_pk if state.events_seen_pk is None else state.events_seen_pk,
            newest.signup_seq if state.signups_seen_seq is None else state.signups_seen_seq,
        )
        if now_us > watermark:
            # Late beyond `grace` after the tick that should have taken them: a tick's own
            # window (`tick_seconds`) is never late, whatever `grace` says.
            missed_before = now_us - config.late_us
            late = _late_imports(conn, ruleset, state, seen, newest, report)
            if late is not None:
                imported, since_us, count = late
                # The occurrences of more imports than a batch holds customers: in batches.
                window = _Window(since_us, watermark, missed_before, watermark, count > batch)
                _record(conn, ruleset, config, window, now_us, batch, report, imported)
            seen = newest
            # A long window (catching up) is taken in batches of customers to keep memory flat;
            # an ordinary tick has little due and reads everyone at once.
            long = now_us - watermark > LONG_WINDOW_US
            window = _Window(watermark, now_us, missed_before, now_us, long)
            _record(conn, ruleset, config, window, now_us, batch, report)
        # Back from downtime beyond grace: the messages it kept from going out are missed.
        # Downtime is the outbox's, which every daemon works through whatever its rule set:
        # since the last tick of any (a rule set stopped long ago, or started now under a new
        # name, comes back to an outbox that was, or was not, worked through meanwhile).
        last_tick = last_tick_us(conn)
        report.down_since_us = now_us if last_tick is None else last_tick
        report.missed_messages = miss_after_downtime(conn, config, report.down_since_us, now_us)
        state_row = rule_set_state.c
        conn.execute(
            rule_set_state.update()
            .where(state_row.name == name)
            .values(
                watermark_us=max(watermark, now_us),
                last_tick_us=now_us,
                events_seen_pk=seen.event_pk,
                signups_seen_seq=seen.signup_seq,
                late_events=state_row.late_events + report.late,
            )
        )
    return report


class _Window(NamedTuple):
    """What a tick evaluates and records at once: occurrences due in `[start_us, end_us)`, those
    before `missed_before_us` (more than `grace`, a tick interval and a second ago) as missed,
    the cap deciding the actions sent before `decide_before_us`, in batches of customers when
    `batched`."""

    start_us: int
    end_us: int
    missed_before_us: int
    decide_before_us: int
    batched: bool = False


def _record(
    conn: Connection,
    ruleset: ast.RuleSet,
    config: Config,
    window: _Window,
    now_us: int,
    batch: int,
    report: TickReport,
    late: LateImports | None = None,
) -> None:
    """Evaluate and record what fell due in `window`. With `late`, only the occurrences of
    these events and sign-ups, in a window decided without them (`evaluate.Due.late`)."""
    start_us, end_us = window.start_us, window.end_us
    batches = customer_batches(conn, batch) if window.batched else [EVERYONE]
    missed_end = min(end_us, max(start_us, window.missed_before_us))
    if missed_end > start_us:  # downtime longer than the grace period: missed
        missed = find_due(conn, ruleset, config, start_us, missed_end, late=late)
        for who in batches:
            result = evaluate_due(conn, ruleset, config, missed, who, with_actions=False)
            report.recorded.add(ledger.record(conn, result, config, now_us, missed_end))
    if missed_end < end_us:
        due = find_due(conn, ruleset, config, missed_end, end_us, late=late)
        for who in batches:
            result = evaluate_due(conn, ruleset, config, due, who, window.decide_before_us)
            recorded = ledger.record(conn, result, config, now_us, missed_end)
            report.recorded.add(recorded)
            report.queued += recorded.outbox + ledger.decide(conn, result.decided, config, now_us)


def _late_imports(
    conn: Connection,
    ruleset: ast.RuleSet,
    state: _State,
    seen: _Newest,
    newest: _Newest,
    report: TickReport,
) -> tuple[LateImports, int, int] | None:
    """Count the events imported since the last tick that happened before its watermark, and
    the customers imported since then who signed up before it (after the rule set first
    started: history imported later is not late), and the earliest, in `report`. Of those,
    the events whose type makes occurrences of some rule (`triggers.instant_event_types`) and
    the sign-ups when a rule follows them: their own occurrences due before the watermark were
    not decided, and the tick takes them first (those after it are its window's, as any
    event's). Returns them, the earliest's time and their number; None when none act."""
    if seen == newest:
        return None
    makes = events.c.type.in_(instant_event_types(ruleset.rules))
    late_events = sa.select(
        sa.func.count(),
        sa.func.min(events.c.at_us),
        sa.func.coalesce(sa.func.sum(sa.case((makes, 1), else_=0)), 0),
        sa.func.min(sa.case((makes, events.c.at_us))),
    ).where(
        events.c.pk > seen.event_pk,
        events.c.pk <= newest.event_pk,
        events.c.at_us < state.watermark_us,
        events.c.at_us >= state.first_run_us,
    )
    count, since_us, acting, acting_since_us = conn.execute(late_events).one()
    signed_up = customers.c.signed_up_us
    if newest.signup_seq > seen.signup_seq:
        late_signups = sa.select(sa.func.count(), sa.func.min(signed_up)).where(
            customers.c.signed_up_seq > seen.signup_seq,
            customers.c.signed_up_seq <= newest.signup_seq,
            signed_up < state.watermark_us,
            signed_up >= state.first_run_us,
        )
        signups, signups_since_us = conn.execute(late_signups).one()
        count += signups
        since_us = _earliest(since_us, signups_since_us)
        if signups and follows_sign_ups(ruleset.rules):
            acting += signups
            acting_since_us = _earliest(acting_since_us, signups_since_us)
    report.late, report.late_since_us = count, since_us
    if not acting:
        return None
    imported = LateImports(
        seen.event_pk, newest.event_pk, seen.signup_seq, newest.signup_seq, state.first_run_us
    )
    return imported, acting_since_us, acting


def _earliest(one: int | None, other: int | None) -> int | None:
    return other if one is None else one if other is None else min(one, other)


def _lock(conn: Connection, name: str, now_us: int) -> _State | None:
    """Lock the rule set's state row and return its watermark, first start and the newest event
    its ticks saw; None when another process holds it. The first tick of a rule set starts it:
    nothing due before that moment acts."""
    conn.execute(
        insert_or_ignore(conn, rule_set_state),
        {"name": name, "first_run_us": now_us, "watermark_us": now_us},
    )
    state = rule_set_state.c
    query = sa.select(
        state.watermark_us, state.first_run_us, state.events_seen_pk, state.signups_seen_seq
    ).where(state.name == name)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    row = conn.execute(query).first()
    return None if row is None else _State(*row)
