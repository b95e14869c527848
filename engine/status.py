"""`nudge status`: how the daemon is doing, read from the database."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import Engine

from engine.storage.tables import actions, daemons, occurrences, outbox, rule_set_state


@dataclass(frozen=True)
class Status:
    # name, watermark, last tick, rules, events imported after a tick had passed their time
    rule_sets: list[tuple[str, int, int | None, str | None, int]]
    daemons: list[tuple[str, int, int, int]]  # host, pid, started, heartbeat
    waiting_for_cap: int
    outbox: dict[str, int]  # status → rows
    outbox_due: int  # pending rows whose send time has come
    missed: int


def status(engine: Engine, now_us: int) -> Status:
    with engine.connect() as conn:
        sets = [
            (r.name, r.watermark_us, r.last_tick_us, r.fingerprint, r.late_events)
            for r in conn.execute(sa.select(rule_set_state).order_by(rule_set_state.c.name))
        ]
        running = [
            (r.host, r.pid, r.started_us, r.heartbeat_us)
            for r in conn.execute(sa.select(daemons).order_by(daemons.c.started_us))
        ]
        waiting = conn.execute(
            sa.select(sa.func.count()).where(actions.c.status == "pending")
        ).scalar_one()
        counts: dict[str, int] = dict(
            conn.execute(
                sa.select(outbox.c.status, sa.func.count()).group_by(outbox.c.status)
            ).all()
        )
        due = conn.execute(
            sa.select(sa.func.count()).where(
                outbox.c.status == "pending", outbox.c.next_attempt_us <= now_us
            )
        ).scalar_one()
        missed = conn.execute(
            sa.select(sa.func.count()).where(occurrences.c.status == "missed")
        ).scalar_one()
    return Status(sets, running, waiting, counts, due, missed)
