"""index on the customers' sign-up time

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23

`customer.signed_up` triggers read the customers who signed up in each tick's window; without
the index every tick scanned every customer (about 100 ms an idle tick at a million customers).
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_customers_signed_up_us"), "customers", ["signed_up_us"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_customers_signed_up_us"), table_name="customers")
