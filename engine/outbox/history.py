"""What the daemon did: recorded actions as `ActionRecord`s, the form `simulate` prints."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import Engine

from engine.evaluation.records import ActionRecord
from engine.storage.tables import actions, occurrences


def history(engine: Engine, start_us: int, end_us: int) -> list[ActionRecord]:
    """Actions the daemon took (sent or suppressed) whose due time falls in `[start, end)`, in
    order of send time with the tie-breaks of LANGUAGE.md 3.8. Actions still waiting for the
    marketing cap's verdict are left out until it is given."""
    query = (
        sa.select(actions, occurrences.c.occurrence_key)
        .join(occurrences, occurrences.c.id == actions.c.occurrence_id)
        .where(
            actions.c.due_us >= start_us,
            actions.c.due_us < end_us,
            actions.c.status.in_(("sent", "suppressed")),
        )
        .order_by(
            actions.c.at_us,
            actions.c.rule_position,
            actions.c.customer_id,
            actions.c.position,
            actions.c.due_us,
        )
    )
    with engine.connect() as conn:
        records = [
            ActionRecord(
                rule=row.rule,
                rule_position=row.rule_position,
                customer_id=row.customer_id,
                occurrence_key=row.occurrence_key,
                kind=row.kind,
                position=row.position,
                due_us=row.due_us,
                at_us=row.at_us,
                status=row.status,
                reason=row.reason,
                template=row.template,
                channel=row.channel,
                amount=row.amount,
                unit=row.unit,
                detail=row.detail or {},
            )
            for row in conn.execute(query)
        ]
    # Python's order of customer ids, as `simulate` uses, whatever the database's collation.
    records.sort(key=ActionRecord.sort_key)
    return records


def waiting(engine: Engine, start_us: int, end_us: int) -> tuple[int, int | None]:
    """How many actions due in `[start, end)` still wait for the marketing cap's verdict (quiet
    hours moved them, and the first tick at their send time decides them: docs/semantics.md,
    `limit` and the daemon), and the earliest send time among them."""
    query = sa.select(sa.func.count(), sa.func.min(actions.c.at_us)).where(
        actions.c.due_us >= start_us,
        actions.c.due_us < end_us,
        actions.c.status == "pending",
    )
    with engine.connect() as conn:
        count, first_us = conn.execute(query).one()
    return int(count), first_us
