"""What an import did: rows stored, rows already stored, and every bad row with its line."""

from __future__ import annotations

from dataclasses import dataclass, field
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
    # False when SQLite's statistics of the customers could not be updated after storing
    # (another process held the write lock): simulations plan without them until the next import.
    analyzed: bool = True

    @property
    def bad(self) -> int:
        return len(self.problems)

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
