"""How worker processes are started (engine/evaluation/processes.py): forked only while no other
thread runs, else spawned."""

from __future__ import annotations

import pytest

from engine.evaluation.processes import can_fork, worker_context


@pytest.mark.usefixtures("only_this_thread")
def test_a_worker_is_forked_while_this_thread_runs_alone() -> None:
    assert worker_context().get_start_method() == "fork"


@pytest.mark.usefixtures("another_thread")
def test_a_worker_is_spawned_while_another_thread_runs() -> None:
    assert not can_fork()
    assert worker_context().get_start_method() == "spawn"
