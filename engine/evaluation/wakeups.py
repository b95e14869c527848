"""When the daemon ticks besides its interval: just after the next due time known in advance.

Calendar triggers, birthdays and `at HH:MM` fall due at clock times the rule set names, often
for many customers at once (the weekly group buy at 20:00). Waiting for the next interval tick
would record them up to `tick_seconds` late; the daemon instead brings its next tick forward to
just after such a due time, and the tick records them as they fall due.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.config import Config
from engine.language import ast
from engine.plan.triggers import MIDNIGHT, Window, calendar_slots, clock_days

# A tick covers `[watermark, now)`: it wakes this long after the due time, so that it is in.
WAKE_AFTER_US = 1000


def knows_due_times(ruleset: ast.RuleSet, config: Config) -> bool:
    """Whether any rule falls due at clock times known in advance."""
    return any(clock_days(rule, config.country) is not None for rule in ruleset.rules)


def next_wake(
    ruleset: ast.RuleSet, config: Config, zones: Sequence[str], after_us: int, before_us: int
) -> int | None:
    """The instant to tick at for the earliest due time known in advance in `[after_us,
    before_us)`, in any of the customers' time zones `zones`; None when there is none."""
    window = Window(after_us, before_us)
    earliest: int | None = None
    for rule in ruleset.rules:
        days = clock_days(rule, config.country)
        if days is None:
            continue
        clock = rule.when.at.time if rule.when.at is not None else MIDNIGHT
        for slot in calendar_slots(window, zones, clock, days):
            if earliest is None or slot.due_us < earliest:
                earliest = slot.due_us
    if earliest is None or earliest + WAKE_AFTER_US >= before_us:
        return None  # none, or one the run at `before_us` covers anyway
    return earliest + WAKE_AFTER_US
