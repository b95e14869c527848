"""The SQL engine on the decisions of docs/semantics.md, each with a case that tells them apart."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from conftest import PG_ADMIN_URL
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

from engine.checking.ruleset import load_rule_set
from engine.config import Config
from engine.evaluation.evaluate import customer_zones, evaluate_due, find_due, scope_for
from engine.evaluation.explain import customer_zone, explain, render
from engine.evaluation.scratch import Effects, candidates
from engine.evaluation.simulate import simulate, simulate_records
from engine.importing.importers import import_customer_rows, import_event_rows
from engine.language import ast
from engine.language.parse import parse_text
from engine.plan.sqlgen import COMPARISONS, Compiler, needed_events, needed_tags
from engine.plan.triggers import EVERYONE, Customers, customer_batches, shared_fills
from engine.storage.db import open_database
from engine.storage.tables import effects
from engine.timeutil import from_us, parse_moment

CONFIG = Config(timezone="Asia/Shanghai")


def write_rule_folder(tmp_path: Path, rules: str) -> Path:
    """`tmp_path/rules`: `rules` as its one file, and the template `hello`."""
    folder = tmp_path / "rules"
    (folder / "templates").mkdir(parents=True)
    (folder / "shop.rules").write_text(rules, encoding="utf-8")
    (folder / "templates" / "hello.txt").write_text("hi", encoding="utf-8")
    return folder


def run(
    db_url: str,
    tmp_path: Path,
    rules: str,
    customers: list[dict[str, Any]],
    events: list[dict[str, Any]],
    start: str = "2026-06-01T00:00:00Z",
    end: str = "2026-07-01T00:00:00Z",
) -> list[dict[str, Any]]:
    write_rule_folder(tmp_path, rules)
    engine = open_database(db_url)
    assert not import_customer_rows(engine, customers, CONFIG.timezone).problems
    assert not import_event_rows(engine, events, CONFIG.timezone).problems
    ruleset = load_rule_set(tmp_path / "rules", CONFIG)
    return simulate_records(
        engine, ruleset, CONFIG, parse_moment(start, "UTC"), parse_moment(end, "UTC")
    )


def test_a_date_in_a_condition_is_midnight_where_the_customer_lives(
    db_url: str, tmp_path: Path
) -> None:
    # Signed up 2026-06-01 00:30 in Shanghai: 2026-05-31 16:30 UTC. In New York the same
    # instant is 12:30 on 05-31. "signed_up >= 2026-06-01" holds for Shanghai only.
    records = run(
        db_url,
        tmp_path,
        'when on 2026-06-10 if customer.signed_up >= 2026-06-01 then task "new"',
        [
            {"id": "sh", "timezone": "Asia/Shanghai", "signed_up": "2026-05-31T16:30:00Z"},
            {"id": "ny", "timezone": "America/New_York", "signed_up": "2026-05-31T16:30:00Z"},
        ],
        [],
    )
    assert [r["customer"] for r in records] == ["sh"]


def test_text_that_reads_as_a_number_compares_as_one(db_url: str, tmp_path: Path) -> None:
    records = run(
        db_url,
        tmp_path,
        'when on 2026-06-10 if customer.level >= 3 then task "vip"',
        [
            {"id": "a", "level": "3"},
            {"id": "b", "level": "12"},
            {"id": "c", "level": "x"},
            {"id": "d", "level": "2"},
        ],
        [],
    )
    assert sorted(r["customer"] for r in records) == ["a", "b"]


def test_conditions_alike_but_for_the_attribute_each_read_their_own(
    db_url: str, tmp_path: Path
) -> None:
    # The two queries differ only in the attribute's name (and bound values): SQLAlchemy's
    # cache of compiled statements must not give the second the first one's SQL.
    records = run(
        db_url,
        tmp_path,
        'rule "city"\n  when on 2026-06-10\n  if customer.city == "Xi\'an"\n  then task "c"\n'
        'rule "tier"\n  when on 2026-06-10\n  if customer.tier == "gold"\n  then task "t"\n'
        'rule "size"\n  when on 2026-06-10\n  if customer.size >= 3\n  then task "s"\n'
        'rule "age"\n  when on 2026-06-10\n  if customer.age >= 30\n  then task "a"\n',
        [
            {"id": "c", "city": "Xi'an", "tier": "silver", "size": 2, "age": 40},
            {"id": "t", "city": "Hefei", "tier": "gold", "size": 4, "age": 20},
        ],
        [],
    )
    assert sorted((r["rule"], r["customer"]) for r in records) == [
        ("age", "c"),
        ("city", "c"),
        ("size", "t"),
        ("tier", "t"),
    ]


def test_consent_follows_subscribe_and_unsubscribe_events(db_url: str, tmp_path: Path) -> None:
    records = run(
        db_url,
        tmp_path,
        'when every day at 12:00 then message "hello"',
        [{"id": "c1", "accepts_marketing": True}],
        [
            {"customer": "c1", "type": "customer.unsubscribed", "at": "2026-06-02T08:00:00+08:00"},
            {"customer": "c1", "type": "customer.subscribed", "at": "2026-06-03T08:00:00+08:00"},
        ],
        start="2026-06-01T00:00:00+08:00",
        end="2026-06-04T00:00:00+08:00",
    )
    assert [(r["due"][:10], r["status"], r["reason"]) for r in records] == [
        ("2026-06-01", "sent", None),
        ("2026-06-02", "suppressed", "no-consent"),
        ("2026-06-03", "sent", None),
    ]


@pytest.mark.parametrize("lookups", ["gated", "everyone", "no one"])
def test_consent_and_exclusions_read_the_same_whether_their_lookups_are_gated_or_not(
    db_url: str, tmp_path: Path, lookups: str
) -> None:
    # `engine.policies.gates`: with fewer consent events and returns than marketing occurrences due,
    # the lookups are made only for the customers who had one; with more (a customer who sent many),
    # for everyone; with none at all, for no one. The verdicts are the same either way.
    day = "2026-05-20T08:00:00Z"
    people = {
        "flag yes": (True, [], "sent"),
        "flag no": (False, [], "no-consent"),
        "unsubscribed": (True, ["customer.unsubscribed"], "no-consent"),
        # A subscribe event gives consent back after an unsubscribe, never beyond the flag.
        "subscribed": (False, ["customer.subscribed"], "no-consent"),
        "resubscribed": (True, ["customer.unsubscribed", "customer.subscribed"], "sent"),
        "returner": (True, ["order.paid"] * 3 + ["order.returned"] * 2, "excluded"),
        "keeper": (True, ["order.paid"] * 3, "sent"),
    }
    if lookups == "no one":  # nobody sent a consent event or returned an order
        for name in ("unsubscribed", "subscribed", "resubscribed", "returner"):
            del people[name]
    history = [(name, kind) for name, (_, kinds, _) in people.items() for kind in kinds]
    customers = [{"id": name, "accepts_marketing": flag} for name, (flag, _, _) in people.items()]
    if lookups == "everyone":  # more of each type than the 14 occurrences due
        customers.append({"id": "chatty", "accepts_marketing": True})
        for kind in ("customer.subscribed", "order.paid", "order.returned"):
            history += [("chatty", kind)] * 15
    events = [
        {"customer": c, "type": t, "at": day, "id": f"{c}-{i}"} for i, (c, t) in enumerate(history)
    ]
    write_rule_folder(
        tmp_path,
        "exclude if customer.orders >= 3 and customer.return_rate > 0.5\n"
        'when every day at 12:00 then message "hello"\n',
    )
    engine = open_database(db_url)
    assert not import_customer_rows(engine, customers, CONFIG.timezone).problems
    assert not import_event_rows(engine, events, CONFIG.timezone).problems
    ruleset = load_rule_set(tmp_path / "rules", CONFIG)
    start, end = parse_moment("2026-06-01", "UTC"), parse_moment("2026-06-03", "UTC")
    with engine.connect() as conn:
        found = find_due(conn, ruleset, CONFIG, start, end).gated
        conn.rollback()
    types = {"customer.subscribed", "customer.unsubscribed", "order.returned"}
    assert (found.had, found.none) == {
        "gated": (types, set()),
        "everyone": (set(), set()),
        "no one": (set(), types),
    }[lookups]
    verdicts = Counter(
        (a.customer_id, a.reason or a.status)
        for a in simulate(engine, ruleset, CONFIG, start, end).actions
        if a.customer_id != "chatty"
    )
    assert verdicts == {(name, verdict): 2 for name, (_, _, verdict) in people.items()}


@pytest.mark.parametrize("holders", ["gated", "everyone", "no one"])
def test_a_tag_exclusion_reads_the_same_whether_its_lookups_are_gated_or_not(
    db_url: str, tmp_path: Path, holders: str
) -> None:
    # `engine.policies.gates`: with fewer customers who may hold the tag than marketing occurrences
    # due (imported with it, given it before the window, due an occurrence of a rule giving it),
    # the exclusion is tested only for them; with more, for everyone; with none, for no one.
    before, review, order, late = (
        parse_moment(moment, "UTC")
        for moment in (
            "2026-05-20T08:00:00Z",
            "2026-06-01T08:00:00Z",
            "2026-06-01T10:00:00Z",
            "2026-06-01T11:00:00Z",
        )
    )
    people = {  # name: (imported tags, ledger (kind, time), review time, verdict)
        "imported": (["complaint"], [], None, "excluded"),
        "recorded": ([], [("tag", before)], None, "excluded"),
        "forgiven": ([], [("tag", before), ("untag", before + 1)], None, "sent"),
        "reviewer": ([], [], review, "excluded"),
        "late reviewer": ([], [], late, "sent"),
        "plain": (["vip"], [], None, "sent"),
    }
    if holders == "no one":
        people = {"plain": people["plain"]}
    customers = [
        {"id": name, "tags": tags, "accepts_marketing": True}
        for name, (tags, _, _, _) in people.items()
    ]
    if holders == "everyone":  # more who may hold it than the occurrences due, with no order
        customers += [{"id": f"silent {i}", "tags": ["complaint"]} for i in range(len(people))]
    events = [{"customer": name, "type": "order.paid", "at": order} for name in people] + [
        {"customer": name, "type": "review.posted", "at": at}
        for name, (_, _, at, _) in people.items()
        if at is not None
    ]
    ledger = [
        {
            "customer_id": name,
            "kind": kind,
            "tag": "complaint",
            "at_us": at,
            "rule_position": 0,
            "position": 0,
        }
        for name, (_, given, _, _) in people.items()
        for kind, at in given
    ]
    write_rule_folder(
        tmp_path,
        'exclude if "complaint" in customer.tags\n'
        'rule "thanks" when order.paid then message "hello"\n'
        'rule "complains" when review.posted then tag "complaint"\n',
    )
    engine = open_database(db_url)
    assert not import_customer_rows(engine, customers, CONFIG.timezone).problems
    for event in events:
        event["at"] = from_us(event["at"]).isoformat()
    assert not import_event_rows(engine, events, CONFIG.timezone).problems
    if ledger:
        with engine.begin() as conn:
            conn.execute(effects.insert(), ledger)
    ruleset = load_rule_set(tmp_path / "rules", CONFIG)
    start, end = parse_moment("2026-06-01", "UTC"), parse_moment("2026-06-02", "UTC")
    with engine.connect() as conn:
        found = find_due(conn, ruleset, CONFIG, start, end).gated
        conn.rollback()
    assert (found.held, found.unheld) == {
        "gated": ({"complaint"}, set()),
        "everyone": (set(), set()),
        "no one": (set(), {"complaint"}),
    }[holders]
    verdicts = {
        a.customer_id: a.reason or a.status
        for a in simulate(engine, ruleset, CONFIG, start, end).actions
        if a.kind == "message"
    }
    assert verdicts == {name: verdict for name, (_, _, _, verdict) in people.items()}


def test_exclusions_without_a_gate_are_tested_beside_several_behind_one(
    db_url: str, tmp_path: Path
) -> None:
    # Two exclusions behind gates share one probe in front of them (`gates.excluded`); the
    # one without a gate (an email) is still tested for customers who pass no gate at all.
    people = {  # name: (email, imported tags, verdict)
        "tester": ("qa@test.example", [], "excluded"),
        "complainer": ("c@shop.example", ["complaint"], "excluded"),
        "fraudster": ("f@shop.example", ["fraud"], "excluded"),
        "both": ("b@shop.example", ["complaint", "fraud"], "excluded"),
        "plain": ("p@shop.example", [], "sent"),
    }
    write_rule_folder(
        tmp_path,
        'exclude if "complaint" in customer.tags\n'
        'exclude if "fraud" in customer.tags\n'
        'exclude if customer.email contains "@test."\n'
        'rule "thanks" when order.paid then message "hello"\n',
    )
    engine = open_database(db_url)
    customers = [
        {"id": name, "email": email, "tags": tags, "accepts_marketing": True}
        for name, (email, tags, _) in people.items()
    ]
    assert not import_customer_rows(engine, customers, CONFIG.timezone).problems
    events = [
        {"customer": name, "type": "order.paid", "at": "2026-06-01T10:00:00Z"} for name in people
    ]
    assert not import_event_rows(engine, events, CONFIG.timezone).problems
    ruleset = load_rule_set(tmp_path / "rules", CONFIG)
    start, end = parse_moment("2026-06-01", "UTC"), parse_moment("2026-06-02", "UTC")
    with engine.connect() as conn:
        assert find_due(conn, ruleset, CONFIG, start, end).gated.held == {"complaint", "fraud"}
        conn.rollback()
    verdicts = {
        a.customer_id: a.reason or a.status
        for a in simulate(engine, ruleset, CONFIG, start, end).actions
    }
    assert verdicts == {name: verdict for name, (_, _, verdict) in people.items()}


def test_an_exclude_waits_for_every_rule_where_it_would_close_a_cycle(
    db_url: str, tmp_path: Path
) -> None:
    """A marketing rule goes after the rules giving what `exclude if` reads, unless it gives
    that itself (a cycle), or gives what such a rule reads (a longer cycle): then its `exclude`
    waits until every stratum is done."""
    write_rule_folder(
        tmp_path,
        'exclude if "complaint" in customer.tags\n'
        'rule "greets" when every day at 12:00 then message "hello" and tag "greeted"\n'
        'rule "complains" when review.posted if "greeted" in customer.tags then tag "complaint"\n'
        'rule "plain" when every day at 13:00 then message "hello"\n'
        'rule "own" when every day at 14:00 then message "hello" and tag "complaint"\n'
        'rule "kind" when every day at 15:00 then message "hello" and tag "thanked"\n',
    )
    engine = open_database(db_url)
    ruleset = load_rule_set(tmp_path / "rules", CONFIG)
    start, end = parse_moment("2026-06-01", "UTC"), parse_moment("2026-06-03", "UTC")
    with engine.connect() as conn:
        due = find_due(conn, ruleset, CONFIG, start, end)
        conn.rollback()
    names = {rule.position: rule.name for rule in ruleset.rules}
    assert {names[p] for p in due.late_exclude} == {"greets", "own"}
    assert [[rule.name for rule in stratum] for stratum in due.strata] == [
        ["greets", "own"],
        ["complains"],
        ["plain", "kind"],
    ]


def test_points_of_an_unset_amount_are_zero(db_url: str, tmp_path: Path) -> None:
    records = run(
        db_url,
        tmp_path,
        "when order.paid then points order.total",
        [{"id": "c1"}],
        [
            {"customer": "c1", "type": "order.paid", "at": "2026-06-02T10:00:00Z"},
            {"customer": "c1", "type": "order.paid", "at": "2026-06-03T10:00:00Z", "total": 19.9},
        ],
    )
    assert [r["amount"] for r in records] == [0, 19.9]


def test_event_reads_the_triggering_events_properties_even_of_a_customer_event(
    db_url: str, tmp_path: Path
) -> None:
    """`customer.source` is the customer's attribute; the `customer.referred` event's own
    `source` is `event.source`."""
    referred = {"type": "customer.referred", "at": "2026-06-02T10:00:00Z"}
    records = run(
        db_url,
        tmp_path,
        'when customer.referred\n  if event.source == "wechat" and customer.source == "shop"\n'
        "  then points event.bonus * 2",
        [{"id": "c1", "source": "shop"}, {"id": "c2", "source": "shop"}, {"id": "c3"}],
        [
            {**referred, "customer": "c1", "source": "wechat", "bonus": 7},
            {**referred, "customer": "c2", "source": "qr", "bonus": 5},
            {**referred, "customer": "c3", "source": "wechat", "bonus": 6},
        ],
    )
    assert [(r["customer"], r["amount"]) for r in records] == [("c1", 14)]


def test_arithmetic_and_sums_beyond_a_doubles_range_are_not_set(
    db_url: str, tmp_path: Path
) -> None:
    """Not an infinity in the output (SQLite), nor a query that fails for everyone
    (PostgreSQL)."""
    paid = {"type": "order.paid", "at": "2026-06-02T10:00:00Z"}
    rules = {
        "times": "order.total * 100000000000000 is not set",
        "plus": "order.total + order.total is not set",
        "over": "order.total / 0.5 is not set",
        "under": "order.total / 2 > 1",
        "spent": "customer.total_spent is not set and customer.average_order is not set",
        "summed": "sum(order.paid.total) is not set",
        "rfm": 'customer.rfm == "521"',  # monetary 1, as without orders
        # SQLite's `sum` of integers fails where it overflows 64 bits
        "integers": "customer.total_spent / 1000000 >= 18000000000000",
        "uneven": "order.tip is set and order.total + order.tip is not set",
        # PostgreSQL fails a product that underflows to zero, and failed a halved subnormal
        "tiny": "order.tip * order.tip == 0 and order.total + order.tip > 0",
        # each operation's operands written once: nesting does not multiply the SQL
        "nested": "order.total * 1.01 * 1.01 * 1.01 * 1.01 * 1.01 * 1.01 * 1.01 * 1.01 > 1",
    }
    records = run(
        db_url,
        tmp_path,
        rules_on("order.paid", rules)
        + rules_on("review.posted", {"balance": "customer.points is not set"})
        + 'rule "amount" when order.paid then points order.total * 100000000000000\n'
        + 'rule "give" when order.paid then points order.total\n',
        [{"id": "c1"}, {"id": "c2"}, {"id": "c3"}, {"id": "c4"}, {"id": "c5"}],
        [
            {**paid, "customer": "c1", "total": 1e308, "id": "o1"},
            {**paid, "customer": "c1", "total": 1.5e308, "id": "o2"},
            {**paid, "customer": "c2", "total": 1e300, "id": "o3"},
            {**paid, "customer": "c3", "total": 9_000_000_000_000_000_000, "id": "o4"},
            {**paid, "customer": "c3", "total": 9_000_000_000_000_000_000, "id": "o5"},
            {**paid, "customer": "c4", "total": 1.7e308, "tip": 5e307, "id": "o6"},
            {**paid, "customer": "c5", "total": 5e-324, "tip": 1e-200, "id": "o7"},
            *(
                {"type": "review.posted", "at": "2026-06-03T10:00:00Z", "customer": c}
                for c in ("c1", "c2", "c3")
            ),
        ],
    )
    amounts = [(r["customer"], r["amount"]) for r in records if r["rule"] == "amount"]
    assert amounts[:3] == [
        ("c1", 0),
        ("c1", 0),
        ("c2", 0),
    ]
    assert [c for c, amount in amounts[3:] if amount > 8.9e32] == ["c3", "c3"]
    acted = by_rule([r for r in records if r["rule"] not in ("amount", "give")])
    assert acted == {
        "times": ["c1", "c1", "c2", "c4"],
        "plus": ["c1", "c1", "c4"],
        "over": ["c1", "c1", "c4"],
        "under": ["c1", "c1", "c2", "c3", "c3", "c4"],
        "spent": ["c1", "c1", "c4"],
        "summed": ["c1", "c1", "c4"],
        "rfm": ["c1", "c1"],
        "balance": ["c1", "c2", "c3"],  # a gift beyond a trillion
        "integers": ["c2", "c3", "c3"],
        "uneven": ["c4"],
        "tiny": ["c5"],
        "nested": ["c2", "c3", "c3"],
    }


def test_a_list_attribute_holds_its_items_and_text_holds_its_substrings(
    db_url: str, tmp_path: Path
) -> None:
    records = run(
        db_url,
        tmp_path,
        'rule "member"\n  when on 2026-06-10\n  if "shoes" in customer.interests\n'
        '  then task "m"\n'
        'rule "part"\n  when on 2026-06-10\n  if customer.interests contains "shoe"\n'
        '  then task "p"\n',
        [
            {"id": "list", "interests": ["shoes", "bags"]},
            {"id": "text", "interests": "running shoes"},
            {"id": "none"},
        ],
        [],
    )
    assert sorted((r["rule"], r["customer"]) for r in records) == [
        ("member", "list"),
        ("member", "text"),
        ("part", "text"),
    ]


def by_rule(records: list[dict[str, Any]], key: str = "customer") -> dict[str, list[str]]:
    """Each rule's records, as the sorted values of `key`."""
    found: dict[str, list[str]] = {}
    for record in records:
        found.setdefault(record["rule"], []).append(record[key])
    return {rule: sorted(values) for rule, values in found.items()}


