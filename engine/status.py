"""`nudge status`: how the daemon is doing, read from the database.

A daemon notes a heartbeat after each step and removes its row when it stops. A row whose
heartbeat has stopped is a daemon that did not stop cleanly (killed, its machine gone), or one
stuck in a step or cut off from the database: `status` shows it as silent since its last
heartbeat, decided as it reads. On Linux, a daemon of the machine `status` runs on whose
process no longer runs (killed with -9, crashed) is shown stopped at once, whatever its
heartbeat says (`pid_space`). The row stays: the next daemon to start forgets those stopped,
those silent for long, or on SQLite, where one daemon runs, every other (`Daemon._register`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import Engine

from engine.storage.tables import actions, daemons, occurrences, outbox, rule_set_state
from engine.timeutil import US, clock_text

# A daemon not heard from in this many tick intervals (a minute at least: a long step, a slow
# database) is shown as silent.
SILENT_TICKS = 3
SILENT_MIN_S = 60.0


@dataclass(frozen=True)
class DaemonSeen:
    host: str
    pid: int
    started_us: int
    heartbeat_us: int
    silent: bool  # no heartbeat for `silent_after_us`, and not known `gone`
    gone: bool = False  # of this machine (its `pid_space`), and no process runs under its pid


@dataclass(frozen=True)
class Status:
    now_us: int  # when it was read
    # name, watermark, last tick, rules, events imported after a tick had passed their time
    rule_sets: list[tuple[str, int, int | None, str | None, int]]
    daemons: list[DaemonSeen]
    waiting_for_cap: int
    outbox: dict[str, int]  # status → rows
    outbox_due: int  # pending rows whose send time has come
    missed: int


def pid_space() -> str | None:
    """Where this process's number is its own: on Linux the kernel's boot (a number is given
    again after a reboot) and the namespace of process numbers (a container has its own, and
    may bear the machine's name). None where the system does not tell (not Linux): a machine's
    name is no such place, as two machines (a jail, a container) may bear the same one, and
    each would have shown the other's daemons stopped, and forgotten them. A daemon notes it
    beside its pid; a process that finds the same looks for that pid among its own
    (`stopped`)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return f"boot {boot} {namespace}"


def stopped(space: str | None, pid: int, here: str | None) -> bool:
    """Whether the daemon noted with `pid` in `space` is known to have stopped: `space` is
    `here` (this process's `pid_space`) and no process runs under `pid`. False when it cannot
    be told (another machine or container, a row written before daemons noted their space, a
    system that does not tell where a number is its own)."""
    if here is None or space != here or pid <= 0:  # 0 and below: groups of processes
        return False
    try:
        os.kill(pid, 0)  # no signal: whether there is such a process
    except ProcessLookupError:
        return True
    except PermissionError:  # there is, another user's
        return False
    return False


def silent_after_us(tick_seconds: float) -> int:
    """How long a daemon ticking every `tick_seconds` may go without a heartbeat before it is
    shown as silent."""
    return int(max(SILENT_TICKS * tick_seconds, SILENT_MIN_S) * US)


def status(engine: Engine, now_us: int, tick_seconds: float) -> Status:
    """The state at `now_us`; each daemon's heartbeat is judged by the interval it noted, or
    by `tick_seconds` (the configuration `status` reads) for a row written without one."""
    here = pid_space()
    with engine.connect() as conn:
        sets = [
            (r.name, r.watermark_us, r.last_tick_us, r.fingerprint, r.late_events)
            for r in conn.execute(sa.select(rule_set_state).order_by(rule_set_state.c.name))
        ]
        seen = [
            DaemonSeen(
                r.host,
                r.pid,
                r.started_us,
                r.heartbeat_us,
                not gone
                and now_us - r.heartbeat_us > silent_after_us(r.tick_seconds or tick_seconds),
                gone,
            )
            for r in conn.execute(sa.select(daemons).order_by(daemons.c.started_us))
            for gone in (stopped(r.pid_space, r.pid, here),)
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
    return Status(now_us, sets, seen, waiting, counts, due, missed)


def ago(us: int) -> str:
    """A span before now, as a reader takes it in at a glance: `12 s`, `25 min`, `3 h`, `2 d`
    ago. A span below zero (another machine's clock a little ahead) is `just now`."""
    seconds = us // US
    if seconds < 1:
        return "just now"
    for unit, size, up_to in (("s", 1, 90), ("min", 60, 90 * 60), ("h", 3600, 48 * 3600)):
        if seconds < up_to:
            return f"{seconds // size} {unit} ago"
    return f"{seconds // 86_400} d ago"


def status_lines(state: Status, shop_tz: str) -> list[str]:
    """What `nudge status` prints: times in shop time to the minute, as `history` and
    `explain` print them, with how long ago for those that say whether things are moving."""

    def when(us: int) -> str:
        return clock_text(us, shop_tz)

    def when_ago(us: int) -> str:
        return f"{when(us)} ({ago(state.now_us - us)})"

    lines = [f"Status at {when(state.now_us)}, shop time ({shop_tz}):"]
    if not state.rule_sets:
        lines.append("No rule set has run yet (start one with `nudge run RULES_DIR`).")
    for name, watermark, last, rules, late in state.rule_sets:
        last_text = when_ago(last) if last else "never"
        done = f"done up to {when(watermark)}"
        version = f", rule files {rules[:12]}" if rules else ""
        lines.append(f"rule set {name}: last tick {last_text}, {done}{version}")
        if late:
            lines.append(
                f"  events and sign-ups imported after a tick had passed their time: {late}"
                " (those within grace acted late, older ones were missed)"
            )
    for d in state.daemons:
        if d.gone:
            lines.append(
                f"daemon {d.host}:{d.pid} stopped without saying so (killed, or crashed): no"
                f" process runs under its number on this machine; last seen"
                f" {when_ago(d.heartbeat_us)}, started {when(d.started_us)}"
            )
        elif d.silent:
            lines.append(
                f"daemon {d.host}:{d.pid} silent since {when_ago(d.heartbeat_us)}, started"
                f" {when(d.started_us)}: it did not stop cleanly (killed, its machine down), or"
                " it is stuck in a step or cannot reach the database"
            )
        else:
            lines.append(
                f"daemon {d.host}:{d.pid} running since {when(d.started_us)}, last seen"
                f" {when_ago(d.heartbeat_us)}"
            )
    if all(d.gone for d in state.daemons):
        lines.append("no daemon running (start one with `nudge run RULES_DIR`)")
    lines.append(f"actions waiting for the marketing cap: {state.waiting_for_cap}")
    lines.append(f"outbox due now: {state.outbox_due}")
    for name in ("pending", "sent", "failed", "dead", "cancelled"):
        lines.append(f"outbox {name}: {state.outbox.get(name, 0)}")
    lines.append(
        f"outbox missed: {state.outbox.get('missed', 0)} (not sent: queued before downtime"
        " beyond grace; `nudge outbox --missed`)"
    )
    lines.append(f"missed occurrences (beyond grace: downtime, late events): {state.missed}")
    return lines
