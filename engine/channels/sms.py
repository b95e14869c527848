"""The `sms` channel: a webhook shaped for an SMS provider (or a gateway in front of one).

Options: `url` (required), `secret_env` and `timeout`, as for `webhook`. Each message is a POST
of `{"to": PHONE, "text": BODY}`, signed and with an `Idempotency-Key` header like a webhook's.
A customer without a phone number is a permanent failure.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.channels.base import Channel, Options, PermanentFailure, RenderedMessage
from engine.channels.webhook import SignedPoster


class SmsChannel(Channel):
    def __init__(self, name: str, url: str, secret: str | None, timeout: float = 10.0) -> None:
        super().__init__(name)
        self._poster = SignedPoster(url, secret, timeout)

    @classmethod
    def from_options(
        cls,
        name: str,
        options: dict[str, Any],
        base_dir: Path,
        environ: Mapping[str, str] = os.environ,
    ) -> SmsChannel:
        read = Options(name, options, {"url", "secret_env", "timeout"})
        return cls(
            name,
            url=read.text("url"),
            secret=read.secret("secret_env", environ),
            timeout=read.number("timeout", 10.0),
        )

    def send(self, message: RenderedMessage) -> None:
        phone = message.customer.get("phone")
        if not phone:
            raise PermanentFailure(f"customer {message.customer_id} has no phone number")
        if message.body is None:
            raise PermanentFailure("a text message needs a template; this message has none")
        self._poster.post({"to": str(phone), "text": message.body}, message.idempotency_key)

    def close(self) -> None:
        self._poster.close()
