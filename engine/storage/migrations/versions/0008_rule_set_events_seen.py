"""the newest event each rule set's daemon has seen

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24

A tick evaluates what fell due since its watermark. An event imported after its occurrence
fell due (a cron job's import, a shop that sends its orders a minute late) was never evaluated,
and nothing said so. Each rule set now keeps the key (`events.pk`) of the newest event its last
tick saw, so that the next tick can tell the events imported since then (`engine.evaluation.tick`;
0009 counts those that came too late). Rule sets that ran before start from their next tick.
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


def downgrade() -> None:
    with op.batch_alter_table("rule_set_state") as batch:
        batch.drop_column("events_seen_pk")
