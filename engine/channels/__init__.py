"""Delivery channels: the configured ways a rendered message leaves Nudge.

`open_channel` builds the channel a configuration names, checking its settings (a ConfigError
says which one is wrong); `check_channels` does that for every configured channel without
connecting anywhere, so that a daemon can refuse a bad configuration at start (naming every
setting at fault; there a file channel's file is also made, to find a folder it may not write
to), and
`channel_diagnostics` gives every channel's error for `nudge check`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from engine.channels.base import (
    UNSET_SECRET,
    UNWRITABLE,
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
from engine.errors import ConfigError, ConfigErrors, Diagnostic

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


def check_channels(
    config: Config, environ: Mapping[str, str] = os.environ, *, prepare: bool = False
) -> None:
    """Raise the ConfigError of a configured channel's setting that cannot be used, or
    ConfigErrors holding every such error when there are several. With `prepare`, at a
    daemon's start, each channel is also prepared (`Channel.prepare`: a file channel's file is
    made)."""
    errors = channel_errors(config, environ, prepare=prepare)
    if len(errors) > 1:
        raise ConfigErrors(errors)
    if errors:
        raise errors[0]


def channel_errors(
    config: Config, environ: Mapping[str, str] = os.environ, *, prepare: bool = False
) -> list[ConfigError]:
    """The errors of each configured channel whose settings cannot be used, at the setting in
    the configuration file. After an error the channel is checked again without the setting at
    fault (a secret's variable taken as set, an unknown or bad setting left out), until it
    passes or a setting it needs is missing; an error about a setting already reported (a bad
    `url`, then `url` missing) is not repeated, nor a second list of unknown settings. With
    `prepare`, a channel without such errors is then prepared (`Channel.prepare`)."""
    errors = []
    for spec in config.channels.values():
        given, options = dict(environ), dict(spec.options)
        reported: set[tuple[str, ...]] = set()
        while True:
            try:
                with open_channel(replace(spec, options=options), config.base_dir, given) as made:
                    if prepare and not reported:  # what it was given, as it was given
                        made.prepare()
            except ConfigError as exc:
                key = exc.setting[-1]
                said = exc.setting if not exc.unknown else ("unknown",)
                if said not in reported:
                    errors.append(config.locate(exc))
                    reported.add(said)
                if exc.code == UNWRITABLE:
                    break
                if exc.code == UNSET_SECRET:
                    given[str(options[key])] = "set"
                elif key in options:
                    del options[key]
                else:
                    break
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
