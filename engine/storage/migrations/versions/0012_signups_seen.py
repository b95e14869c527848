"""sign-ups imported after a tick passed them

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-25

A customer imported after the tick that covered the sign-up (an hourly `nudge import
customers`) never got the daemon's `customer.signed_up` occurrences, and nothing said so: only
events were tracked as imported late (0008). Imports now number the sign-ups they write
(`customers.signed_up_seq`), and each rule set keeps the newest its ticks saw
(`rule_set_state.signups_seen_seq`), as for events. Customers stored before have no number, so
nothing stored is taken again; rule sets that ran before have seen none, so a sign-up imported
between the upgrade and their next tick is taken by it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("signed_up_seq", sa.BigInteger(), nullable=True))
    op.create_index(op.f("ix_customers_signed_up_seq"), "customers", ["signed_up_seq"])
    with op.batch_alter_table("rule_set_state") as batch:
        batch.add_column(sa.Column("signups_seen_seq", sa.BigInteger(), nullable=True))
    # The rule sets that ran before have seen no number: those an import gives before their
    # next tick (the hourly import, which upgrades the database as it opens it) are theirs.
    op.execute("UPDATE rule_set_state SET signups_seen_seq = 0")


def downgrade() -> None:
    with op.batch_alter_table("rule_set_state") as batch:
        batch.drop_column("signups_seen_seq")
    op.drop_index(op.f("ix_customers_signed_up_seq"), table_name="customers")
    # In place (SQLite's ALTER TABLE DROP COLUMN): a copy of the table would drop the old one,
    # which the foreign keys of the events and tags that refer to its customers refuse.
    with op.batch_alter_table("customers", recreate="never") as batch:
        batch.drop_column("signed_up_seq")
