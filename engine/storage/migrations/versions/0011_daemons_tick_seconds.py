"""each daemon's interval between ticks

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-25

`nudge status` shows a daemon not heard from in three of its ticks as silent. It judged by the
interval of the configuration it read itself, so a daemon ticking every ten minutes, checked
with another configuration (or none: 30 s), was shown as silent while it ran. Each daemon now
notes its own interval; rows written before say nothing, and are judged as before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("daemons") as batch:
        batch.add_column(sa.Column("tick_seconds", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("daemons") as batch:
        batch.drop_column("tick_seconds")
