"""The dispatcher on SQLite and PostgreSQL, delivering through real servers on loopback."""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import random
import smtplib
import socket
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from loopback import HttpReceiver, SmtpReceiver, free_port
from sqlalchemy import Engine, select

from cli import main
from engine.channels import PermanentFailure, TemporaryFailure
from engine.channels.email import EmailChannel
from engine.config import Channel, Config
from engine.language import ast
from engine.language.parse import parse_text
from engine.outbox import dispatch as outbox_module
from engine.outbox.dispatch import (
    RETRY_CAP_SECONDS,
    OutboxError,
    backoff_us,
    dispatch_due,
    list_outbox,
    miss_after_downtime,
    requeue,
    status_counts,
)
from engine.storage.db import open_database
from engine.storage.tables import actions, customers, events, occurrences, outbox
from engine.timeutil import US, from_us, iso, local_text

T0 = 1_800_000_000 * US
CAP_US = int(RETRY_CAP_SECONDS * US)
_keys = itertools.count(1)


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "fit_check.txt").write_text(
        "Subject: Does it fit, {{ customer.name }}?\n\nHi {{ customer.name }} from {{ shop.name }}."
    )
    (folder / "birthday.txt").write_text(
        "Subject: Happy birthday\n\nYour code {{ coupon.code }} is worth {{ coupon.worth }}."
    )
    (folder / "broken.txt").write_text("Hi {{ customer.nickname }}")
    return folder


def config_for(tmp_path: Path, **channels: Channel) -> Config:
    return Config(
        channels={"file": Channel("file", "file", {}), **channels},
        base_dir=tmp_path,
        max_attempts=3,
        retry_base_seconds=10.0,
        shop={"name": "Acme"},
    )


def add_customer(engine: Engine, cid: str = "c1", accepts: bool = True, **fields: Any) -> None:
    row = {"id": cid, "name": "Li Wei", "email": f"{cid}@example.com", "phone": "+86138"}
    row.update(fields)
    with engine.begin() as conn:
        conn.execute(customers.insert().values(accepts_marketing=accepts, attributes={}, **row))


def add_event(engine: Engine, cid: str, kind: str, at_us: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            events.insert().values(
                key=f"e{next(_keys)}", customer_id=cid, type=kind, at_us=at_us, properties={}
            )
        )


def queue(
    engine: Engine,
    *,
    customer: str = "c1",
    kind: str = "followup",
    template: str | None = "fit_check",
    channel: str = "file",
    at_us: int = T0,
    marketing: bool = False,
    coupon: dict[str, Any] | None = None,
    task: dict[str, Any] | None = None,
    email: str | None = None,
    created_us: int | None = None,
) -> int:
    """Record an acted occurrence, its one action and its outbox row, as the tick does (at
    `created_us`, or else at its planned time)."""
    key = next(_keys)
    with engine.begin() as conn:
        occurrence_id = conn.execute(
            occurrences.insert().values(
                rule="r", customer_id=customer, occurrence_key=f"k{key}", due_us=at_us,
                status="acted", recorded_us=at_us,
            )
        ).inserted_primary_key[0]  # fmt: skip
        action_id = conn.execute(
            actions.insert().values(
                occurrence_id=occurrence_id, position=0, rule="r", rule_position=0,
                customer_id=customer, kind=kind, template=template, channel=channel,
                due_us=at_us, at_us=at_us, status="sent", detail={},
            )
        ).inserted_primary_key[0]  # fmt: skip
        person = {"id": customer, "name": "Li Wei", "email": email or f"{customer}@example.com"}
        person["phone"] = "+86138"
        payload = {
            "kind": kind,
            "marketing": marketing,
            "template": template,
            "rule": "r",
            "customer_id": customer,
            "due": iso(at_us),
            "at": iso(at_us),
            "idempotency_key": f"{action_id}-{key:08x}",
            "context": {"customer": person, "event": None, "coupon": coupon, "task": task},
        }
        return int(
            conn.execute(
                outbox.insert().values(
                    action_id=action_id, channel=channel, payload=payload, status="pending",
                    attempts=0, next_attempt_us=at_us,
                    created_us=at_us if created_us is None else created_us,
                )
            ).inserted_primary_key[0]
        )  # fmt: skip


def row(engine: Engine, outbox_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(outbox).where(outbox.c.id == outbox_id)).one()


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_due_rows_are_rendered_and_written_once(engine, tmp_path, templates) -> None:
    config = config_for(tmp_path)
    first = queue(engine)
    later = queue(engine, at_us=T0 + 60 * US)
    report = dispatch_due(engine, config, templates, T0)
    assert [(o.outbox_id, o.status) for o in report.outcomes] == [(first, "sent")]
    lines = jsonl(tmp_path / "outbox.jsonl")
    assert [line["subject"] for line in lines] == ["Does it fit, Li Wei?"]
    assert lines[0]["body"] == "Hi Li Wei from Acme."
    sent = row(engine, first)
    assert (sent.status, sent.attempts, sent.sent_us) == ("sent", 1, T0)
    assert row(engine, later).status == "pending"
    assert dispatch_due(engine, config, templates, T0 + 30 * US).outcomes == []
    assert dispatch_due(engine, config, templates, T0 + 60 * US).sent == 1
    assert len(jsonl(tmp_path / "outbox.jsonl")) == 2
    assert dispatch_due(engine, config, templates, T0 + 3600 * US).outcomes == []


def test_email_with_coupon_through_a_real_smtp_server(engine, tmp_path, templates) -> None:
    add_customer(engine)
    with SmtpReceiver() as smtp:
        options = {"host": "127.0.0.1", "port": smtp.port, "security": "none", "from": "s@a.test"}
        config = config_for(tmp_path, mail=Channel("mail", "email", options))
        coupon = {"code": "ABCD2345EF", "worth": 30, "unit": "money"}
        oid = queue(
            engine,
            kind="coupon",
            template="birthday",
            channel="mail",
            marketing=True,
            coupon=coupon,
        )
        assert dispatch_due(engine, config, templates, T0).sent == 1
    ((envelope, mail),) = smtp.messages
    assert envelope.rcpt_tos == ["c1@example.com"]
    assert mail["Subject"] == "Happy birthday"
    assert mail["Message-ID"] == f"<{row(engine, oid).payload['idempotency_key']}@a.test>"
    assert "Your code ABCD2345EF is worth 30." in mail.get_content()


