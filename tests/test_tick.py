"""The tick against a real database: what the daemon records equals what `simulate` says, exactly
once, whatever the tick windows, through crashes inside a tick, and after downtime."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from daemon_helpers import (
    assert_recorded_once,
    config_for,
    read_ledger,
    write_config,
    write_rules,
)
from sqlalchemy import Engine

from cli import cli, main
from engine.checking.ruleset import load_rule_set
from engine.config import Config
from engine.evaluation.evaluate import Evaluation, evaluate_due, find_due
from engine.evaluation.explain import explain
from engine.evaluation.simulate import simulate, simulate_records
from engine.evaluation.tick import tick
from engine.importing.importers import import_customer_rows, import_event_rows
from engine.language import ast
from engine.outbox import ledger
from engine.outbox.history import history
from engine.outbox.tasks import list_tasks
from engine.storage.db import open_database
from engine.storage.tables import actions, occurrences, outbox, rule_set_state
from engine.timeutil import DAY_US, US, iso, local_text, to_us

HOUR_US = 3600 * US
# A Monday, 00:00 UTC; the window crosses New York's switch to summer time (2026-03-08).
A = to_us(dt.datetime(2026, 3, 2, tzinfo=dt.UTC))
B = A + 7 * DAY_US
NAME = "shop"

SHOP_RULES = """\
limit marketing to 3 per 7d
quiet hours 22:00 to 08:00
exclude if customer.returns >= 2

rule "thanks"
  when order.paid
  then message "thanks" and points order.total

rule "fit check"
  when order.received + 3d at 10:00
  unless order.returned
  then followup "fit_check"

rule "cart"
  when cart.updated + 2h
  unless order.placed
  once every 1d
  then message "cart_reminder"

rule "vip"
  when order.paid
  if customer.total_spent >= 300
  once
  then tag "vip" and coupon "vip" worth 15% expires 14d

rule "club news"
  when every day at 19:00
  if "vip" in customer.tags or customer.points >= 200
  unless order.returned within 7d
  once every 3d
  then message "club_news"

rule "low rating"
  when review.posted
  if review.rating <= 2
  then task "Call about the rating" for "service"
"""
TEMPLATES = ("thanks", "fit_check", "cart_reminder", "vip", "club_news")
ACTIONS_PER_RULE = {
    "thanks": 2,
    "fit check": 1,
    "cart": 1,
    "vip": 2,
    "club news": 1,
    "low rating": 1,
}
ZONES = (
    "Asia/Shanghai",
    "America/New_York",
    "Europe/Berlin",
    None,  # the shop's zone
    "Pacific/Auckland",
    "America/Los_Angeles",
)


def shop_rows(seed: int = 11) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Customers in several zones and two weeks of their carts, orders, returns and reviews,
    from four days before A to four days after (so nothing due before B sends after B)."""
    rng = random.Random(seed)
    people: list[dict[str, Any]] = []
    happenings: list[dict[str, Any]] = []

    def at(us: int) -> str:
        return iso(us - us % (60 * US))

    for index in range(18):
        cid = f"c{index:02d}"
        people.append(
            {
                "id": cid,
                "name": f"Customer {index}",
                "email": f"{cid}@example.com",
                "timezone": ZONES[index % len(ZONES)],
                "accepts_marketing": index % 5 != 3,
            }
        )
        moment = A - 4 * DAY_US + rng.randrange(0, 36) * HOUR_US
        while moment < A + 4 * DAY_US:
            cart = moment
            happenings.append({"customer": cid, "type": "cart.updated", "at": at(cart)})
            if rng.random() < 0.3:
                happenings.append(
                    {"customer": cid, "type": "cart.updated", "at": at(cart + 40 * 60 * US)}
                )
            if rng.random() < 0.6:
                placed = cart + rng.randrange(10, 300) * 60 * US
                paid = placed + rng.randrange(1, 90) * 60 * US
                total = rng.choice((49, 120, 180, 260, 399))
                happenings.append({"customer": cid, "type": "order.placed", "at": at(placed)})
                happenings.append(
                    {"customer": cid, "type": "order.paid", "at": at(paid), "total": total}
                )
                received = paid + rng.randrange(30, 80) * HOUR_US
                if received < A + 4 * DAY_US:
                    happenings.append(
                        {"customer": cid, "type": "order.received", "at": at(received)}
                    )
                    if rng.random() < 0.25:
                        returned = received + rng.randrange(20, 60) * HOUR_US
                        happenings.append(
                            {"customer": cid, "type": "order.returned", "at": at(returned)}
                        )
                    if rng.random() < 0.4:
                        review = received + rng.randrange(1, 30) * HOUR_US
                        happenings.append(
                            {
                                "customer": cid,
                                "type": "review.posted",
                                "at": at(review),
                                "rating": rng.randint(1, 5),
                            }
                        )
            moment += rng.randrange(14, 80) * HOUR_US
    return people, [h for h in happenings if h["at"] < iso(A + 4 * DAY_US)]


@pytest.fixture
def shop(db_url: str, tmp_path: Path) -> Iterator[tuple[Engine, ast.RuleSet, Path]]:
    engine = open_database(db_url)
    people, happenings = shop_rows()
    config = config_for(tmp_path, db_url, timezone="Europe/London")
    assert not import_customer_rows(engine, people, config.timezone, "customers").problems
    assert not import_event_rows(engine, happenings, config.timezone, "events").problems
    rules = write_rules(tmp_path / "rules", {"shop.rules": SHOP_RULES}, TEMPLATES)
    yield engine, load_rule_set(rules, config), rules
    engine.dispose()


def lines(records: list[Any]) -> list[str]:
    return [json.dumps(r if isinstance(r, dict) else r.to_json(), sort_keys=True) for r in records]


def run_ticks(engine: Engine, ruleset: ast.RuleSet, config: Config, moments: list[int]) -> None:
    for now in moments:
        report = tick(engine, ruleset, config, NAME, now)
        assert not report.skipped


def every(step_us: int) -> list[int]:
    return [*range(A, B, step_us), B]


def irregular(seed: int, end: int) -> list[int]:
    """Steps of a second to eight hours, to microseconds, from A past `end`."""
    rng = random.Random(seed)
    moments = [A]
    while moments[-1] < end:
        moments.append(moments[-1] + rng.randrange(1, 8 * 3600) * US + rng.randrange(US))
    return moments


SCHEDULES: dict[str, Callable[[], list[int]]] = {
    "every 3h": lambda: every(3 * HOUR_US),
    "irregular, past B": lambda: irregular(3, B),
    "one big tick": lambda: [A, B],
}
# Moments inside [A, B) from which a simulation starts from what the daemon recorded before.
MIDPOINTS = (A + 52 * HOUR_US + 17 * US, A + 70 * HOUR_US + 30 * 60 * US)


