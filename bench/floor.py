"""Baseline 3, the floor: hand-written SQL for three representative rules of the shop, against
the compiled plan (`simulate` of a rule set holding only those three rules, no policies) on the
same data. The hand-written versions must find exactly the occurrences the engine finds; the
harness checks the counts, rule by rule.

- "abandoned cart": `when cart.updated + 2h if count(cart.updated within 2h) == 0 unless
  order.placed once every 1d` — an event plus a delay with a count and `unless` (and `once
  every`, kept per customer in Python, as the engine does);
- "weekly group buy": `when every friday at 20:00 if customer in "active buyers"` — a segment
  broadcast; Fridays at 20:00 are computed per time zone in Python, the segment in SQL;
- "birthday coupon": `when customer.birthday - 1d at 09:00` — a birthday; the index on
  `birthday_md` narrows the customers, Python computes each due time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Iterator
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, bindparam, text

from engine.config import Config
from engine.evaluation.evaluate import evaluate_due, find_due
from engine.evaluation.simulate import simulate
from engine.language import ast
from engine.plan.triggers import BATCH_CUSTOMERS, customer_batches

RULES = ("abandoned cart", "weekly group buy", "birthday coupon")
HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US

ABANDONED_CART = text(
    """
    SELECT e.customer_id, e.key, e.at_us + :delay AS due_us
    FROM events e
    WHERE e.type = 'cart.updated' AND e.at_us >= :start - :delay AND e.at_us < :end - :delay
      AND NOT EXISTS (
        SELECT 1 FROM events o
        WHERE o.customer_id = e.customer_id AND o.type = 'order.placed'
          AND o.at_us > e.at_us AND o.at_us <= e.at_us + :delay)
      AND NOT EXISTS (
        SELECT 1 FROM events u
        WHERE u.customer_id = e.customer_id AND u.type = 'cart.updated'
          AND u.at_us > e.at_us AND u.at_us <= e.at_us + :delay)
    ORDER BY e.customer_id, due_us, e.key
    """
)

# "active buyers" = customer.orders >= 1 and customer.days_since_last_order <= 180: a paid order
# at or before the due time and less than 181 whole days before it.
GROUP_BUY = """
    WITH slots(tz, due_us) AS (VALUES {values})
    SELECT c.id, s.due_us
    FROM customers c JOIN slots s ON COALESCE(c.timezone, :shop_tz) = s.tz
    WHERE EXISTS (
      SELECT 1 FROM events o
      WHERE o.customer_id = c.id AND o.type = 'order.paid'
        AND o.at_us <= s.due_us AND o.at_us > s.due_us - :recent)
    """

BIRTHDAYS = text(
    "SELECT id, birthday_md, COALESCE(timezone, :shop_tz) FROM customers WHERE birthday_md IN :days"
).bindparams(bindparam("days", expanding=True))


def floor_ruleset(ruleset: ast.RuleSet) -> ast.RuleSet:
    """The shop's rule set cut down to the three rules, without policies."""
    rules = tuple(rule for rule in ruleset.rules if rule.name in RULES)
    assert len(rules) == len(RULES), "the shop's rules no longer hold the representative three"
    return dataclasses.replace(ruleset, rules=rules, limits=(), quiet_hours=(), excludes=())


def compiled(
    engine: Engine, ruleset: ast.RuleSet, config: Config, start_us: int, end_us: int
) -> tuple[float, dict[str, int]]:
    """Seconds for `simulate` of the three rules, and its occurrences per rule."""
    began = time.perf_counter()
    result = simulate(engine, ruleset, config, start_us, end_us)
    seconds = time.perf_counter() - began
    counts = dict.fromkeys(RULES, 0)
    for occurrence in result.occurrences:
        counts[occurrence.rule.name] += 1
    return seconds, counts