def test_a_message_goes_to_the_address_the_shop_holds_when_it_is_sent(
    engine, tmp_path, templates
) -> None:
    """Recorded for a customer without an e-mail address, the message is a dead letter; once
    the address is imported, `--retry` sends it there. One waiting while the address changes
    goes to the new one. What it says is of its due time (the name it was recorded with)."""
    add_customer(engine, "c1", email=None)
    add_customer(engine, "c2")
    with SmtpReceiver() as smtp:
        options = {"host": "127.0.0.1", "port": smtp.port, "security": "none", "from": "s@a.test"}
        config = config_for(tmp_path, mail=Channel("mail", "email", options))
        missing = queue(engine, customer="c1", channel="mail", email="")
        moved = queue(engine, customer="c2", channel="mail")
        with engine.begin() as conn:
            conn.execute(
                customers.update()
                .where(customers.c.id == "c2")
                .values(email="new@example.com", name="Renamed")
            )
        dispatch_due(engine, config, templates, T0)
        dead = row(engine, missing)
        assert (dead.status, dead.last_error) == ("dead", "customer c1 has no email address")
        with engine.begin() as conn:
            conn.execute(
                customers.update().where(customers.c.id == "c1").values(email="c1@example.com")
            )
        assert requeue(engine, [missing], T0) == [missing]
        assert dispatch_due(engine, config, templates, T0).sent == 1
    assert [(e.rcpt_tos, m["To"]) for e, m in smtp.messages] == [
        (["new@example.com"], "Li Wei <new@example.com>"),
        (["c1@example.com"], "Li Wei <c1@example.com>"),
    ]
    assert row(engine, moved).status == "sent"


def test_a_coupon_recorded_before_coupons_held_their_local_expiry_still_renders(
    engine, tmp_path, templates
) -> None:
    """A row queued by an earlier version, or requeued from the dead letters, has no
    `expires_local`: it is worked out when the message is sent, in the shop's zone here."""
    (templates / "until.txt").write_text("Valid until {{ coupon.expires_local }}.")
    coupon = {"code": "ABCD2345EF", "worth": 30, "unit": "money", "expires": iso(T0 + 86400 * US)}
    oid = queue(engine, kind="coupon", template="until", coupon=coupon)
    assert dispatch_due(engine, config_for(tmp_path), templates, T0).sent == 1
    assert row(engine, oid).status == "sent"
    local = from_us(T0 + 86400 * US).strftime("%Y-%m-%d %H:%M")
    assert jsonl(tmp_path / "outbox.jsonl")[0]["body"] == f"Valid until {local}."


def test_a_coupon_message_is_not_sent_after_its_coupon_expired(engine, tmp_path, templates):
    """A dead letter requeued after the coupon's end, or a retry that outlasted it: cancelled,
    with the reason; one still valid goes out."""
    coupon = {"code": "ABCD2345EF", "worth": 30, "unit": "money", "expires": iso(T0 + 60 * US)}
    late = queue(engine, kind="coupon", template="birthday", coupon=coupon, at_us=T0 + 60 * US)
    valid = queue(engine, kind="coupon", template="birthday", coupon=coupon)
    report = dispatch_due(engine, config_for(tmp_path), templates, T0 + 60 * US)
    assert sorted((o.outbox_id, o.status) for o in report.outcomes) == [
        (late, "cancelled"),
        (valid, "cancelled"),
    ]
    assert row(engine, late).last_error == (
        f"the coupon ABCD2345EF expired at {iso(T0 + 60 * US)}, before it could be sent"
    )
    sent = queue(engine, kind="coupon", template="birthday", coupon=coupon, at_us=T0 + 30 * US)
    assert dispatch_due(engine, config_for(tmp_path), templates, T0 + 30 * US).sent == 1
    assert row(engine, sent).status == "sent"


def test_a_message_the_channel_fails_on_unexpectedly_holds_back_no_other(
    engine, tmp_path, templates, monkeypatch
) -> None:
    building = EmailChannel._build

    def faulty(self: EmailChannel, message: Any) -> Any:
        if message.customer.get("email", "").startswith("bob"):
            raise RuntimeError("a fault in the channel's code")
        return building(self, message)

    monkeypatch.setattr(EmailChannel, "_build", faulty)
    with SmtpReceiver() as smtp:
        options = {"host": "127.0.0.1", "port": smtp.port, "security": "none", "from": "s@a.test"}
        config = config_for(tmp_path, mail=Channel("mail", "email", options))
        ids = [queue(engine, channel="mail", customer=c, email=e) for c, e in BAD_ADDRESS_BATCH]
        report = dispatch_due(engine, config, templates, T0)
        assert [o.status for o in report.outcomes] == ["sent", "dead", "sent"]
        assert row(engine, ids[1]).last_error.startswith("unexpected error: ")
        # Recorded: nothing is sent again.
        assert dispatch_due(engine, config, templates, T0 + 3_600 * US).outcomes == []
    assert sorted(envelope.rcpt_tos[0] for envelope, _ in smtp.messages) == [
        "ann@example.com",
        "cy@example.com",
    ]


BAD_ADDRESS_BATCH = [
    ("c1", "ann@example.com"),
    ("c2", "bob@example.com"),
    ("c3", "cy@example.com"),
]


def test_channel_down_then_back_is_delivered_once(engine, tmp_path, templates) -> None:
    port = free_port()
    hook = Channel("hook", "webhook", {"url": f"http://127.0.0.1:{port}/hook", "timeout": 2})
    config = config_for(tmp_path, hook=hook)
    oid = queue(engine, channel="hook")
    rng = random.Random(5)
    report = dispatch_due(engine, config, templates, T0, rng=rng)
    assert report.summary() == "1 pending"
    waiting = row(engine, oid)
    assert (waiting.status, waiting.attempts) == ("pending", 1)
    assert "cannot connect" in waiting.last_error
    assert T0 <= waiting.next_attempt_us <= T0 + 10 * US
    with HttpReceiver(port=port) as receiver:
        receiver.script = [(503, {})]
        now = waiting.next_attempt_us
        assert dispatch_due(engine, config, templates, now, rng=rng).summary() == "1 pending"
        again = row(engine, oid)
        assert again.attempts == 2
        assert now <= again.next_attempt_us <= now + 20 * US
        assert dispatch_due(engine, config, templates, again.next_attempt_us).sent == 1
        assert dispatch_due(engine, config, templates, again.next_attempt_us + CAP_US).sent == 0
    keys = [request.headers["idempotency-key"] for request in receiver.requests]
    assert keys == [row(engine, oid).payload["idempotency_key"]] * 2
    assert row(engine, oid).status == "sent"


