"""indexes from a tag to the customers holding it

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24

Before a simulation or a tick tests `exclude if "complaint" in customer.tags` for every
marketing occurrence, it finds who may hold the tag at all: the customers it was imported for
and those a rule gave it to (`engine.policies.gates`). Both tables were indexed by customer first,
so that search read every imported tag and every recorded effect, points included.
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_customer_tags_tag_customer_id"), "customer_tags", ["tag", "customer_id"]
    )
    op.create_index(
        op.f("ix_effects_tag_kind_customer_id_at_us"),
        "effects",
        ["tag", "kind", "customer_id", "at_us"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_effects_tag_kind_customer_id_at_us"), table_name="effects")
    op.drop_index(op.f("ix_customer_tags_tag_customer_id"), table_name="customer_tags")
