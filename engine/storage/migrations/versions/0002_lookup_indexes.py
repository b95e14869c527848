"""indexes for the daemon's per-tick lookups

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

`customers.timezone`: the time zones customers live in are read on every evaluation.
`actions (status, due_us)`: marketing actions waiting for the cap's verdict are read on every
tick; without the index that read grows with the whole history of actions.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_customers_timezone"), "customers", ["timezone"], unique=False)
    op.create_index(op.f("ix_actions_status_due_us"), "actions", ["status", "due_us"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_actions_status_due_us"), table_name="actions")
    op.drop_index(op.f("ix_customers_timezone"), table_name="customers")