def test_a_night_s_outage_is_retried_until_retry_for_has_passed(engine, tmp_path, templates):
    # The defaults: no limit of tries, a day from the first failure. A webhook that nobody
    # answers all night is tried again, at most an hour apart, and delivered in the morning.
    port = free_port()
    hook = Channel("hook", "webhook", {"url": f"http://127.0.0.1:{port}/hook", "timeout": 2})
    config = Config(channels={"hook": hook}, base_dir=tmp_path, shop={"name": "Acme"})
    assert (config.max_attempts, config.retry_for_seconds) == (None, 86_400.0)
    night = queue(engine, channel="hook")
    rng = random.Random(7)
    now, tries = T0, []
    while now < T0 + 8 * 3_600 * US:
        assert dispatch_due(engine, config, templates, now, rng=rng).count("dead") == 0
        waiting = row(engine, night)
        assert (waiting.status, waiting.failing_since_us) == ("pending", T0)
        assert now < waiting.next_attempt_us <= now + CAP_US
        tries.append(waiting.attempts)
        now = waiting.next_attempt_us
    assert tries == list(range(1, len(tries) + 1)) and len(tries) > 8
    assert now - T0 > config.late_us  # planned more than grace ago: retried, not missed
    with HttpReceiver(port=port) as receiver:
        report = dispatch_due(engine, config, templates, now, rng=rng)
    assert [(o.outbox_id, o.status) for o in report.outcomes] == [(night, "sent")]
    assert len(receiver.requests) == 1


def test_a_message_failing_for_retry_for_is_a_dead_letter_after_a_last_try(
    engine, tmp_path, templates
) -> None:
    port = free_port()
    hook = Channel("hook", "webhook", {"url": f"http://127.0.0.1:{port}/hook", "timeout": 2})
    config = Config(
        channels={"hook": hook}, base_dir=tmp_path, retry_for_seconds=3 * 3_600, shop={"name": "A"}
    )
    oid = queue(engine, channel="hook")
    rng = random.Random(3)
    deadline = T0 + 3 * 3_600 * US
    now, attempts = T0, 0
    while row(engine, oid).status == "pending":
        dispatch_due(engine, config, templates, now, rng=rng)
        attempts += 1
        now = row(engine, oid).next_attempt_us
        assert now <= deadline
    gone = row(engine, oid)
    assert (gone.status, gone.attempts, gone.failing_since_us) == ("dead", attempts, T0)
    assert now == deadline  # the last try came at the end of retry_for, not before it
    assert gone.last_error.endswith(f"(given up after {attempts} attempts since {iso(T0)})"), (
        gone.last_error
    )
    # Requeued, it has a whole retry_for again from its next failure.
    later = deadline + 10 * 86_400 * US
    requeue(engine, [oid], later)
    assert row(engine, oid).failing_since_us is None
    dispatch_due(engine, config, templates, later, rng=rng)
    again = row(engine, oid)
    assert (again.status, again.attempts, again.failing_since_us) == ("pending", 1, later)


def test_a_channel_that_does_not_answer_is_waited_for_once_a_batch(
    engine, tmp_path, templates
) -> None:
    # A server that takes the connection and never replies: each message would wait out the
    # timeout. The first one does; the batch's others for the channel are not tried, and the
    # file channel's message still goes out.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/hook"
        config = config_for(tmp_path, hook=Channel("hook", "webhook", {"url": url, "timeout": 1}))
        ids = [queue(engine, channel="hook") for _ in range(3)]
        other = queue(engine)
        started = time.monotonic()
        report = dispatch_due(engine, config, templates, T0, rng=random.Random(1))
        took = time.monotonic() - started
    assert [(o.outbox_id, o.status) for o in report.outcomes] == [
        *((oid, "pending") for oid in ids),
        (other, "sent"),
    ]
    assert took < 2.5, took  # one timeout of 1 s, not three
    first, *untried = (row(engine, oid) for oid in ids)
    assert "no reply in time" in first.last_error
    for waiting in untried:
        assert waiting.attempts == 0 and waiting.next_attempt_us > T0  # not a try of its own
        assert waiting.last_error.startswith(
            "not tried: channel hook failed for now on another message: "
        )


def test_the_log_says_a_message_was_not_tried_not_that_attempt_0_failed(
    engine, tmp_path, templates, caplog
) -> None:
    """The batch's other messages for a channel that failed for now are not tried: the log
    said `attempt 0 failed, retrying`; it says that they were not tried, and when each is tried
    next, as it does of a try that failed."""
    port = free_port()
    hook = Channel("hook", "webhook", {"url": f"http://127.0.0.1:{port}/hook", "timeout": 2})
    first, other = queue(engine, channel="hook"), queue(engine, channel="hook")
    caplog.set_level(logging.INFO, logger="nudge.outbox")
    dispatch_due(engine, config_for(tmp_path, hook=hook), templates, T0, rng=random.Random(1))
    failed, untried = row(engine, first), row(engine, other)
    assert (failed.attempts, untried.attempts) == (1, 0)
    logged = [r.getMessage() for r in caplog.records]
    assert not [line for line in logged if "attempt 0" in line]
    assert (
        f"outbox {first}: attempt 1 failed, next try at {iso(failed.next_attempt_us)}:"
        f" {failed.last_error}"
    ) in logged
    assert untried.last_error.startswith("not tried: channel hook failed for now on another")
    assert f"outbox {other} {untried.last_error}; next try at {iso(untried.next_attempt_us)}" in (
        logged
    )