def rules_on(when: str, conditions: dict[str, str]) -> str:
    """One rule per condition, named by its key, each with a task of its own."""
    return "".join(
        f'rule "{name}"\n  when {when}\n  if {condition}\n  then task "{name}"\n'
        for name, condition in conditions.items()
    )


def test_a_list_or_an_object_is_set_but_compared_with_a_value_it_is_not_one(
    db_url: str, tmp_path: Path
) -> None:
    conditions = {
        "set": "customer.o is set",
        "unset": "customer.o is not set",
        "differs": 'customer.o != "x"',
        "before": 'customer.o < "z"',
        "out": 'customer.o not in ["x", "y"]',
        "not equal": 'not (customer.o == "x")',
    }
    records = run(
        db_url,
        tmp_path,
        rules_on("on 2026-06-10", conditions),
        [
            {"id": "object", "o": {"k": 1}},
            {"id": "list", "o": [1]},
            {"id": "empty", "o": []},
            {"id": "text", "o": "w"},
            {"id": "unset"},
        ],
        [],
    )
    assert by_rule(records) == {
        "set": ["empty", "list", "object", "text"],
        "unset": ["unset"],
        "differs": ["text"],
        "before": ["text"],
        "out": ["text"],
        "not equal": ["empty", "list", "object", "text", "unset"],
    }


