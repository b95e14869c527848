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
