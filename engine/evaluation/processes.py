"""Starting worker processes: forked where that is safe, else spawned.

A forked process starts at once, with the engine already imported; a spawned one starts a new
interpreter and imports the engine first (0.75 s here: a simulation's worker began its first
batch about a second after the simulating process). A fork copies only the thread that
calls it, so a lock another thread held would stay held in the copy: forking is safe only on
Linux, while this process runs no other thread.
"""

from __future__ import annotations

import multiprocessing
import sys
import threading
from multiprocessing.context import BaseContext


def can_fork() -> bool:
    """Whether a process forked now is safe."""
    return sys.platform == "linux" and threading.active_count() == 1


def worker_context() -> BaseContext:
    """How to start a worker process now: by forking where that is safe, else by spawning."""
    return multiprocessing.get_context("fork" if can_fork() else "spawn")