def test_an_event_property_holding_a_list_is_set_and_holds_its_items(
    db_url: str, tmp_path: Path
) -> None:
    conditions = {
        "set": "order.category is set",
        "unset": "order.category is not set",
        "out": 'order.category not in ["a", "b"]',
        "differs": 'order.category != "shoes"',
        "holds": '"shoes" in order.category',
    }
    days = {"02": "list", "03": "object", "04": "text", "05": "unset"}
    records = run(
        db_url,
        tmp_path,
        rules_on("order.paid", conditions),
        [{"id": "c1"}],
        [
            {
                "customer": "c1",
                "type": "order.paid",
                "at": "2026-06-02T10:00:00Z",
                "category": ["shoes"],
            },
            {
                "customer": "c1",
                "type": "order.paid",
                "at": "2026-06-03T10:00:00Z",
                "category": {"a": "shoes"},
            },
            {
                "customer": "c1",
                "type": "order.paid",
                "at": "2026-06-04T10:00:00Z",
                "category": "bags",
            },
            {"customer": "c1", "type": "order.paid", "at": "2026-06-05T10:00:00Z"},
        ],
    )
    found = {
        rule: sorted(days[due[8:10]] for due in dues)
        for rule, dues in by_rule(records, "due").items()
    }
    assert found == {
        "set": ["list", "object", "text"],
        "unset": ["unset"],
        "out": ["text"],
        "differs": ["text"],
        "holds": ["list"],
    }


def test_a_number_in_text_is_looked_for_as_its_text(db_url: str, tmp_path: Path) -> None:
    conditions = {
        "three": "3 in customer.s",
        "not three": "3 not in customer.s",
        "whole": "3.0 in customer.s",
        "price": "customer.s contains 19.9",
        "spent": "customer.total_spent in customer.s",
    }
    paid = [
        {"customer": "price", "type": "order.paid", "at": "2026-06-02T10:00:00Z", "total": 100.5},
        {"customer": "price", "type": "order.paid", "at": "2026-06-03T10:00:00Z", "total": 49.5},
    ]
    records = run(
        db_url,
        tmp_path,
        rules_on("on 2026-06-10", conditions),
        [
            {"id": "a3b", "s": "a3b"},
            {"id": "abc", "s": "abc"},
            {"id": "price", "s": "19.9, 150 in all"},
        ],
        paid,
    )
    assert by_rule(records) == {
        "three": ["a3b"],
        "not three": ["abc", "price"],
        "whole": ["a3b"],
        "price": ["price"],
        "spent": ["price"],
    }


