"""The daemon's side: ticks with nothing due and with a day's work due, due-to-recorded latency
on a simulated clock, and dispatch to loopback SMTP and webhook receivers.

Each measurement starts from an empty ledger (the scratch database's ledger tables are emptied),
so every run of it does the same work. The clock is simulated: a tick is called with the
`now_us` the daemon would pass at that moment, and its wall time is measured.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, delete, select, update

from bench.measure import median, percentile
from bench.shop import SHOP_TZ
from engine.config import Channel, Config
from engine.evaluation.evaluate import customer_zones
from engine.evaluation.tick import tick
from engine.evaluation.wakeups import next_wake
from engine.language import ast
from engine.outbox.dispatch import dispatch_due
from engine.storage.tables import (
    actions,
    coupons,
    effects,
    occurrences,
    outbox,
    rule_set_state,
    tasks,
)
from engine.timeutil import DAY_US, US, to_us, zone

RULE_SET = "shop"
# A quiet night (03:00 shop time) for idle ticks, a plain Tuesday for a day's work, and a Friday
# evening across the weekly group buy at 20:00 for latency.
IDLE_AT = dt.datetime(2026, 10, 14, 3, 0)
IDLE_TICKS = 10
BUSY_DAY = dt.datetime(2026, 10, 13)
LATENCY_FROM = dt.datetime(2026, 10, 16, 19, 30)
# When the day's messages are dispatched: after all of them are due, before any of their coupons
# expires (a coupon's message is not sent once its coupon has expired).
DISPATCH_AT = BUSY_DAY + dt.timedelta(days=1)


def shop_us(moment: dt.datetime) -> int:
    return to_us(moment.replace(tzinfo=zone(SHOP_TZ)))


_LEDGER = (outbox, coupons, tasks, effects, actions, occurrences, rule_set_state)


def clear_ledger(engine: Engine) -> None:
    """Empty every table the daemon writes, in foreign-key order. On PostgreSQL by TRUNCATE:
    deleted rows would stay in the tables as dead ones (the harness's server never vacuums),
    and every later measurement on the database would read past them (helper-27 saw a
    group buy's tick take 3.6-3.8 s on such tables against 2.8-3.0 s on emptied ones)."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"TRUNCATE {', '.join(table.name for table in _LEDGER)}")
            return
        for table in _LEDGER:
            conn.execute(delete(table))


def _start(engine: Engine, ruleset: ast.RuleSet, config: Config, now_us: int) -> None:
    """The daemon's first tick: it starts the rule set, nothing due before `now_us` acts."""
    clear_ledger(engine)
    tick(engine, ruleset, config, RULE_SET, now_us)


@dataclass(frozen=True)
class IdleTicks:
    ms: float  # median of the ticks that recorded nothing
    idle: int  # how many of the ticks recorded nothing
    ticks: int


def idle_ticks(engine: Engine, ruleset: ast.RuleSet, config: Config) -> IdleTicks:
    """`IDLE_TICKS` ticks, `tick_seconds` apart, in a quiet night; the median wall time of those
    that found nothing due (all of them, if none did)."""
    step = int(config.tick_seconds * US)
    now = shop_us(IDLE_AT)
    _start(engine, ruleset, config, now)
    idle: list[float] = []
    busy: list[float] = []
    for _ in range(IDLE_TICKS):
        now += step
        began = time.perf_counter()
        report = tick(engine, ruleset, config, RULE_SET, now)
        elapsed = (time.perf_counter() - began) * 1000
        (busy if report.recorded.occurrences else idle).append(elapsed)
    return IdleTicks(median(idle or busy), len(idle), IDLE_TICKS)


@dataclass(frozen=True)
class BusyTick:
    ms: float
    occurrences: int
    actions: int


def busy_tick(engine: Engine, ruleset: ast.RuleSet, config: Config) -> BusyTick:
    """One tick over a whole ordinary day: everything due that day is evaluated and recorded in
    one transaction (grace raised to two days, so that nothing counts as missed)."""
    relaxed = dataclasses.replace(config, grace_seconds=2 * 86_400.0)
    start = shop_us(BUSY_DAY)
    _start(engine, ruleset, relaxed, start)
    began = time.perf_counter()
    report = tick(engine, ruleset, relaxed, RULE_SET, start + DAY_US)
    elapsed = (time.perf_counter() - began) * 1000
    return BusyTick(elapsed, report.recorded.occurrences, report.recorded.actions)


@dataclass(frozen=True)
class Latency:
    p50_ms: float
    p99_ms: float
    recorded: int
    ticks: int
    slowest_tick_ms: float


def due_to_recorded(engine: Engine, ruleset: ast.RuleSet, config: Config, hours: float) -> Latency:
    """Ticks of a simulated clock over `hours` from a Friday 19:30, scheduled as the daemon's
    interval job is: every `tick_seconds`, brought forward to just after the next due time known
    in advance (`engine.evaluation.wakeups`: the group buy at 20:00), a tick that overruns its
    interval delaying the next one to the following slot. An occurrence recorded by the tick the
    daemon starts at `now` is committed when that tick ends: its latency is `now - due` plus the
    tick's measured wall time.
    """
    step = int(config.tick_seconds * US)
    start = shop_us(LATENCY_FROM)
    end = start + int(hours * 3600 * US)
    _start(engine, ruleset, config, start)
    with engine.connect() as conn:
        zones = customer_zones(conn, config.timezone)
    latencies: list[float] = []
    ticks = 0
    slowest = 0.0
    now = start
    next_run = next_wake(ruleset, config, zones, now, now + step) or now + step
    while next_run < end:
        now = next_run
        began = time.perf_counter()
        tick(engine, ruleset, config, RULE_SET, now)
        elapsed_us = int((time.perf_counter() - began) * US)
        ticks += 1
        slowest = max(slowest, elapsed_us / 1000)
        with engine.connect() as conn:
            dues = conn.scalars(
                select(occurrences.c.due_us).where(
                    occurrences.c.recorded_us == now, occurrences.c.status == "acted"
                )
            ).all()
        latencies.extend((now - due + elapsed_us) / 1000 for due in dues)
        finished = now + elapsed_us
        next_run = now + step
        next_run += max(0, -(-(finished - next_run) // step)) * step  # overran: the next slot
        wake = next_wake(ruleset, config, zones, now, next_run)
        if wake is not None:
            next_run = max(wake, finished)
    if not latencies:
        return Latency(0.0, 0.0, 0, ticks, slowest)
    return Latency(
        percentile(latencies, 50), percentile(latencies, 99), len(latencies), ticks, slowest
    )


@dataclass(frozen=True)
class Dispatch:
    email_per_s: float
    webhook_per_s: float
    email_messages: int
    webhook_messages: int


def dispatch_throughput(
    engine: Engine,
    config: Config,
    templates_dir: Path,
    smtp_port: int,
    webhook_url: str,
    count: int,
    runs: int,
) -> Dispatch:
    """Outbox rows of the last tick, re-routed: `count` to the loopback SMTP server (customers
    with an e-mail address), `count` to the loopback webhook; the rest are deleted. Each run
    sends them all again (rows reset to pending) and times `dispatch_due` per channel."""
    channels = dict(config.channels)
    channels["email"] = Channel(
        "email",
        "email",
        {
            "host": "127.0.0.1",
            "port": smtp_port,
            "security": "none",
            "from": "Bench <b@example.com>",
        },
    )
    channels["webhook"] = Channel("webhook", "webhook", {"url": webhook_url})
    config = dataclasses.replace(config, channels=channels)
    email_ids, webhook_ids = _route(engine, count)
    email_s: list[float] = []
    webhook_s: list[float] = []
    for _ in range(runs):
        email_s.append(_send(engine, config, templates_dir, email_ids, webhook_ids))
        webhook_s.append(_send(engine, config, templates_dir, webhook_ids, email_ids))
    return Dispatch(
        len(email_ids) / median(email_s) if email_ids else 0.0,
        len(webhook_ids) / median(webhook_s) if webhook_ids else 0.0,
        len(email_ids),
        len(webhook_ids),
    )


def _route(engine: Engine, count: int) -> tuple[list[int], list[int]]:
    email_ids: list[int] = []
    webhook_ids: list[int] = []
    with engine.begin() as conn:
        for row_id, payload in conn.execute(select(outbox.c.id, outbox.c.payload)):
            if payload.get("kind") not in ("message", "followup", "coupon"):
                continue
            customer = (payload.get("context") or {}).get("customer") or {}
            if len(email_ids) < count and customer.get("email"):
                email_ids.append(row_id)
            elif len(webhook_ids) < count:
                webhook_ids.append(row_id)
        keep = email_ids + webhook_ids
        conn.execute(delete(outbox).where(outbox.c.id.not_in(keep)))
        if email_ids:
            conn.execute(update(outbox).where(outbox.c.id.in_(email_ids)).values(channel="email"))
        if webhook_ids:
            conn.execute(
                update(outbox).where(outbox.c.id.in_(webhook_ids)).values(channel="webhook")
            )
    return email_ids, webhook_ids


def _send(
    engine: Engine, config: Config, templates_dir: Path, ids: list[int], held: list[int]
) -> float:
    """Seconds to send the rows `ids` (all pending again), the rows `held` set aside."""
    with engine.begin() as conn:
        conn.execute(
            update(outbox)
            .where(outbox.c.id.in_(ids))
            .values(status="pending", attempts=0, next_attempt_us=0, sent_us=None)
        )
        conn.execute(update(outbox).where(outbox.c.id.in_(held)).values(status="held"))
    began = time.perf_counter()
    now = shop_us(DISPATCH_AT)
    report = dispatch_due(engine, config, templates_dir, now, limit=len(ids) or 1)
    elapsed = time.perf_counter() - began
    if report.sent != len(ids):
        failures = [o.error for o in report.outcomes if o.status != "sent"][:3]
        raise RuntimeError(f"dispatch sent {report.sent} of {len(ids)}: {failures}")
    return elapsed
