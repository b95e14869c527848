"""The outbox dispatcher: from recorded actions to delivered messages, at least once.

The tick records each action that must be delivered as an `outbox` row (status `pending`,
`next_attempt_us` its planned send time) in the same transaction as the action. `dispatch_due`
claims the rows that are due, checks consent again for marketing, renders the template, sends
through the row's channel and records the outcome:

- `sent`: delivered (`sent_us`);
- `pending` again, later: a temporary failure, retried after an exponential backoff with full
  jitter (capped at an hour) until `retry_for` has passed since its first such failure (a day
  by default, so that a night's outage delivers in the morning), or after `max_attempts` tries
  when that is set; then the row is `dead` instead. A failure of the channel itself (its
  server unreachable, silent or busy) is not met again by each of the batch's other messages
  for that channel: they are not tried, and wait as the first one does (the log says "not
  tried"). With `retry_for: 0` (no retries) they are no dead letters for that: they have not
  failed, and wait for a try of their own;
- `dead`: the channel refused it for good, failed on it unexpectedly (a fault in its code, as
  with an address its library cannot take), or it ran out of attempts (a dead letter:
  `nudge outbox --dead` lists them, `nudge outbox --retry` requeues them);
- `failed`: its template cannot be found, parsed or rendered, gives no text at all, or its
  message cannot be made (fix it, then `--retry`); once a template has run past its render
  time for three messages in a row, the messages of it that follow fail at once while its
  files stay as they are (`templates._TIMED_OUT`);
- `cancelled`: a marketing message whose customer withdrew consent after it was queued, or a
  coupon's message whose coupon expired before it could go out;
- `missed`: a message to a customer still waiting when the daemon came back from downtime
  (no tick for longer than `grace`, a tick interval and a second: `Config.late_us`) more than
  that after it could go out (its planned time, a retry's, the end of the quiet hours it
  waited for, or its requeue: `next_attempt_us`). The first tick back marks it
  (`miss_after_downtime`): it is not sent, as an occurrence due that long ago does not act
  (docs/semantics.md, "Messages queued before downtime"); `nudge outbox --missed` lists them,
  `nudge outbox --retry ID` sends one all the same. Until that tick is done (on PostgreSQL a
  second daemon back at the same time skips its own tick while the first one's runs), such a
  message is not claimed: none is sent after downtime, whichever daemon dispatches first. A
  backlog worked through while the daemon runs is never missed, however long (a slow server, a
  large campaign), nor a retry: `retry_for` alone governs failures. Tasks and gifts to the tasks
  channel are no messages to customers: they go out however late.

A crash between sending and recording sends the message again on the next run: delivery is at
least once, and every channel passes the row's idempotency key on so that receivers can make it
exactly once. On PostgreSQL several dispatchers share the table safely: claimed rows stay locked
(`FOR UPDATE SKIP LOCKED`) until their outcome is recorded, and others skip them.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, Row, and_, bindparam, func, select, update

from engine.channels import (
    Channel,
    PermanentFailure,
    RenderedMessage,
    TemporaryFailure,
    open_channel,
)
from engine.config import Config, duration_text
from engine.errors import ConfigError, NudgeError
from engine.language import ast
from engine.outbox.templates import TemplateError, Templates
from engine.policies.consent import SUBSCRIBED, UNSUBSCRIBED
from engine.policies.timing import quiet_until
from engine.storage.chunks import chunks
from engine.storage.db import short_write
from engine.storage.tables import actions, customers, events, outbox, rule_set_state
from engine.timeutil import US, iso, local_text, parse_moment

log = logging.getLogger("nudge.outbox")

RETRY_CAP_SECONDS = 3600.0
STATUSES = ("pending", "sent", "failed", "dead", "cancelled", "missed")
RETRYABLE = ("dead", "failed")  # requeued by `nudge outbox --retry`, all of them or named
RETRYABLE_NAMED = (*RETRYABLE, "missed")  # requeued only when named
TEMPLATED_KINDS = ("message", "followup", "coupon")


class OutboxError(NudgeError):
    """A request about outbox messages that cannot be carried out (unknown id...)."""


@dataclass(frozen=True)
class Outcome:
    """What became of one claimed row. `status` is the row's new status."""

    outbox_id: int
    status: str
    attempts: int
    error: str | None = None
    next_attempt_us: int | None = None
    sent_us: int | None = None
    failing_since_us: int | None = None