def test_a_list_holds_numbers_and_yes_no_of_their_own_kind_and_text_holds_their_text(
    db_url: str, tmp_path: Path
) -> None:
    conditions = {
        "one": "1 in customer.flags",
        "yes": "yes in customer.flags",
        "not yes": "yes not in customer.flags",
        "three": "3 in customer.flags",
    }
    records = run(
        db_url,
        tmp_path,
        rules_on("on 2026-06-10", conditions),
        [
            {"id": "true", "flags": [True]},
            {"id": "one", "flags": [1, 3.0]},
            {"id": "text one", "flags": ["1", "3"]},
            {"id": "text", "flags": "true, 1 or 3"},
        ],
        [],
    )
    assert by_rule(records) == {
        "one": ["one", "text"],
        "yes": ["text", "true"],
        "not yes": ["one", "text one"],
        "three": ["one", "text"],
    }


def test_an_unset_value_is_neither_in_nor_out_of_a_list_text_or_the_tags(
    db_url: str, tmp_path: Path
) -> None:
    conditions = {
        "in": "order.missing in customer.interests",
        "out": "order.missing not in customer.interests",
        "not in": "not (order.missing in customer.interests)",
        "holds": "customer.interests contains order.missing",
        "tagged": "order.missing in customer.tags",
        "untagged": "order.missing not in customer.tags",
    }
    records = run(
        db_url,
        tmp_path,
        rules_on("order.paid", conditions),
        [
            {"id": "list", "interests": ["shoes"], "tags": "vip"},
            {"id": "text", "interests": "shoes"},
        ],
        [
            {"customer": "list", "type": "order.paid", "at": "2026-06-02T10:00:00Z"},
            {"customer": "text", "type": "order.paid", "at": "2026-06-02T10:00:00Z"},
        ],
    )
    assert by_rule(records) == {"not in": ["list", "text"]}


def test_text_that_is_not_quite_a_number_is_not_one(db_url: str, tmp_path: Path) -> None:
    records = run(
        db_url,
        tmp_path,
        'when on 2026-06-10 if customer.size > 2 then task "big"',
        [
            {"id": "range", "size": "3-4"},
            {"id": "dotted", "size": "1.2.3"},
            {"id": "padded", "size": " 3.50 "},
            {"id": "huge", "size": "1e999"},
            {"id": "exp", "size": "1e5"},
            {"id": "vertical tab", "size": "\u000b3"},
            {"id": "form feed", "size": "3\f"},
            {"id": "ideographic space", "size": "\u30003"},
        ],
        [],
    )
    assert sorted(r["customer"] for r in records) == ["exp", "padded"]


def test_a_date_compared_with_a_free_attribute_reads_it_as_iso_text(
    db_url: str, tmp_path: Path
) -> None:
    records = run(
        db_url,
        tmp_path,
        'when on 2026-06-10 if customer.vip_since < 2026-01-01 then task "old friend"',
        [{"id": "old", "vip_since": "2025-03-05"}, {"id": "new", "vip_since": "2026-03-05"}],
        [],
    )
    assert [r["customer"] for r in records] == ["old"]


def test_a_birthday_compared_with_a_date_is_the_same_on_either_side_and_without_a_year_unknown(
    db_url: str, tmp_path: Path
) -> None:
    conditions = {
        "before": "customer.birthday < 2000-01-01",
        "before, the date first": "2000-01-01 > customer.birthday",
        "nineties": "customer.birthday between 1990-01-01 and 1999-12-31",
        "from 2000": "customer.birthday >= 2000-01-01",
    }
    records = run(
        db_url,
        tmp_path,
        "".join(
            f'rule "{name}"\n  when on 2026-06-10\n  if {test}\n  then task "t"\n'
            for name, test in conditions.items()
        ),
        [
            {"id": "1995", "birthday": "1995-04-01"},
            {"id": "2000", "birthday": "2000-02-29"},
            {"id": "no year", "birthday": "02-29"},
            {"id": "none"},
        ],
        [],
    )
    acted: dict[str, list[str]] = {name: [] for name in conditions}
    for record in records:
        acted[record["rule"]].append(record["customer"])
    assert acted == {
        "before": ["1995"],
        "before, the date first": ["1995"],
        "nineties": ["1995"],
        "from 2000": ["2000"],
    }


def test_nothing_is_in_an_empty_list_and_an_unset_value_is_not_out_of_it(
    db_url: str, tmp_path: Path
) -> None:
    records = run(
        db_url,
        tmp_path,
        'rule "in"\n  when on 2026-06-10\n  if customer.city in []\n  then task "in"\n'
        'rule "out"\n  when on 2026-06-10\n  if customer.city not in []\n  then task "out"\n',
        [{"id": "set", "city": "Xi'an"}, {"id": "unset"}],
        [],
    )
    assert [(r["rule"], r["customer"]) for r in records] == [("out", "set")]


def test_the_occurrences_due_are_counted_per_rule_as_stored(db_url: str, tmp_path: Path) -> None:
    """`find_due` counts each rule's occurrences (rules with none are skipped unevaluated)."""
    rules = (
        'rule "thanks"\n  when order.paid\n  then task "thank"\n'
        'rule "next day"\n  when order.paid + 1d at 10:00\n  then task "call"\n'
        'rule "mondays"\n  when every monday at 09:00\n  then task "hello"\n'
        'rule "never"\n  when order.refunded\n  then task "sorry"\n'
    )
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "shop.rules").write_text(rules, encoding="utf-8")
    engine = open_database(db_url)
    customers = [{"id": f"c{i}"} for i in range(3)]
    assert not import_customer_rows(engine, customers, CONFIG.timezone).problems
    orders = [
        {"customer": f"c{i}", "type": "order.paid", "at": f"2026-06-0{1 + i}T08:00:00Z"}
        for i in range(3)
    ]
    assert not import_event_rows(engine, orders, CONFIG.timezone).problems
    ruleset = load_rule_set(tmp_path / "rules", CONFIG)
    start, end = parse_moment("2026-06-01", "UTC"), parse_moment("2026-06-15", "UTC")
    with engine.connect() as conn:
        due = find_due(conn, ruleset, CONFIG, start, end)
        stored = dict(
            conn.execute(
                sa.select(candidates.c.rule_index, sa.func.count()).group_by(
                    candidates.c.rule_index
                )
            ).all()
        )
        conn.rollback()
    by_name = {rule.name: due.counts[rule.position] for rule in ruleset.rules}
    assert by_name == {"thanks": 3, "next day": 3, "mondays": 6, "never": 0}
    assert {p: n for p, n in due.counts.items() if n} == stored


@pytest.mark.parametrize("year", [1969, 2026])
def test_at_after_an_event_takes_the_events_local_day_either_side_of_utc_midnight(
    db_url: str, tmp_path: Path, year: int
) -> None:
    """`+ 1d at 09:00` is 09:00 on the local day after the event's, wherever the customer
    lives: the events fall before and just after midnight UTC, in 1969 before the epoch (where
    the databases' integer division rounds toward zero, not down)."""
    customers = [
        {"id": "east", "timezone": "Asia/Shanghai"},  # UTC+8
        {"id": "west", "timezone": "America/Los_Angeles"},  # UTC-8 in winter
    ]
    instants = [f"{year}-12-31T{clock}Z" for clock in ("14:00:00", "23:59:59")]
    instants.append(f"{year + 1}-01-01T00:00:00Z")
    events = [
        {"customer": who["id"], "type": "order.paid", "at": at, "id": f"{who['id']}-{i}"}
        for who in customers
        for i, at in enumerate(instants)
    ]
    records = run(
        db_url,
        tmp_path,
        'rule "next day"\n  when order.paid + 1d at 09:00\n  then task "call"\n',
        customers,
        events,
        start=f"{year}-12-30T00:00:00Z",
        end=f"{year + 1}-01-05T00:00:00Z",
    )
    expected = []
    for who in customers:
        tz = ZoneInfo(who["timezone"])
        for at in instants:
            day = dt.datetime.fromisoformat(at).astimezone(tz).date() + dt.timedelta(days=1)
            due = dt.datetime.combine(day, dt.time(9), tz).astimezone(dt.UTC)
            expected.append((who["id"], due.isoformat().replace("+00:00", "Z")))
    assert sorted((r["customer"], r["due"]) for r in records) == sorted(expected)