def test_the_shop_exercises_every_path(shop, tmp_path) -> None:
    """The data is rich enough for the comparisons below to mean something, and no action due
    before B is sent after B (the daemon decides the cap of such an action only at its send
    time, so `history` over [A, B) would leave it out)."""
    engine, ruleset, _ = shop
    records = simulate_records(engine, ruleset, config_for(tmp_path, ""), A, B)
    assert all(r["at"] < iso(B) for r in records)
    seen = {(r["action"], r["status"], r["reason"]) for r in records}
    for wanted in [
        ("message", "sent", None),
        ("message", "suppressed", "no-consent"),
        ("message", "suppressed", "cap"),
        ("followup", "sent", None),
        ("coupon", "sent", None),
        ("points", "sent", None),
        ("tag", "sent", None),
        ("task", "sent", None),
    ]:
        assert wanted in seen, wanted
    assert {r["rule"] for r in records} == set(ACTIONS_PER_RULE)
    assert any(r["due"] != r["at"] for r in records), "quiet hours moved nothing"


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_history_equals_simulate_whatever_the_tick_windows(shop, tmp_path, db_url, schedule):
    """Ticks from A to B, in 3-hour steps, in irregular steps or in one, record exactly what the
    simulation of [A, B) says, before the daemon ran and after: the tick windows do not matter.
    A simulation from a moment the daemon has passed starts from what it recorded before that
    moment and agrees with it too (LANGUAGE.md section 5), and so does one in small batches of
    customers."""
    engine, ruleset, _ = shop
    config = config_for(tmp_path, db_url, timezone="Europe/London", grace_seconds=30 * 86400.0)
    expected = lines(simulate_records(engine, ruleset, config, A, B))
    moments = SCHEDULES[schedule]()
    run_ticks(engine, ruleset, config, moments)
    assert lines(history(engine, A, B)) == expected
    assert lines(simulate_records(engine, ruleset, config, A, B)) == expected
    assert lines(simulate(engine, ruleset, config, A, B, batch=5).actions) == expected
    for middle in MIDPOINTS:
        assert lines(history(engine, middle, B)) == lines(
            simulate_records(engine, ruleset, config, middle, B)
        ), iso(middle)
    assert_recorded_once(engine, ACTIONS_PER_RULE)
    with engine.connect() as conn:
        state = conn.execute(sa.select(rule_set_state)).one()
    end = moments[-1]
    assert (state.first_run_us, state.watermark_us, state.last_tick_us) == (A, end, end)


def test_key_lists_longer_than_a_statement_takes_are_read_in_parts(
    shop, tmp_path, db_url, monkeypatch
) -> None:
    """A tick for a large shop reads customers, events and actions by lists of keys longer than
    a statement's bound parameters allow (SQLite: 32,766; the L benchmark's Friday group buy
    reaches 300,000 customers): they are read in parts. Here parts of three keys, in one big tick,
    record exactly what the simulation says."""
    monkeypatch.setattr("engine.storage.chunks.IN_LIST", 3)
    engine, ruleset, _ = shop
    config = config_for(tmp_path, db_url, timezone="Europe/London", grace_seconds=30 * 86400.0)
    expected = lines(simulate_records(engine, ruleset, config, A, B))
    run_ticks(engine, ruleset, config, [A, B])
    assert lines(history(engine, A, B)) == expected
    assert len(assert_recorded_once(engine, ACTIONS_PER_RULE).outbox) > 2
    # Every message carries its customer and triggering event, whichever part they were in.
    with engine.connect() as conn:
        payloads = conn.execute(sa.select(outbox.c.payload)).scalars().all()
    event_rules = {"thanks", "fit check", "cart", "vip", "low rating"}
    for payload in payloads:
        assert payload["context"]["customer"]["id"] == payload["customer_id"]
        assert (payload["context"]["event"] is not None) == (payload["rule"] in event_rules)


def test_an_outbox_row_holds_its_customer_and_event_as_stored(tmp_path, db_url) -> None:
    """The context a message is rendered with: the customer's attributes, columns and tags
    (sorted), the triggering event's properties, type and time; for each customer of the tick,
    however many there are."""
    engine = open_database(db_url)
    config = config_for(tmp_path, db_url, timezone="Europe/London", grace_seconds=2 * 86400.0)
    people = [
        {
            "id": f"c{i}",
            "name": f"Customer {i}",
            "email": f"c{i}@example.com",
            "phone": "+44 20 7946 0000" if i == 1 else None,
            "birthday": "1990-05-17" if i == 1 else None,
            "timezone": "Asia/Shanghai" if i == 1 else None,
            "tier": "gold" if i == 1 else "silver",
            "visits": i,
            "tags": "zeta, alpha" if i == 1 else "",
        }
        for i in range(1, 4)
    ]
    paid = iso(A + HOUR_US)
    happenings = [
        {"customer": c["id"], "type": "order.paid", "at": paid, "total": 10 * i, "sku": "SK-1"}
        for i, c in enumerate(people, 1)
    ]
    assert not import_customer_rows(engine, people, config.timezone, "customers").problems
    assert not import_event_rows(engine, happenings, config.timezone, "events").problems
    rules = write_rules(
        tmp_path / "rules", {"shop.rules": 'when order.paid then followup "thanks"'}, ["thanks"]
    )
    ruleset = load_rule_set(rules, config)
    run_ticks(engine, ruleset, config, [A, A + DAY_US])
    with engine.connect() as conn:
        payloads = conn.execute(sa.select(outbox.c.payload).order_by(outbox.c.id)).scalars()
        contexts = {p["customer_id"]: p["context"] for p in payloads}
    assert contexts["c1"]["customer"] == {
        "tier": "gold",
        "visits": 1,
        "id": "c1",
        "name": "Customer 1",
        "email": "c1@example.com",
        "phone": "+44 20 7946 0000",
        "timezone": "Asia/Shanghai",
        "birthday": "1990-05-17",
        "tags": ["alpha", "zeta"],
    }
    assert contexts["c1"]["event"] == {"total": 10, "sku": "SK-1", "type": "order.paid", "at": paid}
    assert sorted(contexts) == ["c1", "c2", "c3"]
    for i in (2, 3):
        customer, event = contexts[f"c{i}"]["customer"], contexts[f"c{i}"]["event"]
        assert (customer["id"], customer["visits"], customer["tags"]) == (f"c{i}", i, [])
        assert (customer["phone"], customer["timezone"], event["total"]) == (None, None, 10 * i)


def tick_payloads(
    tmp_path: Path,
    db_url: str,
    people: list[dict[str, Any]],
    happenings: list[dict[str, Any]],
    rules: str,
    templates: list[str],
    moments: list[int],
) -> list[dict[str, Any]]:
    """The outbox payloads that ticks at `moments` record for this shop and these rules."""
    engine = open_database(db_url)
    config = config_for(tmp_path, db_url, timezone="Europe/London", grace_seconds=2 * 86400.0)
    assert not import_customer_rows(engine, people, config.timezone, "customers").problems
    assert not import_event_rows(engine, happenings, config.timezone, "events").problems
    folder = write_rules(tmp_path / "rules", {"shop.rules": rules}, templates)
    run_ticks(engine, load_rule_set(folder, config), config, moments)
    with engine.connect() as conn:
        return list(conn.execute(sa.select(outbox.c.payload)).scalars())


def test_a_coupon_s_expiry_is_also_given_as_its_customer_s_clock_reads_it(tmp_path, db_url):
    """`coupon.expires` is an instant in UTC; `coupon.expires_local` the day and time where the
    customer lives (the shop's zone for one without): a template shows the right day."""
    people = [
        {"id": "la", "accepts_marketing": True, "timezone": "America/Los_Angeles"},
        {"id": "ldn", "accepts_marketing": True},
    ]
    paid = A + 3 * HOUR_US  # 03:00 UTC: 19:00 the day before in Los Angeles
    happenings = [{"customer": c, "type": "order.paid", "at": iso(paid)} for c in ("la", "ldn")]
    rules = 'when order.paid then coupon "thanks" worth 5 expires 1d'
    moments = [A, A + 4 * HOUR_US]
    payloads = tick_payloads(tmp_path, db_url, people, happenings, rules, ["thanks"], moments)
    coupons = {p["customer_id"]: p["context"]["coupon"] for p in payloads}
    assert {c: (k["expires"], k["expires_local"]) for c, k in coupons.items()} == {
        "la": ("2026-03-03T03:00:00Z", "2026-03-02 19:00"),
        "ldn": ("2026-03-03T03:00:00Z", "2026-03-03 03:00"),
    }


