"""Time is injected: the engine asks a `Clock`, never the system directly."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_us(self) -> int: ...


class SystemClock:
    """Wall-clock time, for the daemon."""

    def now_us(self) -> int:
        return time.time_ns() // 1000


class FixedClock:
    """A clock that stands where it is told: for tests and simulations."""

    def __init__(self, now_us: int) -> None:
        self.current = now_us

    def now_us(self) -> int:
        return self.current

    def advance_to(self, now_us: int) -> None:
        self.current = now_us
