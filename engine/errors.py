"""The exception hierarchy. Every error a user can cause derives from `NudgeError`.

The CLI prints a `NudgeError` as plain words and exits 1; anything else is a bug in Nudge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from engine.source import Span

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
    """A configuration file or option that cannot be used."""


class DataError(NudgeError):
    """Input data (customers, events) that cannot be used."""


class DatabaseError(NudgeError):
    """The database cannot be reached or is in a state Nudge cannot work with."""
