"""The synthetic demo shop: deterministic, lazy, and data a real shop could have sent."""

from __future__ import annotations

import collections
import csv
import dataclasses
import datetime as dt
import json
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from engine.config import Config, load_config
from engine.demo.run import run_demo
from engine.demo.shop import CUSTOMER_COLUMNS, generate_shop, write_shop
from engine.errors import DatabaseError, DataError, RuleError
from engine.importing.importers import (
    import_customer_rows,
    import_customers,
    import_event_rows,
    import_events,
)
from engine.storage.db import open_database
from engine.storage.tables import customers, events
from engine.timeutil import is_zone

SHANGHAI = ZoneInfo("Asia/Shanghai")
START = dt.datetime(2026, 1, 1, tzinfo=SHANGHAI)
END = dt.datetime(2027, 1, 1, tzinfo=SHANGHAI)
EVENT_NAME = re.compile(r"[a-z][a-z_]*\.[a-z][a-z_]*")
KNOWN_TYPES = {
    "cart.updated",
    "order.placed",
    "order.paid",
    "order.shipped",
    "order.received",
    "order.returned",
    "review.posted",
    "customer.referred",
    "product.launched",
}
ORDER_STEPS = ("order.placed", "order.paid", "order.shipped", "order.received", "order.returned")


def shop(**kwargs) -> tuple[list[dict], list[dict]]:
    customers, events = generate_shop(**kwargs)
    return list(customers), list(events)


@pytest.fixture(scope="module")
def year() -> tuple[list[dict], list[dict]]:
    return shop(seed=7, customers=600, start=START, end=END)


def at(event: dict) -> dt.datetime:
    return dt.datetime.fromisoformat(event["at"])


def test_same_seed_gives_the_same_shop():
    assert shop(seed=3, customers=80) == shop(seed=3, customers=80)


def test_another_seed_gives_another_shop():
    customers_a, events_a = shop(seed=3, customers=80)
    customers_b, events_b = shop(seed=4, customers=80)
    assert [c["id"] for c in customers_a] == [c["id"] for c in customers_b]
    assert customers_a != customers_b
    assert events_a != events_b
    assert not {e["id"] for e in events_a} & {e["id"] for e in events_b}


def test_a_customer_is_the_same_whatever_the_size_of_the_shop():
    small_customers, small_events = shop(seed=5, customers=30)
    big_customers, big_events = shop(seed=5, customers=300)
    assert big_customers[:30] == small_customers
    ids = {c["id"] for c in small_customers}
    assert [e for e in big_events if e["customer"] in ids] == small_events


def test_generation_is_lazy():
    customers, events = generate_shop(customers=10**9)  # would never fit in memory
    assert next(customers)["id"] == "c1"
    assert next(events)["customer"] == "c1"


def test_customer_rows_follow_the_import_format(year):
    customers, _ = year
    assert len({c["id"] for c in customers}) == len(customers) == 600
    for row in customers:
        assert set(row) == set(CUSTOMER_COLUMNS)
        assert row["id"] and isinstance(row["id"], str)
        assert isinstance(row["accepts_marketing"], bool)
        assert row["timezone"] is None or is_zone(row["timezone"])
        signed_up = dt.datetime.fromisoformat(row["signed_up"])
        assert signed_up.tzinfo is not None and signed_up < END
        if row["birthday"] is not None:
            match = re.fullmatch(r"(?:(\d{4})-)?(\d{2})-(\d{2})", row["birthday"])
            assert match, row["birthday"]
            year_, month, day = match.groups()
            dt.date(int(year_ or 2000), int(month), int(day))  # a real day
        if row["tags"] is not None:
            assert all(tag and tag == tag.strip() for tag in row["tags"].split(","))
        if row["email"] is not None:
            assert row["email"].rsplit("@", 1)[1] in {"example.com", "example.net", "example.org"}
        assert row["language"] in {"zh", "en"}


