"""the customer's id in the indexes on the birthday and the sign-up time

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23

A simulation's worker finds the birthdays and sign-ups due for the customers of a range of
ids. With the indexes on `birthday_md` and `signed_up_us` alone, SQLite read every such
customer of the shop from the table to learn their id: at 1,000,000 customers, 5.2 s of the
8.2 s in which the occurrences of 50,000 customers were found.
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_customers_birthday_md_id"), "customers", ["birthday_md", "id"], unique=False
    )
    op.create_index(
        op.f("ix_customers_signed_up_us_id"), "customers", ["signed_up_us", "id"], unique=False
    )
    op.drop_index(op.f("ix_customers_birthday_md"), table_name="customers")
    op.drop_index(op.f("ix_customers_signed_up_us"), table_name="customers")


def downgrade() -> None:
    op.create_index(op.f("ix_customers_signed_up_us"), "customers", ["signed_up_us"], unique=False)
    op.create_index(op.f("ix_customers_birthday_md"), "customers", ["birthday_md"], unique=False)
    op.drop_index(op.f("ix_customers_signed_up_us_id"), table_name="customers")
    op.drop_index(op.f("ix_customers_birthday_md_id"), table_name="customers")