def test_a_template_sees_the_tags_its_customer_holds_at_its_due_time(tmp_path, db_url) -> None:
    """A message's customer holds the imported tags as changed by every tag and untag before
    it: earlier, or at the same instant of an earlier rule or an earlier action of its rule."""
    people = [{"id": "c1", "tags": "silver, zeta"}, {"id": "c2"}]
    paid = [{"customer": c["id"], "type": "order.paid", "at": iso(A + HOUR_US)} for c in people]
    rules = (
        'rule "hello"\n  when order.paid\n  then followup "hello"\n'
        'rule "gold"\n  when order.paid\n'
        '  then followup "before" and untag "silver" and tag "gold" and followup "tier_gold"\n'
        'rule "after"\n  when order.paid\n  then followup "after"\n'
        'rule "next day"\n  when order.paid + 1d\n  then untag "gold" and followup "next"\n'
        'rule "day after"\n  when order.paid + 2d\n  then tag "gold" and followup "again"\n'
    )
    templates = ["hello", "before", "tier_gold", "after", "next", "again"]
    moments = [A, A + 2 * HOUR_US, A + DAY_US + 2 * HOUR_US, A + 2 * DAY_US + 2 * HOUR_US]
    payloads = tick_payloads(tmp_path, db_url, people, paid, rules, templates, moments)
    tags = {(p["customer_id"], p["template"]): p["context"]["customer"]["tags"] for p in payloads}
    assert tags == {
        ("c1", "hello"): ["silver", "zeta"],
        ("c1", "before"): ["silver", "zeta"],
        ("c1", "tier_gold"): ["gold", "zeta"],
        ("c1", "after"): ["gold", "zeta"],
        ("c1", "next"): ["zeta"],
        ("c1", "again"): ["gold", "zeta"],
        ("c2", "hello"): [],
        ("c2", "before"): [],
        ("c2", "tier_gold"): ["gold"],
        ("c2", "after"): ["gold"],
        ("c2", "next"): [],
        ("c2", "again"): ["gold"],
    }


def test_a_template_sent_late_sees_the_tags_of_its_due_time(tmp_path, db_url) -> None:
    """Quiet hours move a followup and a capped message from 23:00 to 08:00, and the cap decides
    the message only then; a tag given at 01:00 is in neither, whenever they were recorded."""
    people = [{"id": "c1", "accepts_marketing": True}]
    paid = [{"customer": "c1", "type": "order.paid", "at": iso(A + 23 * HOUR_US)}]
    rules = (
        "limit marketing to 5 per 1d\nquiet hours 22:00 to 08:00\n"
        'rule "late"\n  when order.paid\n  then followup "late" and message "offer"\n'
        'rule "night"\n  when order.paid + 2h\n  then tag "night"\n'
    )
    moments = [A, A + 23 * HOUR_US + 1800 * US, A + 26 * HOUR_US, A + 33 * HOUR_US]
    payloads = tick_payloads(tmp_path, db_url, people, paid, rules, ["late", "offer"], moments)
    sent = {p["template"]: (p["at"], p["context"]["customer"]["tags"]) for p in payloads}
    assert sent == {"late": (iso(A + 32 * HOUR_US), []), "offer": (iso(A + 32 * HOUR_US), [])}


def test_ticks_again_at_the_same_moment_record_nothing_more(shop, tmp_path, db_url) -> None:
    engine, ruleset, _ = shop
    config = config_for(tmp_path, db_url, timezone="Europe/London")
    run_ticks(engine, ruleset, config, every(3 * HOUR_US)[:16])
    before = read_ledger(engine)
    moment = every(3 * HOUR_US)[15]
    report = tick(engine, ruleset, config, NAME, moment)
    assert (report.start_us, report.recorded.occurrences, report.queued) == (moment, 0, 0)
    # A clock that went back is no reason to redo anything.
    tick(engine, ruleset, config, NAME, moment - 6 * HOUR_US)
    assert read_ledger(engine) == before
    with engine.connect() as conn:
        assert conn.execute(sa.select(rule_set_state.c.watermark_us)).scalar_one() == moment


def test_recording_skips_the_occurrences_recorded_already_and_acts_for_the_others(
    shop, tmp_path, db_url
) -> None:
    """An evaluation part of which another process has recorded meanwhile: the rest is
    recorded, each occurrence once, and only those act; the report counts the ones skipped."""
    engine, ruleset, _ = shop
    config = config_for(tmp_path, db_url, timezone="Europe/London")
    with engine.begin() as conn:
        result = evaluate_due(conn, ruleset, config, find_due(conn, ruleset, config, A, B))
    assert len(result.occurrences) > 10
    part = Evaluation(result.occurrences[::3], result.rows)
    with engine.begin() as conn:
        first = ledger.record(conn, part, config, B, A)
    with engine.begin() as conn:
        rest = ledger.record(conn, result, config, B, A)
    assert (first.already, rest.already) == (0, len(part.occurrences))
    assert first.occurrences + rest.occurrences == len(result.occurrences)
    assert first.actions + rest.actions == len(result.rows)
    assert len(read_ledger(engine).occurrences) == len(result.occurrences)
    assert_recorded_once(engine, ACTIONS_PER_RULE)


def test_the_first_tick_only_starts_the_rule_set(shop, tmp_path, db_url) -> None:
    """Nothing due before the rule set first ran acts, however much is waiting."""
    engine, ruleset, _ = shop
    config = config_for(tmp_path, db_url, timezone="Europe/London")
    start = A + 5 * DAY_US
    report = tick(engine, ruleset, config, NAME, start)
    assert (report.start_us, report.recorded.occurrences) == (start, 0)
    assert read_ledger(engine).occurrences == []
    run_ticks(engine, ruleset, config, [start + 2 * HOUR_US * k for k in range(1, 13)])
    with engine.connect() as conn:
        earliest = conn.execute(sa.select(sa.func.min(occurrences.c.due_us))).scalar_one()
    assert earliest >= start
    end = start + DAY_US
    assert lines(history(engine, A, end)) == lines(
        simulate_records(engine, ruleset, config, start, end)
    )


# -- crashes inside a tick ---------------------------------------------------------------------


class Crash(Exception):
    """The process dies here."""


# Where to die, and when a call there has written something worth losing: (args, result).
CRASH_POINTS: dict[str, Callable[[tuple[Any, ...], Any], bool]] = {
    "_insert_actions": lambda args, result: True,
    "_effects": lambda args, result: any(r["kind"] == "points" for _i, r in args[1]),
    "_tasks": lambda args, result: any(r["kind"] == "task" for _i, r in args[1]),
    "_issue_coupons": lambda args, result: bool(result),
    "_deliveries": lambda args, result: result > 0,
    "decide": lambda args, result: bool(args[1]),
}