@dataclass
class DispatchReport:
    """The outcomes of one `dispatch_due` call, in the order the rows were tried."""

    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == status)

    @property
    def sent(self) -> int:
        return self.count("sent")

    def summary(self) -> str:
        """How many rows ended in each status, as the daemon logs it: `3 sent, 1 pending`."""
        statuses = dict.fromkeys(outcome.status for outcome in self.outcomes)
        return ", ".join(f"{self.count(status)} {status}" for status in statuses)


def dispatch_due(
    engine: Engine,
    config: Config,
    templates_dir: Path,
    now_us: int,
    limit: int = 100,
    *,
    stop: threading.Event | None = None,
    until: float | None = None,
    quiet: tuple[ast.QuietHours, ...] = (),
    rng: random.Random | None = None,
    due_by_us: int | None = None,
) -> DispatchReport:
    """Send up to `limit` outbox rows due at `now_us` and record what became of each.

    When `stop` is set, or once `time.monotonic()` reaches `until` (after one row at least),
    rows not yet tried stay pending for the next run. A customer-facing message whose planned
    time falls in the `quiet` hours of its customer (a retry, one requeued) waits for their end,
    without an attempt.

    `due_by_us` (at most `now_us`): claim only the rows due by then. Calls one after the other
    that share it claim no row again that one of them left pending: a row left pending is
    always due after the `now_us` it was tried at (`backoff_us` is a microsecond at least).
    """
    sender = _Sender(
        config, Templates(templates_dir), now_us, stop, until, quiet, rng or random.Random()
    )
    due_by = now_us if due_by_us is None else min(due_by_us, now_us)
    if engine.dialect.name == "postgresql":
        # Claimed rows stay locked until their outcomes are recorded in the same transaction:
        # a second dispatcher's `SKIP LOCKED` passes them by, and a crash releases them.
        with engine.begin() as conn:
            claims = _claim(conn, config, now_us, due_by, limit, lock=True)
            outcomes = sender.deliver(claims)
            _record(conn, outcomes)
    else:
        # SQLite runs one daemon. Two short transactions keep the database writable (WAL)
        # for the tick while messages go out.
        with engine.begin() as conn:
            claims = _claim(conn, config, now_us, due_by, limit, lock=False)
        outcomes = sender.deliver(claims)
        with engine.begin() as conn:
            _record(conn, outcomes)
    return DispatchReport(outcomes)


def backoff_us(attempts: int, base_seconds: float, rng: random.Random, hint: float | None) -> int:
    """Delay before try `attempts + 1`: full jitter over `base * 2^(attempts-1)`, capped at 1h,
    and a microsecond at least: a retry is never due at the moment of the failure.

    A receiver's `Retry-After` hint is honoured as a minimum (within the same cap).
    """
    ceiling = min(RETRY_CAP_SECONDS, base_seconds * 2 ** max(0, attempts - 1))
    delay = rng.uniform(0, ceiling)
    if hint is not None:
        delay = max(delay, min(hint, RETRY_CAP_SECONDS))
    return max(1, int(delay * US))


# --- claiming and recording ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Claim:
    row: Row[Any]
    withdrawn: str | None  # why consent no longer holds, for a marketing message
    # The customer's e-mail address and phone number as stored now (`_contacts`), over those
    # the row was recorded with; None for a customer no longer stored.
    contact: dict[str, Any] | None


def _claim(
    conn: Connection, config: Config, now_us: int, due_by_us: int, limit: int, *, lock: bool
) -> list[_Claim]:
    query = (
        select(outbox)
        .where(outbox.c.status == "pending", outbox.c.next_attempt_us <= due_by_us)
        .order_by(outbox.c.next_attempt_us, outbox.c.id)
        .limit(limit)
    )
    held = _to_be_missed(conn, config, now_us)
    if held is not None:
        query = query.where(~held)
    if lock:
        query = query.with_for_update(skip_locked=True)
    rows = list(conn.execute(query))
    marketing = {
        str(row.payload.get("customer_id")) for row in rows if row.payload.get("marketing")
    }
    withdrawn = _withdrawn_consent(conn, marketing, now_us)
    contacts = _contacts(conn, {str(row.payload.get("customer_id")) for row in rows})
    return [
        _Claim(
            row,
            withdrawn.get(customer_id) if row.payload.get("marketing") else None,
            contacts.get(customer_id),
        )
        for row in rows
        for customer_id in (str(row.payload.get("customer_id")),)
    ]


