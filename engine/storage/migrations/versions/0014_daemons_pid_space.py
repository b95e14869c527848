"""where each daemon's process number means its process

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-26

A daemon killed with -9 leaves its row, and `nudge status` showed it running until its
heartbeat aged out (a minute and more). Its host and process number alone cannot say that it is
gone: a container may share the machine's name and number its processes apart, and a number is
given again after a reboot. Each daemon now notes where its number is its own (on Linux the
kernel's boot and the process-number namespace), and `status`, run there, looks for the process.
Rows written before say nothing, and are judged by their heartbeat alone, as before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("daemons") as batch:
        batch.add_column(sa.Column("pid_space", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("daemons") as batch:
        batch.drop_column("pid_space")
