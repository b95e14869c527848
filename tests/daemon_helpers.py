"""What the tick and daemon tests share: rule folders, configurations, ledger checks, processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from sqlalchemy import Engine

from engine.config import Channel, Config
from engine.storage.tables import actions, coupons, effects, occurrences, outbox, tasks

ROOT = Path(__file__).resolve().parent.parent
DELIVERED = ("message", "followup", "coupon")


def write_rules(folder: Path, files: Mapping[str, str], templates: Iterable[str]) -> Path:
    """A rules folder holding `files` (name → text) and a plain template for each name."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    (folder / "templates").mkdir(exist_ok=True)
    for name in templates:
        (folder / "templates" / f"{name}.txt").write_text(
            f"Subject: {name} for {{{{ customer.id }}}}\n\n{name}, {{{{ customer.name }}}}.\n"
            "{% if coupon %}Code {{ coupon.code }}.{% endif %}\n",
            encoding="utf-8",
        )
    return folder


def config_for(tmp_path: Path, db_url: str, **changes: Any) -> Config:
    """A configuration on `db_url` whose `file` channel writes `tmp_path/outbox.jsonl`."""
    return Config(
        database=db_url,
        channels={"file": Channel("file", "file", {"path": "outbox.jsonl"})},
        base_dir=tmp_path,
        **changes,
    )


def write_config(path: Path, db_url: str, **settings: Any) -> Path:
    """A `nudge.yaml` for a daemon process: the `file` channel writes beside it."""
    document = {
        "database": db_url,
        "default_channel": "file",
        "channels": {"file": {"type": "file", "path": "outbox.jsonl"}},
        **settings,
    }
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


# -- the ledger ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ledger:
    """Everything the daemon recorded, as plain tuples, for comparisons."""

    occurrences: list[tuple[str, str, str, str]]  # rule, customer, key, status
    actions: list[tuple[int, int, str, str]]  # occurrence id, position, kind, status
    effects: int
    coupons: int
    tasks: int
    outbox: list[tuple[int, str, str]]  # action id, status, idempotency key


def read_ledger(engine: Engine) -> Ledger:
    with engine.connect() as conn:
        occ = conn.execute(
            sa.select(
                occurrences.c.rule,
                occurrences.c.customer_id,
                occurrences.c.occurrence_key,
                occurrences.c.status,
            )
        ).all()
        act = conn.execute(
            sa.select(actions.c.occurrence_id, actions.c.position, actions.c.kind, actions.c.status)
        ).all()
        box = conn.execute(sa.select(outbox.c.action_id, outbox.c.status, outbox.c.payload)).all()
        return Ledger(
            occurrences=[tuple(r) for r in occ],
            actions=[tuple(r) for r in act],
            effects=conn.execute(sa.select(sa.func.count()).select_from(effects)).scalar_one(),
            coupons=conn.execute(sa.select(sa.func.count()).select_from(coupons)).scalar_one(),
            tasks=conn.execute(sa.select(sa.func.count()).select_from(tasks)).scalar_one(),
            outbox=[(r.action_id, r.status, r.payload["idempotency_key"]) for r in box],
        )


def assert_recorded_once(engine: Engine, ruleset_actions: Mapping[str, int]) -> Ledger:
    """Every acted occurrence has each of its rule's actions once, and every action that must
    be delivered has one outbox row; effects, coupons and tasks match their actions one to one.
    `ruleset_actions` maps a rule name to its number of actions."""
    ledger = read_ledger(engine)
    with engine.connect() as conn:
        per_occurrence = dict(
            conn.execute(
                sa.select(occurrences.c.id, occurrences.c.rule).where(
                    occurrences.c.status == "acted"
                )
            ).all()
        )
        kinds = conn.execute(sa.select(actions.c.id, actions.c.kind, actions.c.status)).all()
    counted: dict[int, list[int]] = {}
    for occurrence_id, position, _kind, _status in ledger.actions:
        counted.setdefault(occurrence_id, []).append(position)
    for occurrence_id, rule in per_occurrence.items():
        assert sorted(counted.get(occurrence_id, [])) == list(range(ruleset_actions[rule])), rule
    assert set(counted) <= set(per_occurrence)
    sent_deliveries = {i for i, kind, status in kinds if kind in DELIVERED and status == "sent"}
    boxed = [action_id for action_id, _status, _key in ledger.outbox]
    assert sorted(boxed) == sorted(sent_deliveries)
    assert len({key for _a, _s, key in ledger.outbox}) == len(ledger.outbox)
    assert ledger.effects == sum(1 for _i, k, _s in kinds if k in ("tag", "untag", "points"))
    assert ledger.coupons == sum(1 for _i, k, s in kinds if k == "coupon" and s == "sent")
    assert ledger.tasks == sum(1 for _i, k, _s in kinds if k in ("task", "gift"))
    return ledger


# -- daemon processes -----------------------------------------------------------------------------


STARTED = "nudge run:"  # the daemon's log line once its signal handlers are in place


# `python -c` running cli.py as `python cli.py ARGS` would, after the code put before it.
_THEN_CLI = """
import runpy, sys
sys.argv = sys.argv[1:]
sys.path.insert(0, sys.argv[0].rpartition("/")[0])
runpy.run_path(sys.argv[0], run_name="__main__")
"""


class DaemonProcess:
    """`python cli.py run RULES --config CFG` as a child process, its log in a file; `before`:
    Python code the process runs first (to set up what a test needs, such as a signal mask)."""

    def __init__(
        self, rules_dir: Path, config_path: Path, log_path: Path, before: str | None = None
    ) -> None:
        self.log_path = log_path
        self._log = log_path.open("ab")
        # The log may hold earlier daemons' lines: this one has started once it adds its own.
        self._starts_before = self.log().count(STARTED)
        python = [sys.executable] if before is None else [sys.executable, "-c", before + _THEN_CLI]
        self.process = subprocess.Popen(
            [*python, str(ROOT / "cli.py"), "run", str(rules_dir), "--config",
             str(config_path), "-v"],
            cwd=config_path.parent,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.process.poll() is not None:
                raise AssertionError(f"daemon exited ({self.process.returncode}):\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}:\n{self.log()}")
            time.sleep(0.05)

    def wait_running(self, timeout: float = 20.0) -> None:
        self.wait_until(
            lambda: self.log().count(STARTED) > self._starts_before, timeout, "the daemon to start"
        )

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self._log.close()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        finally:
            self._log.close()

    def ensure_dead(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log.close()