@pytest.mark.parametrize("point", sorted(CRASH_POINTS))
def test_a_crash_inside_a_tick_leaves_nothing_and_the_next_tick_does_everything_once(
    shop, tmp_path, db_url, monkeypatch, point
) -> None:
    """A tick that dies halfway through recording (after part of its inserts) leaves no trace
    and does not move the watermark; the next tick records everything exactly once."""
    engine, ruleset, _ = shop
    config = config_for(tmp_path, db_url, timezone="Europe/London", grace_seconds=30 * 86400.0)
    expected = lines(simulate_records(engine, ruleset, config, A, B))
    moments = every(3 * HOUR_US)
    run_ticks(engine, ruleset, config, moments[:4])
    real = getattr(ledger, point)
    wrote = CRASH_POINTS[point]

    def crashing(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        if wrote(args, result):
            raise Crash(point)
        return result

    monkeypatch.setattr(ledger, point, crashing)
    crashed_at = None
    for now in moments[4:]:
        before = read_ledger(engine)
        try:
            tick(engine, ruleset, config, NAME, now)
        except Crash:
            crashed_at = now
            break
    assert crashed_at is not None, f"no tick reached {point}"
    assert read_ledger(engine) == before
    with engine.connect() as conn:
        watermark = conn.execute(sa.select(rule_set_state.c.watermark_us)).scalar_one()
    assert watermark == moments[moments.index(crashed_at) - 1]
    monkeypatch.setattr(ledger, point, real)
    run_ticks(engine, ruleset, config, [crashed_at, B])
    assert lines(history(engine, A, B)) == expected
    assert_recorded_once(engine, ACTIONS_PER_RULE)


# -- downtime -----------------------------------------------------------------------------------


def test_downtime_beyond_grace_is_missed_and_reported(db_url, tmp_path, capsys) -> None:
    """Ticks at A and at A + 1 day with a grace of 6 hours: occurrences due in [A, A + 18h) are
    recorded as missed and do nothing; those due in the last 6 hours act late."""
    engine = open_database(db_url)
    config = config_for(tmp_path, db_url, grace_seconds=6 * 3600.0)
    people = [{"id": cid, "accepts_marketing": True} for cid in ("c1", "c2")]
    # Orders paid an hour before each due time: one due every hour from A to A + 23h.
    paid = [
        {"customer": cid, "type": "order.paid", "at": iso(A + (k - 1) * HOUR_US), "total": 10}
        for cid in ("c1", "c2")
        for k in range(24)
    ]
    import_customer_rows(engine, people, config.timezone)
    import_event_rows(engine, paid, config.timezone)
    rules = write_rules(
        tmp_path / "rules",
        {"fit.rules": 'rule "fit"\n  when order.paid + 1h\n  then followup "fit_check"\n'},
        ["fit_check"],
    )
    ruleset = load_rule_set(rules, config)
    run_ticks(engine, ruleset, config, [A])
    report = tick(engine, ruleset, config, NAME, A + DAY_US)
    assert (report.recorded.missed, report.recorded.occurrences) == (36, 12)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(occurrences.c.due_us, occurrences.c.status)).all()
    grace_end = A + 18 * HOUR_US
    assert sorted(rows) == sorted(
        (A + k * HOUR_US, "missed" if k < 18 else "acted") for k in range(24) for _ in "12"
    )
    acted = history(engine, A, A + DAY_US)
    assert len(acted) == 12
    assert all(r.due_us >= grace_end and r.status == "sent" for r in acted)
    assert len(read_ledger(engine).outbox) == 12
    engine.dispose()
    try:
        main(["status", "--db", db_url])
    except SystemExit as exc:
        assert not exc.code
    out = capsys.readouterr().out
    assert "missed occurrences (beyond grace: downtime, late events): 36" in out
    assert f"rule set {NAME}: last tick {local_text(A + DAY_US, 'UTC')} (" in out


def test_events_imported_after_a_tick_passed_their_time_act_late_within_grace(
    db_url, tmp_path, capsys
) -> None:
    """Orders imported an hour after they were paid (a cron job's import): the tick that passed
    their time decided without them. The next tick counts them and acts on what they made due
    before it, as after downtime: within `grace` (6 hours) late, older as missed. Each late
    event is taken once, and `nudge status` shows the sum. What they make due later acts as
    for any order. History from before the rule set's first start is neither counted nor
    acted on."""
    engine = open_database(db_url)
    config = config_for(tmp_path, db_url)
    import_customer_rows(engine, [{"id": c} for c in ("c1", "c2")], config.timezone)
    rules = write_rules(
        tmp_path / "rules",
        {
            "r.rules": 'rule "thanks"\n  when order.paid\n  then task "thank"\n'
            'rule "later"\n  when order.paid + 1d\n  then task "check"\n'
        },
        [],
    )
    ruleset = load_rule_set(rules, config)

    def paid(cid: str, at: int, key: str) -> None:
        order = {"customer": cid, "type": "order.paid", "at": iso(at), "id": key}
        assert not import_event_rows(engine, [order], config.timezone).problems

    def ledger_rows(rule: str) -> list[tuple[str, int, int, str]]:
        """(customer, due, recorded, status) of the rule's occurrences."""
        with engine.connect() as conn:
            query = sa.select(
                occurrences.c.customer_id,
                occurrences.c.due_us,
                occurrences.c.recorded_us,
                occurrences.c.status,
            ).where(occurrences.c.rule == rule)
            return sorted(tuple(row) for row in conn.execute(query))

    paid("c1", A - 3 * DAY_US, "history")
    run_ticks(engine, ruleset, config, [A])  # the first tick: no look at what came before
    paid("c2", A - 2 * DAY_US, "backfill")
    assert tick(engine, ruleset, config, NAME, A + HOUR_US).late == 0
    paid("c1", A + 30 * 60 * US, "late")
    paid("c2", A + 7 * 60 * US, "later still")
    paid("c2", A + 90 * 60 * US, "on time")
    report = tick(engine, ruleset, config, NAME, A + 2 * HOUR_US)
    assert (report.late, report.late_since_us) == (2, A + 7 * 60 * US)
    assert report.recorded.occurrences == 3
    assert ledger_rows("thanks") == [
        ("c1", A + 30 * 60 * US, A + 2 * HOUR_US, "acted"),
        ("c2", A + 7 * 60 * US, A + 2 * HOUR_US, "acted"),
        ("c2", A + 90 * 60 * US, A + 2 * HOUR_US, "acted"),
    ]
    report = tick(engine, ruleset, config, NAME, A + 3 * HOUR_US)
    assert (report.late, report.recorded.occurrences) == (0, 0)  # each taken once
    run_ticks(engine, ruleset, config, [A + k * HOUR_US for k in range(4, 11)])
    paid("c1", A + 3 * HOUR_US + 59 * 60 * US, "older than grace")
    paid("c2", A + 4 * HOUR_US + 30 * 60 * US, "within grace")
    report = tick(engine, ruleset, config, NAME, A + 10 * HOUR_US + 30 * 60 * US)
    assert (report.late, report.recorded.missed, report.recorded.occurrences) == (2, 1, 1)
    now = A + 10 * HOUR_US + 30 * 60 * US
    assert [row for row in ledger_rows("thanks") if row[2] == now] == [
        ("c1", A + 3 * HOUR_US + 59 * 60 * US, now, "missed"),
        ("c2", A + 4 * HOUR_US + 30 * 60 * US, now, "acted"),
    ]
    assert [task.title for task in list_tasks(engine)].count("thank") == 4
    run_ticks(engine, ruleset, config, [A + k * HOUR_US for k in range(11, 30)])
    assert [(c, due) for c, due, _, status in ledger_rows("later") if status == "acted"] == [
        ("c1", A + DAY_US + 30 * 60 * US),
        ("c1", A + DAY_US + 3 * HOUR_US + 59 * 60 * US),
        ("c2", A + DAY_US + 7 * 60 * US),
        ("c2", A + DAY_US + 90 * 60 * US),
        ("c2", A + DAY_US + 4 * HOUR_US + 30 * 60 * US),
    ]
    engine.dispose()
    main(["status", "--db", db_url])
    out = capsys.readouterr().out
    assert "  events and sign-ups imported after a tick had passed their time: 4 (those" in out


def test_with_no_grace_a_tick_s_own_window_acts_and_only_downtime_is_missed(
    db_url, tmp_path
) -> None:
    """`grace: 0s`: nothing acts late after downtime, but what falls due between two ticks
    (`tick_seconds` apart) is not late: it acts."""
    engine = open_database(db_url)
    config = config_for(tmp_path, db_url, grace_seconds=0.0, tick_seconds=30.0)
    import_customer_rows(engine, [{"id": "c1"}], config.timezone)
    text = 'rule "thanks"\n  when order.paid\n  then task "thank"\n'
    ruleset = load_rule_set(write_rules(tmp_path / "rules", {"r.rules": text}, []), config)
    paid = [
        {"customer": "c1", "type": "order.paid", "at": iso(A + seconds * US)}
        for seconds in (10, 40, 600, 3590)
    ]
    assert not import_event_rows(engine, paid, config.timezone).problems
    run_ticks(engine, ruleset, config, [A, A + 30 * US, A + 60 * US, A + 3600 * US])
    assert [(due, status) for _, _, due, status in ledger_of(engine)] == [
        (A + 10 * US, "acted"),
        (A + 40 * US, "acted"),
        (A + 600 * US, "missed"),
        (A + 3590 * US, "acted"),
    ]


