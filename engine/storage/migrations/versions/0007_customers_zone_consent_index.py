"""the customers' zone and consent beside their id

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24

Every rule's query joins each occurrence to its customer for the customer's time zone, and a
marketing rule's for the consent flag; the calendar rules' fills read the zone of each customer
of a range of ids. Through the primary key SQLite then read the customer's row from the table as
well: a second lookup for each of a simulation's million occurrences at M. With the zone and
the flag in an index by id, the index alone answers; SQLite takes it once the customers have
statistics (an import analyzes them, `storage.bulk.importing`), so they are analyzed here too.
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_customers_id_timezone_accepts_marketing"),
        "customers",
        ["id", "timezone", "accepts_marketing"],
    )
    op.execute("ANALYZE customers")


def downgrade() -> None:
    op.drop_index(op.f("ix_customers_id_timezone_accepts_marketing"), table_name="customers")