def test_with_retry_for_0_a_message_has_one_try_then_is_a_dead_letter(
    engine, tmp_path, templates
) -> None:
    """`retry_for: 0` retries nothing: a message whose try fails for now is a dead letter at
    once. Those of its channel the batch did not try (the channel failed on the first) were
    dead letters too, "given up after 0 attempts"; each now waits for a try of its own."""
    port = free_port()
    hook = Channel("hook", "webhook", {"url": f"http://127.0.0.1:{port}/hook", "timeout": 2})
    config = dataclasses.replace(
        config_for(tmp_path, hook=hook), max_attempts=None, retry_for_seconds=0.0
    )
    ids = [queue(engine, channel="hook") for _ in range(3)]
    report = dispatch_due(engine, config, templates, T0, rng=random.Random(1))
    assert [(o.outbox_id, o.status, o.attempts) for o in report.outcomes] == [
        (ids[0], "dead", 1),
        (ids[1], "pending", 0),
        (ids[2], "pending", 0),
    ]
    assert row(engine, ids[0]).last_error.endswith(f"(given up after 1 attempt since {iso(T0)})")
    waits = [row(engine, oid).next_attempt_us for oid in ids[1:]]
    assert all(T0 <= at <= T0 + 10 * US for at in waits)  # within `retry_base`
    report = dispatch_due(engine, config, templates, max(waits), rng=random.Random(1))
    assert sorted((o.status, o.attempts) for o in report.outcomes) == [("dead", 1), ("pending", 0)]
    (left,) = [o.outbox_id for o in report.outcomes if o.status == "pending"]
    with HttpReceiver(port=port) as receiver:
        report = dispatch_due(engine, config, templates, row(engine, left).next_attempt_us)
    assert [(o.outbox_id, o.status) for o in report.outcomes] == [(left, "sent")]
    assert len(receiver.requests) == 1


def test_a_message_its_channel_kept_from_a_try_for_all_of_retry_for_is_given_up(
    engine, tmp_path, templates
) -> None:
    """With a `retry_for` of a minute (not 0), a message not tried while its channel stayed
    down for all of it is a dead letter with the others, though it had no try of its own: it
    would otherwise be put off step after step, and go out days late once the channel is
    back."""
    port = free_port()
    hook = Channel("hook", "webhook", {"url": f"http://127.0.0.1:{port}/hook", "timeout": 2})
    config = dataclasses.replace(
        config_for(tmp_path, hook=hook), max_attempts=None, retry_for_seconds=60.0
    )
    ids = [queue(engine, channel="hook") for _ in range(2)]
    dispatch_due(engine, config, templates, T0, rng=random.Random(1))
    assert [(row(engine, oid).attempts, row(engine, oid).failing_since_us) for oid in ids] == [
        (1, T0),
        (0, T0),
    ]
    report = dispatch_due(engine, config, templates, T0 + 60 * US, rng=random.Random(1))
    assert sorted((o.status, o.attempts) for o in report.outcomes) == [("dead", 0), ("dead", 2)]


def test_a_message_failing_for_itself_holds_back_no_other_of_its_channel(
    engine, tmp_path, templates
) -> None:
    # An error reply to one request is that request's; "service unavailable" is the server's.
    with HttpReceiver() as receiver:
        config = config_for(tmp_path, hook=Channel("hook", "webhook", {"url": receiver.url}))
        ids = [queue(engine, channel="hook") for _ in range(3)]
        receiver.script = [(500, {})]
        report = dispatch_due(engine, config, templates, T0)
        assert [o.status for o in report.outcomes] == ["pending", "sent", "sent"]
        assert len(receiver.requests) == 3
        more = [queue(engine, channel="hook") for _ in range(2)]
        receiver.script = [(503, {"Retry-After": "120"})]
        report = dispatch_due(engine, config, templates, T0 + CAP_US)
        assert len(receiver.requests) == 4  # more[0], first due; the others not tried
    assert [(o.outbox_id, o.status) for o in report.outcomes] == [
        (more[0], "pending"),
        (more[1], "pending"),
        (ids[0], "pending"),
    ]
    for oid in (more[1], ids[0]):
        untried = row(engine, oid)
        assert untried.last_error.startswith("not tried: channel hook failed for now")
        assert untried.next_attempt_us >= T0 + CAP_US + 120 * US  # the hint holds


def test_mail_server_failures_tell_the_channel_s_from_the_message_s() -> None:
    from engine.channels.email import _failure

    def down(exc: Exception) -> bool:
        failure = _failure(exc)
        assert isinstance(failure, TemporaryFailure), failure
        return failure.channel_down

    assert down(ConnectionRefusedError(111, "Connection refused"))
    assert down(TimeoutError("timed out"))
    assert down(smtplib.SMTPServerDisconnected("Connection unexpectedly closed"))
    assert down(smtplib.SMTPResponseException(421, b"Service not available"))
    assert down(smtplib.SMTPAuthenticationError(535, b"Authentication failed"))
    assert down(smtplib.SMTPConnectError(554, b"No service"))
    assert down(smtplib.SMTPRecipientsRefused({"a@b.test": (421, b"Closing connection")}))
    assert not down(smtplib.SMTPResponseException(451, b"Try again later"))
    assert not down(smtplib.SMTPRecipientsRefused({"a@b.test": (450, b"Mailbox busy")}))
    assert isinstance(
        _failure(smtplib.SMTPRecipientsRefused({"a@b.test": (550, b"No such user")})),
        PermanentFailure,
    )


def test_failing_for_good_goes_dead_and_can_be_retried(engine, tmp_path, templates) -> None:
    with HttpReceiver() as receiver:
        config = config_for(tmp_path, hook=Channel("hook", "webhook", {"url": receiver.url}))
        oid = queue(engine, channel="hook")
        rejected = queue(engine, channel="hook")
        receiver.script = [(500, {}), (400, {}), (500, {}), (500, {})]
        now = T0
        for _ in range(3):
            dispatch_due(engine, config, templates, now)
            now += CAP_US
        dead = row(engine, oid)
        assert (dead.status, dead.attempts) == ("dead", 3)
        assert "HTTP 500" in dead.last_error
        refused = row(engine, rejected)
        assert (refused.status, refused.attempts) == ("dead", 1)
        assert "HTTP 400" in refused.last_error
        assert dispatch_due(engine, config, templates, now).outcomes == []
        assert [e.id for e in list_outbox(engine, ["dead"])] == [oid, rejected]
        assert status_counts(engine)["dead"] == 2

        assert requeue(engine, [oid], now) == [oid]
        assert (row(engine, oid).status, row(engine, oid).attempts) == ("pending", 0)
        assert dispatch_due(engine, config, templates, now).sent == 1
        with pytest.raises(OutboxError, match=f"only dead, failed or missed .*{oid} is sent"):
            requeue(engine, [oid], now)
        with pytest.raises(OutboxError, match="no outbox message with id 999"):
            requeue(engine, [999], now)
        assert requeue(engine, None, now) == [rejected]
        assert dispatch_due(engine, config, templates, now).sent == 1
    assert len(receiver.requests) == 6