def test_with_no_grace_a_tick_a_little_late_in_its_interval_misses_nothing(db_url, tmp_path):
    """`grace: 0s`: a tick begins a moment later in its interval than the one before (the
    scheduler's wake-up, reading the rule files): its window is a millisecond longer than
    `tick_seconds`, and an occurrence due in that window's first millisecond was missed."""
    engine = open_database(db_url)
    config = config_for(tmp_path, db_url, grace_seconds=0.0, tick_seconds=30.0)
    import_customer_rows(engine, [{"id": "c1"}], config.timezone)
    text = 'rule "thanks"\n  when order.paid\n  then task "thank"\n'
    ruleset = load_rule_set(write_rules(tmp_path / "rules", {"r.rules": text}, []), config)
    paid = [{"customer": "c1", "type": "order.paid", "at": iso(A + 500)}]
    assert not import_event_rows(engine, paid, config.timezone).problems
    run_ticks(engine, ruleset, config, [A, A + 30 * US + 1_000])
    assert [(due, status) for _, _, due, status in ledger_of(engine)] == [(A + 500, "acted")]


def late_setup(
    db_url: str, tmp_path: Path, text: str, templates: list[str]
) -> tuple[Engine, ast.RuleSet, Config, Callable[..., None]]:
    """A shop of c1 and c2 (both accept marketing), a rule set of `text`, and a function that
    imports an event (customer, type, time, and more fields)."""
    engine = open_database(db_url)
    config = config_for(tmp_path, db_url)
    people = [{"id": c, "accepts_marketing": True} for c in ("c1", "c2")]
    import_customer_rows(engine, people, config.timezone)
    ruleset = load_rule_set(write_rules(tmp_path / "rules", {"r.rules": text}, templates), config)

    def event(cid: str, kind: str, at: int, **more: Any) -> None:
        row = {"customer": cid, "type": kind, "at": iso(at), **more}
        assert not import_event_rows(engine, [row], config.timezone).problems

    return engine, ruleset, config, event


def test_a_late_event_does_not_make_once_every_act_twice_within_its_span(db_url, tmp_path):
    """c1's cart changed at 01:00 (imported on time, reminded at 03:00) and at 00:30
    (imported at 04:00: its reminder would have been due at 02:30). Acting on the late one
    would remind c1 twice within the day, so it does not act; c2's late cart, alone, does."""
    text = (
        'rule "cart"\n  when cart.updated + 2h\n  unless order.placed\n  once every 1d\n'
        '  then message "cart_reminder"\n'
    )
    engine, ruleset, config, event = late_setup(db_url, tmp_path, text, ["cart_reminder"])
    run_ticks(engine, ruleset, config, [A])
    event("c1", "cart.updated", A + HOUR_US)
    run_ticks(engine, ruleset, config, [A + k * HOUR_US for k in (1, 2, 3, 4)])
    event("c1", "cart.updated", A + 30 * 60 * US)
    event("c2", "cart.updated", A + 30 * 60 * US)
    report = tick(engine, ruleset, config, NAME, A + 4 * HOUR_US + 30 * 60 * US)
    assert report.late == 2
    with engine.connect() as conn:
        query = sa.select(occurrences.c.customer_id, occurrences.c.due_us)
        assert sorted(conn.execute(query.where(occurrences.c.status == "acted"))) == [
            ("c1", A + 3 * HOUR_US),
            ("c2", A + 2 * HOUR_US + 30 * 60 * US),
        ]


def test_a_late_event_s_occurrences_at_a_clock_time_or_of_a_first_order_act_late(db_url, tmp_path):
    """c1's first order, paid at 15:00, imported at 20:00: the late pass reads each kind of
    occurrence an event makes, at a clock time (through the days' slots) and a first order's.
    The daily rule at 17:00 found c1 without an order, and is not evaluated again."""
    text = (
        'rule "evening call"\n  when order.paid at 18:00\n  then task "call"\n'
        'rule "welcome"\n  when customer.first_order + 1h\n  then task "welcome"\n'
        'rule "daily"\n  when every day at 17:00\n  if customer.orders >= 1\n'
        '  then task "daily"\n'
    )
    engine, ruleset, config, event = late_setup(db_url, tmp_path, text, [])
    run_ticks(engine, ruleset, config, [A, *(A + k * HOUR_US for k in range(1, 20))])
    event("c1", "order.paid", A + 15 * HOUR_US)
    report = tick(engine, ruleset, config, NAME, A + 20 * HOUR_US)
    assert report.late == 1
    with engine.connect() as conn:
        query = sa.select(occurrences.c.rule, occurrences.c.due_us, occurrences.c.status)
        assert sorted(conn.execute(query)) == [
            ("evening call", A + 18 * HOUR_US, "acted"),
            ("welcome", A + 16 * HOUR_US, "acted"),
        ]
    assert sorted(task.title for task in list_tasks(engine)) == ["call", "welcome"]


def test_a_late_event_s_message_is_capped_by_those_sent_after_it(db_url, tmp_path):
    """One marketing message a day: c1's order at 02:00 was thanked at 02:00. An order paid at
    01:00 and imported at 03:00 would, thanked now, make two messages within a day that ends
    at 02:00: it is suppressed by the cap. c2 had no message: theirs is sent."""
    text = (
        'limit marketing to 1 per 1d\n\nrule "thanks"\n  when order.paid\n  then message "thanks"\n'
    )
    engine, ruleset, config, event = late_setup(db_url, tmp_path, text, ["thanks"])
    run_ticks(engine, ruleset, config, [A])
    event("c1", "order.paid", A + 2 * HOUR_US)
    run_ticks(engine, ruleset, config, [A + HOUR_US, A + 2 * HOUR_US + 60 * US])
    event("c1", "order.paid", A + HOUR_US)
    event("c2", "order.paid", A + HOUR_US)
    run_ticks(engine, ruleset, config, [A + 3 * HOUR_US])
    with engine.connect() as conn:
        query = sa.select(
            actions.c.customer_id, actions.c.at_us, actions.c.status, actions.c.reason
        )
        assert sorted(conn.execute(query)) == [
            ("c1", A + HOUR_US, "suppressed", "cap"),
            ("c1", A + 2 * HOUR_US, "sent", None),
            ("c2", A + HOUR_US, "sent", None),
        ]
    assert len(read_ledger(engine).outbox) == 2


def ledger_of(engine: Engine) -> list[tuple[str, str, int, str]]:
    """(rule, customer, due, status) of every occurrence recorded."""
    with engine.connect() as conn:
        ledger = occurrences.c
        query = sa.select(ledger.rule, ledger.customer_id, ledger.due_us, ledger.status)
        return sorted(tuple(row) for row in conn.execute(query))


def test_a_late_first_order_does_not_act_again_for_a_customer_whose_first_order_acted(
    db_url, tmp_path
):
    """c1's order paid at 05:00 was welcomed at 06:00 as the first. One paid at 02:00 comes at
    07:00: it is the first order now, but the customer has been welcomed for their first
    order once, and is not welcomed again."""
    text = 'rule "welcome"\n  when customer.first_order + 1h\n  then task "welcome"\n'
    engine, ruleset, config, event = late_setup(db_url, tmp_path, text, [])
    run_ticks(engine, ruleset, config, [A + k * HOUR_US for k in range(5)])
    event("c1", "order.paid", A + 5 * HOUR_US)
    run_ticks(engine, ruleset, config, [A + k * HOUR_US for k in range(5, 8)])
    event("c1", "order.paid", A + 2 * HOUR_US)
    assert tick(engine, ruleset, config, NAME, A + 8 * HOUR_US).late == 1
    assert ledger_of(engine) == [("welcome", "c1", A + 6 * HOUR_US, "acted")]
    assert [task.title for task in list_tasks(engine)] == ["welcome"]


