"""Source files and spans: where in the merchant's file a thing was written."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, order=True)
class Span:
    """A region of a source file. Lines and columns are 1-based; `end_column` is exclusive."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class SourceFile:
    """One rule file as read from disk. `name` is how diagnostics refer to it."""

    name: str
    text: str

    @classmethod
    def read(cls, path: Path, name: str | None = None) -> SourceFile:
        return cls(name=name or str(path), text=path.read_text(encoding="utf-8"))


SAVE_AS_UTF8 = "save the file as UTF-8 (most editors offer it under “Save as” or “Encoding”)"


@dataclass(frozen=True)
class NotUtf8:
    """Where a file's bytes stop being UTF-8 text: the first bad byte's span and value, and the
    text with such bytes replaced, to show its line."""

    span: Span
    byte: int
    text: str

    @classmethod
    def at(cls, name: str, data: bytes, start: int) -> NotUtf8:
        """The file `name` holding `data`, whose byte `start` cannot start a character."""
        before = data[:start].decode("utf-8", errors="replace")
        line = before.count("\n") + 1
        column = len(before) - (before.rfind("\n") + 1) + 1
        span = Span(name, line, column, line, column + 1)
        return cls(span, data[start], data.decode("utf-8", errors="replace"))