def test_template_error_fails_that_message_only(engine, tmp_path, templates) -> None:
    config = config_for(tmp_path)
    good = queue(engine)
    bad = queue(engine, template="broken")
    missing = queue(engine, template="no_such")
    other = queue(engine)
    report = dispatch_due(engine, config, templates, T0)
    assert [o.status for o in report.outcomes] == ["sent", "failed", "failed", "sent"]
    assert row(engine, bad).status == "failed"
    assert "has no attribute 'nickname'" in row(engine, bad).last_error
    assert "no file no_such.*" in row(engine, missing).last_error
    assert len(jsonl(tmp_path / "outbox.jsonl")) == 2
    assert {row(engine, good).status, row(engine, other).status} == {"sent"}
    (templates / "broken.txt").write_text("Hi {{ customer.name }}")
    assert requeue(engine, None, T0) == [bad, missing]
    report = dispatch_due(engine, config, templates, T0)
    assert [(o.outbox_id, o.status) for o in report.outcomes] == [
        (bad, "sent"),
        (missing, "failed"),
    ]


def test_a_message_that_says_nothing_fails_instead_of_going_out(
    engine, tmp_path, templates
) -> None:
    """A template saved empty, or all of it inside an `{% if %}` that did not hold, went out as
    a message without a word to every customer it was for. A subject alone is a message."""
    (templates / "empty.txt").write_text("")
    (templates / "blank.html").write_text("{% if customer.name == 'Wang' %}Hi{% endif %}\n \n")
    (templates / "subject.txt").write_text("Subject: Your order has shipped\n")
    config = config_for(tmp_path)
    empty, blank, subject = (queue(engine, template=name) for name in ("empty", "blank", "subject"))
    report = dispatch_due(engine, config, templates, T0)
    assert [(o.outbox_id, o.status) for o in report.outcomes] == [
        (empty, "failed"),
        (blank, "failed"),
        (subject, "sent"),
    ]
    assert row(engine, blank).last_error == (
        "template 'blank' gave no text for customer c1: a message saying nothing is not sent"
        " (an empty file, or all of it inside an `{% if %}` that did not hold)"
    )
    assert [(line["subject"], line["body"]) for line in jsonl(tmp_path / "outbox.jsonl")] == [
        ("Your order has shipped", "")
    ]


def test_a_template_that_includes_itself_fails_that_message_only(
    engine, tmp_path, templates
) -> None:
    """It used to raise RecursionError out of `dispatch_due`: nothing was recorded, so every row
    of the batch stayed pending, tick after tick."""
    (templates / "rec.txt").write_text('Hi\n{% include "rec" %}')
    config = config_for(tmp_path)
    good = queue(engine)
    bad = queue(engine, template="rec")
    other = queue(engine)
    report = dispatch_due(engine, config, templates, T0)
    assert [(o.outbox_id, o.status) for o in report.outcomes] == [
        (good, "sent"),
        (bad, "failed"),
        (other, "sent"),
    ]
    failed = row(engine, bad)
    assert (failed.status, failed.attempts) == ("failed", 1)
    assert failed.last_error == "template 'rec': it includes itself, without end (rec → rec)"
    assert len(jsonl(tmp_path / "outbox.jsonl")) == 2
    assert dispatch_due(engine, config, templates, T0 + 60 * US).outcomes == []


def test_consent_is_checked_again_at_send_time(engine, tmp_path, templates) -> None:
    config = config_for(tmp_path)
    for cid in ("stays", "left", "came_back", "later", "opted_out", "tie"):
        add_customer(engine, cid, accepts=cid != "opted_out")
    add_event(engine, "left", "customer.unsubscribed", T0 - 60 * US)
    add_event(engine, "came_back", "customer.unsubscribed", T0 - 60 * US)
    add_event(engine, "came_back", "customer.subscribed", T0 - 30 * US)
    add_event(engine, "later", "customer.unsubscribed", T0 + 60 * US)
    # At one instant, the one imported last decides, as at the tick (`consent.consent_sql`).
    add_event(engine, "tie", "customer.subscribed", T0 - 60 * US)
    add_event(engine, "tie", "customer.unsubscribed", T0 - 60 * US)
    ids = {cid: queue(engine, customer=cid, marketing=True) for cid in
           ("stays", "left", "came_back", "later", "opted_out", "gone", "tie")}  # fmt: skip
    service = queue(engine, customer="left", marketing=False)
    report = dispatch_due(engine, config, templates, T0)
    statuses = {o.outbox_id: o.status for o in report.outcomes}
    assert statuses == {
        ids["stays"]: "sent",
        ids["left"]: "cancelled",
        ids["came_back"]: "sent",
        ids["later"]: "sent",
        ids["opted_out"]: "cancelled",
        ids["gone"]: "cancelled",
        ids["tie"]: "cancelled",
        service: "sent",
    }
    assert row(engine, ids["left"]).last_error.startswith("customer left unsubscribed at")
    assert "no longer accepts marketing" in row(engine, ids["opted_out"]).last_error
    assert [line["customer_id"] for line in jsonl(tmp_path / "outbox.jsonl")] == [
        "stays", "came_back", "later", "left"
    ]  # fmt: skip


def test_tasks_go_to_the_tasks_channel(engine, tmp_path, templates) -> None:
    config = config_for(tmp_path)
    task = {"title": "Call about the low rating", "assignee": "service"}
    queue(engine, kind="task", template=None, task=task)
    assert dispatch_due(engine, config, templates, T0).sent == 1
    (line,) = jsonl(tmp_path / "outbox.jsonl")
    assert (line["kind"], line["subject"], line["body"]) == ("task", task["title"], None)


def back_after_downtime(engine: Engine, config: Config, since_us: int, now_us: int) -> list[int]:
    """What the first tick back from downtime since `since_us` (its rule set's last tick) does
    to the outbox, at `now_us`: the ids of the messages it marked missed."""
    with engine.begin() as conn:
        return miss_after_downtime(conn, config, since_us, now_us)


