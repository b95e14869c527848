"""What every channel shares: the message it is given, the failures it may raise, its lifecycle.

A channel sends one `RenderedMessage` per `send` call and reports a failure by raising
`TemporaryFailure` (worth retrying later: the server is down, busy or slow) or
`PermanentFailure` (retrying cannot help: no address, a request the receiver rejects). The
dispatcher opens a channel for a batch of messages and closes it after the batch; `close` makes
durable what `send` wrote (a file channel syncs its file) and may itself raise
`TemporaryFailure`, which then applies to every message of the batch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import httpx

from engine.config import setting_seconds, shown_value
from engine.errors import ConfigError, NudgeError
from engine.language.suggest import did_you_mean
from engine.timeutil import iso


class DeliveryFailure(NudgeError):
    """A message that a channel could not deliver."""


class TemporaryFailure(DeliveryFailure):
    """Try again later. `retry_after` (seconds) is the receiver's own hint, when it gave one.

    `channel_down` says that the failure is the channel's, not the message's: its server cannot
    be reached, does not answer in time, or says it is busy or unavailable. The batch's other
    messages for the channel would meet it too (each waiting out a timeout), so they are not
    tried. A failure that may be this message's alone (a recipient refused for now, an error
    reply to this request) leaves it False, so that it holds back no other message.
    """

    def __init__(
        self, message: str, retry_after: float | None = None, *, channel_down: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.channel_down = channel_down


class PermanentFailure(DeliveryFailure):
    """Trying again cannot help."""


@dataclass(frozen=True)
class RenderedMessage:
    """One outbox row, ready to send: its payload (the hand-off contract) and rendered text.

    `body` is None for a task or gift, which has no template: its `subject` is the task title.
    """

    outbox_id: int
    channel: str
    payload: dict[str, Any]
    subject: str | None
    body: str | None
    html: bool
    sending_us: int

    @property
    def idempotency_key(self) -> str:
        return str(self.payload["idempotency_key"])

    @property
    def customer(self) -> dict[str, Any]:
        return dict((self.payload.get("context") or {}).get("customer") or {})

    @property
    def customer_id(self) -> str:
        return str(self.payload.get("customer_id", ""))

    def document(self) -> dict[str, Any]:
        """The JSON form the file and webhook channels deliver."""
        return {
            "idempotency_key": self.idempotency_key,
            "channel": self.channel,
            "kind": self.payload.get("kind"),
            "rule": self.payload.get("rule"),
            "customer_id": self.customer_id,
            "subject": self.subject,
            "body": self.body,
            "content_type": "text/html" if self.html else "text/plain",
            "sent": iso(self.sending_us),
            "payload": self.payload,
        }


class Channel(ABC):
    """A configured way of delivering messages. Opened per batch, closed after it."""

    def __init__(self, name: str) -> None:
        self.name = name

    @abstractmethod
    def send(self, message: RenderedMessage) -> None:
        """Deliver `message` or raise TemporaryFailure / PermanentFailure."""

    def close(self) -> None:  # noqa: B027 - most channels hold nothing to release
        """Make what was sent durable and release connections. Safe to call twice."""

    def prepare(self) -> None:  # noqa: B027 - most channels need nothing on this machine
        """At a daemon's start, what only writing shows: raise a ConfigError with the code
        `UNWRITABLE`, at the setting, when the channel cannot send from this machine (a file
        channel's file that cannot be written)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# The code of a secret's environment variable that is not set: the daemon cannot start without
# it, while `nudge check` (perhaps on another machine than the daemon's) only warns.
UNSET_SECRET = "E603"
# The code of a channel that cannot send from the daemon's machine (`Channel.prepare`).
UNWRITABLE = "E605"


class Options:
    """A channel's settings from `nudge.yaml`, read with located, plain-words errors."""

    def __init__(self, channel: str, options: dict[str, Any], known: set[str]) -> None:
        self.channel = channel
        self.options = options
        unknown = sorted(str(key) for key in set(options) - known)
        if unknown:
            raise ConfigError(
                f"channels.{channel}: unknown setting(s) {', '.join(unknown)}"
                f" (expected some of {', '.join(sorted(known))})",
                self.setting(unknown[0]),
                code="E601",
                unknown=True,
                help=did_you_mean(unknown[0], known),
            )

    def setting(self, key: str) -> tuple[str, ...]:
        """The path of keys to this channel's setting `key` in `nudge.yaml`."""
        return ("channels", self.channel, key)

    def text(self, key: str, default: str | None = None) -> str:
        value = self.options.get(key, default)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise ConfigError(f"channels.{self.channel}: `{key}` is required", self.setting(key))
        return str(value)

    def web_address(self, key: str) -> str:
        """An `http://` or `https://` address with a host."""
        value = self.text(key)
        try:
            url: httpx.URL | None = httpx.URL(value)
        except httpx.InvalidURL:
            url = None
        if (
            url is None
            or url.scheme not in ("http", "https")
            or not url.host
            or "%" in url.host  # a blank or other character no host name holds
            or not 1 <= (url.port or 80) <= 65535
        ):
            raise ConfigError(
                f"channels.{self.channel}: `{key}` must be an http:// or https:// address;"
                f" got {value!r}",
                self.setting(key),
            )
        return value

    def optional_text(self, key: str) -> str | None:
        value = self.options.get(key)
        return None if value is None else str(value)

    def seconds(self, key: str, default: float) -> float:
        """A positive number of seconds, or a duration as the other settings take it (`10s`,
        `1m`; a number in quotes too)."""
        given = self.options.get(key, default)
        try:
            value, help = setting_seconds(key, given), None
        except ConfigError as exc:
            value, help = 0.0, exc.help  # `10 secnds`: did you mean `seconds`?
        if value <= 0:
            raise ConfigError(
                f"channels.{self.channel}: `{key}` must be a positive number of seconds or a"
                f" duration such as 10s or 1m; got {shown_value(given)}",
                self.setting(key),
                help=help,
            )
        return value

    def port(self, key: str, default: int) -> int:
        """A TCP port: a whole number from 1 to 65535 (in quotes too: `"587"`)."""
        value = self.options.get(key, default)
        if isinstance(value, str) and value.strip().isdecimal() and value.strip().isascii():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            raise ConfigError(
                f"channels.{self.channel}: `{key}` must be a port, a whole number from 1 to 65535;"
                f" got {shown_value(value)}",
                self.setting(key),
            )
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = str(self.options.get(key, default))
        if value not in choices:
            raise ConfigError(
                f"channels.{self.channel}: `{key}` must be one of {', '.join(choices)};"
                f" got {value!r}",
                self.setting(key),
            )
        return value

    def secret(self, key: str, environ: Mapping[str, str]) -> str | None:
        """The value of the environment variable that option `key` names (None when unset)."""
        variable = self.optional_text(key)
        if variable is None:
            return None
        value = environ.get(variable)
        if not value:
            raise ConfigError(
                f"channels.{self.channel}: environment variable {variable} (named by `{key}`)"
                " is not set",
                self.setting(key),
                code=UNSET_SECRET,
            )
        return value
