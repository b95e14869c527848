"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-22

Every table of engine/storage/tables.py as first written.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# Frozen copies of the column types tables.py uses, so later edits there cannot change history.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("birthday", sa.String(length=10), nullable=True),
        sa.Column("birthday_md", sa.String(length=5), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("signed_up_us", sa.BigInteger(), nullable=True),
        sa.Column("accepts_marketing", sa.Boolean(), nullable=False),
        sa.Column("attributes", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
    )
    op.create_index(op.f("ix_customers_birthday_md"), "customers", ["birthday_md"], unique=False)

    op.create_table(
        "daemons",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_us", sa.BigInteger(), nullable=False),
        sa.Column("heartbeat_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_daemons")),
    )
    op.create_table(
        "occurrences",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("rule", sa.String(length=300), nullable=False),
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("occurrence_key", sa.String(length=300), nullable=False),
        sa.Column("due_us", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("recorded_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_occurrences")),
        sa.UniqueConstraint(
            "rule",
            "customer_id",
            "occurrence_key",
            name=op.f("uq_occurrences_rule_customer_id_occurrence_key"),
        ),
    )
    op.create_index(
        op.f("ix_occurrences_customer_id_rule_due_us"),
        "occurrences",
        ["customer_id", "rule", "due_us"],
        unique=False,
    )
    op.create_index(op.f("ix_occurrences_due_us"), "occurrences", ["due_us"], unique=False)

    op.create_table(
        "rule_set_state",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("first_run_us", sa.BigInteger(), nullable=False),
        sa.Column("watermark_us", sa.BigInteger(), nullable=False),
        sa.Column("last_tick_us", sa.BigInteger(), nullable=True),
        sa.Column("fingerprint", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_rule_set_state")),
    )
    op.create_table(
        "actions",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("occurrence_id", SERIAL, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(length=300), nullable=False),
        sa.Column("rule_position", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("template", sa.Text(), nullable=True),
        sa.Column("channel", sa.String(length=100), nullable=True),
        sa.Column("amount", sa.Float(), nullable=True),
        sa.Column("unit", sa.String(length=10), nullable=True),
        sa.Column("due_us", sa.BigInteger(), nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=True),
        sa.Column("detail", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["occurrence_id"], ["occurrences.id"], name=op.f("fk_actions_occurrence_id_occurrences")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_actions")),
        sa.UniqueConstraint(
            "occurrence_id", "position", name=op.f("uq_actions_occurrence_id_position")
        ),
    )
    op.create_index(
        op.f("ix_actions_customer_id_kind_at_us"),
        "actions",
        ["customer_id", "kind", "at_us"],
        unique=False,
    )
    op.create_index(op.f("ix_actions_due_us"), "actions", ["due_us"], unique=False)

    op.create_table(
        "customer_tags",
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("tag", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_customer_tags_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("customer_id", "tag", name=op.f("pk_customer_tags")),
    )
    op.create_table(
        "events",
        sa.Column("pk", SERIAL, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=200), nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("properties", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_events_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_events")),
        sa.UniqueConstraint("key", name=op.f("uq_events_key")),
    )
    op.create_index(
        op.f("ix_events_customer_id_type_at_us"),
        "events",
        ["customer_id", "type", "at_us"],
        unique=False,
    )
    op.create_index(op.f("ix_events_type_at_us"), "events", ["type", "at_us"], unique=False)

    op.create_table(
        "coupons",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("action_id", SERIAL, nullable=False),
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("template", sa.Text(), nullable=False),
        sa.Column("worth", sa.Float(), nullable=False),
        sa.Column("unit", sa.String(length=10), nullable=False),
        sa.Column("min_spend", sa.Float(), nullable=True),
        sa.Column("expires_us", sa.BigInteger(), nullable=True),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["action_id"], ["actions.id"], name=op.f("fk_coupons_action_id_actions")
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_coupons")),
        sa.UniqueConstraint("action_id", name=op.f("uq_coupons_action_id")),
    )
    op.create_index(op.f("ix_coupons_customer_id"), "coupons", ["customer_id"], unique=False)

    op.create_table(
        "effects",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("action_id", SERIAL, nullable=True),
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("tag", sa.String(length=200), nullable=True),
        sa.Column("amount", sa.Float(), nullable=True),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("rule_position", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["action_id"], ["actions.id"], name=op.f("fk_effects_action_id_actions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_effects")),
        sa.UniqueConstraint("action_id", name=op.f("uq_effects_action_id")),
    )
    op.create_index(
        op.f("ix_effects_customer_id_kind_tag_at_us"),
        "effects",
        ["customer_id", "kind", "tag", "at_us"],
        unique=False,
    )

    op.create_table(
        "outbox",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("action_id", SERIAL, nullable=False),
        sa.Column("channel", sa.String(length=100), nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_us", sa.BigInteger(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("sent_us", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["action_id"], ["actions.id"], name=op.f("fk_outbox_action_id_actions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("action_id", name=op.f("uq_outbox_action_id")),
    )
    op.create_index(
        op.f("ix_outbox_status_next_attempt_us"),
        "outbox",
        ["status", "next_attempt_us"],
        unique=False,
    )

    op.create_table(
        "tasks",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("action_id", SERIAL, nullable=False),
        sa.Column("customer_id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("assignee", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("claimed_by", sa.String(length=200), nullable=True),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["action_id"], ["actions.id"], name=op.f("fk_tasks_action_id_actions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
        sa.UniqueConstraint("action_id", name=op.f("uq_tasks_action_id")),
    )
    op.create_index(op.f("ix_tasks_status_assignee"), "tasks", ["status", "assignee"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_tasks_status_assignee"), table_name="tasks")

    op.drop_table("tasks")
    op.drop_index(op.f("ix_outbox_status_next_attempt_us"), table_name="outbox")

    op.drop_table("outbox")
    op.drop_index(op.f("ix_effects_customer_id_kind_tag_at_us"), table_name="effects")

    op.drop_table("effects")
    op.drop_index(op.f("ix_coupons_customer_id"), table_name="coupons")

    op.drop_table("coupons")
    op.drop_index(op.f("ix_events_type_at_us"), table_name="events")
    op.drop_index(op.f("ix_events_customer_id_type_at_us"), table_name="events")

    op.drop_table("events")
    op.drop_table("customer_tags")
    op.drop_index(op.f("ix_actions_due_us"), table_name="actions")
    op.drop_index(op.f("ix_actions_customer_id_kind_at_us"), table_name="actions")

    op.drop_table("actions")
    op.drop_table("rule_set_state")
    op.drop_index(op.f("ix_occurrences_due_us"), table_name="occurrences")
    op.drop_index(op.f("ix_occurrences_customer_id_rule_due_us"), table_name="occurrences")

    op.drop_table("occurrences")
    op.drop_table("daemons")
    op.drop_index(op.f("ix_customers_birthday_md"), table_name="customers")

    op.drop_table("customers")
