"""The exception hierarchy. Every error a user can cause derives from `NudgeError`.

The CLI prints a `NudgeError` as plain words and exits 1; anything else is a bug in Nudge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from engine.language.source import Span

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Diagnostic:
    """One problem found in user input: plain data, rendered by `engine.render`."""

    severity: Severity
    code: str
    message: str
    span: Span | None = None
    label: str | None = None
    help: str | None = None


class NudgeError(Exception):
    """Base of every error caused by user input or the environment, never by a bug."""


class RuleError(NudgeError):
    """A rule set that does not parse or check. Carries every diagnostic found."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = tuple(diagnostics)
        first = next((d for d in self.diagnostics if d.severity == "error"), None)
        where = f"{first.span}: " if first and first.span else ""
        super().__init__(f"{where}{first.message}" if first else "rule set has errors")


class ConfigError(NudgeError):
    """A configuration file or option that cannot be used.

    `setting` is the path of keys the error is about (`("channels", "email", "port")`);
    `unknown` says the last key is not a setting at all. The loader of the file puts the error
    where the file holds that setting (`located`): its `span`."""

    def __init__(
        self,
        message: str,
        setting: tuple[str, ...] = (),
        *,
        code: str = "E602",
        unknown: bool = False,
        help: str | None = None,
        span: Span | None = None,
    ) -> None:
        self.message = message
        self.setting = setting
        self.code = code
        self.unknown = unknown
        self.help = help
        self.span = span
        text = f"{span}: {message}" if span else message
        super().__init__(f"{text} ({help})" if help else text)

    def located(self, span: Span | None, file: str) -> ConfigError:
        """This error at `span` in the configuration file `file` (named alone when the
        setting is not in it)."""
        if self.span is not None:
            return self
        message = self.message if span else f"{file}: {self.message}"
        return ConfigError(
            message, self.setting, code=self.code, unknown=self.unknown, help=self.help, span=span
        )

    def diagnostic(self, severity: Severity = "error") -> Diagnostic:
        """The error as a diagnostic (`nudge check` shows a warning of what only stops the
        daemon on the machine it runs on: `W` for `E`)."""
        code = self.code if severity == "error" else "W" + self.code[1:]
        return Diagnostic(severity, code, self.message, self.span, help=self.help)


class ConfigErrors(NudgeError):
    """Several settings that cannot be used, found at once (every channel's, at a daemon's
    start), each a ConfigError."""

    def __init__(self, errors: Sequence[ConfigError]) -> None:
        self.errors = tuple(errors)
        super().__init__("\n".join(str(error) for error in self.errors))


class DataError(NudgeError):
    """Input data (customers, events) that cannot be used."""


class DatabaseError(NudgeError):
    """The database cannot be reached or is in a state Nudge cannot work with."""
