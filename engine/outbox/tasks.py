"""The task list: tasks and gifts that rules hand to people (or agents), and their progress.

A task is `open` when recorded, `claimed` by someone who takes it on, and `done` at the end.
Claiming is atomic: of two people claiming one open task, one gets it and the other is told who
did.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Engine, Select, or_, select, update

from engine.errors import NudgeError
from engine.storage.db import short_write
from engine.storage.tables import customers, tasks

TASK_STATUSES = ("open", "claimed", "done")


class TaskError(NudgeError):
    """A request about a task that cannot be carried out."""


@dataclass(frozen=True)
class Task:
    id: int
    action_id: int
    customer_id: str
    kind: str  # task | gift
    title: str
    assignee: str | None
    status: str
    claimed_by: str | None
    created_us: int
    updated_us: int
    # Whom to call: the customer's name and phone as stored, None where unknown.
    customer_name: str | None
    customer_phone: str | None


def _with_customer() -> Select:
    """Tasks with their customer's name and phone: an agent calls a person, not an id."""
    return select(
        tasks, customers.c.name.label("customer_name"), customers.c.phone.label("customer_phone")
    ).outerjoin(customers, customers.c.id == tasks.c.customer_id)


def list_tasks(
    engine: Engine, status: str | None = None, assignee: str | None = None
) -> list[Task]:
    """Tasks, oldest first, optionally only those in `status` and for `assignee`."""
    query = _with_customer().order_by(tasks.c.created_us, tasks.c.id)
    if status is not None:
        if status not in TASK_STATUSES:
            raise TaskError(
                f"unknown task status {status!r} (expected one of {', '.join(TASK_STATUSES)})"
            )
        query = query.where(tasks.c.status == status)
    if assignee is not None:
        query = query.where(tasks.c.assignee == assignee)
    with engine.connect() as conn:
        return [Task(**row._mapping) for row in conn.execute(query)]


def claim(engine: Engine, task_id: int, by: str, now_us: int) -> Task:
    """`by` takes on task `task_id`. Claiming again one's own claimed task changes nothing."""
    if not by.strip():
        raise TaskError("say who claims the task")
    with short_write(engine) as conn:
        changed = conn.execute(
            update(tasks)
            .where(
                tasks.c.id == task_id,
                or_(
                    tasks.c.status == "open",
                    (tasks.c.status == "claimed") & (tasks.c.claimed_by == by),
                ),
            )
            .values(status="claimed", claimed_by=by, updated_us=now_us)
        ).rowcount
        task = _get(conn, task_id)
        if not changed:
            if task.status == "done":
                raise TaskError(f"task {task_id} is already done")
            raise TaskError(f"task {task_id} is already claimed by {task.claimed_by}")
        return task


def done(engine: Engine, task_id: int, now_us: int) -> Task:
    """Mark task `task_id` done, whether it was claimed or still open."""
    with short_write(engine) as conn:
        changed = conn.execute(
            update(tasks)
            .where(tasks.c.id == task_id, tasks.c.status != "done")
            .values(status="done", updated_us=now_us)
        ).rowcount
        task = _get(conn, task_id)
        if not changed:
            raise TaskError(f"task {task_id} is already done")
        return task


def _get(conn: Connection, task_id: int) -> Task:
    row = conn.execute(_with_customer().where(tasks.c.id == task_id)).first()
    if row is None:
        raise TaskError(f"no task with id {task_id}")
    return Task(**row._mapping)
