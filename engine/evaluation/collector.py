"""Python's cyclic garbage collector, run less often while an evaluation allocates by the million.

An evaluation, the merge of a simulation's batches and the recording of a tick allocate objects
by the million that reference counting frees on its own (database rows, occurrences, action
rows). At the default threshold (a collection every 700 net allocations) they set off full
collections that each go over every object alive: `simulate` of the M benchmark shop in one
process spent 5.7 s of 45 s in 29 of them, and the group buy's tick at M 0.8 s of 4.4 s.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

# Net allocations between two collections of the youngest generation while `fewer_collections`
# holds (Python's default: 700).
COLLECT_AFTER = 100_000


_held = 0  # blocks of `fewer_collections` open now, in every thread (the threshold is global)
_saved = gc.get_threshold()  # the threshold before the first of them
_counting = threading.Lock()


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Collect after `COLLECT_AFTER` allocations instead of 700 until the block ends. The few
    objects in cycles (SQLAlchemy makes some per statement) wait a little longer for theirs.

    Blocks may overlap without nesting (a simulation's merge holds one open while its consumer
    runs, which may open its own): the threshold is put back when the last of them ends."""
    global _held, _saved
    with _counting:
        if _held == 0:
            _saved = gc.get_threshold()
            gc.set_threshold(max(_saved[0], COLLECT_AFTER), *_saved[1:])
        _held += 1
    try:
        yield
    finally:
        with _counting:
            _held -= 1
            if _held == 0:
                gc.set_threshold(*_saved)
