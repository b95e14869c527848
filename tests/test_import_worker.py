"""The process that parses a file while the importing one stores (engine.importing.worker)."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator

import pytest

from engine.errors import DataError
from engine.evaluation.processes import can_fork
from engine.importing.worker import WorkerError, in_worker

pytestmark = pytest.mark.skipif(not can_fork(), reason="a worker is forked on Linux only")


def test_what_the_worker_yields_comes_back_in_order():
    parent = os.getpid()

    def produce() -> Iterator[tuple[int, bool]]:
        for n in range(5):
            yield n, os.getpid() != parent

    with in_worker(produce) as messages:
        assert list(messages) == [(n, True) for n in range(5)]
    assert multiprocessing.active_children() == []


def test_an_exception_in_the_worker_is_raised_here_with_its_trace():
    def produce() -> Iterator[int]:
        yield 1
        raise DataError("e.csv:1: the header has no 'type' column")

    received = []
    with (
        pytest.raises(DataError, match="the header has no 'type' column") as info,
        in_worker(produce) as messages,
    ):
        for message in messages:
            received.append(message)
    assert received == [1]
    assert "In the process parsing the file" in info.value.__notes__[0]
    assert "produce" in info.value.__notes__[0]


def test_an_exception_that_cannot_be_sent_is_raised_as_its_text():
    class Odd(Exception):
        def __init__(self, code: int, detail: str) -> None:
            super().__init__(f"{code}: {detail}")  # pickle would call Odd(message) and fail

    def produce() -> Iterator[int]:
        raise Odd(7, "odd")
        yield 0

    with pytest.raises(RuntimeError, match="Odd: 7: odd"), in_worker(produce) as messages:
        list(messages)


def test_a_worker_that_dies_is_an_error():
    def produce() -> Iterator[int]:
        yield 1
        os._exit(3)

    with pytest.raises(WorkerError, match="exit code 3"), in_worker(produce) as messages:
        list(messages)


def test_stopping_early_stops_the_worker():
    def produce() -> Iterator[int]:
        n = 0
        while True:  # would never end on its own
            yield n
            n += 1

    with in_worker(produce) as messages:
        assert next(messages) == 0
    assert multiprocessing.active_children() == []
    with pytest.raises(RuntimeError, match="the disk is full"), in_worker(produce):
        raise RuntimeError("the disk is full")  # before a message is read
    assert multiprocessing.active_children() == []