def _to_be_missed(conn: Connection, config: Config, now_us: int) -> ColumnElement[bool] | None:
    """While no rule set has ticked for longer than `config.late_us` (the daemons were down, and
    the first tick back has not committed yet: on PostgreSQL another daemon's, which holds the
    rule set's lock while this one's tick skips), which rows that tick will mark missed
    (`miss_after_downtime`): they are not claimed. Read before the claim, in a statement of its
    own: a tick back committed after this read has marked them, and the claim sees its marks."""
    before_us = now_us - config.late_us
    last_tick = last_tick_us(conn)
    if last_tick is None or last_tick >= before_us:
        return None
    to_customers = (
        select(actions.c.id)
        .where(
            actions.c.id == outbox.c.action_id,
            actions.c.kind.in_(sorted(ast.CUSTOMER_FACING)),
        )
        .exists()
    )
    return and_(outbox.c.next_attempt_us < before_us, to_customers)


def _contacts(conn: Connection, customer_ids: set[str]) -> dict[str, dict[str, Any]]:
    """Where each customer is reached now: a message goes to the address the shop holds when it
    is sent, so that a corrected e-mail address or phone number heals a dead letter (`nudge
    outbox --retry`) and one changed while a message waits is used. What the message says is
    of its due time (the rest of the recorded customer)."""
    found: dict[str, dict[str, Any]] = {}
    for some in chunks(sorted(customer_ids)):
        query = select(customers.c.id, customers.c.email, customers.c.phone)
        for cid, email, phone in conn.execute(query.where(customers.c.id.in_(some))):
            found[cid] = {"email": email, "phone": phone}
    return found


def _withdrawn_consent(conn: Connection, customer_ids: set[str], now_us: int) -> dict[str, str]:
    """For each customer in `customer_ids` who may not receive marketing now, the reason why.

    Consent holds while `accepts_marketing` is true and the latest `customer.unsubscribed` or
    `customer.subscribed` event at or before now, if any, is not an unsubscribe.
    """
    if not customer_ids:
        return {}
    accepts = dict(
        conn.execute(
            select(customers.c.id, customers.c.accepts_marketing).where(
                customers.c.id.in_(customer_ids)
            )
        ).all()
    )

    # The latest consent event of each, as a tick reads it (`consent.consent_sql`): by time,
    # then by key, the one imported last.
    latest: dict[str, tuple[int, int, str]] = {}
    query = select(events.c.customer_id, events.c.at_us, events.c.pk, events.c.type).where(
        events.c.customer_id.in_(customer_ids),
        events.c.type.in_((SUBSCRIBED, UNSUBSCRIBED)),
        events.c.at_us <= now_us,
    )
    for cid, at_us, pk, kind in conn.execute(query):
        latest[cid] = max(latest.get(cid, (at_us, pk, kind)), (at_us, pk, kind))
    reasons: dict[str, str] = {}
    for cid in customer_ids:
        if cid not in accepts:
            reasons[cid] = f"customer {cid} no longer exists"
        elif not accepts[cid]:
            reasons[cid] = f"customer {cid} no longer accepts marketing"
        elif cid in latest and latest[cid][2] == UNSUBSCRIBED:
            reasons[cid] = f"customer {cid} unsubscribed at {iso(latest[cid][0])}"
    return reasons


def _record(conn: Connection, outcomes: Sequence[Outcome]) -> None:
    for outcome in outcomes:
        values: dict[str, Any] = {
            "status": outcome.status,
            "attempts": outcome.attempts,
            "last_error": outcome.error,
        }
        if outcome.next_attempt_us is not None:
            values["next_attempt_us"] = outcome.next_attempt_us
        if outcome.sent_us is not None:
            values["sent_us"] = outcome.sent_us
        if outcome.failing_since_us is not None:
            values["failing_since_us"] = outcome.failing_since_us
        conn.execute(
            update(outbox)
            .where(outbox.c.id == outcome.outbox_id, outbox.c.status == "pending")
            .values(**values)
        )


