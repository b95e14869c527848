"""How the customers `nudge demo` makes are told from a shop's own.

The demo's ids (`c1`, `c2`...) may well be a real shop's: each customer it makes carries an
attribute saying so. The demo refuses to write over a database holding other customers, and an
import of the shop's own files refuses a database holding the demo's (its customers would be
merged with the made-up ones of the same ids, and `nudge run` would act on both).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import ColumnElement, Connection

from engine.plan.sqlfuncs import json_text
from engine.storage.tables import customers

DEMO_MARK, DEMO_VALUE = "made_by", "nudge demo"


def made_by_demo() -> ColumnElement[bool]:
    """Whether a customer is one the demo made."""
    return sa.func.coalesce(json_text(customers.c.attributes, DEMO_MARK), "") == DEMO_VALUE


def holds_demo_shop(conn: Connection) -> bool:
    """Whether the database holds the demo's shop: the demo makes all of a database's
    customers or none (it refuses any other), so its first customer tells (one index read)."""
    first = sa.select(made_by_demo()).order_by(customers.c.id).limit(1)
    return bool(conn.execute(first).scalar())
