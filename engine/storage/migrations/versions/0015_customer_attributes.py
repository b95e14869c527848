"""the names of the customers' attributes

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-26

`check` (W507) asks whether the customers were imported with an attribute of a metric's name
(`points`), which a template shows as `customer.points`: a scan of every customer's attributes,
a second a name at 1,000,000 customers, at each check, `simulate` and reload of the daemon.
Imports now record the names of the attributes they store in `customer_attributes`, which the
upgrade fills from the customers stored (one scan, once).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# The names set in the stored customers' attributes, no longer than the table's column.
_NAMES = {
    "sqlite": "SELECT DISTINCT attribute.key FROM customers, json_each(customers.attributes)"
    " AS attribute WHERE json_type(customers.attributes) = 'object'"
    " AND attribute.type <> 'null' AND length(attribute.key) <= 200",
    "postgresql": "SELECT DISTINCT attribute.key"
    " FROM (SELECT attributes FROM customers WHERE jsonb_typeof(attributes) = 'object') AS stored,"
    " jsonb_each(stored.attributes) AS attribute"
    " WHERE jsonb_typeof(attribute.value) <> 'null' AND length(attribute.key) <= 200",
}


def upgrade() -> None:
    op.create_table(
        "customer_attributes",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_customer_attributes")),
    )
    op.execute(f"INSERT INTO customer_attributes (name) {_NAMES[op.get_bind().dialect.name]}")


def downgrade() -> None:
    op.drop_table("customer_attributes")
