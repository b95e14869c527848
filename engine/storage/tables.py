"""The whole schema in one readable place (SQLAlchemy Core). Migrations live in `migrations/`.

Conventions
- Every instant is stored as a BIGINT of microseconds since the Unix epoch, UTC (`*_us`).
  Integer instants compare, subtract and index the same on SQLite and PostgreSQL, so rule
  queries need no dialect-specific date arithmetic; local time is computed in Python, once per
  occurrence due.
- Shop data (customers, customer_tags, consent_changes, events) is written only by import.
  Everything the daemon decides (occurrences, actions, effects, coupons, tasks, outbox) lives
  in the ledger tables, each guarded by a unique key so that nothing is recorded twice.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Json = JSON().with_variant(JSONB(), "postgresql")

# The longest names the ledger holds (PostgreSQL refuses longer ones; `check` says so, E320).
NAME_LENGTH = 200  # an id (a customer's, an event's), an event's type, a tag, a team, a rule set
RULE_NAME_LENGTH = 300
CHANNEL_NAME_LENGTH = 100

# --- shop data --------------------------------------------------------------------------------

customers = Table(
    "customers",
    metadata,
    Column("id", String(NAME_LENGTH), primary_key=True),
    Column("name", Text),
    Column("email", Text),
    Column("phone", Text),
    # `YYYY-MM-DD` or `MM-DD` as imported; `birthday_md` is always `MM-DD` (indexed, for the
    # yearly birthday trigger).
    Column("birthday", String(10)),
    Column("birthday_md", String(5)),
    Column("timezone", String(64)),
    Column("signed_up_us", BigInteger),
    # Numbers the sign-ups in the order imports wrote them: set when an import gives a customer
    # a sign-up time or changes it, so that a tick can tell the sign-ups imported since the
    # last one (`rule_set_state.signups_seen_seq`). Null for customers without one.
    Column("signed_up_seq", BigInteger),
    Column("accepts_marketing", Boolean, nullable=False, default=False),
    Column("attributes", Json, nullable=False, default=dict),
    # The id in the birthday's and the sign-up's indexes: the customers of a range of ids (a
    # simulation's worker, a group of batches) are told apart without reading the table.
    Index(None, "birthday_md", "id"),
    Index(None, "timezone"),
    Index(None, "signed_up_us", "id"),  # `customer.signed_up` triggers, every tick
    Index(None, "signed_up_seq"),  # the sign-ups imported since a tick, every tick
    # What every rule's query reads of each occurrence's customer (the zone, and consent for
    # marketing), and the fills of the customers of a range of ids by zone: read from the index
    # alone, without a second lookup into the table.
    Index(None, "id", "timezone", "accepts_marketing"),
)

# The name of every attribute customers were imported with, set (`points`, `language`): what
# `check` asks of a template's `customer.points` (W507), an index lookup where a scan of the
# customers took a second a name at 1,000,000 of them. Imports add to it (nothing removes an
# attribute); names longer than `NAME_LENGTH` are left out.
customer_attributes = Table(
    "customer_attributes",
    metadata,
    Column("name", String(NAME_LENGTH), primary_key=True),
)

customer_tags = Table(
    "customer_tags",
    metadata,
    Column("customer_id", String(NAME_LENGTH), ForeignKey("customers.id"), primary_key=True),
    Column("tag", String(NAME_LENGTH), primary_key=True),
    Index(None, "tag", "customer_id"),  # who holds a tag (`engine.policies.gates`)
)

# Each change an import made to a stored customer's `accepts_marketing`, with its time (the
# import's clock): the flag as it stood at an instant is the value before the first change
# after it, else the stored one (`consent.flag_at`). A customer's first import, and one an
# event created, make no row: that value stands from the beginning.
consent_changes = Table(
    "consent_changes",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("customer_id", String(NAME_LENGTH), ForeignKey("customers.id"), nullable=False),
    Column("at_us", BigInteger, nullable=False),
    Column("accepts_marketing_before", Boolean, nullable=False),
    Column("accepts_marketing_after", Boolean, nullable=False),
    Index(None, "customer_id", "at_us"),  # a customer's first change after a due time
    Index(
        None, "at_us", "customer_id"
    ),  # who changed after a window's start (`engine.policies.gates`)
)

events = Table(
    "events",
    metadata,
    Column(
        "pk", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    # The event's `id` from the shop when given, else a digest of its content: importing the
    # same event twice stores it once.
    Column("key", String(NAME_LENGTH), nullable=False, unique=True),
    Column("customer_id", String(NAME_LENGTH), ForeignKey("customers.id"), nullable=False),
    Column("type", String(NAME_LENGTH), nullable=False),
    Column("at_us", BigInteger, nullable=False),
    Column("properties", Json, nullable=False, default=dict),
    # Events of a type in a time range; the customer in it too, so that the events of some
    # customers (a simulation's worker, a batch) are told apart without reading the table.
    Index(None, "type", "at_us", "customer_id"),
    Index(None, "customer_id", "type", "at_us"),
)

# --- rule-set state -----------------------------------------------------------------------------

rule_set_state = Table(
    "rule_set_state",
    metadata,
    Column("name", String(NAME_LENGTH), primary_key=True),  # the rule set's folder name
    Column("first_run_us", BigInteger, nullable=False),  # nothing due before this acts
    Column("watermark_us", BigInteger, nullable=False),  # everything due before this is done
    Column("last_tick_us", BigInteger),
    Column("fingerprint", String(64)),  # digest of the rule files last loaded
    # The newest event (`events.pk`) the last tick saw, and how many events imported since a
    # tick had passed their time were found: the next tick takes their own occurrences due
    # before it (`engine.evaluation.tick`, `nudge status`).
    Column("events_seen_pk", BigInteger),
    Column("late_events", BigInteger, nullable=False, server_default="0"),
    # The same for sign-ups (`customers.signed_up_seq`): a customer imported after a tick had
    # passed the sign-up; counted in `late_events` too.
    Column("signups_seen_seq", BigInteger),
)

# --- the ledger: what the daemon decided ----------------------------------------------------------

occurrences = Table(
    "occurrences",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("rule", String(RULE_NAME_LENGTH), nullable=False),
    Column("customer_id", String(NAME_LENGTH), nullable=False),
    # Identifies the occurrence within (rule, customer): the event key, the year, the slot...
    Column("occurrence_key", String(300), nullable=False),
    Column("due_us", BigInteger, nullable=False),
    Column("status", String(20), nullable=False),  # acted | missed
    Column("recorded_us", BigInteger, nullable=False),
    UniqueConstraint("rule", "customer_id", "occurrence_key"),
    Index(None, "customer_id", "rule", "due_us"),
    Index(None, "due_us"),
)

actions = Table(
    "actions",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("occurrence_id", ForeignKey("occurrences.id"), nullable=False),
    Column("position", Integer, nullable=False),  # index of the action in `then`
    Column("rule", String(RULE_NAME_LENGTH), nullable=False),
    Column("rule_position", Integer, nullable=False),
    Column("customer_id", String(NAME_LENGTH), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("template", Text),
    Column("channel", String(CHANNEL_NAME_LENGTH)),
    Column("amount", Float),
    Column("unit", String(10)),
    Column("due_us", BigInteger, nullable=False),
    Column("at_us", BigInteger, nullable=False),
    Column("status", String(20), nullable=False),  # sent | suppressed
    Column("reason", String(20)),  # no-consent | excluded | cap
    Column("detail", Json, nullable=False, default=dict),  # task title, coupon code, tag...
    UniqueConstraint("occurrence_id", "position"),
    Index(None, "customer_id", "kind", "at_us"),
    Index(None, "due_us"),
    Index(None, "status", "due_us"),
)

# Tags, untags and points given by rules, in the order they apply (LANGUAGE.md 3.6).
effects = Table(
    "effects",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("action_id", ForeignKey("actions.id"), unique=True),
    Column("customer_id", String(NAME_LENGTH), nullable=False),
    Column("kind", String(10), nullable=False),  # tag | untag | points
    Column("tag", String(NAME_LENGTH)),
    Column("amount", Float),
    Column("at_us", BigInteger, nullable=False),
    Column("rule_position", Integer, nullable=False),
    Column("position", Integer, nullable=False),
    Index(None, "customer_id", "kind", "tag", "at_us"),
    Index(
        None, "tag", "kind", "customer_id", "at_us"
    ),  # who was given a tag (`engine.policies.gates`)
)

coupons = Table(
    "coupons",
    metadata,
    Column("code", String(64), primary_key=True),
    Column("action_id", ForeignKey("actions.id"), nullable=False, unique=True),
    Column("customer_id", String(NAME_LENGTH), nullable=False),
    Column("template", Text, nullable=False),
    Column("worth", Float, nullable=False),
    Column("unit", String(10), nullable=False),  # money | percent
    Column("min_spend", Float),
    Column("expires_us", BigInteger),
    Column("created_us", BigInteger, nullable=False),
    Index(None, "customer_id"),
)

tasks = Table(
    "tasks",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("action_id", ForeignKey("actions.id"), nullable=False, unique=True),
    Column("customer_id", String(NAME_LENGTH), nullable=False),
    Column("kind", String(10), nullable=False),  # task | gift
    Column("title", Text, nullable=False),
    Column("assignee", String(NAME_LENGTH)),
    Column("status", String(10), nullable=False, default="open"),  # open | claimed | done
    Column("claimed_by", String(NAME_LENGTH)),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Index(None, "status", "assignee"),
)

outbox = Table(
    "outbox",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("action_id", ForeignKey("actions.id"), nullable=False, unique=True),
    Column("channel", String(CHANNEL_NAME_LENGTH), nullable=False),
    Column("payload", Json, nullable=False),
    # pending (waiting for next_attempt_us) | sent | failed (template error) | dead (refused
    # for good or out of attempts) | cancelled (marketing whose consent was withdrawn before
    # sending) | missed (not sent: the daemon came to it beyond grace). See
    # engine/outbox/dispatch.py.
    Column("status", String(10), nullable=False, default="pending"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_us", BigInteger, nullable=False),
    Column("last_error", Text),
    # When it first failed for now since it was queued or requeued (None until then): it is
    # retried until `retry_for` has passed since.
    Column("failing_since_us", BigInteger),
    Column("created_us", BigInteger, nullable=False),
    Column("sent_us", BigInteger),
    Index(None, "status", "next_attempt_us"),
)

# One row per running daemon, for `nudge status` and SQLite's one-daemon rule.
daemons = Table(
    "daemons",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("host", String(NAME_LENGTH), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_us", BigInteger, nullable=False),
    Column("heartbeat_us", BigInteger, nullable=False),
    Column("tick_seconds", Float),  # its interval, by which `nudge status` judges it silent
    # Where `pid` is its process's number (`status.pid_space`): there `status` looks for it.
    Column("pid_space", String(NAME_LENGTH)),
)