def test_an_event_later_in_its_day_than_at_has_no_occurrence(db_url: str, tmp_path: Path) -> None:
    """`at 20:00` after an event (or a customer timestamp) whose delay ends on its own day: one
    later in its day than 20:00 would be due before it happened, when the data does not hold
    it yet (LANGUAGE.md 3.3), and the daemon, evaluating as the time comes, never sees it. The
    simulation does the same: nothing, rather than an action before its event (`check`
    warns, W319). An event at 20:00 itself is seen."""
    customers = [
        {"id": "early", "timezone": "UTC", "signed_up": "2026-06-10T19:00:00Z"},
        {"id": "on time", "timezone": "UTC", "signed_up": "2026-06-10T20:00:00Z"},
        {"id": "late", "timezone": "UTC", "signed_up": "2026-06-10T20:00:01Z"},
    ]
    events = [
        {"customer": who["id"], "type": "order.paid", "at": who["signed_up"], "id": who["id"]}
        for who in customers
    ]
    events.append(  # 23:30 + 1h ends the next day: due at 20:00 then
        {"customer": "late", "type": "order.paid", "at": "2026-06-11T23:30:00Z", "id": "night"}
    )
    records = run(
        db_url,
        tmp_path,
        'rule "evening"\n  when order.paid + 1h at 20:00\n  then task "call"\n'
        'rule "welcome"\n  when customer.signed_up at 20:00\n  then task "hello"\n',
        customers,
        events,
    )
    assert sorted((r["rule"], r["customer"], r["due"]) for r in records) == [
        ("evening", "early", "2026-06-10T20:00:00Z"),
        ("evening", "late", "2026-06-12T20:00:00Z"),
        ("evening", "on time", "2026-06-10T20:00:00Z"),
        ("welcome", "early", "2026-06-10T20:00:00Z"),
        ("welcome", "on time", "2026-06-10T20:00:00Z"),
    ]
    # `nudge explain` says why: the instant came after its day's due time.
    ruleset = load_rule_set(tmp_path / "rules", CONFIG)
    start, end = parse_moment("2026-06-01", "UTC"), parse_moment("2026-07-01", "UTC")
    stories = explain(open_database(db_url), ruleset, CONFIG, "late", start, end)
    told = [(s.rule, s.outcome, from_us(s.due_us).isoformat(), s.trigger_us) for s in stories]
    signed_up = parse_moment("2026-06-10T20:00:01Z", "UTC")
    assert told == [
        ("evening", "late", "2026-06-10T20:00:00+00:00", signed_up),
        ("welcome", "late", "2026-06-10T20:00:00+00:00", signed_up),
        ("evening", "acted", "2026-06-12T20:00:00+00:00", parse_moment("2026-06-11T23:30Z", "UTC")),
    ]
    assert "evening: no occurrence due 2026-06-10 20:00, triggered at 2026-06-10 20:00" in render(
        stories, "late", "UTC"
    )
    on_time = explain(open_database(db_url), ruleset, CONFIG, "on time", start, end)
    assert [(s.rule, s.outcome) for s in on_time] == [("evening", "acted"), ("welcome", "acted")]


def test_explain_names_the_policies_that_suppressed_an_action(db_url: str, tmp_path: Path) -> None:
    """Which `exclude if` held (of two), or the rule set's limits."""
    people = [
        {"id": "upset", "accepts_marketing": True, "tags": ["complaint"]},
        {"id": "keen", "accepts_marketing": True},
    ]
    orders = [
        {"customer": who, "type": "order.paid", "at": at, "id": f"{who} {at}"}
        for who, at in [
            ("upset", "2026-06-02T10:00:00Z"),
            ("keen", "2026-06-02T10:00:00Z"),
            ("keen", "2026-06-03T10:00:00Z"),
        ]
    ]
    rules = (
        "limit marketing to 1 per 7d\n"
        'exclude if "complaint" in customer.tags\n'
        "exclude if customer.orders >= 5\n"
        'rule "thanks"\n  when order.paid\n  then message "hello"\n'
    )
    records = run(db_url, tmp_path, rules, people, orders)
    assert [(r["customer"], r["reason"]) for r in records] == [
        ("keen", None),
        ("upset", "excluded"),
        ("keen", "cap"),
    ]
    ruleset = load_rule_set(tmp_path / "rules", CONFIG)
    start, end = parse_moment("2026-06-01", "UTC"), parse_moment("2026-07-01", "UTC")
    engine = open_database(db_url)
    (upset,) = explain(engine, ruleset, CONFIG, "upset", start, end)
    assert upset.policies == {"excluded": ['exclude if "complaint" in customer.tags']}
    assert (
        "suppressed (an `exclude if` policy holds for this customer:"
        ' `exclude if "complaint" in customer.tags`)'
    ) in render([upset], "upset", "UTC")
    first, second = explain(engine, ruleset, CONFIG, "keen", start, end)
    assert (first.policies, second.policies) == ({}, {"cap": ["limit marketing to 1 per 7d"]})
    assert "suppressed (a marketing limit was reached: `limit marketing to 1 per 7d`)" in render(
        [second], "keen", "UTC"
    )


def test_explain_shows_values_as_rules_write_them_and_the_customer_s_own_clock(
    db_url: str, tmp_path: Path
) -> None:
    """yes/no and shop time, as the header says (it showed `True` and a UTC instant); for a
    customer in New York, the due and send times by their clock too, which quiet hours read:
    without it, "due 11:00, moved by quiet hours to 20:00" under `quiet hours 22:00 to 08:00`
    read as a mistake."""
    rules = (
        "quiet hours 22:00 to 08:00\n"
        'rule "thanks"\n  when order.paid\n'
        "  if customer.accepts_marketing == yes and customer.last_order is set\n"
        '  then message "hello"\n'
    )
    people = [
        {"id": "ny", "timezone": "America/New_York", "accepts_marketing": True},
        {"id": "home", "accepts_marketing": True},
    ]
    # 23:00 on 1 June in New York, 11:00 on 2 June in Shanghai, the shop's zone.
    orders = [
        {"customer": who, "type": "order.paid", "at": "2026-06-02T03:00:00Z", "id": who}
        for who in ("ny", "home")
    ]
    run(db_url, tmp_path, rules, people, orders)
    ruleset = load_rule_set(tmp_path / "rules", CONFIG)
    start, end = parse_moment("2026-06-01", "UTC"), parse_moment("2026-07-01", "UTC")
    engine = open_database(db_url)
    zone = customer_zone(engine, "ny")
    assert zone == "America/New_York"
    told = render(explain(engine, ruleset, CONFIG, "ny", start, end), "ny", CONFIG.timezone, zone)
    assert told.splitlines() == [
        "Customer ny (times are shop time, Asia/Shanghai; the customer lives in America/New_York):",
        "",
        "thanks: due 2026-06-02 11:00 (2026-06-01 23:00 for the customer),"
        " triggered at 2026-06-02 11:00",
        "  [yes] customer.accepts_marketing == yes   (customer.accepts_marketing = yes)",
        "  [yes] customer.last_order is set   (customer.last_order = 2026-06-02 11:00)",
        '  message "hello": sent, moved by quiet hours to 2026-06-02 20:00 (08:00 for the'
        " customer)",
    ]
    assert customer_zone(engine, "home") is None
    home = render(explain(engine, ruleset, CONFIG, "home", start, end), "home", CONFIG.timezone)
    assert home.splitlines()[:3] == [
        "Customer home (times are shop time, Asia/Shanghai):",
        "",
        "thanks: due 2026-06-02 11:00, triggered at 2026-06-02 11:00",
    ]