def test_a_late_order_in_the_span_of_a_last_order_that_acted_does_not_act_again(db_url, tmp_path):
    """c1's last order, paid at 01:00, acted at 05:00 (`+ 4h`). An order paid at 03:00, inside
    that span, comes at 09:00: on time, it would have ended the first one's span and acted at
    07:00 instead. The one that acted stands, and the customer is not sent a second."""
    text = 'rule "quiet since"\n  when customer.last_order + 4h\n  then task "call"\n'
    engine, ruleset, config, event = late_setup(db_url, tmp_path, text, [])
    run_ticks(engine, ruleset, config, [A])
    event("c1", "order.paid", A + HOUR_US)
    run_ticks(engine, ruleset, config, [A + k * HOUR_US for k in range(1, 9)])
    event("c1", "order.paid", A + 3 * HOUR_US)
    assert tick(engine, ruleset, config, NAME, A + 9 * HOUR_US).late == 1
    assert ledger_of(engine) == [("quiet since", "c1", A + 5 * HOUR_US, "acted")]


def test_history_imported_with_a_late_event_is_not_acted_on(db_url, tmp_path):
    """An order paid 12 hours before the rule set's first start (due 6 hours after it) is
    history, imported along with c1's late order: only c1's acts."""
    text = 'rule "follow"\n  when order.paid + 18h\n  then task "follow"\n'
    engine, ruleset, config, event = late_setup(db_url, tmp_path, text, [])
    run_ticks(engine, ruleset, config, [A + k * HOUR_US for k in range(11)])
    event("c2", "order.paid", A - 12 * HOUR_US)
    event("c1", "order.paid", A - 12 * HOUR_US + 15 * HOUR_US)
    run_ticks(engine, ruleset, config, [A + 11 * HOUR_US, A + 22 * HOUR_US])
    assert ledger_of(engine) == [("follow", "c1", A + 21 * HOUR_US, "acted")]


def test_a_late_occurrence_s_exclude_sees_the_tags_given_before_its_due_time(db_url, tmp_path):
    """c1 complained at 02:00 (on time: tagged "complaint", which `exclude if` reads). Their
    order of 01:00 comes late, its thank-you due at 03:00: excluded, as it would have been on
    time."""
    text = (
        'exclude if "complaint" in customer.tags\n\n'
        'rule "complaint"\n  when ticket.opened\n  then tag "complaint"\n'
        'rule "thanks"\n  when order.paid + 2h\n  then message "thanks"\n'
    )
    engine, ruleset, config, event = late_setup(db_url, tmp_path, text, ["thanks"])
    run_ticks(engine, ruleset, config, [A, A + 90 * 60 * US])
    event("c1", "ticket.opened", A + 2 * HOUR_US)
    run_ticks(engine, ruleset, config, [A + k * HOUR_US for k in (2, 3, 4)])
    event("c1", "order.paid", A + HOUR_US)
    assert tick(engine, ruleset, config, NAME, A + 5 * HOUR_US).late == 1
    with engine.connect() as conn:
        query = sa.select(actions.c.rule, actions.c.status, actions.c.reason)
        assert sorted(conn.execute(query)) == [
            ("complaint", "sent", None),
            ("thanks", "suppressed", "excluded"),
        ]


def test_a_late_occurrence_the_ledger_holds_counts_once_for_the_cap(db_url, tmp_path):
    """Two a day. c1's order at 05:00 made the last-order message. A second order paid at that
    instant (the same order value, the same occurrence) and a review at 08:00 come late: the
    review's message is the customer's second of the day, sent."""
    text = (
        "limit marketing to 2 per 1d\n\n"
        'rule "last"\n  when customer.last_order\n  then message "a"\n'
        'rule "review"\n  when review.posted\n  then message "b"\n'
    )
    engine, ruleset, config, event = late_setup(db_url, tmp_path, text, ["a", "b"])
    run_ticks(engine, ruleset, config, [A, A + 4 * HOUR_US])
    event("c1", "order.paid", A + 5 * HOUR_US)
    run_ticks(engine, ruleset, config, [A + k * HOUR_US for k in range(5, 10)])
    event("c1", "order.paid", A + 5 * HOUR_US, id="second")
    event("c1", "review.posted", A + 8 * HOUR_US)
    assert tick(engine, ruleset, config, NAME, A + 10 * HOUR_US).late == 2
    with engine.connect() as conn:
        query = sa.select(actions.c.rule, actions.c.at_us, actions.c.status)
        assert sorted(conn.execute(query)) == [
            ("last", A + 5 * HOUR_US, "sent"),
            ("review", A + 8 * HOUR_US, "sent"),
        ]


def test_a_late_message_sent_at_the_end_of_quiet_hours_waits_its_turn_for_the_cap(db_url, tmp_path):
    """One a day, quiet from 22:00 to 08:00. c1's order of 23:00 (on time) waits for 08:00.
    One paid at 03:00, imported at 07:59, is sent at 08:00 as well: the cap takes the two in
    the order of 3.8 (the earlier due time first), as a simulation of the night does."""
    text = (
        "limit marketing to 1 per 1d\nquiet hours 22:00 to 08:00\n\n"
        'rule "thanks"\n  when order.paid\n  then message "thanks"\n'
    )
    engine, ruleset, config, event = late_setup(db_url, tmp_path, text, ["thanks"])
    begin = A - 2 * HOUR_US
    run_ticks(engine, ruleset, config, [begin])
    event("c1", "order.paid", A - HOUR_US)
    run_ticks(engine, ruleset, config, [begin + k * 30 * 60 * US for k in range(1, 20)])
    event("c1", "order.paid", A + 3 * HOUR_US)
    assert tick(engine, ruleset, config, NAME, A + 8 * HOUR_US + 30 * US).late == 1
    predicted = simulate_records(engine, ruleset, config, begin, A + 9 * HOUR_US)
    assert [(r["due"], r["status"]) for r in predicted] == [
        (iso(A - HOUR_US), "sent"),
        (iso(A + 3 * HOUR_US), "suppressed"),
    ]
    assert lines(history(engine, begin, A + 9 * HOUR_US)) == lines(predicted)


def test_with_events_imported_late_once_once_every_and_the_cap_still_hold(db_url, tmp_path) -> None:
    """The shop of these tests, one marketing message a day, half its events imported up to
    6 h 40 late, ticks every 30 minutes: no customer gets more than the cap allows, `vip`
    acts once, `cart` and `club news` never within their spans."""
    engine = open_database(db_url)
    people, happenings = shop_rows(1)
    config = config_for(tmp_path, db_url, timezone="Europe/London")
    import_customer_rows(engine, people, config.timezone)
    text = SHOP_RULES.replace("limit marketing to 3 per 7d", "limit marketing to 1 per 1d")
    ruleset = load_rule_set(write_rules(tmp_path / "rules", {"r.rules": text}, TEMPLATES), config)
    rng = random.Random(1)
    arrivals = sorted(
        (
            to_us(dt.datetime.fromisoformat(h["at"]))
            + rng.choice([0, rng.randrange(1, 400)]) * 60 * US,
            i,
        )
        for i, h in enumerate(happenings)
    )
    now, late = A - 4 * DAY_US - HOUR_US, 0
    while now < A + 6 * DAY_US:
        come = [happenings[i] for at, i in arrivals if now - 30 * 60 * US < at <= now]
        if come:
            assert not import_event_rows(engine, come, config.timezone).problems
        late += tick(engine, ruleset, config, NAME, now).late
        now += 30 * 60 * US
    assert late > 10
    with engine.connect() as conn:
        sent = conn.execute(
            sa.select(actions.c.customer_id, actions.c.at_us).where(
                actions.c.status == "sent", actions.c.kind.in_(("message", "coupon"))
            )
        ).all()
    for customer, at_us in sent:
        assert sum(c == customer and at_us - DAY_US < t <= at_us for c, t in sent) == 1
    acted = [row for row in ledger_of(engine) if row[3] == "acted"]
    spans = {"vip": 365 * DAY_US, "cart": DAY_US, "club news": 3 * DAY_US}  # vip: `once`
    for rule, customer, due_us, _ in acted:
        if rule in spans:
            near = [d for r, c, d, _ in acted if (r, c) == (rule, customer)]
            assert sum(due_us - spans[rule] < d <= due_us for d in near) == 1