# --- sending --------------------------------------------------------------------------------------


class _Sender:
    """Renders and sends one batch of claimed rows through channels opened for the batch."""

    def __init__(
        self,
        config: Config,
        templates: Templates,
        now_us: int,
        stop: threading.Event | None,
        until: float | None,
        quiet: tuple[ast.QuietHours, ...],
        rng: random.Random,
    ) -> None:
        self.config = config
        self.templates = templates
        self.now_us = now_us
        self.stop = stop
        self.until = until
        self.quiet = quiet
        self.rng = rng
        # Channels left after an unexpected error: not used again, closed at the end too.
        self.retired: list[tuple[str, Channel]] = []
        # Channels that failed for now on a message of the batch, with that failure: their
        # other messages are not tried in this batch.
        self.down: dict[str, TemporaryFailure] = {}
        self.shop = {"timezone": config.timezone, "country": config.country, **config.shop}

    def deliver(self, claims: Sequence[_Claim]) -> list[Outcome]:
        channels: dict[str, Channel] = {}
        channel_of = {claim.row.id: claim.row.channel for claim in claims}
        rows = {claim.row.id: claim.row for claim in claims}
        outcomes: list[Outcome] = []
        try:
            for claim in claims:
                if self.stop is not None and self.stop.is_set():
                    break
                if outcomes and self.until is not None and time.monotonic() >= self.until:
                    break  # one attempt at least: a short budget still moves on
                outcomes.append(self._attempt(claim, channels))
        finally:
            for name, channel in [*self.retired, *channels.items()]:
                try:
                    channel.close()
                except Exception as exc:
                    # What this channel took in the batch may not have been kept: send again.
                    if not isinstance(exc, TemporaryFailure):
                        log.exception("channel %s could not be closed", name)
                    hint = exc.retry_after if isinstance(exc, TemporaryFailure) else None
                    outcomes = [
                        self._retry(rows[o.outbox_id], o.attempts, str(exc), hint)
                        if o.status == "sent" and channel_of[o.outbox_id] == name
                        else o
                        for o in outcomes
                    ]
        return outcomes

    def _attempt(self, claim: _Claim, channels: dict[str, Channel]) -> Outcome:
        row = claim.row
        attempts = row.attempts + 1
        if claim.withdrawn is not None:
            log.info("outbox %s cancelled: %s", row.id, claim.withdrawn)
            return Outcome(row.id, "cancelled", row.attempts, claim.withdrawn)
        expired = _expired(row.payload, self.now_us)
        if expired is not None:
            log.info("outbox %s cancelled: %s", row.id, expired)
            return Outcome(row.id, "cancelled", row.attempts, expired)
        later = self._after_quiet_hours(row)
        if later > self.now_us:
            log.info("outbox %s waits for the end of quiet hours, %s", row.id, iso(later))
            return Outcome(row.id, "pending", row.attempts, row.last_error, next_attempt_us=later)
        try:
            message = self._render(row, claim.contact)
        except TemplateError as exc:
            log.warning("outbox %s failed: %s", row.id, exc)
            return Outcome(row.id, "failed", attempts, str(exc))
        except Exception as exc:  # one message's fault must not hold back the batch's others
            log.exception("outbox %s failed: its message could not be made", row.id)
            return Outcome(row.id, "failed", attempts, _unexpected(exc))
        down = self.down.get(row.channel)
        if down is not None:
            error = f"not tried: channel {row.channel} failed for now on another message: {down}"
            return self._retry(row, row.attempts, error, down.retry_after, tried=False)
        try:
            channel = channels.get(row.channel)
            if channel is None:
                spec = self.config.channel(row.channel)
                channel = channels[row.channel] = open_channel(spec, self.config.base_dir)
            channel.send(message)
        except PermanentFailure as exc:
            log.warning("outbox %s dead (%s): %s", row.id, row.channel, exc)
            return Outcome(row.id, "dead", attempts, str(exc))
        except TemporaryFailure as exc:
            if exc.channel_down:
                log.warning("channel %s failed for now: %s", row.channel, exc)
                self.down[row.channel] = exc
            return self._retry(row, attempts, str(exc), exc.retry_after)
        except ConfigError as exc:
            # The channel cannot be opened as configured; a corrected configuration heals it,
            # read when the daemon starts again.
            error = f"{exc} (mend nudge.yaml and restart the daemon, then `nudge outbox --retry`)"
            return self._retry(row, attempts, error, None)
        except Exception as exc:
            # A fault of the channel's code on this message (a malformed address its library
            # cannot take, ...): a dead letter, never sent again by itself, since it may have
            # gone out before the fault. The channel, in a state unknown, is not used again.
            log.exception("outbox %s dead (%s): unexpected error", row.id, row.channel)
            broken = channels.pop(row.channel, None)  # None when opening it was the fault
            if broken is not None:
                self.retired.append((row.channel, broken))
            return Outcome(row.id, "dead", attempts, _unexpected(exc))
        return Outcome(row.id, "sent", attempts, sent_us=self.now_us)

    def _after_quiet_hours(self, row: Row[Any]) -> int:
        """When a message may go out: its planned time (`next_attempt_us`) moved out of its
        customer's quiet hours as the policies move a due time (`timing.quiet_until`), for a
        customer-facing one. A message planned just before quiet hours and sent a little late
        (within two ticks, a minute at least) goes out; one sent later than that (after the
        daemon was down) is judged at the time it would go out, and a retry or a requeued one
        planned inside them waits."""
        payload: dict[str, Any] = row.payload
        if not self.quiet or payload.get("kind") not in ast.CUSTOMER_FACING:
            return self.now_us
        person = (payload.get("context") or {}).get("customer") or {}
        zone_name = str(person.get("timezone") or self.config.timezone)
        planned = int(row.next_attempt_us)
        slack = int(max(2 * self.config.tick_seconds, 60.0) * US)
        sending = planned if self.now_us - planned <= slack else self.now_us
        try:
            return quiet_until(sending, zone_name, self.quiet)
        except ConfigError:  # a zone this machine no longer knows: the shop's
            return quiet_until(sending, self.config.timezone, self.quiet)

    def _retry(
        self, row: Row[Any], attempts: int, error: str, hint: float | None, *, tried: bool = True
    ) -> Outcome:
        """A failure for now, of the row's own try or, not `tried`, of its channel on another
        message of the batch: tried again later, within `retry_for` of the row's first failure
        (a last try at its end) and `max_attempts`, or a dead letter."""
        since = self.now_us if row.failing_since_us is None else int(row.failing_since_us)
        deadline = since + int(self.config.retry_for_seconds * US)
        delay = backoff_us(attempts, self.config.retry_base_seconds, self.rng, hint)
        if not tried and row.failing_since_us is None and self.now_us >= deadline:
            # `retry_for: 0`, no retries: a row not tried would be given up at its channel's
            # failure on another message, untried. It has not failed: it waits for its try.
            later = self.now_us + delay
            log.info("outbox %s %s; next try at %s", row.id, error, iso(later))
            return Outcome(row.id, "pending", attempts, error, next_attempt_us=later)
        limit = self.config.max_attempts
        if self.now_us >= deadline or (limit is not None and attempts >= limit):
            tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
            error = f"{error} (given up after {tries} since {iso(since)})"
            log.warning("outbox %s dead: %s", row.id, error)
            return Outcome(row.id, "dead", attempts, error, failing_since_us=since)
        later = min(self.now_us + delay, deadline)
        if tried:
            log.info(
                "outbox %s: attempt %d failed, next try at %s: %s",
                row.id,
                attempts,
                iso(later),
                error,
            )
        else:
            log.info("outbox %s %s; next try at %s", row.id, error, iso(later))
        return Outcome(
            row.id, "pending", attempts, error, next_attempt_us=later, failing_since_us=since
        )

    def _render(self, row: Row[Any], contact: dict[str, Any] | None) -> RenderedMessage:
        payload: dict[str, Any] = row.payload
        context = payload.get("context") or {}
        if contact is not None:
            context = {**context, "customer": {**(context.get("customer") or {}), **contact}}
            payload = {**payload, "context": context}
        coupon = context.get("coupon")
        if coupon and coupon.get("expires") and "expires_local" not in coupon:
            # recorded before coupons held it (templates read it since)
            zone_name = (context.get("customer") or {}).get("timezone") or self.config.timezone
            expires = local_text(parse_moment(str(coupon["expires"]), "UTC"), str(zone_name))
            context = {**context, "coupon": {**coupon, "expires_local": expires}}
            payload = {**payload, "context": context}
        if "idempotency_key" not in payload:
            raise TemplateError("malformed outbox payload: no idempotency_key")
        subject: str | None
        body: str | None
        html = False
        if payload.get("kind") in TEMPLATED_KINDS:
            name = payload.get("template")
            if not name:
                raise TemplateError(f"a {payload.get('kind')} needs a template; none is named")
            scope = {
                "customer": context.get("customer"),
                "event": context.get("event"),
                "coupon": context.get("coupon"),
                "shop": self.shop,
            }
            rendered = self.templates.render(str(name), scope)
            subject, body, html = rendered.subject, rendered.body, rendered.html
            if not (subject or "").strip() and not body.strip():
                # A file saved empty, or a text all inside an `{% if %}` that did not hold:
                # sent, the customer would get a message saying nothing.
                raise TemplateError(
                    f"template {str(name)!r} gave no text for customer"
                    f" {payload.get('customer_id')}: a message saying nothing is not sent"
                    " (an empty file, or all of it inside an `{% if %}` that did not hold)"
                )
        else:
            task = context.get("task") or {}
            subject, body = str(task.get("title") or payload.get("kind")), None
        return RenderedMessage(
            outbox_id=row.id,
            channel=row.channel,
            payload=payload,
            subject=subject,
            body=body,
            html=html,
            sending_us=self.now_us,
        )


