"""The task list: listing, claiming and finishing tasks, in the library and on the command line."""

from __future__ import annotations

import itertools
import sqlite3
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from rich.cells import cell_len
from sqlalchemy import Engine

from cli import main
from engine.config import load_config
from engine.errors import ConfigError
from engine.outbox.tasks import TASK_STATUSES, TaskError, claim, done, list_tasks
from engine.storage import db as storage_db
from engine.storage.db import open_database
from engine.storage.tables import actions, customers, occurrences, outbox, tasks
from engine.timeutil import US, local_text

T0 = 1_800_000_000 * US
_keys = itertools.count(1)


def add_task(
    engine: Engine,
    title: str,
    assignee: str | None = None,
    kind: str = "task",
    customer: str = "c1",
) -> int:
    """A task as the tick records it: an occurrence, its action and the task row."""
    key = next(_keys)
    with engine.begin() as conn:
        occurrence_id = conn.execute(
            occurrences.insert().values(
                rule="r", customer_id=customer, occurrence_key=f"k{key}", due_us=T0,
                status="acted", recorded_us=T0,
            )
        ).inserted_primary_key[0]  # fmt: skip
        action_id = conn.execute(
            actions.insert().values(
                occurrence_id=occurrence_id, position=0, rule="r", rule_position=0,
                customer_id=customer, kind=kind, due_us=T0, at_us=T0, status="sent",
                detail={"title": title},
            )
        ).inserted_primary_key[0]  # fmt: skip
        return int(
            conn.execute(
                tasks.insert().values(
                    action_id=action_id, customer_id=customer, kind=kind, title=title,
                    assignee=assignee, status="open", created_us=T0 + key, updated_us=T0 + key,
                )
            ).inserted_primary_key[0]
        )  # fmt: skip


def test_list_filters_by_status_and_assignee(engine) -> None:
    call = add_task(engine, "Call about the low rating", "service")
    gift = add_task(engine, "mooncake box", "fulfilment", kind="gift")
    note = add_task(engine, "Write a note")
    assert [t.id for t in list_tasks(engine)] == [call, gift, note]
    assert [t.id for t in list_tasks(engine, assignee="service")] == [call]
    claim(engine, gift, "ann", T0 + 10 * US)
    assert [t.id for t in list_tasks(engine, status="open")] == [call, note]
    (claimed,) = list_tasks(engine, status="claimed", assignee="fulfilment")
    assert (claimed.kind, claimed.claimed_by, claimed.updated_us) == ("gift", "ann", T0 + 10 * US)
    with pytest.raises(TaskError, match="unknown task status 'closed'"):
        list_tasks(engine, status="closed")


def test_claim_and_done(engine) -> None:
    task_id = add_task(engine, "Call about the low rating", "service")
    assert claim(engine, task_id, "ann", T0).status == "claimed"
    assert claim(engine, task_id, "ann", T0).claimed_by == "ann"  # again: no change
    with pytest.raises(TaskError, match=f"task {task_id} is already claimed by ann"):
        claim(engine, task_id, "bob", T0)
    finished = done(engine, task_id, T0 + US)
    assert (finished.status, finished.claimed_by, finished.updated_us) == ("done", "ann", T0 + US)
    with pytest.raises(TaskError, match=f"task {task_id} is already done"):
        done(engine, task_id, T0)
    with pytest.raises(TaskError, match=f"task {task_id} is already done"):
        claim(engine, task_id, "ann", T0)
    with pytest.raises(TaskError, match="no task with id 999"):
        claim(engine, 999, "ann", T0)
    with pytest.raises(TaskError, match="no task with id 999"):
        done(engine, 999, T0)
    with pytest.raises(TaskError, match="say who claims the task"):
        claim(engine, add_task(engine, "x"), " ", T0)


def test_an_open_task_can_be_done_without_a_claim(engine) -> None:
    task_id = add_task(engine, "Send the gift")
    assert done(engine, task_id, T0).status == "done"