def test_customers_are_varied_like_a_real_shop(year):
    customers, _ = year
    zones = collections.Counter(c["timezone"] for c in customers)
    assert zones.most_common(1)[0][0] == "Asia/Shanghai"
    assert {None, "Asia/Hong_Kong", "America/Los_Angeles"} <= set(zones)
    marketing = collections.Counter(c["accepts_marketing"] for c in customers)
    assert marketing[True] > marketing[False] > 0
    birthdays = [c["birthday"] for c in customers if c["birthday"]]
    assert any(len(b) == 5 for b in birthdays) and any(len(b) == 10 for b in birthdays)
    assert any(re.search(r"[\u4e00-\u9fff]", c["name"] or "") for c in customers)
    assert any(re.fullmatch(r"[A-Za-z]+ [A-Za-z]+", c["name"] or "") for c in customers)


def test_some_customers_are_born_on_29_february():
    customers, _ = shop(seed=7, customers=3000, start=START, end=END)
    assert any((c["birthday"] or "").endswith("02-29") for c in customers)


def test_event_rows_follow_the_import_format(year):
    customers, events = year
    ids = {c["id"] for c in customers}
    assert len({e["id"] for e in events}) == len(events) > 5000
    for event in events:
        assert EVENT_NAME.fullmatch(event["type"]) and event["type"] in KNOWN_TYPES
        assert event["customer"] in ids
        moment = at(event)
        assert moment.tzinfo is not None, event
        assert START <= moment < END, event
        for key, value in event.items():
            assert value is not None, (key, event)
    assert {e["type"] for e in events} == KNOWN_TYPES


def test_each_customers_events_come_in_time_order(year):
    _, events = year
    by_customer = collections.defaultdict(list)
    for event in events:
        by_customer[event["customer"]].append(at(event))
    assert all(times == sorted(times) for times in by_customer.values())


def test_orders_go_through_their_steps_in_order(year):
    _, events = year
    orders: dict[str, dict[str, dt.datetime]] = collections.defaultdict(dict)
    for event in events:
        if event["type"] in ORDER_STEPS:
            steps = orders[event["order_id"]]
            assert event["type"] not in steps, event  # each step at most once per order
            steps[event["type"]] = at(event)
            assert event["total"] > 0 and event["category"]
    for order_id, steps in orders.items():
        times = [steps[s] for s in ORDER_STEPS if s in steps]
        assert times == sorted(times), order_id
        present = [s in steps for s in ORDER_STEPS[1:]]
        # A later step only after every earlier one (the order placed may predate the period).
        assert present == sorted(present, reverse=True), (order_id, steps)
    received = [s for s in orders.values() if "order.received" in s]
    assert received
    for steps in received:
        assert steps["order.paid"] < steps["order.shipped"] < steps["order.received"]


def test_the_story_has_the_cases_the_example_rules_need(year):
    _, events = year
    steps = collections.defaultdict(set)
    for event in events:
        if event["type"] in ORDER_STEPS:
            steps[event["order_id"]].add(event["type"])
    unpaid = [s for s in steps.values() if s == {"order.placed"}]
    returned = [s for s in steps.values() if "order.returned" in s]
    assert 0.02 < len(unpaid) / len(steps) < 0.15
    assert 0.02 < len(returned) / len(steps) < 0.2

    # Abandoned carts: a cart change with no order placed in the two hours after it.
    by_customer = collections.defaultdict(list)
    for event in events:
        by_customer[event["customer"]].append(event)
    abandoned = 0
    for stream in by_customer.values():
        placed = [at(e) for e in stream if e["type"] == "order.placed"]
        for cart in (e for e in stream if e["type"] == "cart.updated"):
            if not any(at(cart) < p <= at(cart) + dt.timedelta(hours=2) for p in placed):
                abandoned += 1
    assert abandoned > 100

    launched = [e for e in events if e["type"] == "product.launched"]
    assert all(e["category"] and e["name"] and e["product_id"] for e in launched)


def test_ratings_are_one_to_five_and_mostly_kind(year):
    _, events = year
    ratings = [e["rating"] for e in events if e["type"] == "review.posted"]
    assert ratings and all(isinstance(r, int) and 1 <= r <= 5 for r in ratings)
    counts = collections.Counter(ratings)
    assert counts[5] > counts[4] > counts[1] > 0
    assert counts[1] + counts[2] < 0.2 * len(ratings)


