"""how many events each rule set's ticks found imported after their time

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24

An event imported after a tick had passed its time is not looked at again for what it would
have made due before that tick (a tick decides each occurrence when it falls due). The next
tick counts such events (those imported since the newest one it saw, 0008, that happened
before its watermark); the counts add up here, and `nudge status` shows them
(`engine.evaluation.tick`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rule_set_state") as batch:
        batch.add_column(
            sa.Column("late_events", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("rule_set_state") as batch:
        batch.drop_column("late_events")