def _expired(payload: dict[str, Any], now_us: int) -> str | None:
    """Why a coupon's message is not sent: its coupon expired before it could go out (a retry
    after a long outage, a dead letter requeued weeks later)."""
    coupon = (payload.get("context") or {}).get("coupon") or {}
    expires = coupon.get("expires")
    if payload.get("kind") != "coupon" or not expires:
        return None
    if parse_moment(str(expires), "UTC") > now_us:
        return None
    return f"the coupon {coupon.get('code')} expired at {expires}, before it could be sent"


def last_tick_us(conn: Connection) -> int | None:
    """When a rule set last ticked, whichever it was (None before any tick). Each daemon
    dispatches the whole outbox, every rule set's messages, after its tick: until then the
    outbox was worked through, and downtime is the time since."""
    return conn.execute(select(func.max(rule_set_state.c.last_tick_us))).scalar()


def miss_after_downtime(
    conn: Connection, config: Config, down_since_us: int, now_us: int
) -> list[int]:
    """Mark `missed` every message to a customer still pending that could go out (its
    `next_attempt_us`) more than `config.late_us` before `now_us`, when the daemon comes back
    at `now_us` from downtime since `down_since_us` (the last tick of any rule set: `last_tick_
    us`) longer than that; returns their ids. Such a message waited through more than the grace
    period of downtime, whether it was due during it or was still in the backlog, or waiting
    for a retry, when the daemon stopped. Called by the first tick back, in its transaction (on
    PostgreSQL one daemon's, under the rule set's lock), after it queued what the cap decided
    (a message held for the end of quiet hours whose end came during the downtime is missed
    too). Nothing while a daemon runs, whichever rule set it runs: a backlog is never missed."""
    before_us = now_us - config.late_us
    if down_since_us >= before_us:
        return []
    query = (
        select(outbox.c.id, outbox.c.next_attempt_us)
        .join(actions, actions.c.id == outbox.c.action_id)
        .where(
            outbox.c.status == "pending",
            outbox.c.next_attempt_us < before_us,
            actions.c.kind.in_(sorted(ast.CUSTOMER_FACING)),
        )
        .order_by(outbox.c.id)
    )
    rows = list(conn.execute(query))
    grace = duration_text(config.grace_seconds)
    for some in chunks(rows):
        conn.execute(
            update(outbox)
            .where(outbox.c.id == bindparam("oid"), outbox.c.status == "pending")
            .values(status="missed", last_error=bindparam("why")),
            [
                {
                    "oid": oid,
                    "why": f"not sent: it was to go out at {iso(at_us)}, and the daemon was down"
                    f" (no tick) from {iso(down_since_us)} to {iso(now_us)}, longer than the"
                    f" grace period ({grace}) and a tick interval;"
                    f" `nudge outbox --retry {oid}` sends it all the same",
                }
                for oid, at_us in some
            ],
        )
    return [oid for oid, _ in rows]


