"""Channels against real servers on loopback: aiosmtpd for email, an HTTP server for webhooks."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest
from loopback import HttpReceiver, SmtpReceiver, free_port, self_signed_certificate

from engine.channels import (
    PermanentFailure,
    RenderedMessage,
    TemporaryFailure,
    check_channels,
    open_channel,
)
from engine.config import Channel as ChannelConfig
from engine.config import Config, load_config
from engine.errors import ConfigError
from engine.timeutil import to_us

SENDING_US = to_us(dt.datetime(2026, 9, 21, 14, 13, 20, tzinfo=dt.UTC))


def message(
    outbox_id: int = 1,
    *,
    subject: str | None = "Does it fit?",
    body: str | None = "Hi Li Wei, how are the shoes?",
    html: bool = False,
    **customer: Any,
) -> RenderedMessage:
    person = {"id": "c1", "name": "Li Wei", "email": "li@example.com", "phone": "+8613800000000"}
    person.update(customer)
    payload = {
        "kind": "followup",
        "marketing": False,
        "template": "fit_check",
        "rule": "fit check",
        "customer_id": "c1",
        "due": "2026-11-04T02:00:00Z",
        "at": "2026-11-04T02:00:00Z",
        "idempotency_key": f"{outbox_id}-0123abcd",
        "context": {"customer": person, "event": None, "coupon": None, "task": None},
    }
    return RenderedMessage(outbox_id, "main", payload, subject, body, html, SENDING_US)


def channel(kind: str, tmp_path: Path, environ: dict[str, str] | None = None, **options: Any):
    return open_channel(ChannelConfig("main", kind, options), tmp_path, environ or {})


# --- file ------------------------------------------------------------------------------------


def test_file_channel_appends_json_lines(tmp_path: Path) -> None:
    with channel("file", tmp_path, path="out/sent.jsonl") as file:
        file.send(message(1))
        file.send(message(2, subject="Hello 你好"))
    with channel("file", tmp_path, path="out/sent.jsonl") as file:
        file.send(message(3))
    lines = [json.loads(line) for line in (tmp_path / "out/sent.jsonl").read_text().splitlines()]
    assert [line["idempotency_key"] for line in lines] == ["1-0123abcd", "2-0123abcd", "3-0123abcd"]
    assert lines[1]["subject"] == "Hello 你好"
    assert lines[0]["body"] == "Hi Li Wei, how are the shoes?"
    assert lines[0]["payload"]["rule"] == "fit check"
    assert lines[0]["sent"] == "2026-09-21T14:13:20Z"


def test_file_channel_that_cannot_write_is_temporary(tmp_path: Path) -> None:
    (tmp_path / "blocked").write_text("a file where a folder should be")
    with (
        channel("file", tmp_path, path="blocked/out.jsonl") as file,
        pytest.raises(TemporaryFailure, match="cannot write"),
    ):
        file.send(message())


# --- email -----------------------------------------------------------------------------------


def test_email_delivered_to_a_real_smtp_server(tmp_path: Path) -> None:
    with SmtpReceiver() as smtp:
        options = {"host": "127.0.0.1", "port": smtp.port, "security": "none"}
        with channel("email", tmp_path, **options, **{"from": "Acme <shop@acme.test>"}) as email:
            email.send(message(7, subject="Does it fit? 合适吗"))
            email.send(message(8, email="wang@example.com", name="Wang"))
            email.send(message(9, email="sean@example.com", name="O'Brien, Seán"))
    assert len(smtp.messages) == 3
    envelope, mail = smtp.messages[0]
    assert envelope.mail_from == "shop@acme.test"
    assert envelope.rcpt_tos == ["li@example.com"]
    assert mail["Subject"] == "Does it fit? 合适吗"
    assert mail["To"] == "Li Wei <li@example.com>"
    assert mail["Message-ID"] == "<7-0123abcd@acme.test>"
    assert mail["Date"] == "Mon, 21 Sep 2026 14:13:20 +0000"
    assert mail.get_content().replace("\r\n", "\n") == "Hi Li Wei, how are the shoes?\n"
    assert smtp.messages[1][0].rcpt_tos == ["wang@example.com"]
    # one recipient, a name with a comma and a letter beyond ASCII
    assert [str(a) for a in smtp.messages[2][1]["To"].addresses] == [
        '"O\'Brien, Seán" <sean@example.com>'
    ]


def test_email_html_body(tmp_path: Path) -> None:
    with SmtpReceiver() as smtp:
        options = {"host": "127.0.0.1", "port": smtp.port, "security": "none", "from": "s@a.test"}
        with channel("email", tmp_path, **options) as email:
            email.send(message(body="<p>Hi</p>", html=True, subject=None))
    mail = smtp.messages[0][1]
    assert mail.get_content_type() == "text/html"
    assert "Subject" not in mail


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_email_over_tls_with_login_from_environment(tmp_path: Path, security: str) -> None:
    certificate = self_signed_certificate(tmp_path)
    login = ("shop", "s3cret")
    environ = {"SMTP_USER": "shop", "SMTP_PASSWORD": "s3cret"}
    with SmtpReceiver(security, certificate, login) as smtp:
        options = {
            "host": "127.0.0.1",
            "port": smtp.port,
            "security": security,
            "from": "shop@acme.test",
            "username_env": "SMTP_USER",
            "password_env": "SMTP_PASSWORD",
            "ca_file": "cert.pem",
        }
        with channel("email", tmp_path, environ, **options) as email:
            email.send(message())
        assert len(smtp.messages) == 1
        # A refused login is the channel's failure, not the message's: retried (every message
        # of the batch would meet it), until the credentials are mended.
        wrong = dict(environ, SMTP_PASSWORD="guess")
        with (
            channel("email", tmp_path, wrong, **options) as email,
            pytest.raises(TemporaryFailure, match="refused the login: 535") as refused,
        ):
            email.send(message())
        assert refused.value.channel_down


def test_email_refuses_an_untrusted_certificate(tmp_path: Path) -> None:
    with SmtpReceiver("starttls", self_signed_certificate(tmp_path)) as smtp:
        options = {"host": "127.0.0.1", "port": smtp.port, "from": "shop@acme.test"}
        with channel("email", tmp_path, **options) as email, pytest.raises(TemporaryFailure):
            email.send(message())
    assert smtp.messages == []


def test_email_failures(tmp_path: Path) -> None:
    with SmtpReceiver() as smtp:
        options = {"host": "127.0.0.1", "port": smtp.port, "security": "none", "from": "s@a.test"}
        with channel("email", tmp_path, **options) as email:
            with pytest.raises(PermanentFailure, match="customer c1 has no email address"):
                email.send(message(email=None))
            for broken in ("a@", "a@[1.2.3"):
                with pytest.raises(PermanentFailure, match="cannot be sent to"):
                    email.send(message(email=broken))
            smtp.reply_with("451 4.3.0 try again later")
            with pytest.raises(TemporaryFailure, match="451"):
                email.send(message())
            smtp.reply_with("550 5.1.1 no such mailbox")
            with pytest.raises(PermanentFailure, match="550"):
                email.send(message())
            smtp.reply_with("250 OK")
            email.send(message())
    assert len(smtp.messages) == 1
    down = dict(options, port=free_port())
    with (
        channel("email", tmp_path, **down) as email,
        pytest.raises(TemporaryFailure, match="reach"),
    ):
        email.send(message())


def test_a_mail_server_without_starttls_or_a_login_is_the_channel_s_failure(
    tmp_path: Path,
) -> None:
    # Each message was a dead letter, "mail server does not support what is needed", to be
    # retried by hand once the settings were mended; now they wait, as for a refused login.
    with SmtpReceiver() as smtp:
        plain = {"host": "127.0.0.1", "port": smtp.port, "from": "s@a.test"}
        login = {**plain, "security": "none", "username_env": "U", "password_env": "P"}
        failures = []
        for options, environ in ((plain, {}), (login, {"U": "u", "P": "p"})):
            with (
                channel("email", tmp_path, environ, **options) as email,
                pytest.raises(TemporaryFailure) as caught,
            ):
                email.send(message())
            assert caught.value.channel_down
            failures.append(str(caught.value))
    assert failures == [
        "mail server: STARTTLS extension not supported by server. (the server offers no"
        " STARTTLS on this port: give the port your provider gives for it (587), or `security:"
        " tls` with its TLS port (465); `security: none` only for a relay on this machine, in"
        " nudge.yaml, and restart the daemon)",
        "mail server: SMTP AUTH extension not supported by server. (the server takes no login"
        " on this port: give the port your provider gives for a login (587), or leave out"
        " `username_env` and `password_env`, in nudge.yaml, and restart the daemon)",
    ]
    assert smtp.messages == []


def test_an_address_with_letters_beyond_ascii_goes_out_as_far_as_the_server_takes_it(
    tmp_path: Path,
) -> None:
    """A domain with letters beyond ASCII needed SMTPUTF8 of the server, or the message was a
    dead letter: it is written in IDNA's ASCII form, which every server takes, as is the shop's
    own in `from`. Letters beyond ASCII before the `@` still need SMTPUTF8: sent where the
    server offers it, else a dead letter saying so, the connection kept for the others."""
    sender = {"security": "none", "from": "小店 <shop@商店.cn>"}
    for utf8 in (False, True):
        with (
            SmtpReceiver(utf8=utf8) as smtp,
            channel("email", tmp_path, host="127.0.0.1", port=smtp.port, **sender) as email,
        ):
            email.send(message(1, email="user@exämple.de"))
            email.send(message(2, email="anna@straße.de", name="Anna"))
            refused = None
            try:
                email.send(message(3, email="jörg@exämple.de", name="Jörg, O'Brien"))
            except PermanentFailure as failed:
                refused = str(failed)
            email.send(message(4))
        assert refused == (
            None
            if utf8
            else "customer c1's email address 'jörg@exämple.de' has letters beyond ASCII before"
            " the `@`, which this mail server does not take (it offers no SMTPUTF8); mend it in"
            " the shop's data if the customer has another, or send through a mail server that"
            " takes such addresses, then `nudge outbox --retry 3`"
        )
        sent = [(envelope.mail_from, envelope.rcpt_tos) for envelope, _ in smtp.messages]
        shop = "shop@xn--czrs0t.cn"
        assert sent == [
            (shop, ["user@xn--exmple-cua.de"]),
            (shop, ["anna@xn--strae-oqa.de"]),  # IDNA 2008: not strasse.de
            *([(shop, ["jörg@xn--exmple-cua.de"])] if utf8 else []),
            (shop, ["li@example.com"]),
        ]
        envelope, mail = smtp.messages[0]
        assert (mail["To"], mail["Message-ID"]) == (
            "Li Wei <user@xn--exmple-cua.de>",
            "<1-0123abcd@xn--czrs0t.cn>",
        )
        assert "SMTPUTF8" not in envelope.mail_options
        if utf8:  # one recipient, its name as written
            envelope, _ = smtp.messages[2]
            assert "SMTPUTF8" in envelope.mail_options
            assert isinstance(envelope.content, bytes)
            assert 'To: "Jörg, O\'Brien" <jörg@xn--exmple-cua.de>\r\n'.encode() in envelope.content


def test_a_from_address_with_letters_beyond_ascii_before_the_at_is_refused(tmp_path) -> None:
    options = {"host": "h", "from": "Shop <商店@example.cn>"}
    with pytest.raises(ConfigError, match="`from` has letters beyond ASCII before the `@`"):
        channel("email", tmp_path, **options)
    with pytest.raises(ConfigError, match=r"does not hold an email address mail can be sent from"):
        channel("email", tmp_path, host="h", **{"from": "shop@-商店.cn"})


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("not-an-address", "it lacks an `@` with a domain after it"),
        ("a@", "it lacks an `@` with a domain after it"),
        ("li wei@example.com", "it has a blank in it"),
        ("li@example.com, wei@example.com", "it holds more than one address: keep one"),
        ("li@example.com;wei@example.com", "it holds more than one address: keep one"),
        ("Li Wei <li@example.com>", "it holds more than the address: keep `name@example.com`"),
        ("li@-exämple.de", "its domain after the `@` is not one mail can be sent to (Label must"),
        ("李@exämple..de", "its domain after the `@` is not one mail can be sent to (Empty"),
        ("李 伟@example.com", "it has a blank in it"),
        ("李..伟@example.com", "it is not written as an address is (`name@example.com`)"),
        ("张\u3000三@qq.com", "it has a blank in it"),  # a full-width one, typed in Chinese
        ("li@qq.com，wei@qq.com", "it holds more than one address: keep one"),
        ("李@qq.com、伟@qq.com", "it holds more than one address: keep one"),
        (
            "li\u200bwei@qq.com",
            "it holds '\\u200b' (U+200B ZERO WIDTH SPACE), which is no letter and no part of an",
        ),
        ("li＠qq.com", "it lacks an `@` with a domain after it"),
        ("li..wei@example.com", "it is not written as an address is (`name@example.com`)"),
        ("li@[1.2.3", "it is not written as an address is (`name@example.com`)"),
    ],
)
def test_an_address_that_cannot_be_sent_to_is_named_with_what_to_do(
    tmp_path: Path, address: str, why: str
) -> None:
    # It said "cannot build the email: local-part is not dot-atom, quoted-string, or
    # obs-local-part", Python's words, naming neither the customer nor the address.
    options = {"host": "127.0.0.1", "port": free_port(), "security": "none", "from": "s@a.test"}
    with channel("email", tmp_path, **options) as email, pytest.raises(PermanentFailure) as failed:
        email.send(message(7, email=address))
    said = str(failed.value)
    assert said.startswith(f"customer c1's email address {address!r} cannot be sent to: {why}")
    assert said.endswith(
        "; mend it in the shop's data and import the customer again, then `nudge outbox --retry 7`"
    )


# --- webhook and sms -------------------------------------------------------------------------


def test_webhook_posts_signed_json_with_idempotency_key(tmp_path: Path) -> None:
    with HttpReceiver() as receiver:
        environ = {"HOOK_SECRET": "k3y"}
        with channel(
            "webhook", tmp_path, environ, url=receiver.url, secret_env="HOOK_SECRET"
        ) as hook:
            hook.send(message(5))
    (request,) = receiver.requests
    assert request.path == "/hook"
    assert request.headers["idempotency-key"] == "5-0123abcd"
    assert request.headers["content-type"] == "application/json"
    assert request.signed_by("k3y")
    assert not request.signed_by("other")
    document = request.json()
    assert document["subject"] == "Does it fit?"
    assert document["payload"]["context"]["customer"]["id"] == "c1"


@pytest.mark.parametrize(
    ("status", "headers", "failure", "retry_after"),
    [
        (500, {}, TemporaryFailure, None),
        (503, {}, TemporaryFailure, None),
        (429, {"Retry-After": "7"}, TemporaryFailure, 7.0),
        (400, {}, PermanentFailure, None),
        (404, {}, PermanentFailure, None),
        (301, {"Location": "/elsewhere"}, PermanentFailure, None),
    ],
)
def test_webhook_reply_decides_the_failure(
    tmp_path: Path, status: int, headers: dict[str, str], failure: type, retry_after: float | None
) -> None:
    with HttpReceiver() as receiver:
        receiver.script = [(status, headers)]
        with channel("webhook", tmp_path, url=receiver.url) as hook:
            with pytest.raises(failure, match=f"HTTP {status}") as caught:
                hook.send(message())
            hook.send(message())
    assert len(receiver.requests) == 2
    assert "x-nudge-signature" not in receiver.requests[0].headers
    if failure is TemporaryFailure:
        assert caught.value.retry_after == retry_after


@pytest.mark.parametrize(
    ("headers", "retry_after"),
    [
        ({"Retry-After": "Mon, 21 Sep 2026 14:15:00 GMT"}, 100.0),  # from the message's sending
        ({"Retry-After": "Mon, 21 Sep 2026 22:15:00 +0800"}, 100.0),
        ({"Retry-After": "Mon, 21 Sep 2026 14:00:00 GMT"}, 0.0),  # already past
        ({"Retry-After": "soon"}, None),
    ],
)
def test_a_retry_after_given_as_a_date_is_honoured(
    tmp_path: Path, headers: dict[str, str], retry_after: float | None
) -> None:
    # HTTP allows either seconds or a date; a date was taken for no hint, and the message was
    # tried again within `retry_base` of a receiver that had asked for minutes.
    with HttpReceiver() as receiver:
        receiver.script = [(503, headers)]
        with (
            channel("webhook", tmp_path, url=receiver.url) as hook,
            pytest.raises(TemporaryFailure) as caught,
        ):
            hook.send(message())
    assert caught.value.retry_after == retry_after


def test_a_webhook_that_redirects_says_where_to(tmp_path: Path) -> None:
    # It said "HTTP 301" alone: the receiver had moved (to https://, a new path), and every
    # message was a dead letter with nothing to say what to change.
    with HttpReceiver() as receiver:
        receiver.script = [(301, {"Location": "/v2/hook"}), (308, {"Location": "https://x.test/"})]
        with channel("webhook", tmp_path, url=receiver.url) as hook:
            failures = []
            for _ in range(2):
                with pytest.raises(PermanentFailure) as caught:
                    hook.send(message())
                failures.append(str(caught.value))
    moved = receiver.url.replace("/hook", "/v2/hook")
    assert failures == [
        f"{receiver.url}: HTTP {status} ok: the address sends requests on to {to}; if that is"
        " the receiver's address now, give it as channels.main.url in nudge.yaml, restart the"
        " daemon, then `nudge outbox --retry`"
        for status, to in ((301, moved), (308, "https://x.test/"))
    ]
    assert [request.path for request in receiver.requests] == ["/hook", "/hook"]


def test_webhook_down_or_slow_is_temporary(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"
    with (
        channel("webhook", tmp_path, url=url) as hook,
        pytest.raises(TemporaryFailure, match="connect"),
    ):
        hook.send(message())
    with (
        HttpReceiver(delay=0.5) as receiver,
        channel("webhook", tmp_path, url=receiver.url, timeout=0.1) as hook,
        pytest.raises(TemporaryFailure, match="no reply in time"),
    ):
        hook.send(message())


def test_sms_posts_phone_and_text(tmp_path: Path) -> None:
    with (
        HttpReceiver() as receiver,
        channel("sms", tmp_path, {"SMS": "x"}, url=receiver.url, secret_env="SMS") as sms,
    ):
        sms.send(message(3))
        with pytest.raises(PermanentFailure, match="customer c1 has no phone number"):
            sms.send(message(4, phone=""))
        # A template of a subject line alone sent an empty text.
        with pytest.raises(PermanentFailure) as empty:
            sms.send(message(5, subject="Your order has shipped", body="\n"))
    assert str(empty.value) == (
        "template 'fit_check' gives a text message nothing to say: its text is all in its"
        " `Subject:` line, which a text message does not send (write the text after the"
        " subject line, then `nudge outbox --retry 5`)"
    )
    (request,) = receiver.requests
    assert request.json() == {"to": "+8613800000000", "text": "Hi Li Wei, how are the shoes?"}
    assert request.headers["idempotency-key"] == "3-0123abcd"
    assert request.signed_by("x")


# --- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "options", "expected"),
    [
        ("webhook", {}, r"channels\.main: `url` is required"),
        ("sms", {"url": "http://x", "secret": "inline"}, r"unknown setting\(s\) secret"),
        ("webhook", {"url": "http://x", "secret_env": "NOPE"}, r"variable NOPE .* is not set"),
        ("email", {"host": "h", "from": "nobody"}, r"`from` must hold an email address"),
        ("email", {"host": "h", "from": "a@b", "security": "ssl"}, r"one of starttls, tls, none"),
        ("email", {"host": "h", "from": "a@b", "username_env": "U"}, r"variable U"),
        ("webhook", {"url": "http://x", "timeout": -1}, r"`timeout` must be a positive number"),
    ],
)
def test_bad_settings_are_config_errors(
    tmp_path: Path, kind: str, options: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected):
        channel(kind, tmp_path, **options)


def test_check_channels_checks_every_configured_channel(tmp_path: Path) -> None:
    good = ChannelConfig("file", "file", {})
    bad = ChannelConfig("alerts", "webhook", {"url": "http://x", "secret_env": "HOOK"})
    config = Config(channels={"file": good, "alerts": bad}, base_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"channels\.alerts"):
        check_channels(config, environ={})
    check_channels(config, environ={"HOOK": "s"})


@pytest.mark.parametrize(
    ("settings", "column", "expected"),
    [
        ("channels: {x: [1, 2]}", 15, r"channels\.x: expected settings such as `type: email`"),
        ("channels: {x: hello}", 15, r"channels\.x: expected settings such as `type: email`"),
        ("max_attempts: abc", 15, r"max_attempts: expected a whole number of 1 or more"),
        ("max_attempts: 0", 15, r"max_attempts: expected a whole number of 1 or more"),
        ("tick_seconds: ²s", 15, r"tick_seconds: expected seconds or a duration"),
        ("grace: -5", 8, r"grace: expected seconds or a duration"),
        ("grace: .inf", 8, r"grace: expected seconds or a duration"),
    ],
)
def test_bad_settings_in_the_file_are_named_with_the_file_and_place(
    tmp_path: Path, settings: str, column: int, expected: str
) -> None:
    path = tmp_path / "nudge.yaml"
    path.write_text(settings + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(f"{path}:1:{column}: ") + expected):
        load_config(path)


def test_durations_in_the_file_are_seconds(tmp_path: Path) -> None:
    path = tmp_path / "nudge.yaml"
    path.write_text("tick_seconds: 5 m\ngrace: 2h\nretry_base: 1.5\n", encoding="utf-8")
    config = load_config(path)
    assert (config.tick_seconds, config.grace_seconds, config.retry_base_seconds) == (
        300.0,
        7200.0,
        1.5,
    )