def plan_only(
    engine: Engine, ruleset: ast.RuleSet, config: Config, start_us: int, end_us: int
) -> tuple[float, dict[str, int]]:
    """Seconds for the compiled plan alone: the occurrences that act, found as `simulate` finds
    them (triggers, conditions, `once`), without building their actions: the work the
    hand-written queries do."""
    began = time.perf_counter()
    counts = dict.fromkeys(RULES, 0)
    with engine.connect() as conn:
        try:
            due = find_due(conn, ruleset, config, start_us, end_us)
            for batch in customer_batches(conn, BATCH_CUSTOMERS):
                result = evaluate_due(conn, ruleset, config, due, batch, with_actions=False)
                for occurrence in result.occurrences:
                    counts[occurrence.rule.name] += 1
        finally:
            conn.rollback()
    return time.perf_counter() - began, counts


def hand_written(
    engine: Engine, config: Config, start_us: int, end_us: int
) -> tuple[float, dict[str, int]]:
    """Seconds for the hand-written queries of the three rules, and their occurrences."""
    began = time.perf_counter()
    with engine.connect() as conn:
        counts = {
            "abandoned cart": _abandoned_cart(conn, start_us, end_us),
            "weekly group buy": _group_buy(conn, config.timezone, start_us, end_us),
            "birthday coupon": _birthday_coupon(conn, config.timezone, start_us, end_us),
        }
    return time.perf_counter() - began, counts


def _abandoned_cart(conn: Connection, start_us: int, end_us: int) -> int:
    rows = conn.execute(ABANDONED_CART, {"delay": 2 * HOUR_US, "start": start_us, "end": end_us})
    count = 0
    last: dict[str, int] = {}
    for customer_id, _key, due in rows:  # once every 1d: the first not within a day of the last
        previous = last.get(customer_id)
        if previous is None or previous <= due - DAY_US:
            last[customer_id] = due
            count += 1
    return count


def _group_buy(conn: Connection, shop_tz: str, start_us: int, end_us: int) -> int:
    zones = [
        tz
        for (tz,) in conn.execute(
            text("SELECT DISTINCT COALESCE(timezone, :shop_tz) FROM customers"),
            {"shop_tz": shop_tz},
        )
    ]
    slots = [(tz, due) for tz in zones for due in _fridays_at_20(tz, start_us, end_us)]
    if not slots:
        return 0
    values = ", ".join(f"(:tz{i}, CAST(:due{i} AS BIGINT))" for i in range(len(slots)))
    params: dict[str, object] = {"shop_tz": shop_tz, "recent": 181 * DAY_US}
    for i, (tz, due) in enumerate(slots):
        params[f"tz{i}"], params[f"due{i}"] = tz, due
    return len(conn.execute(text(GROUP_BUY.format(values=values)), params).all())


def _fridays_at_20(tz: str, start_us: int, end_us: int) -> Iterator[int]:
    zone = ZoneInfo(tz)
    day = dt.datetime.fromtimestamp(start_us / 1e6, zone).date() - dt.timedelta(days=1)
    while True:
        if day.weekday() == 4:
            due = (
                int(dt.datetime(day.year, day.month, day.day, 20, tzinfo=zone).timestamp()) * 10**6
            )
            if due >= end_us:
                return
            if due >= start_us:
                yield due
        day += dt.timedelta(days=1)


def _birthday_coupon(conn: Connection, shop_tz: str, start_us: int, end_us: int) -> int:
    first = dt.datetime.fromtimestamp(start_us / 1e6, dt.UTC).date() - dt.timedelta(days=2)
    last = dt.datetime.fromtimestamp(end_us / 1e6, dt.UTC).date() + dt.timedelta(days=3)
    days = [(first + dt.timedelta(days=i)) for i in range((last - first).days + 1)]
    keys = sorted({d.strftime("%m-%d") for d in days} | {"02-29"})
    count = 0
    for _id, md, tz in conn.execute(BIRTHDAYS, {"shop_tz": shop_tz, "days": keys}):
        month, day = int(md[:2]), int(md[3:])
        zone = ZoneInfo(tz)
        for year in range(first.year, last.year + 1):
            if (month, day) == (2, 29) and not (year % 4 == 0 and (year % 100 or year % 400 == 0)):
                birthday = dt.date(year, 2, 28)
            else:
                birthday = dt.date(year, month, day)
            eve = birthday - dt.timedelta(days=1)
            due = int(dt.datetime(eve.year, eve.month, eve.day, 9, tzinfo=zone).timestamp()) * 10**6
            if start_us <= due < end_us:
                count += 1
    return count
