"""Delivery channels: the configured ways a rendered message leaves Nudge.

`open_channel` builds the channel a configuration names, checking its settings (a ConfigError
says which one is wrong); `check_channels` does that for every configured channel without
connecting anywhere, so that a daemon can refuse a bad configuration at start, and
`channel_diagnostics` gives every channel's error for `nudge check`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from engine.channels.base import (
    UNSET_SECRET,
    Channel,
    DeliveryFailure,
    PermanentFailure,
    RenderedMessage,
    TemporaryFailure,
)
from engine.channels.email import EmailChannel
from engine.channels.file import FileChannel
from engine.channels.sms import SmsChannel
from engine.channels.webhook import WebhookChannel
from engine.config import Channel as ChannelConfig
from engine.config import Config
from engine.errors import ConfigError, Diagnostic

__all__ = [
    "Channel",
    "DeliveryFailure",
    "PermanentFailure",
    "RenderedMessage",
    "TemporaryFailure",
    "channel_diagnostics",
    "channel_errors",
    "check_channels",
    "open_channel",
]


class _Factory(Protocol):
    def __call__(
        self, name: str, options: dict[str, Any], base_dir: Path, environ: Mapping[str, str]
    ) -> Channel: ...


FACTORIES: dict[str, _Factory] = {
    "file": FileChannel.from_options,
    "email": EmailChannel.from_options,
    "webhook": WebhookChannel.from_options,
    "sms": SmsChannel.from_options,
}


def open_channel(
    spec: ChannelConfig, base_dir: Path, environ: Mapping[str, str] = os.environ
) -> Channel:
    """The channel `spec` describes, ready to send; nothing is connected until the first send."""
    return FACTORIES[spec.type](spec.name, dict(spec.options), base_dir, environ)


def check_channels(config: Config, environ: Mapping[str, str] = os.environ) -> None:
    """Raise ConfigError for the first configured channel whose settings cannot be used."""
    for error in channel_errors(config, environ):
        raise error


def channel_errors(config: Config, environ: Mapping[str, str] = os.environ) -> list[ConfigError]:
    """The errors of each configured channel whose settings cannot be used, at the setting in
    the configuration file: its first, and when that is a secret's variable that is not set
    (`UNSET_SECRET`), what follows with the variable taken as set."""
    errors = []
    for spec in config.channels.values():
        given = dict(environ)
        while True:
            try:
                open_channel(spec, config.base_dir, given).close()
            except ConfigError as exc:
                errors.append(config.locate(exc))
                if exc.code != UNSET_SECRET:
                    break
                given[str(spec.options[exc.setting[-1]])] = "set"
            else:
                break
    return errors


def channel_diagnostics(
    config: Config, environ: Mapping[str, str] = os.environ
) -> list[Diagnostic]:
    """`channel_errors` as `nudge check` shows them. A secret's environment variable that is not
    set is a warning: it may well be set only where the daemon runs."""
    return [
        error.diagnostic("warning" if error.code == UNSET_SECRET else "error")
        for error in channel_errors(config, environ)
    ]