def test_the_zones_customers_live_in_include_the_shops_for_those_without_one(
    db_url: str,
) -> None:
    engine = open_database(db_url)
    with engine.connect() as conn:
        assert customer_zones(conn, "Asia/Shanghai") == ["Asia/Shanghai"]  # nobody yet
    people = [
        {"id": "a", "timezone": "Europe/London"},
        {"id": "b", "timezone": "America/New_York"},
        {"id": "c", "timezone": "Europe/London"},
    ]
    assert not import_customer_rows(engine, people, CONFIG.timezone).problems
    with engine.connect() as conn:
        assert customer_zones(conn, "Asia/Shanghai") == ["America/New_York", "Europe/London"]
    assert not import_customer_rows(engine, [{"id": "d"}], CONFIG.timezone).problems
    with engine.connect() as conn:
        assert customer_zones(conn, "Asia/Shanghai") == [
            "America/New_York",
            "Asia/Shanghai",
            "Europe/London",
        ]


# Paid orders of a few customers around one due time; what the due time sees of them: how
# many, and whole days since the latest (None without one).
DUE = dt.datetime(2026, 6, 10, 12, tzinfo=ZoneInfo("Asia/Shanghai"))
ORDERS = {
    "none": [],
    "today": [DUE - dt.timedelta(hours=1)],
    "week": [DUE - dt.timedelta(days=7, hours=12), DUE - dt.timedelta(days=40)],
    "month": [DUE - dt.timedelta(days=30)],
    "later": [DUE + dt.timedelta(hours=1)],  # after the due time: not yet there
}
ORDER_COUNT = {name: sum(at <= DUE for at in times) for name, times in ORDERS.items()}
DAYS_SINCE = {
    name: min(((DUE - at).days for at in times if at <= DUE), default=None)
    for name, times in ORDERS.items()
}


def _acted_at_due(db_url: str, tmp_path: Path, conditions: list[str]) -> set[tuple[str, str]]:
    """(rule, customer) that acted, of a rule `rI` per condition, due at `DUE`, on `ORDERS`
    (every order's total 20)."""
    rules = "\n".join(
        f'rule "r{i}" when on 2026-06-10 at 12:00 if {text} then task "t"'
        for i, text in enumerate(conditions)
    )
    events = [
        {"customer": name, "type": "order.paid", "at": at.isoformat(), "total": 20}
        for name, times in ORDERS.items()
        for at in times
    ]
    records = run(db_url, tmp_path, rules, [{"id": name} for name in ORDERS], events)
    return {(r["rule"], r["customer"]) for r in records}


def test_thresholds_decided_by_one_lookup_mean_what_the_value_would(
    db_url: str, tmp_path: Path
) -> None:
    # Counts compared with a number are compiled to "is there such an event" where that
    # decides (engine/plan/sqlgen.py, `_by_lookup`); every test below must hold exactly as the value
    # itself would, fractions and a number on the left included, and `days_since_last_order`
    # (whole days, rounded down; under a number: "a paid order in the last days") beside them.
    tests = []
    for op in ("<", "<=", ">", ">=", "==", "!="):
        for n in (0, 0.5, 1, 2):
            tests.append((f"customer.orders {op} {n}", lambda c, op=op, n=n: _holds(c, op, n)))
            tests.append((f"{n} {op} customer.orders", lambda c, op=op, n=n: _holds(n, op, c)))
    for op in ("<", "<=", ">", ">="):
        for n in (0, 0.5, 1, 7, 7.5, 8, 30, 31):
            tests.append(
                (
                    f"customer.days_since_last_order {op} {n}",
                    lambda d, op=op, n=n: d is not None and _holds(d, op, n),
                )
            )
            tests.append(
                (
                    f"{n} {op} customer.days_since_last_order",
                    lambda d, op=op, n=n: d is not None and _holds(n, op, d),
                )
            )
    acted = _acted_at_due(db_url, tmp_path, [text for text, _ in tests])
    for i, (text, expected) in enumerate(tests):
        value = DAYS_SINCE if "days_since" in text else ORDER_COUNT
        for name in ORDERS:
            assert ((f"r{i}", name) in acted) == expected(value[name]), (text, name)


def test_an_order_count_beside_a_metric_of_the_orders_is_not_looked_up(
    db_url: str, tmp_path: Path
) -> None:
    # `customer.orders >= 1 and customer.days_since_last_order <= 10`: the second is false
    # without a paid order, so the first is not tested (engine/plan/sqlgen.py, `_needed`). Results
    # must be those of testing both; `is not set` and `not (...)` beside it keep the count.
    count, days = ORDER_COUNT, DAYS_SINCE
    tests: list[tuple[str, int, Callable[[str], bool]]] = [  # text, lookups, expected
        (
            "customer.orders >= 1 and customer.days_since_last_order <= 10",
            1,
            lambda c: count[c] >= 1 and days[c] is not None and days[c] <= 10,
        ),
        (
            "customer.days_since_last_order between 20 and 40 and 0 < customer.orders",
            1,
            lambda c: count[c] > 0 and days[c] is not None and 20 <= days[c] <= 40,
        ),
        (
            "customer.orders != 0 and customer.average_order > 5",
            2,  # the average is a total and a count
            lambda c: count[c] > 0,
        ),
        (
            "customer.orders >= 1 and customer.days_since_last_order is not set",
            2,
            lambda c: count[c] >= 1 and days[c] is None,
        ),
        (
            "customer.orders >= 1 and not (customer.days_since_last_order > 10)",
            2,
            lambda c: count[c] >= 1 and not (days[c] is not None and days[c] > 10),
        ),
        (
            "customer.orders >= 2 and customer.days_since_last_order <= 40",
            2,
            lambda c: count[c] >= 2 and days[c] is not None and days[c] <= 40,
        ),
    ]
    acted = _acted_at_due(db_url, tmp_path, [text for text, _, _ in tests])
    ruleset = load_rule_set(tmp_path / "rules", CONFIG)
    dialect = open_database(db_url).dialect
    for i, (text, lookups, expected) in enumerate(tests):
        for name in ORDERS:
            assert ((f"r{i}", name) in acted) == expected(name), (text, name)
        rule = ruleset.rules[i]
        scope, _ = scope_for(rule, ruleset, CONFIG, Effects(0), ["Asia/Shanghai"])
        assert rule.rule.condition is not None
        sql = str(Compiler(scope).condition(rule.rule.condition).compile(dialect=dialect))
        assert sql.count("FROM events") == lookups, (text, sql)


@pytest.mark.parametrize(
    ("condition", "hashed"),
    [
        ("customer.orders >= 1", 1),
        ('customer in "active"', 1),
        ('customer in "active" and count(review.posted) > 0', 2),
        ("customer.orders >= 1 and customer.total_spent > 10", 1),
        # Elsewhere an EXISTS is run row by row: a CTE would be read whole for every row.
        ("customer.orders >= 1 or customer.returns > 0", 0),
        ("not (customer.orders >= 1)", 0),
        ('customer not in "active"', 0),
        ("customer.orders == 0", 1),  # NOT EXISTS there: an anti join
        ("customer.total_spent > 10", 0),
    ],
)
def test_on_postgresql_a_calendar_rule_hashes_lookups_that_decide_its_condition(
    tmp_path: Path, condition: str, hashed: int
) -> None:
    # `Scope.hashed`: a lookup of an event's presence that the whole condition needs is read
    # from a materialized CTE of the batch's events, which PostgreSQL joins by hashing. Only
    # there: under OR or NOT it stays a subquery, run for each row, which must not read a CTE.
    # Results on both databases are those of the tests above (`when on ...` is a calendar rule).
    (tmp_path / "rules").mkdir()
    segment = 'segment "active" = customer.orders >= 1 and customer.days_since_last_order <= 180'
    (tmp_path / "rules" / "shop.rules").write_text(
        f'{segment}\nrule "r" when every friday at 20:00 if {condition} then task "t"\n'
        f'rule "e" when cart.updated if {condition} then task "t"\n',
        encoding="utf-8",
    )
    ruleset = load_rule_set(tmp_path / "rules", CONFIG)

    def bounds(column: sa.ColumnElement[str]) -> list[sa.ColumnElement[bool]]:
        return [column >= "c1", column < "c9"]

    for rule, expected in zip(ruleset.rules, (hashed, 0), strict=True):
        # Bounds are given on PostgreSQL only; none in a tick, which evaluates everyone at once.
        for given, want in ((bounds, expected), (None, 0), (lambda column: [], 0)):
            scope, source = scope_for(rule, ruleset, CONFIG, Effects(0), ["Asia/Shanghai"], given)
            assert rule.rule.condition is not None
            compiler = Compiler(scope)
            test = compiler.condition(rule.rule.condition, whole=True)
            query = sa.select(candidates.c.id).select_from(source).where(test)
            sql = str(query.compile(dialect=postgresql.dialect()))
            assert sql.count("AS MATERIALIZED") == want, (rule.name, given, sql)
            assert compiler.materialized == bool(want)  # `_Passing.hashed`