BONUS = 'rule "bonus"\n  when order.paid + 1h\n  then points customer.points / 10\n'
EXPIRE = 'rule "expire"\n  when every month on 1\n  then points 0 - customer.points\n'
BALANCE_RULES = {"bonus": BONUS, "expire": EXPIRE, "both": BONUS + EXPIRE}


@pytest.mark.parametrize("reader", ["bonus", "expire", "both"])
@pytest.mark.parametrize("catching_up", [True, False], ids=["one tick", "daily ticks"])
def test_points_that_read_the_points_balance_see_every_earlier_gift(
    db_url, tmp_path, reader, catching_up
) -> None:
    """Beside `earn` (an order's total), `bonus` gives a tenth of the balance an hour after each
    order, `expire` takes it back on the 1st of each month, or both do, each reading what the
    other gives: each occurrence reads what was given before its due time, its own rule's
    earlier occurrences included. A simulation of the quarter says so, and a daemon ticking
    through it or catching up on it in one tick does the same."""
    engine = open_database(db_url)
    config = config_for(tmp_path, db_url, grace_seconds=400 * 86400.0)
    text = 'rule "earn"\n  when order.paid\n  then points order.total\n' + BALANCE_RULES[reader]
    ruleset = load_rule_set(write_rules(tmp_path / "rules", {"r.rules": text}, []), config)
    import_customer_rows(engine, [{"id": "k"}], config.timezone)
    paid = [
        {"customer": "k", "type": "order.paid", "at": f"2026-0{month}-10T00:00:00Z", "total": t}
        for month, t in ((1, 100), (2, 50), (3, 20))
    ]
    assert not import_event_rows(engine, paid, config.timezone).problems
    start, end = to_us(dt.datetime(2026, 1, 1, tzinfo=dt.UTC)), B + 30 * DAY_US
    predicted = simulate_records(engine, ruleset, config, start, end)
    expected = {
        "bonus": {"bonus": [10, 16, 19.6]},
        "expire": {"expire": [0, -100, -50, -20]},
        "both": {"bonus": [10, 5, 2], "expire": [0, -110, -55, -22]},
    }[reader]
    for rule, amounts in expected.items():
        assert [r["amount"] for r in predicted if r["rule"] == rule] == amounts
    moments = [end] if catching_up else [*range(start + DAY_US, end, DAY_US), end]
    run_ticks(engine, ruleset, config, [start, *moments])
    assert lines(history(engine, start, end)) == lines(predicted)


def test_an_occurrence_moved_by_a_rule_edit_after_it_acted_does_not_act_or_take_the_cap(
    db_url, tmp_path
) -> None:
    """`daily` acted at 10:00; at noon it is moved to 18:00, beside a new `promo` at 18:00 and a
    cap of one message in 6 hours. Today's occurrence of `daily` is the one that acted (same
    rule, customer and day): it does not act again, nor take the cap's place, so `promo` is
    sent. A simulation from noon, `explain` and the daemon agree."""
    engine = open_database(db_url)
    config = config_for(tmp_path, db_url, grace_seconds=86400.0)
    import_customer_rows(engine, [{"id": "c1", "accepts_marketing": True}], config.timezone)
    daily = 'rule "daily"\n  when every day at {}\n  then message "m"\n'
    folder = tmp_path / "rules"
    before = load_rule_set(write_rules(folder, {"r.rules": daily.format("10:00")}, ["m"]), config)
    noon, end = A + 12 * HOUR_US, A + 2 * DAY_US
    run_ticks(engine, before, config, [A, A + 10 * HOUR_US + US, noon])
    edited = "limit marketing to 1 per 6h\n" + daily.format("18:00")
    edited += 'rule "promo"\n  when every day at 18:00\n  then message "m"\n'
    after = load_rule_set(write_rules(folder, {"r.rules": edited}, ["m"]), config)
    predicted = simulate_records(engine, after, config, noon, end)
    assert [(r["rule"], r["due"], r["status"]) for r in predicted] == [
        ("promo", iso(A + 18 * HOUR_US), "sent"),
        ("daily", iso(A + DAY_US + 18 * HOUR_US), "sent"),
        ("promo", iso(A + DAY_US + 18 * HOUR_US), "suppressed"),
    ]
    (moved,) = [
        s
        for s in explain(engine, after, config, "c1", noon, end, "daily")
        if s.due_us < end - DAY_US
    ]
    assert moved.outcome == "skipped"
    assert moved.reasons[0].startswith("the daemon did this occurrence before the window")
    run_ticks(engine, after, config, [A + 18 * HOUR_US + US, end])
    assert lines(history(engine, noon, end)) == lines(predicted)


def test_a_points_balance_does_not_depend_on_where_the_ticks_fell(db_url, tmp_path) -> None:
    """Orders of 0.2, 0.4 and 29.4 make 30 points, whether the daemon recorded the first alone
    (0.2 + (0.4 + 29.4) is 29.999999999999996 in floating point) or not: the reward at 30 acts
    in a simulation of the whole span, in one from after the first tick, and in the daemon."""
    engine = open_database(db_url)
    config = config_for(tmp_path, db_url, grace_seconds=86400.0)
    text = (
        'rule "earn"\n  when order.paid\n  then points order.total\n'
        'rule "reward"\n  when review.posted\n  if customer.points >= 30\n  then task "reward"\n'
    )
    ruleset = load_rule_set(write_rules(tmp_path / "rules", {"r.rules": text}, []), config)
    import_customer_rows(engine, [{"id": "k"}], config.timezone)
    happenings = [
        {"customer": "k", "type": "order.paid", "at": iso(A + hour * HOUR_US), "total": total}
        for hour, total in ((1, 0.2), (3, 0.4), (4, 29.4))
    ] + [{"customer": "k", "type": "review.posted", "at": iso(A + 5 * HOUR_US)}]
    assert not import_event_rows(engine, happenings, config.timezone).problems
    end = A + DAY_US
    whole = simulate_records(engine, ruleset, config, A, end)
    assert [r["rule"] for r in whole] == ["earn"] * 3 + ["reward"]
    run_ticks(engine, ruleset, config, [A, A + 2 * HOUR_US])
    middle = A + 2 * HOUR_US
    assert lines(simulate_records(engine, ruleset, config, middle, end)) == lines(whole[1:])
    run_ticks(engine, ruleset, config, [end])
    assert lines(history(engine, A, end)) == lines(whole)


@pytest.mark.parametrize("middle", MIDPOINTS, ids=["day 3 04:00", "day 3 22:30"])
def test_a_simulation_from_where_the_daemon_stands_predicts_what_it_does_next(
    shop, tmp_path, db_url, middle
) -> None:
    """The daemon stops at a moment with marketing actions due before it and still waiting for
    their send time (quiet hours) and the cap's verdict. A simulation from that moment takes
    them into account and says exactly what the daemon then does."""
    engine, ruleset, _ = shop
    config = config_for(tmp_path, db_url, timezone="Europe/London", grace_seconds=30 * 86400.0)
    run_ticks(engine, ruleset, config, [A, A + DAY_US, middle])
    with engine.connect() as conn:
        waiting = conn.execute(
            sa.select(sa.func.count()).where(actions.c.status == "pending")
        ).scalar_one()
    assert waiting > 0
    predicted = lines(simulate_records(engine, ruleset, config, middle, B))
    run_ticks(engine, ruleset, config, [middle + 5 * HOUR_US, B])
    assert lines(history(engine, middle, B)) == predicted