def test_a_message_queued_before_downtime_beyond_grace_is_missed_not_sent(
    engine, tmp_path, templates
) -> None:
    """Queued by a tick, then the daemon was down for a day: the first tick back marks missed
    each message to a customer that could go out more than `grace`, a tick interval and a
    second ago, as an occurrence due then would be; one less late is sent. A task for the
    shop's people still goes out. Named, a missed message is requeued; `--retry` of all
    leaves it."""
    add_customer(engine)
    config = dataclasses.replace(config_for(tmp_path), tasks_channel="file")
    late_us = int((6 * 3_600 + 30 + 1) * US)  # the default grace and tick interval, a second
    assert config.late_us == late_us
    now = T0 + 86_400 * US
    followup = queue(engine)
    offer = queue(engine, kind="message", marketing=True)
    task = queue(engine, kind="task", template=None, task={"title": "Call Li Wei"})
    just = queue(engine, at_us=now - late_us)  # exactly grace and a tick ago: still sent
    assert back_after_downtime(engine, config, T0 + US, now) == [followup, offer]
    report = dispatch_due(engine, config, templates, now)
    assert sorted((o.outbox_id, o.status) for o in report.outcomes) == [
        (task, "sent"),
        (just, "sent"),
    ]
    missed = row(engine, followup)
    assert (missed.status, missed.attempts, missed.sent_us) == ("missed", 0, None)
    assert missed.last_error == (
        f"not sent: it was to go out at {iso(T0)}, and the daemon was down (no tick) from"
        f" {iso(T0 + US)} to {iso(now)}, longer than the grace period (6h) and a tick interval;"
        f" `nudge outbox --retry {followup}` sends it all the same"
    )
    assert [line["kind"] for line in jsonl(tmp_path / "outbox.jsonl")] == ["task", "followup"]
    assert status_counts(engine)["missed"] == 2
    assert [e.id for e in list_outbox(engine, ["missed"])] == [followup, offer]

    assert requeue(engine, None, now) == []  # every dead or failed one: none
    assert requeue(engine, [offer], now) == [offer]
    assert dispatch_due(engine, config, templates, now).sent == 1
    assert [row(engine, oid).status for oid in (followup, offer)] == ["missed", "sent"]


def test_a_backlog_is_never_missed_while_the_daemon_runs(engine, tmp_path, templates) -> None:
    """`grace: 0s`: a message queued an hour ago and still waiting (a slow server, a large
    campaign: each step's dispatch ran out of time) is sent while the ticks come at their
    interval, or a second late; after a minute without a tick it is missed, with what waited
    for a retry."""
    config = dataclasses.replace(config_for(tmp_path), grace_seconds=0.0)
    now = T0 + 3_600 * US
    backlog = queue(engine, at_us=T0)
    assert back_after_downtime(engine, config, now - 30 * US - 999_999, now) == []
    assert back_after_downtime(engine, config, now - 60 * US, now) == [backlog]


def test_grace_counts_from_a_retry_s_time_and_from_a_requeue(engine, tmp_path, templates) -> None:
    """A retry whose time passed more than grace ago (the daemon stopped before it, and came
    back two days later) is missed; a failed message requeued an hour ago, long after its
    planned time, goes out. (A retry while the daemon runs is never missed: a night's outage
    is delivered in the morning, `test_a_night_s_outage_is_retried_until_retry_for_has_
    passed`.)"""
    port = free_port()
    hook = Channel("hook", "webhook", {"url": f"http://127.0.0.1:{port}/hook", "timeout": 2})
    config = dataclasses.replace(config_for(tmp_path, hook=hook), max_attempts=None)
    waiting, broken = queue(engine, channel="hook"), queue(engine, template="broken")
    dispatch_due(engine, config, templates, T0, rng=random.Random(2))
    assert [row(engine, oid).status for oid in (waiting, broken)] == ["pending", "failed"]
    later = row(engine, waiting).next_attempt_us + 2 * 86_400 * US
    (templates / "broken.txt").write_text("Hi {{ customer.name }}")  # mended, then requeued
    requeue(engine, [broken], later - 3_600 * US)
    assert back_after_downtime(engine, config, T0 + US, later) == [waiting]
    with HttpReceiver(port=port) as receiver:
        report = dispatch_due(engine, config, templates, later)
    assert [(o.outbox_id, o.status) for o in report.outcomes] == [(broken, "sent")]
    assert receiver.requests == []
    assert row(engine, waiting).attempts == 1


def test_unknown_channel_is_retried_until_configured(engine, tmp_path, templates) -> None:
    oid = queue(engine, channel="sms_cn")
    dispatch_due(engine, config_for(tmp_path), templates, T0)
    assert row(engine, oid).last_error == (
        "no channel named 'sms_cn' is configured (mend nudge.yaml and restart the daemon, then"
        " `nudge outbox --retry`)"
    )
    assert row(engine, oid).status == "pending"


def test_stop_leaves_untried_rows_pending(engine, tmp_path, templates) -> None:
    oid = queue(engine)
    stop = threading.Event()
    stop.set()
    assert dispatch_due(engine, config_for(tmp_path), templates, T0, stop=stop).outcomes == []
    assert row(engine, oid).status == "pending"


def test_a_channel_that_fails_to_open_unexpectedly_holds_back_no_other(
    engine, tmp_path, templates, monkeypatch
) -> None:
    opened = outbox_module.open_channel

    def faulty(spec: Channel, base_dir: Path) -> Any:
        if spec.name == "broken":
            raise RuntimeError("a fault in the channel's code")
        return opened(spec, base_dir)

    monkeypatch.setattr(outbox_module, "open_channel", faulty)
    config = config_for(tmp_path, broken=Channel("broken", "file", {"path": "b.jsonl"}))
    ids = [queue(engine), queue(engine, channel="broken"), queue(engine)]
    report = dispatch_due(engine, config, templates, T0)
    assert [o.status for o in report.outcomes] == ["sent", "dead", "sent"]
    assert row(engine, ids[1]).last_error == (
        "unexpected error: RuntimeError: a fault in the channel's code"
    )