def _unexpected(exc: Exception) -> str:
    return f"unexpected error: {type(exc).__name__}: {exc}"


# --- the dead letter list ------------------------------------------------------------------------


@dataclass(frozen=True)
class OutboxEntry:
    id: int
    action_id: int
    channel: str
    status: str
    attempts: int
    next_attempt_us: int
    last_error: str | None
    created_us: int
    sent_us: int | None
    kind: str | None
    customer_id: str | None
    template: str | None


def list_outbox(
    engine: Engine,
    statuses: Sequence[str],
    limit: int | None = None,
    customer: str | None = None,
) -> list[OutboxEntry]:
    """Outbox rows in any of `statuses`, in the order they were queued; only `customer`'s when
    given (through their actions, by the actions' customer index)."""
    unknown = sorted(set(statuses) - set(STATUSES))
    if unknown:
        raise OutboxError(
            f"unknown outbox status {', '.join(unknown)} (expected {', '.join(STATUSES)})"
        )
    query = select(outbox).where(outbox.c.status.in_(statuses)).order_by(outbox.c.id).limit(limit)
    if customer is not None:
        query = query.join(actions, actions.c.id == outbox.c.action_id).where(
            actions.c.customer_id == customer
        )
    with engine.connect() as conn:
        return [
            OutboxEntry(
                id=row.id,
                action_id=row.action_id,
                channel=row.channel,
                status=row.status,
                attempts=row.attempts,
                next_attempt_us=row.next_attempt_us,
                last_error=row.last_error,
                created_us=row.created_us,
                sent_us=row.sent_us,
                kind=row.payload.get("kind"),
                customer_id=row.payload.get("customer_id"),
                template=row.payload.get("template"),
            )
            for row in conn.execute(query)
        ]


