"""the newest event each rule set's daemon has seen, and the events imported too late

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24

A tick decides what fell due since its watermark. An event imported after a tick had passed its
time (a cron job's import, a shop that sends its orders late) was never looked at for what it
would have made due before that tick, and nothing said so. Each rule set now keeps the key
(`events.pk`) of the newest event its last tick saw, so that the next tick counts the events
imported since then that happened before it; the count adds up in `late_events`, which
`nudge status` shows, and the daemon logs a warning (`engine.tick`). Rule sets that ran before
start counting from their next tick.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rule_set_state") as batch:
        batch.add_column(sa.Column("events_seen_pk", sa.BigInteger(), nullable=True))
        batch.add_column(
            sa.Column("late_events", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("rule_set_state") as batch:
        batch.drop_column("late_events")
        batch.drop_column("events_seen_pk")