def test_two_people_claiming_at_once_one_gets_it(db_url, engine) -> None:
    task_id = add_task(engine, "Call about the low rating")
    outcomes: dict[str, str] = {}
    start = threading.Barrier(4)

    def take(name: str) -> None:
        own = open_database(db_url)
        start.wait()
        try:
            claim(own, task_id, name, T0)
            outcomes[name] = "claimed"
        except TaskError as exc:
            outcomes[name] = str(exc)
        finally:
            own.dispose()

    names = ["ann", "bob", "cy", "dee"]
    threads = [threading.Thread(target=take, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    winners = [name for name, outcome in outcomes.items() if outcome == "claimed"]
    assert len(winners) == 1
    (task,) = list_tasks(engine)
    assert task.claimed_by == winners[0]
    for name in set(names) - set(winners):
        assert outcomes[name] == f"task {task_id} is already claimed by {winners[0]}"


def nudge(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def shanghai(folder: Path) -> Path:
    config = folder / "nudge.yaml"
    config.write_text("timezone: Asia/Shanghai\n", encoding="utf-8")
    return config


def test_tasks_command(db_url, engine, capsys, tmp_path) -> None:
    call = add_task(engine, "Call about the low rating", "service")
    gift = add_task(engine, "mooncake box", "fulfilment", kind="gift")

    code, out, _ = nudge(capsys, "tasks", "--db", db_url)
    assert code == 0
    header, *lines = out.splitlines()
    assert header.split() == ["ID", "STATUS", "KIND", "FOR", "CLAIMED", "BY", "CUSTOMER",
                              "NAME", "PHONE", "CREATED", "TITLE"]  # fmt: skip
    assert [line.split()[:4] for line in lines] == [
        [str(call), "open", "task", "service"],
        [str(gift), "open", "gift", "fulfilment"],
    ]
    assert local_text(T0, "UTC") in lines[0]  # shop time, to the minute
    code, out, _ = nudge(capsys, "tasks", "--db", db_url, "--config", str(shanghai(tmp_path)))
    assert local_text(T0, "Asia/Shanghai") in out.splitlines()[1]

    code, out, _ = nudge(capsys, "tasks", "claim", str(gift), "--by", "ann", "--db", db_url)
    assert (code, out) == (0, f"Task {gift} claimed by ann: mooncake box\n")
    code, _, err = nudge(capsys, "tasks", "--db", db_url, "claim", str(gift), "--by", "bob")
    assert (code, err) == (1, f"Error: task {gift} is already claimed by ann\n")

    code, out, _ = nudge(capsys, "tasks", "list", "--status", "open", "--db", db_url)
    assert [line.split()[0] for line in out.splitlines()[1:]] == [str(call)]
    code, out, _ = nudge(capsys, "tasks", "--for", "fulfilment", "--db", db_url)
    assert "ann" in out.splitlines()[1]
    # The filters given before `list` filter it as after it; they mean nothing to `claim`.
    code, out, _ = nudge(capsys, "tasks", "--status", "open", "--db", db_url, "list")
    assert [line.split()[0] for line in out.splitlines()[1:]] == [str(call)]
    code, _, err = nudge(capsys, "tasks", "--for", "x", "list", "--for", "y", "--db", db_url)
    assert code == 2 and "--for is given twice, before and after `list`" in err
    code, _, err = nudge(capsys, "tasks", "--status", "open", "claim", str(call), "--by", "b")
    assert code == 2 and "--status filters the list; `claim` takes a task's id" in err
    code, _, err = nudge(capsys, "tasks", "--status", "opn", "--db", db_url)
    assert code == 2 and "'opn' is not one of 'open', 'claimed', 'done'" in err
    assert "', '".join(TASK_STATUSES) in err

    code, out, _ = nudge(capsys, "tasks", "done", str(gift), "--db", db_url)
    assert (code, out) == (0, f"Task {gift} done: mooncake box\n")
    code, _, err = nudge(capsys, "tasks", "done", "999", "--db", db_url)
    assert (code, err) == (1, "Error: no task with id 999\n")
    code, out, _ = nudge(capsys, "tasks", "list", "--status", "claimed", "--db", db_url)
    assert (code, out) == (0, "No tasks.\n")


def test_a_command_waiting_too_long_for_sqlite_s_write_lock_says_so(
    tmp_path, capsys, monkeypatch
) -> None:
    """While another process holds SQLite's write lock beyond the busy timeout (an import's
    first load, a long tick), claiming or finishing a task and requeuing dead letters give up
    with plain words and change nothing, rather than with a driver's traceback."""
    monkeypatch.setattr(storage_db, "BUSY_TIMEOUT_S", 0.2)
    path = tmp_path / "shop.db"
    db_url = f"sqlite:///{path}"
    engine = open_database(db_url)
    task = add_task(engine, "Call about the low rating")
    with engine.begin() as conn:
        action_id = conn.execute(sa.select(tasks.c.action_id)).scalar_one()
        conn.execute(
            outbox.insert().values(
                action_id=action_id, channel="file", payload={}, status="dead", attempts=3,
                next_attempt_us=T0, created_us=T0,
            )
        )  # fmt: skip
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the write lock, as an import holds it
    try:
        for command in (["tasks", "claim", str(task), "--by", "ann"], ["tasks", "done", str(task)],
                        ["outbox", "--retry"]):  # fmt: skip
            code, out, err = nudge(capsys, *command, "--db", db_url)
            assert (code, out) == (1, ""), command
            assert err.startswith("Error: another process (an import, or the daemon's tick)")
            assert "held the database's write lock for more than 0.2 seconds" in err
            assert "nothing was changed" in err
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert [(t.status, t.claimed_by) for t in list_tasks(engine)] == [("open", None)]
    engine.dispose()


def test_the_list_says_whom_to_call(db_url, engine, capsys) -> None:
    """An agent calls a person: the list gives the customer's name and phone, columns kept
    aligned with names two cells wide; a customer not stored shows blanks, not an error."""
    with engine.begin() as conn:
        conn.execute(
            customers.insert(),
            [
                {"id": "c7", "name": "王芳", "phone": "+86 138 0013 8000"},
                {"id": "c8", "name": "Bo", "phone": None},
            ],
        )
    called = add_task(engine, "Call about the low rating", "service", customer="c7")
    add_task(engine, "Call about the low rating", "service", customer="c8")
    add_task(engine, "Write a note", customer="gone")
    (task, *_) = list_tasks(engine)
    assert (task.customer_name, task.customer_phone) == ("王芳", "+86 138 0013 8000")
    assert claim(engine, called, "ann", T0).customer_name == "王芳"

    code, out, _ = nudge(capsys, "tasks", "--db", db_url)
    header, *lines = out.splitlines()
    assert code == 0 and len(lines) == 3
    assert "王芳  +86 138 0013 8000" in lines[0]
    assert [cell_len(line[: line.index(local_text(T0, "UTC"))]) for line in lines] == [
        header.index("CREATED")
    ] * 3
    # No assignee, no claim, no name, no phone: the time follows the customer's id.
    assert lines[2].split()[3:5] == ["gone", local_text(T0, "UTC").split()[0]]


def test_tasks_channel_must_be_a_file_or_webhook_channel(tmp_path) -> None:
    path = tmp_path / "nudge.yaml"
    path.write_text(
        "tasks_channel: agent\n"
        "shop: {name: Acme}\n"
        "channels:\n"
        "  agent: {type: webhook, url: 'http://127.0.0.1:9/tasks'}\n"
        "  mail: {type: email, host: h, from: a@b.test}\n"
    )
    config = load_config(path)
    assert (config.tasks_channel, config.shop) == ("agent", {"name": "Acme"})
    path.write_text(path.read_text().replace("tasks_channel: agent", "tasks_channel: mail"))
    with pytest.raises(ConfigError, match="tasks_channel 'mail' must name a configured file or"):
        load_config(path)


def test_a_name_with_a_control_character_keeps_the_list_in_rows(db_url, engine, capsys) -> None:
    """A customer's name is imported as written, a line feed or an escape included: shown as
    it is, it would break the row in two or drive the agent's terminal."""
    with engine.begin() as conn:
        conn.execute(customers.insert(), [{"id": "c9", "name": "Ann\nLee\x1b[2J", "phone": "1"}])
    add_task(engine, "Call", customer="c9")
    code, out, _ = nudge(capsys, "tasks", "--db", db_url)
    assert code == 0 and "\x1b" not in out
    _, *lines = out.splitlines()
    assert len(lines) == 1 and "Ann\ufffdLee\ufffd[2J" in lines[0]
