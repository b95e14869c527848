"""The garbage collector's threshold while an evaluation runs (engine/evaluation/collector.py)."""

from __future__ import annotations

import gc

import pytest

from engine.evaluation.collector import COLLECT_AFTER, fewer_collections


def test_collections_are_fewer_inside_and_as_before_after_even_on_error() -> None:
    before = gc.get_threshold()
    with fewer_collections():
        assert gc.get_threshold() == (max(before[0], COLLECT_AFTER), *before[1:])
    assert gc.get_threshold() == before
    with pytest.raises(RuntimeError), fewer_collections():
        raise RuntimeError("a failing evaluation")
    assert gc.get_threshold() == before


def test_blocks_that_overlap_without_nesting_put_the_threshold_back_when_the_last_ends() -> None:
    """As two simulations' merges read side by side do: each holds a block open while the
    other's consumer runs."""
    before = gc.get_threshold()
    first, second = fewer_collections(), fewer_collections()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert gc.get_threshold()[0] == max(before[0], COLLECT_AFTER)
    second.__exit__(None, None, None)
    assert gc.get_threshold() == before