def test_the_cap_decides_a_recorded_waiting_action_together_with_the_new_ones(
    db_url, tmp_path
) -> None:
    """At 23:00 the daemon has recorded a message due at 22:30, moved by quiet hours to 08:00
    and waiting there for the cap. A simulation from 23:00 decides it together with the new one
    due at 23:30, sent at 08:00 as well: the recorded one comes first (its due time is earlier)
    and takes the day's only place, so the new one is capped. The daemon then does the same."""
    engine = open_database(db_url)
    config = config_for(tmp_path, db_url, timezone="Europe/London", grace_seconds=86400.0)
    import_customer_rows(engine, [{"id": "c1", "accepts_marketing": True}], config.timezone)
    first, second = A + 22 * HOUR_US + 30 * 60 * US, A + 23 * HOUR_US + 30 * 60 * US
    paid = [{"customer": "c1", "type": "order.paid", "at": iso(t)} for t in (first, second)]
    import_event_rows(engine, paid, config.timezone)
    text = 'limit marketing to 1 per 1d\nquiet hours 22:00 to 08:00\n\nrule "thanks"\n'
    rules = write_rules(
        tmp_path / "rules",
        {"thanks.rules": text + '  when order.paid\n  then message "thanks"\n'},
        ["thanks"],
    )
    ruleset = load_rule_set(rules, config)
    middle, morning = A + 23 * HOUR_US, A + 32 * HOUR_US  # London is on UTC in early March
    run_ticks(engine, ruleset, config, [A, middle])
    with engine.connect() as conn:
        recorded = conn.execute(sa.select(actions.c.due_us, actions.c.at_us, actions.c.status))
        assert recorded.all() == [(first, morning, "pending")]
    # `history` does not list it yet (simulate does): its table says so, and when it is decided.
    setup = write_config(tmp_path / "nudge.yaml", db_url, timezone="Europe/London")
    shown = ["history", "--from", iso(A), "--to", iso(B), "--format", "table", "--config"]
    said = " ".join(CliRunner().invoke(cli, [*shown, str(setup)]).output.split())
    assert said == (
        "History: the daemon recorded no action due in this window. Not listed yet: 1 marketing"
        " action due in this window, moved by quiet hours to 2026-03-03 08:00, when the"
        " marketing limit decides it."
    )
    predicted = simulate_records(engine, ruleset, config, middle, B)
    assert [(r["due"], r["at"], r["status"], r["reason"]) for r in predicted] == [
        (iso(second), iso(morning), "suppressed", "cap")
    ]
    run_ticks(engine, ruleset, config, [morning + HOUR_US])
    assert [r.to_json() for r in history(engine, middle, B)] == predicted
    assert "Not listed yet" not in CliRunner().invoke(cli, [*shown, str(setup)]).output
    assert [(r.due_us, r.status) for r in history(engine, A, middle)] == [(first, "sent")]
    engine.dispose()


def test_a_simulation_caps_what_quiet_hours_send_after_its_end_as_the_daemon_does(
    db_url, tmp_path
) -> None:
    """A message due at 23:00 on the window's last day goes out at 08:00 the next morning, tied
    with one due at 03:00, after the window, of a rule earlier in the rule set, which takes the
    day's only place. A simulation of that one day says so (it evaluates what is sent up to the
    window's latest send time, and lists only its own), as do a longer one, `explain` and the
    daemon."""
    engine = open_database(db_url)
    config = config_for(tmp_path, db_url, timezone="Europe/London", grace_seconds=86400.0)
    import_customer_rows(engine, [{"id": "c1", "accepts_marketing": True}], config.timezone)
    paid, cart = A + 23 * HOUR_US, A + 25 * HOUR_US
    import_event_rows(
        engine,
        [
            {"customer": "c1", "type": "order.paid", "at": iso(paid)},
            {"customer": "c1", "type": "cart.updated", "at": iso(cart)},
        ],
        config.timezone,
    )
    text = (
        "limit marketing to 1 per 1d\nquiet hours 22:00 to 08:00\n\n"
        'rule "cart"\n  when cart.updated + 2h\n  then message "thanks"\n'
        'rule "thanks"\n  when order.paid\n  then message "thanks"\n'
    )
    rules = write_rules(tmp_path / "rules", {"shop.rules": text}, ["thanks"])
    ruleset = load_rule_set(rules, config)
    morning = A + 32 * HOUR_US
    one_day = simulate_records(engine, ruleset, config, A, A + DAY_US)
    assert [(r["rule"], r["at"], r["status"], r["reason"]) for r in one_day] == [
        ("thanks", iso(morning), "suppressed", "cap")
    ]
    two_days = simulate_records(engine, ruleset, config, A, A + 2 * DAY_US)
    assert [(r["rule"], r["status"]) for r in two_days] == [
        ("cart", "sent"),
        ("thanks", "suppressed"),
    ]
    assert two_days[1:] == one_day
    stories = explain(engine, ruleset, config, "c1", A, A + DAY_US)
    assert [(s.rule, [a.reason for a in s.actions]) for s in stories] == [("thanks", ["cap"])]
    run_ticks(engine, ruleset, config, [A, A + 12 * HOUR_US, A + 24 * HOUR_US, morning + HOUR_US])
    assert [r.to_json() for r in history(engine, A, A + DAY_US)] == one_day
    engine.dispose()


def test_actions_waiting_for_a_cap_taken_out_of_the_rules_go_out_at_their_time(
    db_url, tmp_path
) -> None:
    engine = open_database(db_url)
    config = config_for(tmp_path, db_url, timezone="Europe/London", grace_seconds=86400.0)
    import_customer_rows(engine, [{"id": "c1", "accepts_marketing": True}], config.timezone)
    first = A + 22 * HOUR_US + 30 * 60 * US
    paid = [{"customer": "c1", "type": "order.paid", "at": iso(first)}]
    import_event_rows(engine, paid, config.timezone)
    rule = 'rule "thanks"\n  when order.paid\n  then message "thanks"\n'
    policies = "limit marketing to 1 per 1d\nquiet hours 22:00 to 08:00\n\n"
    capped = write_rules(tmp_path / "capped", {"t.rules": policies + rule}, ["thanks"])
    middle, morning = A + 23 * HOUR_US, A + 32 * HOUR_US
    run_ticks(engine, load_rule_set(capped, config), config, [A, middle])
    # The limit is taken out; the quiet hours stay.
    uncapped = write_rules(tmp_path / "uncapped", {"t.rules": policies[28:] + rule}, ["thanks"])
    ruleset = load_rule_set(uncapped, config)
    recorded = sa.select(actions.c.due_us, actions.c.at_us, actions.c.status)
    run_ticks(engine, ruleset, config, [morning - HOUR_US])
    with engine.connect() as conn:
        assert conn.execute(recorded).all() == [(first, morning, "pending")]
    run_ticks(engine, ruleset, config, [morning + HOUR_US])
    with engine.connect() as conn:
        assert conn.execute(recorded).all() == [(first, morning, "sent")]
        assert conn.execute(sa.select(sa.func.count()).select_from(outbox)).scalar_one() == 1
    engine.dispose()


def test_the_cap_reads_a_customer_s_recorded_sends_by_customer_not_by_status(shop, tmp_path):
    """The cap's read of the marketing actions sent before a tick's window goes by the index of
    (customer, kind, send time): by the index of (status, due time) it read every action ever
    sent, on every tick that had a marketing action waiting, and the daemon slowed down as its
    ledger grew (SQLite took that index without statistics; PostgreSQL is asked with its
    sequential scans off, so that it chooses between the indexes)."""
    engine, ruleset, _ = shop
    config = config_for(tmp_path, str(engine.url), timezone="Europe/London")
    reads: list[tuple[str, Any]] = []

    def grab(conn, cursor, statement, parameters, context, executemany) -> None:
        if "SELECT actions.customer_id, actions.at_us" in statement and "FROM actions" in statement:
            reads.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", grab)
    try:
        run_ticks(engine, ruleset, config, every(3 * HOUR_US))
    finally:
        sa.event.remove(engine, "before_cursor_execute", grab)
    assert reads, "the cap read no recorded sends: the shop no longer exercises it"
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for statement, parameters in reads:
            if engine.dialect.name == "sqlite":
                cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            else:
                cursor.execute("SET enable_seqscan = off")
                cursor.execute("EXPLAIN " + statement, parameters)
            plan = " ".join(str(row[-1]) for row in cursor.fetchall())
            assert "customer_id_kind_at_us" in plan and "status_due_us" not in plan, plan
    finally:
        raw.close()