def test_a_query_reading_a_materialized_cte_runs_without_nested_loops(
    db_url: str, tmp_path: Path
) -> None:
    # PostgreSQL takes a batch's candidates for a few rows and would scan the whole CTE for
    # each of them (the group buy at L: 300 ms a batch instead of 47). For that one query it
    # may not loop; the setting is back for the rest of the transaction. Every lookup of the
    # query, `unless` too, reads only the batch's rows, which it may then hash.
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "shop.rules").write_text(
        'rule "buy" when every friday at 20:00 if customer.orders >= 1'
        ' unless cart.updated within 7d then task "t"\n'
        'rule "new" when every friday at 20:00 if customer.orders == 0 or customer.vip == yes'
        ' then task "n"\n',
        encoding="utf-8",
    )
    engine = open_database(db_url)
    people = [{"id": f"c{i}", "vip": i == 2} for i in range(1, 5)]
    assert not import_customer_rows(engine, people, CONFIG.timezone).problems
    orders = [
        {"customer": f"c{i}", "type": "order.paid", "at": "2026-06-01T10:00:00+08:00"}
        for i in (1, 3)
    ] + [  # before each Friday: c3 is never in "buy"
        {"customer": "c3", "type": "cart.updated", "at": f"2026-06-{day}T10:00:00+08:00"}
        for day in ("04", "11")
    ]
    assert not import_event_rows(engine, orders, CONFIG.timezone).problems
    ruleset = load_rule_set(tmp_path / "rules", CONFIG)
    start, end = parse_moment("2026-06-01", "UTC"), parse_moment("2026-06-15", "UTC")
    seen: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    acted = set()
    with engine.connect() as conn:
        due = find_due(conn, ruleset, CONFIG, start, end)
        for batch in customer_batches(conn, 2):
            result = evaluate_due(conn, ruleset, CONFIG, due, batch, with_actions=False)
            acted |= {(o.rule.name, o.customer_id) for o in result.occurrences}
        if conn.dialect.name == "postgresql":
            assert conn.exec_driver_sql("SHOW enable_nestloop").scalar() == "on"
        conn.rollback()
    assert acted == {("buy", "c1"), ("new", "c2"), ("new", "c4")}
    off = [i for i, sql in enumerate(seen) if sql == "SET LOCAL enable_nestloop = off"]
    if engine.dialect.name == "sqlite":
        assert not off and not any("enable_nestloop" in sql for sql in seen)
        return
    # The rule "buy", in each of the two batches; "new" hashes nothing (its test is under OR).
    hashed = [i for i, sql in enumerate(seen) if "AS MATERIALIZED" in sql and "INSERT" not in sql]
    assert [i + 1 for i in off] == hashed and len(hashed) == 2
    assert all(seen[i + 1] == "SET LOCAL enable_nestloop TO DEFAULT" for i in hashed)
    # (the first batch has no lower bound, the last no upper one)
    assert all(re.search(r"unless_event\.customer_id (>=|<) ", seen[i]) for i in hashed)


@pytest.mark.parametrize(
    ("condition", "needed"),
    [
        ("customer.orders >= 1", {"order.paid"}),
        ("0 < customer.orders", {"order.paid"}),
        ("customer.orders != 0", {"order.paid"}),
        ("customer.orders <= 2", set()),
        ("customer.orders == 0", set()),
        ("customer.total_spent >= 1000", {"order.paid"}),
        ("customer.total_spent < 0", {"order.paid"}),
        ("sum(order.paid.total within 30d) <= 0", set()),
        ("count(review.posted) > 0", {"review.posted"}),
        ("customer.returns between 1 and 3", {"order.returned"}),
        ("customer.returns between 0 and 3", set()),
        ("customer.return_rate > 0.5", {"order.returned"}),
        ("customer.return_rate >= 0", set()),
        ("customer.return_rate < 0.2", set()),
        ("customer.orders >= 3 and customer.return_rate > 0.5", {"order.paid", "order.returned"}),
        ("customer.days_since_last_order <= 180", {"order.paid"}),
        ("customer.days_since_last_order between 90 and 365", {"order.paid"}),
        ("customer.average_order > 5", {"order.paid"}),
        ("customer.last_order is set", set()),
        ("not (customer.orders >= 1)", set()),
        ("customer.orders >= 1 or customer.returns > 0", set()),
        ("customer.orders >= 1 or customer.total_spent > 10", {"order.paid"}),
        ("customer.orders >= 2 and count(review.posted) >= 1", {"order.paid", "review.posted"}),
        ('customer in "active"', {"order.paid"}),
        ('customer not in "active"', set()),
        ('customer.rfm == "555"', set()),
        ("customer.orders * 2 + 1 > 3", set()),
    ],
)
def test_the_events_a_condition_cannot_hold_without(condition: str, needed: set[str]) -> None:
    segment = 'segment "active" = customer.orders >= 1 and customer.days_since_last_order <= 180'
    assert needed_events(*_condition_with(segment, condition)) == needed


@pytest.mark.parametrize(
    ("condition", "needed"),
    [
        ('"complaint" in customer.tags', {"complaint"}),
        ('customer.tags contains "complaint"', {"complaint"}),
        ('"complaint" not in customer.tags', set()),
        ('not ("complaint" in customer.tags)', set()),
        ('"complaint" in customer.tags and "vip" in customer.tags', {"complaint", "vip"}),
        ('"complaint" in customer.tags or "vip" in customer.tags', set()),
        ('"complaint" in customer.tags or customer in "angry"', {"complaint"}),
        ('customer in "angry"', {"complaint"}),
        ('customer not in "angry"', set()),
        ('"complaint" in ["complaint", "vip"]', set()),
        ("customer.tags is set", set()),
    ],
)
def test_the_tags_a_condition_cannot_hold_without(condition: str, needed: set[str]) -> None:
    segment = 'segment "angry" = "complaint" in customer.tags and customer.orders >= 1'
    assert needed_tags(*_condition_with(segment, condition)) == needed


def _condition_with(segment: str, condition: str) -> tuple[ast.Expr, dict[str, ast.Segment]]:
    """A rule's `condition`, parsed beside the `segment` statement, and the segments."""
    parsed = parse_text(f'{segment}\nwhen every day if {condition} then task "t"\n')
    segments = {s.name: s for s in parsed.statements if isinstance(s, ast.Segment)}
    rule = next(s for s in parsed.statements if isinstance(s, ast.Rule))
    assert rule.condition is not None
    return rule.condition, segments


def test_calendar_occurrences_that_cannot_act_are_not_written_but_are_explained(
    db_url: str, tmp_path: Path
) -> None:
    # Every day at 10:00, for customers with an order: the occurrences of a customer without a
    # paid order before the window's end are not written (`triggers.fill`); the one who buys
    # during the window keeps them all. `nudge explain` still shows every day, and why.
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "shop.rules").write_text(
        'rule "buyers" when every day at 10:00 if customer.orders >= 1 then task "t"\n',
        encoding="utf-8",
    )
    engine = open_database(db_url)
    people = [{"id": name} for name in ("before", "during", "after", "never")]
    assert not import_customer_rows(engine, people, CONFIG.timezone).problems
    orders = [
        {"customer": name, "type": "order.paid", "at": at}
        for name, at in [
            ("before", "2026-05-20T08:00:00Z"),
            ("during", "2026-06-03T08:00:00Z"),
            ("after", "2026-06-20T08:00:00Z"),
        ]
    ]
    assert not import_event_rows(engine, orders, CONFIG.timezone).problems
    ruleset = load_rule_set(tmp_path / "rules", CONFIG)
    start, end = parse_moment("2026-06-01", "UTC"), parse_moment("2026-06-08", "UTC")
    with engine.connect() as conn:
        pruned = find_due(conn, ruleset, CONFIG, start, end).counts[0]
        written = set(conn.execute(sa.select(candidates.c.customer_id).distinct()).scalars())
        every = find_due(conn, ruleset, CONFIG, start, end, hopeless=True).counts[0]
        conn.rollback()
    assert (pruned, every) == (14, 28)
    assert written == {"before", "during"}
    acted = simulate(engine, ruleset, CONFIG, start, end).occurrences
    assert sorted(Counter(o.customer_id for o in acted).items()) == [("before", 7), ("during", 4)]
    stories = explain(engine, ruleset, CONFIG, "never", start, end)
    assert len(stories) == 7 and all(s.outcome == "skipped" and s.reasons for s in stories)