def test_a_dispatch_past_its_time_sends_one_and_leaves_the_rest_pending(
    engine, tmp_path, templates
) -> None:
    ids = [queue(engine) for _ in range(3)]
    report = dispatch_due(engine, config_for(tmp_path), templates, T0, until=time.monotonic())
    assert [o.status for o in report.outcomes] == ["sent"]  # one at least: it moves on
    assert [row(engine, oid).status for oid in ids] == ["sent", "pending", "pending"]


def test_a_message_due_in_its_customer_s_quiet_hours_waits_for_their_end(
    engine, tmp_path, templates
) -> None:
    # T0 is 08:00 UTC; the customer lives in Shanghai, where it is 16:00, in 15:00-18:00.
    (quiet,) = parse_text("quiet hours 15:00 to 18:00\n").statements
    assert isinstance(quiet, ast.QuietHours)
    add_customer(engine)
    message = queue(engine, customer="c1", kind="message", template="fit_check")
    task = queue(engine, customer="c1", kind="task", template=None, task={"title": "call"})
    # Planned at 14:59:30 and 14:58, just before quiet hours, sent at 15:00:20: the first a
    # little late, it goes out; the second, 140 s late (more than two ticks of 30 s: the daemon
    # was down), would reach the customer in quiet hours, and waits.
    fifteen = T0 - 3_600 * US
    little = queue(engine, customer="c1", kind="followup", at_us=fifteen - 30 * US)
    late = queue(engine, customer="c1", kind="followup", at_us=fifteen - 120 * US)
    with engine.begin() as conn:  # the customer's zone, as the ledger writes it
        for oid in (message, task, little, late):
            payload = dict(row(engine, oid).payload)
            person = {**payload["context"]["customer"], "timezone": "Asia/Shanghai"}
            payload["context"] = {**payload["context"], "customer": person}
            conn.execute(outbox.update().where(outbox.c.id == oid).values(payload=payload))
    config = config_for(tmp_path)
    report = dispatch_due(engine, config, templates, fifteen + 20 * US, quiet=(quiet,))
    assert sorted((o.outbox_id, o.status) for o in report.outcomes) == [
        (little, "sent"),
        (late, "pending"),
    ]
    report = dispatch_due(engine, config, templates, T0, quiet=(quiet,))
    assert [(o.outbox_id, o.status) for o in report.outcomes] == [
        (message, "pending"),
        (task, "sent"),  # not customer-facing
    ]
    for oid in (message, late):
        waiting = row(engine, oid)
        assert (waiting.attempts, waiting.next_attempt_us) == (0, T0 + 2 * 3_600 * US)
    assert dispatch_due(engine, config, templates, T0 + 3_600 * US, quiet=(quiet,)).outcomes == []
    later = dispatch_due(engine, config, templates, T0 + 2 * 3_600 * US, quiet=(quiet,))
    assert sorted((o.outbox_id, o.status) for o in later.outcomes) == [
        (message, "sent"),
        (late, "sent"),
    ]


