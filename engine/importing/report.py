"""What an import did: rows stored, rows already stored, and every bad row with its line."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Literal


class RowError(Exception):
    """A row that cannot be imported; the message says why in plain words."""


@dataclass(frozen=True, slots=True)
class Problem:
    """A bad row: `line` is the physical line where it starts (a CSV header is line 1)."""

    source: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.message}"

    def __reduce__(self) -> tuple[type[Problem], tuple[str, int, str]]:
        # Pickled by a worker process (engine.importing.worker) as arguments of the
        # constructor, about 20 times faster to read back than a slotted dataclass's own state.
        return Problem, (self.source, self.line, self.message)


@dataclass(frozen=True, slots=True)
class Note:
    """Rows imported as they are that most likely do not say what was meant (an order's total
    written `¥1500`): `about` is what they share, `line` the first of them, `count` how many."""

    source: str
    line: int
    message: str
    about: str
    count: int = 1

    def __str__(self) -> str:
        more = f" ({self.count} such rows)" if self.count > 1 else ""
        return f"{self.source}:{self.line}: {self.message}{more}"

    def __reduce__(self) -> tuple[type[Note], tuple[str, int, str, str, int]]:
        return Note, (self.source, self.line, self.message, self.about, self.count)


@dataclass
class ImportReport:
    """Counts are of rows. `unchanged` rows were already stored as they are and were skipped;
    `updated` customers were stored before and changed; `customers_created` counts the
    customers an events import created for ids it had not seen."""

    kind: Literal["customers", "events"]
    source: str
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    customers_created: int = 0
    problems: list[Problem] = field(default_factory=list)
    notes: dict[str, Note] = field(default_factory=dict)  # by what they are about
    # False when SQLite's statistics of the customers could not be updated after storing
    # (another process held the write lock): simulations plan without them until the next import.
    analyzed: bool = True

    def take(self, found: Iterable[Problem | Note]) -> None:
        """Add the bad rows and notes of a chunk of the file, those of earlier chunks first."""
        for item in found:
            if isinstance(item, Problem):
                self.problems.append(item)
                continue
            earlier = self.notes.get(item.about)
            self.notes[item.about] = (
                item if earlier is None else replace(earlier, count=earlier.count + item.count)
            )

    @property
    def bad(self) -> int:
        return len(self.problems)

    @property
    def rows(self) -> int:
        """The rows read: imported, already stored, or bad (none in an empty file, or in a CSV
        file of a header alone)."""
        return self.added + self.updated + self.unchanged + self.bad

    def summary(self) -> str:
        imported = self.added + self.updated
        parts = [f"{imported} {self.kind if imported != 1 else self.kind[:-1]} imported"]
        if self.kind == "customers":
            parts[0] += f" ({self.added} new, {self.updated} updated)"
        parts.append(f"{self.unchanged} already stored")
        parts.append(f"{self.bad} bad {'row' if self.bad == 1 else 'rows'}")
        text = f"{self.source}: {', '.join(parts)}"
        if self.customers_created:
            created = self.customers_created
            text += f"; {created} new customer{'s' if created != 1 else ''} created"
        if not self.analyzed:
            text += (
                "; the customers' statistics were not updated, as another process held the"
                " database's write lock (importing again updates them)"
            )
        return text
