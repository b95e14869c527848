"""The `webhook` channel: an HTTP POST of the message as JSON, signed, with an idempotency key.

Options: `url` (required), `secret_env` (name of the environment variable holding the signing
secret; when set, every request carries `X-Nudge-Signature: sha256=<hex HMAC-SHA256 of the
body>`), `timeout` (seconds, default 10).

Every request carries `Idempotency-Key`, the same on every retry of a message, so a receiver
can make at-least-once delivery exactly-once. A 2xx reply is delivered; 408, 429, 5xx, a
timeout or a connection error is temporary (a `Retry-After`, in seconds or as a date, is
honoured); any other reply is permanent, a redirect too (not followed: its message says where it
leads). A timeout, a connection error, 429, 502, 503 and 504 are the receiver's
failures rather than the message's: the batch's other messages for the channel wait with it.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import httpx

from engine.channels.base import (
    Channel,
    Options,
    PermanentFailure,
    RenderedMessage,
    TemporaryFailure,
)
from engine.timeutil import from_us

SIGNATURE_HEADER = "X-Nudge-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
CHANNEL_DOWN_STATUSES = (429, 502, 503, 504)


def signature(secret: str, body: bytes) -> str:
    """The `X-Nudge-Signature` value of `body`: `sha256=` and the hex HMAC-SHA256 digest."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


class SignedPoster:
    """POSTs JSON documents to one URL, signed, and turns the outcome into our failures."""

    def __init__(self, url: str, secret: str | None, timeout: float, channel: str = "") -> None:
        self.channel = channel
        self.url = url
        self.secret = secret
        self._client = httpx.Client(timeout=timeout, follow_redirects=False)

    def post(self, document: dict[str, Any], idempotency_key: str, sending_us: int) -> None:
        """POST `document`; `sending_us` is now, for a `Retry-After` given as a date."""
        body = json.dumps(document, ensure_ascii=False, sort_keys=True).encode("utf-8")
        headers = {"Content-Type": "application/json", IDEMPOTENCY_HEADER: idempotency_key}
        if self.secret is not None:
            headers[SIGNATURE_HEADER] = signature(self.secret, body)
        try:
            response = self._client.post(self.url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise TemporaryFailure(
                f"{self.url}: no reply in time ({type(exc).__name__})", channel_down=True
            ) from exc
        except httpx.TransportError as exc:
            raise TemporaryFailure(f"{self.url}: cannot connect: {exc}", channel_down=True) from exc
        status = response.status_code
        if 200 <= status < 300:
            return
        reply = f"{self.url}: HTTP {status} {_excerpt(response.text)}".rstrip()
        if status in (408, 429) or status >= 500:
            # Busy, unavailable, or a gateway without its server: the receiver's, not the
            # document's; other errors may be this request's alone.
            down = status in CHANNEL_DOWN_STATUSES
            hint = _retry_after(response, sending_us)
            raise TemporaryFailure(reply, retry_after=hint, channel_down=down)
        location = response.headers.get("Location")
        if response.is_redirect and location:
            # Not followed: a redirected POST may arrive as a GET, or not at all.
            moved = str(response.url.join(location))
            setting = f"channels.{self.channel}.url" if self.channel else "the channel's `url`"
            raise PermanentFailure(
                f"{reply}: the address sends requests on to {moved}; if that is the receiver's"
                f" address now, give it as {setting} in nudge.yaml, restart the daemon, then"
                " `nudge outbox --retry`"
            )
        raise PermanentFailure(reply)

    def close(self) -> None:
        self._client.close()


class WebhookChannel(Channel):
    def __init__(self, name: str, url: str, secret: str | None, timeout: float = 10.0) -> None:
        super().__init__(name)
        self._poster = SignedPoster(url, secret, timeout, name)

    @classmethod
    def from_options(
        cls,
        name: str,
        options: dict[str, Any],
        base_dir: Path,
        environ: Mapping[str, str] = os.environ,
    ) -> Self:
        read = Options(name, options, {"url", "secret_env", "timeout"})
        return cls(
            name,
            url=read.web_address("url"),
            secret=read.secret("secret_env", environ),
            timeout=read.seconds("timeout", 10.0),
        )

    def send(self, message: RenderedMessage) -> None:
        self._poster.post(message.document(), message.idempotency_key, message.sending_us)

    def close(self) -> None:
        self._poster.close()


def _retry_after(response: httpx.Response, sending_us: int) -> float | None:
    """The seconds a reply's `Retry-After` asks to wait: a number of seconds, or an HTTP date
    (`Wed, 25 Nov 2026 12:00:00 GMT`), counted from `sending_us`."""
    value = response.headers.get("Retry-After", "").strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    until = _http_date(value)
    if until is None:
        return None
    return max(0.0, (until - from_us(sending_us)).total_seconds())


def _http_date(value: str) -> dt.datetime | None:
    """An HTTP date as an aware datetime; None when `value` is not one."""
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _excerpt(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