def test_backoff_is_exponential_with_full_jitter_and_capped() -> None:
    rng = random.Random(1)
    for attempts in range(1, 15):
        ceiling = min(RETRY_CAP_SECONDS, 30 * 2 ** (attempts - 1)) * US
        delays = [backoff_us(attempts, 30, rng, None) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8
    assert backoff_us(1, 30, rng, 120.0) >= 120 * US
    assert backoff_us(1, 30, rng, 10 * RETRY_CAP_SECONDS) == CAP_US


class _NoWait(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return a


def test_a_retry_is_never_due_at_the_moment_of_its_failure(engine, tmp_path, templates) -> None:
    """A jitter of zero (and a `Retry-After: 0`) still puts a retry after the try that failed:
    dispatches that share `due_by_us` (a daemon's step, batch after batch) claim it once."""
    assert backoff_us(1, 30, _NoWait(), None) == 1
    assert backoff_us(1, 30, _NoWait(), 0.0) == 1
    hook = Channel("hook", "webhook", {"url": f"http://127.0.0.1:{free_port()}/hook"})
    config = config_for(tmp_path, hook=hook)
    oid = queue(engine, channel="hook")
    first = dispatch_due(engine, config, templates, T0, rng=_NoWait(), due_by_us=T0)
    assert first.summary() == "1 pending"
    assert row(engine, oid).next_attempt_us == T0 + 1
    again = dispatch_due(engine, config, templates, T0 + US, rng=_NoWait(), due_by_us=T0)
    assert again.outcomes == []
    assert dispatch_due(engine, config, templates, T0 + US, rng=_NoWait()).summary() == "1 pending"


def test_two_dispatchers_on_postgresql_never_send_a_row_twice(db_url, tmp_path, templates) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite runs one daemon")
    setup = open_database(db_url)
    with HttpReceiver(delay=0.01) as receiver:
        config = config_for(tmp_path, hook=Channel("hook", "webhook", {"url": receiver.url}))
        ids = [queue(setup, channel="hook") for _ in range(60)]
        errors: list[BaseException] = []

        def daemon() -> None:
            engine = open_database(db_url)
            try:
                while dispatch_due(engine, config, templates, T0, limit=7).outcomes:
                    pass
            except BaseException as exc:
                errors.append(exc)
            finally:
                engine.dispose()

        threads = [threading.Thread(target=daemon) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert errors == []
    counts = Counter(request.headers["idempotency-key"] for request in receiver.requests)
    assert len(counts) == 60
    assert set(counts.values()) == {1}
    assert {row(setup, oid).status for oid in ids} == {"sent"}
    setup.dispose()


def nudge(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the `nudge` command as the console script does: exit code, stdout, stderr."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_outbox_command_lists_and_retries_dead_letters(db_url, tmp_path, templates, capsys):
    engine = open_database(db_url)
    oid = queue(engine, template="broken")
    pending = queue(engine, at_us=T0 + CAP_US)
    dispatch_due(engine, config_for(tmp_path), templates, T0)
    engine.dispose()

    code, out, _ = nudge(capsys, "outbox", "--dead", "--db", db_url)
    assert code == 0
    (header, line, summary) = out.splitlines()
    assert header.split()[:3] == ["ID", "STATUS", "CHANNEL"]
    assert line.split()[:2] == [str(oid), "failed"]
    assert "customer has no attribute 'nickname'" in line
    assert summary == "1 pending, 0 sent, 1 failed, 0 dead, 0 cancelled, 0 missed"

    code, out, _ = nudge(capsys, "outbox", "--db", db_url)
    assert code == 0
    assert out.splitlines()[1].split()[:2] == [str(pending), "pending"]

    code, _, err = nudge(capsys, "outbox", "--retry", str(pending), "--db", db_url)
    assert code == 1
    assert err == (
        f"Error: only dead, failed or missed messages can be retried: {pending} is pending\n"
    )
    code, _, err = nudge(capsys, "outbox", str(oid), "--db", db_url)
    assert code == 2
    assert "message IDs are only taken with --retry" in err

    code, out, _ = nudge(capsys, "outbox", "--retry", str(oid), "--db", db_url)
    assert (code, out) == (0, f"Requeued 1 message: {oid}.\n")
    engine = open_database(db_url)
    assert row(engine, oid).status == "pending"
    engine.dispose()
    code, _, err = nudge(capsys, "outbox", "--retry", "--customer", "c1", "--db", db_url)
    assert code == 2 and "--retry takes their IDs" in err


def test_retry_with_dead_or_missed_requeues_what_that_flag_lists(
    db_url, tmp_path, templates, capsys
) -> None:
    """`nudge outbox --retry --missed` requeued the dead and failed messages, as `--retry`
    alone does, and not one missed message, silently. It requeues every missed one now;
    `--retry --dead` the dead and failed ones (what `--dead` lists); both flags, all three;
    IDs with either flag are refused."""
    engine = open_database(db_url)
    broken, missed = queue(engine, template="broken"), queue(engine)
    dispatch_due(engine, config_for(tmp_path), templates, T0, limit=1)
    assert back_after_downtime(engine, config_for(tmp_path), T0, T0 + 86_400 * US) == [missed]
    engine.dispose()

    code, out, _ = nudge(capsys, "outbox", "--retry", "--missed", "--db", db_url)
    assert (code, out) == (0, f"Requeued 1 message: {missed}.\n")
    code, out, _ = nudge(capsys, "outbox", "--retry", "--dead", "--db", db_url)
    assert (code, out) == (0, f"Requeued 1 message: {broken}.\n")
    code, _, err = nudge(capsys, "outbox", "--retry", "--missed", str(broken), "--db", db_url)
    assert code == 2 and "--retry takes message IDs, or --dead or --missed" in err
    engine = open_database(db_url)
    assert [row(engine, oid).status for oid in (broken, missed)] == ["pending", "pending"]
    with engine.begin() as conn:
        conn.execute(outbox.update().values(status="missed"))
    engine.dispose()
    code, out, _ = nudge(capsys, "outbox", "--retry", "--dead", "--missed", "--db", db_url)
    assert (code, out) == (0, f"Requeued 2 messages: {broken}, {missed}.\n")


def test_outbox_command_lists_one_customer_s_messages_in_every_status(
    db_url, tmp_path, templates, capsys
) -> None:
    engine = open_database(db_url)
    sent, broken = queue(engine), queue(engine, template="broken")
    other, later = queue(engine, customer="c2"), queue(engine, at_us=T0 + CAP_US)
    dispatch_due(engine, config_for(tmp_path), templates, T0)
    engine.dispose()

    code, out, _ = nudge(capsys, "outbox", "--customer", "c1", "--db", db_url)
    assert code == 0
    header, *lines = out.splitlines()
    assert header.split() == [
        "ID", "STATUS", "CHANNEL", "KIND", "CUSTOMER", "TEMPLATE", "TRIES", "QUEUED", "SENT",
        "LAST", "ERROR",
    ]  # fmt: skip
    assert [line.split()[:2] for line in lines] == [
        [str(sent), "sent"],
        [str(broken), "failed"],
        [str(later), "pending"],
    ]
    shown = local_text(T0, "UTC")  # shop time, to the minute
    assert lines[0].split()[7:11] == [*shown.split(), *shown.split()]  # queued, sent
    assert "customer has no attribute 'nickname'" in lines[1]
    assert str(other) not in {line.split()[0] for line in lines}

    code, out, _ = nudge(capsys, "outbox", "--customer", "c1", "--dead", "--db", db_url)
    assert [line.split()[:2] for line in out.splitlines()[1:]] == [[str(broken), "failed"]]
    code, out, _ = nudge(capsys, "outbox", "--customer", "nobody", "--db", db_url)
    assert (code, out) == (0, "No message for customer nobody.\n")


def test_a_template_that_took_too_long_fails_its_other_messages_at_once(
    engine, tmp_path, templates, monkeypatch
) -> None:
    """A broadcast with a template that renders without end held the outbox back for its 10
    seconds a message (about a day for 10,000 customers), batch after batch. Once three
    messages of it in a row have taken that long, the others fail at once, in that batch and
    the next."""
    monkeypatch.setattr("engine.outbox.templates.RENDER_SECONDS", 0.2)
    (templates / "slow.txt").write_text(
        "Hi\n{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    )
    config = config_for(tmp_path)
    slow = [queue(engine, template="slow") for _ in range(5)]
    good = queue(engine)
    report = dispatch_due(engine, config, templates, T0, limit=4)
    assert [(o.outbox_id, o.status) for o in report.outcomes] == [
        (slow[0], "failed"),
        (slow[1], "failed"),
        (slow[2], "failed"),
        (slow[3], "failed"),
    ]
    report = dispatch_due(engine, config, templates, T0)
    assert [(o.outbox_id, o.status) for o in report.outcomes] == [
        (slow[4], "failed"),
        (good, "sent"),
    ]
    for tried in slow[:3]:
        assert "slow.txt:2: not allowed in a template: rendering took over 0.2 seconds" in str(
            row(engine, tried).last_error
        )
    for later in slow[3:]:
        assert row(engine, later).last_error == (
            "template 'slow': not rendered, as it took too long for the 3 messages before and"
            " its files have not changed since (slow.txt:2: rendering took over 0.2 seconds (a"
            " loop inside a loop, or a macro calling itself, repeats too often); a message is"
            " rendered in a moment); fix it, then `nudge outbox --retry` sends its messages"
            " again"
        )
    (templates / "slow.txt").write_text("Hi {{ customer.name }}")
    assert requeue(engine, None, T0) == slow
    assert dispatch_due(engine, config, templates, T0).sent == 5