def status_counts(engine: Engine) -> dict[str, int]:
    """How many outbox rows are in each status (every status present, 0 when none)."""
    with engine.connect() as conn:
        query = select(outbox.c.status, func.count()).group_by(outbox.c.status)
        found: dict[str, int] = {str(status): int(n) for status, n in conn.execute(query)}
    return {status: found.get(status, 0) for status in STATUSES}


def requeue(
    engine: Engine,
    ids: Sequence[int] | None,
    now_us: int,
    statuses: Sequence[str] = RETRYABLE,
) -> list[int]:
    """Put dead, failed or missed rows back to pending, due now, with their attempts reset.

    `ids` None requeues every row in `statuses` (dead and failed by default: a requeue of
    every row after downtime would send each message the grace period kept back, unless
    asked for); otherwise each id must name a dead, failed or missed one (sent late after
    all, as the operator decides).
    """
    unknown = sorted(set(statuses) - set(RETRYABLE_NAMED))
    if unknown:
        raise OutboxError(f"only dead, failed or missed messages can be retried, not {unknown}")
    with short_write(engine) as conn:
        query = select(outbox.c.id, outbox.c.status)
        if ids is None:
            found = {
                int(i): str(st)
                for i, st in conn.execute(query.where(outbox.c.status.in_(statuses)))
            }
        else:
            found = {
                int(i): str(st)
                for some in chunks(ids)
                for i, st in conn.execute(query.where(outbox.c.id.in_(some)))
            }
        if ids is not None:
            missing = [i for i in ids if i not in found]
            if missing:
                raise OutboxError(f"no outbox message with id {', '.join(map(str, missing))}")
            wrong = [f"{i} is {found[i]}" for i in ids if found[i] not in RETRYABLE_NAMED]
            if wrong:
                raise OutboxError(
                    f"only dead, failed or missed messages can be retried: {', '.join(wrong)}"
                )
        chosen = sorted(found)
        retryable = statuses if ids is None else RETRYABLE_NAMED
        for some in chunks(chosen):
            conn.execute(
                update(outbox)
                .where(outbox.c.id.in_(some), outbox.c.status.in_(retryable))
                .values(
                    status="pending",
                    attempts=0,
                    next_attempt_us=now_us,
                    last_error=None,
                    failing_since_us=None,
                )
            )
    return chosen
