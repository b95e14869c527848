"""Diagnostics → text for people (rustc/ruff style) or JSON for tools.

```
error[E203]: unknown event `order.recieved`
 --> rules/aftercare.rules:3:8
  |
3 |   when order.recieved + 3d
  |        ^^^^^^^^^^^^^^ no event of this name is known
help: did you mean `order.received`?
```

The source line comes from the text the parser saw (`remember_source`), else from the file the
span names, else it is left out.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Mapping
from pathlib import Path

from engine.errors import Diagnostic
from engine.language.source import SourceFile, Span

_SOURCES: dict[str, str] = {}
_TAB = "    "


def remember_source(source: SourceFile) -> None:
    """Keep `source`'s text so that diagnostics about it can show its lines later."""
    _SOURCES[source.name] = source.text


def sort_key(diagnostic: Diagnostic) -> tuple:
    span = diagnostic.span
    where = (span.file, span.line, span.column) if span else ("", 0, 0)
    return (*where, diagnostic.severity != "error", diagnostic.code)


def render_text(diagnostics: Iterable[Diagnostic], sources: Mapping[str, str] | None = None) -> str:
    """Every diagnostic as a block of text, separated by blank lines, with a summary line."""
    items = sorted(diagnostics, key=sort_key)
    blocks = [_render_one(d, sources or {}) for d in items]
    errors = sum(d.severity == "error" for d in items)
    warnings = len(items) - errors
    if items:
        blocks.append(_summary(errors, warnings))
    return "\n\n".join(blocks)


def render_json(diagnostics: Iterable[Diagnostic]) -> str:
    """A JSON array of objects with severity, code, message, location, label and help."""
    return json.dumps(
        [to_dict(d) for d in sorted(diagnostics, key=sort_key)], ensure_ascii=False, indent=2
    )


def to_dict(diagnostic: Diagnostic) -> dict[str, object]:
    span = diagnostic.span
    return {
        "severity": diagnostic.severity,
        "code": diagnostic.code,
        "message": diagnostic.message,
        "file": span.file if span else None,
        "line": span.line if span else None,
        "column": span.column if span else None,
        "end_line": span.end_line if span else None,
        "end_column": span.end_column if span else None,
        "label": diagnostic.label,
        "help": diagnostic.help,
    }


def _summary(errors: int, warnings: int) -> str:
    parts = []
    if errors:
        parts.append(f"{errors} error{'s' if errors != 1 else ''}")
    if warnings:
        parts.append(f"{warnings} warning{'s' if warnings != 1 else ''}")
    return "found " + " and ".join(parts)


def _render_one(diagnostic: Diagnostic, sources: Mapping[str, str]) -> str:
    lines = [f"{diagnostic.severity}[{diagnostic.code}]: {diagnostic.message}"]
    span = diagnostic.span
    if span is not None:
        source_line = _line(span, sources)
        gutter = " " * len(str(span.line))
        lines.append(f"{gutter}--> {span}")
        if source_line is not None:
            shown = _visible(source_line)
            start = _width(source_line[: span.column - 1])
            end_column = span.end_column if span.end_line == span.line else len(source_line) + 1
            length = max(1, _width(source_line[span.column - 1 : end_column - 1]))
            marker = " " * start + "^" * length
            if diagnostic.label:
                marker += f" {diagnostic.label}"
            lines += [f"{gutter} |", f"{span.line} | {shown}".rstrip(), f"{gutter} | {marker}"]
        elif diagnostic.label:
            lines.append(f"{gutter} = {diagnostic.label}")
    elif diagnostic.label:
        lines.append(f"  = {diagnostic.label}")
    if diagnostic.help:
        lines.append(f"help: {diagnostic.help}")
    return "\n".join(lines)


def _line(span: Span, sources: Mapping[str, str]) -> str | None:
    text = sources.get(span.file)
    if text is None:
        text = _SOURCES.get(span.file)
    if text is None:
        try:
            text = Path(span.file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None
    # Lines as the parser counts them: ended by LF alone (not by a form feed, U+2028, ...).
    lines = text.removeprefix("\ufeff").split("\n")
    return lines[span.line - 1].removesuffix("\r") if 0 < span.line <= len(lines) else ""


def _visible(line: str) -> str:
    """`line` as shown under a diagnostic: a tab as spaces, and each character a terminal would
    not show in one column (a control character, a zero-width one, a line separator) as �."""
    return "".join(
        _TAB if char == "\t" else "\ufffd" if unicodedata.category(char) in _UNSEEN else char
        for char in line
    )


_UNSEEN = frozenset({"Cc", "Cf", "Zl", "Zp"})


def _width(text: str) -> int:
    """Columns `text` takes in a terminal: wide (CJK) characters take two, a tab four."""
    width = 0
    for char in text:
        if char == "\t":
            width += len(_TAB)
        elif unicodedata.east_asian_width(char) in ("W", "F"):
            width += 2
        elif not unicodedata.combining(char):
            width += 1
    return width