def test_shopping_happens_at_waking_hours(year):
    _, events = year
    hours = collections.Counter(at(e).hour for e in events if e["type"] == "cart.updated")
    assert sum(hours[h] for h in range(19, 23)) > 4 * sum(hours[h] for h in range(2, 6))


def test_events_stay_inside_a_short_period():
    start = dt.datetime(2026, 3, 8, 0, 0)  # naive: shop-local
    end = dt.datetime(2026, 3, 15, 0, 0)
    _, events = shop(seed=1, customers=400, start=start, end=end)
    assert events
    for event in events:
        assert start.replace(tzinfo=SHANGHAI) <= at(event) < end.replace(tzinfo=SHANGHAI)


def test_an_empty_period_is_a_plain_error():
    with pytest.raises(DataError, match="not after start"):
        generate_shop(start=END, end=START)


def test_write_shop_writes_importable_files(tmp_path):
    customers, events = shop(seed=2, customers=40)
    customers_path, events_path = write_shop(tmp_path / "demo", seed=2, customers=40)
    with customers_path.open(encoding="utf-8", newline="") as stream:
        reader = csv.DictReader(stream)
        assert tuple(reader.fieldnames or ()) == CUSTOMER_COLUMNS
        rows = list(reader)
    assert [r["id"] for r in rows] == [c["id"] for c in customers]
    for row, customer in zip(rows, customers, strict=True):
        assert row["accepts_marketing"] == ("true" if customer["accepts_marketing"] else "false")
        assert row["birthday"] == (customer["birthday"] or "")
        assert row["name"] == (customer["name"] or "")
    lines = events_path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == events


def test_the_demo_shop_imports_without_a_bad_row_and_only_once(db_url):
    engine = open_database(db_url)
    try:
        customers, events = generate_shop(seed=9, customers=60)
        first = import_customer_rows(engine, customers, "Asia/Shanghai")
        assert (first.added, first.problems) == (60, [])
        stored = import_event_rows(engine, events, "Asia/Shanghai")
        assert stored.problems == [] and stored.customers_created == 0
        assert stored.added == len(shop(seed=9, customers=60)[1])

        customers, events = generate_shop(seed=9, customers=60)
        again = import_customer_rows(engine, customers, "Asia/Shanghai")
        assert (again.added, again.updated, again.unchanged) == (0, 0, 60)
        again_events = import_event_rows(engine, events, "Asia/Shanghai")
        assert (again_events.added, again_events.unchanged) == (0, stored.added)
    finally:
        engine.dispose()


def test_the_written_files_import_without_a_bad_row(tmp_path):
    customers_path, events_path = write_shop(tmp_path, seed=4, customers=50)
    engine = open_database(f"sqlite:///{tmp_path / 'shop.db'}")
    try:
        customers = import_customers(engine, customers_path, "Asia/Shanghai")
        assert (customers.added, customers.problems) == (50, [])
        events = import_events(engine, events_path, "Asia/Shanghai")
        assert events.problems == [] and events.customers_created == 0
        assert events.added == len(events_path.read_text(encoding="utf-8").splitlines())
    finally:
        engine.dispose()


def test_the_demo_refuses_a_database_holding_a_real_shop(db_url: str) -> None:
    """The demo's ids (`c1`...) may be a real shop's: it would write its customers over them,
    consent included. It fills an empty database, and one it filled before, again."""
    rules = Path(__file__).resolve().parent.parent / "rules" / "shop"
    config = dataclasses.replace(load_config(rules / "nudge.yaml"), database=db_url)
    today = dt.date(2026, 11, 1)
    engine = open_database(db_url)
    real = {"id": "c1", "name": "Ann Real", "email": "ann@realshop.cn", "accepts_marketing": False}
    assert import_customer_rows(engine, [real], "Asia/Shanghai").added == 1
    with pytest.raises(DatabaseError, match="holds 1 customer that this version of the demo"):
        run_demo(config, rules, customers=30, seed=3, days=1, today=today)
    with engine.begin() as conn:
        stored = conn.execute(
            sa.select(customers.c.name, customers.c.accepts_marketing).where(customers.c.id == "c1")
        ).one()
        assert tuple(stored) == ("Ann Real", False)
        conn.execute(customers.delete())

    first = run_demo(config, rules, customers=30, seed=3, days=1, today=today)
    again = run_demo(config, rules, customers=30, seed=3, days=1, today=today)
    assert first.customers == again.customers == 30
    assert len(first.actions) == len(again.actions) > 0


