"""when each outbox message first failed for now

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-25

A message that fails for now (a mail server down, a webhook that does not answer) is retried
until `retry_for` has passed since its first such failure (`engine.outbox.dispatch`). Counting its
tries alone made every message of a night's outage a dead letter after about half an hour. Rows
failing when this runs start their time from their next failure.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("failing_since_us", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("failing_since_us")
