"""Baseline 1, the naive way: the tests' reference evaluator (a per-customer Python loop over the
same rules), on the same data read back from the database.

On a large shop it runs on a random sample of customers and its time is scaled linearly to the
whole shop: nothing in the language crosses from one customer to another, so the work per
customer does not depend on how many others there are.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, select

from engine.config import Config
from engine.language import ast
from engine.storage.tables import customer_tags, customers, events
from tests.reference.evaluator import simulate
from tests.reference.shop import Customer, Event, Shop

CHUNK = 500


@dataclass(frozen=True)
class NaiveRun:
    seconds: float  # for the sample
    sample: int
    population: int
    actions: int  # records produced for the sample

    @property
    def scaled_s(self) -> float:
        return self.seconds * self.population / self.sample


def sample_ids(engine: Engine, limit: int, seed: int) -> tuple[list[str], int]:
    """Up to `limit` customer ids drawn at random (seeded), and how many customers there are."""
    with engine.connect() as conn:
        ids = sorted(conn.scalars(select(customers.c.id)))
    if len(ids) <= limit:
        return ids, len(ids)
    return sorted(random.Random(seed).sample(ids, limit)), len(ids)


def load_shop(engine: Engine, ids: Sequence[str]) -> Shop:
    """The reference evaluator's in-memory shop for the customers `ids`, from the database."""
    people: list[Customer] = []
    happenings: list[Event] = []
    with engine.connect() as conn:
        for chunk in _chunks(ids):
            tags: dict[str, set[str]] = {}
            for cid, tag in conn.execute(
                select(customer_tags.c.customer_id, customer_tags.c.tag).where(
                    customer_tags.c.customer_id.in_(chunk)
                )
            ):
                tags.setdefault(cid, set()).add(tag)
            for row in conn.execute(select(customers).where(customers.c.id.in_(chunk))):
                people.append(
                    Customer(
                        id=row.id,
                        name=row.name,
                        email=row.email,
                        phone=row.phone,
                        birthday=row.birthday,
                        timezone=row.timezone,
                        signed_up_us=row.signed_up_us,
                        accepts_marketing=bool(row.accepts_marketing),
                        tags=frozenset(tags.get(row.id, ())),
                        attributes=dict(row.attributes or {}),
                    )
                )
            for row in conn.execute(select(events).where(events.c.customer_id.in_(chunk))):
                happenings.append(
                    Event(row.key, row.customer_id, row.type, row.at_us, dict(row.properties))
                )
    return Shop(customers=tuple(people), events=tuple(happenings))


def run_naive(
    ruleset: ast.RuleSet, shop: Shop, population: int, config: Config, start_us: int, end_us: int
) -> NaiveRun:
    began = time.perf_counter()
    records = simulate(ruleset, shop, config, start_us, end_us)
    seconds = time.perf_counter() - began
    return NaiveRun(seconds, len(shop.customers), population, len(records))


def _chunks(ids: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(ids), CHUNK):
        yield ids[i : i + CHUNK]
