"""consent as it stood at each moment

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-26

An import that changed a customer's `accepts_marketing` overwrote it, and every evaluation read
the new value at every due time: after a customer was imported with `false` on Nov 20,
`simulate` of Nov 1-15 said `suppressed (no-consent)` where the daemon had sent. Imports now
write each change with its time to `consent_changes`, and the evaluation reads the flag as it
stood at each due time. The table starts empty: what a database's customers hold when it is
upgraded stands from the beginning, as for a first import (no earlier change is known).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consent_changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("accepts_marketing_before", sa.Boolean(), nullable=False),
        sa.Column("accepts_marketing_after", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_consent_changes_customer_id_customers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_changes")),
    )
    op.create_index(
        op.f("ix_consent_changes_customer_id_at_us"), "consent_changes", ["customer_id", "at_us"]
    )
    op.create_index(
        op.f("ix_consent_changes_at_us_customer_id"), "consent_changes", ["at_us", "customer_id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_consent_changes_at_us_customer_id"), table_name="consent_changes")
    op.drop_index(op.f("ix_consent_changes_customer_id_at_us"), table_name="consent_changes")
    op.drop_table("consent_changes")