def _holds(left: float, op: str, right: float) -> bool:
    return COMPARISONS[op](left, right)


def test_an_event_fill_built_once_finds_each_windows_and_customers_own(
    db_url: str, tmp_path: Path
) -> None:
    """An event rule's fill is built once per process and run with the window and the
    customers as parameters: each run finds exactly its own occurrences."""
    write_rule_folder(tmp_path, 'when order.received + 1d then message "hello"\n')
    received = {"a": ["06-01", "06-03"], "b": ["06-02"], "c": ["06-03", "06-04"]}
    engine = open_database(db_url)
    customers = [{"id": who} for who in received]
    events = [
        {"customer": who, "type": "order.received", "at": f"2026-{day}T10:00:00Z", "id": who + day}
        for who, days in received.items()
        for day in days
    ]
    assert not import_customer_rows(engine, customers, CONFIG.timezone).problems
    assert not import_event_rows(engine, events, CONFIG.timezone).problems
    ruleset = load_rule_set(tmp_path / "rules", CONFIG)

    def due(start: str, end: str, who: Customers = EVERYONE) -> list[tuple[str, str]]:
        with engine.connect() as conn:
            found = find_due(
                conn, ruleset, CONFIG, *(parse_moment(m, "UTC") for m in (start, end)), who
            )
            assert sum(found.counts.values()) == conn.scalar(
                sa.select(sa.func.count()).select_from(candidates)
            )
            rows = conn.execute(
                sa.select(candidates.c.customer_id, candidates.c.due_us).order_by(
                    candidates.c.customer_id, candidates.c.due_us
                )
            ).all()
            conn.rollback()
        return [(who, from_us(at).strftime("%m-%d")) for who, at in rows]

    everyone = [(who, f"06-0{int(day[-1]) + 1}") for who, days in received.items() for day in days]
    assert due("2026-06-01", "2026-07-01") == sorted(everyone)
    assert due("2026-06-03", "2026-06-04T12:00:00Z") == [
        ("a", "06-04"),
        ("b", "06-03"),
        ("c", "06-04"),
    ]
    assert due("2026-06-01", "2026-07-01", Customers(low="b")) == [
        ("b", "06-03"),
        ("c", "06-04"),
        ("c", "06-05"),
    ]
    assert due("2026-06-01", "2026-07-01", Customers(high="c")) == [  # a first batch
        ("a", "06-02"),
        ("a", "06-04"),
        ("b", "06-03"),
    ]
    assert due("2026-06-01", "2026-07-01", Customers(low="a", high="b")) == [
        ("a", "06-02"),
        ("a", "06-04"),
    ]
    assert due("2026-06-04", "2026-06-06", Customers(only="c")) == [("c", "06-04"), ("c", "06-05")]
    assert due("2026-06-06", "2026-07-01") == []


def test_rules_with_the_same_instants_share_their_candidates_and_keep_their_own_verdicts(
    db_url: str, tmp_path: Path
) -> None:
    # `triggers.shared_fills`: the rules `when order.paid` without `at` read one set of
    # candidates, written once; `+ 1d` and `at` have their own. Each keeps its own condition,
    # `once` and late `exclude` (two rules whose exclusion waits share candidate ids), and
    # `nudge explain` tells each rule's stories apart.
    write_rule_folder(
        tmp_path,
        'exclude if "complaint" in customer.tags\n'
        'rule "every order" when order.paid then task "t"\n'
        'rule "big once" when order.paid if order.total >= 100 once then task "big"\n'
        'rule "next day" when order.paid + 1d then task "later"\n'
        'rule "at noon" when order.paid at 23:00 then task "noon"\n'
        'rule "own one" when order.paid then message "hello" and tag "complaint"\n'
        'rule "own two" when order.paid then message "hello" and tag "complaint"\n',
    )
    engine = open_database(db_url)
    customers = [{"id": "x", "accepts_marketing": True}]
    assert not import_customer_rows(engine, customers, CONFIG.timezone).problems
    orders = [
        {"customer": "x", "type": "order.paid", "at": at, "total": total}
        for at, total in [
            ("2026-06-02T01:00:00Z", 50),
            ("2026-06-03T01:00:00Z", 150),
            ("2026-06-04T01:00:00Z", 200),
        ]
    ]
    assert not import_event_rows(engine, orders, CONFIG.timezone).problems
    ruleset = load_rule_set(tmp_path / "rules", CONFIG)
    position = {rule.name: rule.position for rule in ruleset.rules}
    first = position["every order"]
    assert shared_fills(ruleset.rules) == {
        position[name]: first for name in ("big once", "own one", "own two")
    }
    start, end = parse_moment("2026-06-01", "UTC"), parse_moment("2026-06-10", "UTC")
    with engine.connect() as conn:
        due = find_due(conn, ruleset, CONFIG, start, end)
        stored = Counter(conn.execute(sa.select(candidates.c.rule_index)).scalars())
        conn.rollback()
    assert stored == {first: 3, position["next day"]: 3, position["at noon"]: 3}
    assert {name: due.counts[p] for name, p in position.items()} == dict.fromkeys(position, 3)
    records = simulate_records(engine, ruleset, CONFIG, start, end)
    got = Counter((r["rule"], r["due"][:10], r["status"], r["reason"]) for r in records)
    assert got == Counter(
        {
            **{("every order", f"2026-06-0{d}", "sent", None): 1 for d in (2, 3, 4)},
            ("big once", "2026-06-03", "sent", None): 1,
            **{("next day", f"2026-06-0{d}", "sent", None): 1 for d in (3, 4, 5)},
            **{("at noon", f"2026-06-0{d}", "sent", None): 1 for d in (2, 3, 4)},
            # Each gives the complaint tag: the first order's messages go out (and tag), the
            # later ones are excluded, for both rules.
            ("own one", "2026-06-02", "sent", None): 2,
            ("own two", "2026-06-02", "sent", None): 2,
            **{("own one", f"2026-06-0{d}", "suppressed", "excluded"): 1 for d in (3, 4)},
            **{("own one", f"2026-06-0{d}", "sent", None): 1 for d in (3, 4)},
            **{("own two", f"2026-06-0{d}", "suppressed", "excluded"): 1 for d in (3, 4)},
            **{("own two", f"2026-06-0{d}", "sent", None): 1 for d in (3, 4)},
        }
    )
    stories = explain(engine, ruleset, CONFIG, "x", start, end)
    outcomes = Counter((s.rule, s.outcome) for s in stories)
    assert outcomes[("big once", "acted")] == 1 and outcomes[("big once", "skipped")] == 2
    assert outcomes[("every order", "acted")] == 3 and outcomes[("own two", "acted")] == 3


@pytest.fixture
def icu_database() -> Iterator[str]:
    """A PostgreSQL database whose text sorts as people read it (ICU, en-US): `a1` before
    `B1`, where Python and SQLite sort by code point."""
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"nudge_test_icu_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(
            sa.text(
                f"CREATE DATABASE \"{name}\" LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
                " TEMPLATE template0"
            )
        )
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.postgres
def test_rounds_take_one_instant_s_occurrences_in_code_point_order_whatever_the_collation(
    icu_database: str, tmp_path: Path
) -> None:
    """Two orders paid at one instant, keys `a1` (total 1) and `B1` (total 2), under `once
    every 1d` with an amount read in rounds: the first by occurrence key acts, as `once` takes
    them without rounds, in Python's order of keys (`B1`)."""
    rule = "when order.paid\n  once every 1d\n  then points order.total - customer.points\n"
    paid = [
        {"customer": "k", "type": "order.paid", "at": "2026-06-02T00:00:00Z", "id": key, "total": t}
        for key, t in (("a1", 1), ("B1", 2))
    ]
    records = run(icu_database, tmp_path, rule, [{"id": "k"}], paid)
    assert [r["amount"] for r in records] == [2]