def test_the_demo_does_not_mix_another_shop_into_the_one_it_made(db_url: str) -> None:
    """`nudge demo --customers 5` after `nudge demo --customers 12` wrote 5 customers over the
    first 5 and simulated all 12 under the heading "Demo: 5 customers"; another seed added a
    second year of orders to the same customers. Both are refused, with the command that made
    the shop there, and change nothing; that command simulates it again, over other days."""
    rules = Path(__file__).resolve().parent.parent / "rules" / "shop"
    config = dataclasses.replace(load_config(rules / "nudge.yaml"), database=db_url)
    today = dt.date(2026, 11, 1)
    run_demo(config, rules, customers=12, seed=3, days=1, today=today)
    engine = open_database(db_url)

    def stored() -> tuple[int, int]:
        with engine.connect() as conn:
            count = sa.select(sa.func.count())
            return (
                conn.execute(count.select_from(customers)).scalar_one(),
                conn.execute(count.select_from(events)).scalar_one(),
            )

    before = stored()
    for count, seed in ((5, 3), (12, 4)):
        made = (
            f"holds the shop that `nudge demo --customers 12 --seed 3` made: a shop of {count}"
            f" customers with seed {seed} would be mixed into it"
        )
        with pytest.raises(DatabaseError, match=re.escape(made)):
            run_demo(config, rules, customers=count, seed=seed, days=1, today=today)
        assert stored() == before
    again = run_demo(config, rules, customers=12, seed=3, days=7, today=today)
    assert again.customers == 12 and stored() == before
    engine.dispose()


def test_the_shop_s_own_files_are_not_imported_into_the_demo_s_database(
    db_url: str, tmp_path: Path
) -> None:
    """They would be merged with the made-up customers of the same ids (keeping the demo's
    mark, so that the next demo wrote over them), and `nudge run` would act on both."""
    rules = Path(__file__).resolve().parent.parent / "rules" / "shop"
    config = dataclasses.replace(load_config(rules / "nudge.yaml"), database=db_url)
    run_demo(config, rules, customers=10, seed=3, days=1, today=dt.date(2026, 11, 1))
    own = tmp_path / "customers.csv"
    own.write_text("id,name,email\nc4,Dan Real,dan@realshop.cn\n", encoding="utf-8")
    happened = tmp_path / "events.csv"
    happened.write_text("customer,type,at\nc4,order.paid,2026-11-01T10:00:00Z\n", encoding="utf-8")
    engine = open_database(db_url)
    try:
        with engine.connect() as conn:
            before = conn.execute(sa.select(customers).order_by(customers.c.id)).all()
        for run, path in ((import_customers, own), (import_events, happened)):
            with pytest.raises(DatabaseError, match="holds the synthetic shop of `nudge demo`"):
                run(engine, path, "Asia/Shanghai")
        with engine.connect() as conn:
            assert conn.execute(sa.select(customers).order_by(customers.c.id)).all() == before
    finally:
        engine.dispose()


def test_the_demo_checks_its_rules_before_it_makes_the_shop(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "bad.rules").write_text('when order.payed + 3 then tag "x"\n', encoding="utf-8")
    config = Config(base_dir=tmp_path, database=f"sqlite:///{tmp_path / 'demo.db'}")
    with pytest.raises(RuleError):
        run_demo(config, rules, customers=30, seed=3, days=1, today=dt.date(2026, 11, 1))
    assert not (tmp_path / "demo.db").exists()
