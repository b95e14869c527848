"""Running a generator in a second process: the rows of a file are parsed there while this
process stores those already parsed (and parses a share of an events file:
engine.importing.importers), so an import keeps two cores busy.

The second process is a fork of this one, made only where forking is safe
(`engine.evaluation.processes.can_fork`). What the generator yields comes back pickled through
a pipe, at most a megabyte ahead of the consumer, so memory stays bounded. An exception
in the worker is raised here; when the consumer leaves the block early (an error while storing,
Ctrl-C), the worker is stopped too.
"""

from __future__ import annotations

import multiprocessing
import pickle
import signal
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

from engine.errors import NudgeError
from engine.evaluation.collector import fewer_collections

M = TypeVar("M")


@dataclass(frozen=True)
class _Failed:
    error: BaseException
    trace: str


class _Done:
    pass


class WorkerError(NudgeError):
    """The worker process stopped without saying why (killed, out of memory)."""


@contextmanager
def in_worker(produce: Callable[[], Iterable[M]]) -> Iterator[Iterator[M]]:
    """What `produce()` yields, computed in a process forked on entering; see the module's
    docstring. On leaving, the process is stopped if it still runs."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    # A pipe of 1 MB (Linux's largest without privileges) rather than 64 kB lets the worker run
    # several messages ahead, so that neither process waits for the other at every hiccup of a
    # busy machine.
    import fcntl  # not on Windows, where no worker is forked

    with suppress(OSError):
        fcntl.fcntl(sender.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)
    process = context.Process(target=_run, args=(produce, sender), daemon=True)
    process.start()
    sender.close()
    try:
        yield _received(process, receiver)
    finally:
        receiver.close()
        if process.is_alive():
            process.terminate()
        process.join()


def _received(process: BaseProcess, receiver: Connection) -> Iterator[Any]:
    while True:
        try:
            message = receiver.recv()
        except EOFError:
            process.join()
            raise WorkerError(
                f"the process parsing the file stopped (exit code {process.exitcode})"
            ) from None
        if isinstance(message, _Done):
            return
        if isinstance(message, _Failed):
            message.error.add_note(f"In the process parsing the file:\n{message.trace}")
            raise message.error
        yield message


def _run(produce: Callable[[], Iterable[object]], sender: Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        with fewer_collections():  # rows by the million, freed by reference counting
            for message in produce():
                if not _send(sender, message):
                    return
    except BaseException as exc:  # every failure is the parent's to report
        _send(sender, _failed(exc, traceback.format_exc()))
        return
    _send(sender, _Done())


def _send(sender: Connection, message: object) -> bool:
    """Send `message`; False when the parent has stopped listening."""
    try:
        sender.send(message)
    except BrokenPipeError:
        return False
    return True


def _failed(error: BaseException, trace: str) -> _Failed:
    """`error` to be raised in the parent, as its text when it cannot be sent as it is."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        error = RuntimeError(f"{type(error).__name__}: {error}")
    return _Failed(error, trace)
