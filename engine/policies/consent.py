"""Consent, the first of the shop-wide policies (LANGUAGE.md 3.8), in SQL.

Consent and `exclude` are properties of the occurrence at its due time and are computed in SQL:
consent here (`consent_sql`, on the flag as it stood then, `flag_at`), the exclusion conditions
through `engine.plan.sqlgen`. Quiet hours and the cap are in `engine.policies.timing`.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause

from engine.storage.tables import consent_changes, events

SUBSCRIBED = "customer.subscribed"
UNSUBSCRIBED = "customer.unsubscribed"


def consent_sql(
    customer: FromClause,
    due: ColumnElement[int],
    lookup: ColumnElement[bool] | None = None,
    flag: ColumnElement[bool] | None = None,
) -> ColumnElement[bool]:
    """Whether the customer accepts marketing at `due`: `accepts_marketing` is true then
    (LANGUAGE.md 3.7: nothing turns that off), and the latest `customer.unsubscribed` or
    `customer.subscribed` event at or before it, if any, is not an unsubscribe.
    `lookup`, when given, says where there may be such an event (`engine.policies.gates`): elsewhere
    the flag is read without looking. `flag` is the flag at `due` (`flag_at`), the stored one when
    not given."""
    e = events.alias("consent_events")
    latest_subscribed = (
        sa.select(e.c.type == SUBSCRIBED)
        .where(
            e.c.customer_id == customer.c.id,
            e.c.type.in_((SUBSCRIBED, UNSUBSCRIBED)),
            e.c.at_us <= due,
        )
        .order_by(e.c.at_us.desc(), e.c.pk.desc())
        .limit(1)
        .scalar_subquery()
    )
    # One lookup per occurrence with the flag set: the latest event's verdict, else yes.
    stored = stored_consent(customer) if flag is None else flag
    latest = sa.and_(stored, sa.func.coalesce(latest_subscribed, sa.true()))
    return latest if lookup is None else sa.case((lookup, latest), else_=stored)


def flag_at(
    customer: FromClause, due: ColumnElement[int], changed: ColumnElement[bool] | None = None
) -> ColumnElement[bool]:
    """The customer's `accepts_marketing` as it stood at `due`: the value before the first
    change an import made after it (`tables.consent_changes`; a change at `due` has been made
    by then), else the stored flag. `changed`, when given, says which customers may have such a
    change (`engine.policies.gates`): elsewhere the stored flag is read without looking."""
    c = consent_changes.alias("flag_changes")
    before = (
        sa.select(c.c.accepts_marketing_before)
        .where(c.c.customer_id == customer.c.id, c.c.at_us > due)
        .order_by(c.c.at_us, c.c.id)
        .limit(1)
        .scalar_subquery()
    )
    stored = stored_consent(customer)
    then = sa.func.coalesce(before, stored)
    return then if changed is None else sa.case((changed, then), else_=stored)


def stored_consent(customer: FromClause) -> ColumnElement[bool]:
    """The customer's `accepts_marketing` flag (false when unset)."""
    return sa.func.coalesce(customer.c.accepts_marketing, sa.false())
