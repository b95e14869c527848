"""Consent as it stood at each moment: an import that changes a customer's `accepts_marketing`
keeps the change with its time, and the daemon, `simulate` and `explain` read the flag as of
each due time (LANGUAGE.md 3.7 and section 5: a simulation of the past is what the daemon did)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from daemon_helpers import config_for, write_rules
from sqlalchemy import Engine

from cli import cli
from engine.checking.ruleset import load_rule_set
from engine.clock import FixedClock
from engine.config import Config
from engine.evaluation.explain import explain, render
from engine.evaluation.simulate import simulate_records
from engine.evaluation.tick import tick
from engine.importing.importers import import_customer_rows, import_customers, import_event_rows
from engine.language import ast
from engine.outbox.history import history
from engine.storage.tables import consent_changes, customers
from engine.timeutil import DAY_US, US, iso, to_us

HOUR_US = 3600 * US


def at(day: int, hour: int = 0, minute: int = 0) -> int:
    """An instant of November 2026, UTC."""
    return to_us(dt.datetime(2026, 11, day, hour, minute, tzinfo=dt.UTC))


RULES = """\
rule "news"
  when every day at 10:00
  then message "news"

rule "thanks"
  when order.paid
  then message "thanks"
"""


def changes(engine: Engine) -> list[tuple[str, int, bool, bool]]:
    c = consent_changes.c
    query = sa.select(
        c.customer_id, c.at_us, c.accepts_marketing_before, c.accepts_marketing_after
    ).order_by(c.id)
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query)]  # type: ignore[misc]


def flags(engine: Engine) -> dict[str, bool]:
    with engine.connect() as conn:
        query = sa.select(customers.c.id, customers.c.accepts_marketing)
        return {cid: bool(flag) for cid, flag in conn.execute(query)}


def csv_file(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text(
        "id,accepts_marketing\n" + "".join(f"{cid},{flag}\n" for cid, flag in rows),
        encoding="utf-8",
    )
    return path


def shown(records: list[Any]) -> list[tuple[str, str, str, str]]:
    """(rule, customer, due, status/reason) of each record."""
    found = []
    for record in records:
        r = record if isinstance(record, dict) else record.to_json()
        outcome = r["status"] if r["reason"] is None else f"{r['status']} ({r['reason']})"
        found.append((r["rule"], r["customer"], r["due"], outcome))
    return found


def setup(
    engine: Engine, tmp_path: Path, db_url: str, rules: str = RULES
) -> tuple[ast.RuleSet, Config]:
    config = config_for(tmp_path, db_url, grace_seconds=30 * 86400.0)
    folder = write_rules(tmp_path / "rules", {"shop.rules": rules}, ["news", "thanks", "ask"])
    return load_rule_set(folder, config), config


# -- what an import keeps -----------------------------------------------------------------------


def test_an_import_keeps_each_change_of_consent_with_its_time_and_nothing_else(
    engine, tmp_path, db_url
):
    """A first import has no earlier history; a change of a stored customer's flag is kept with
    the import's clock, its value before and after; the same flag again, another field changed,
    or a file that changes the flag and changes it back, keep nothing."""
    first = csv_file(tmp_path / "first.csv", [("c1", "true"), ("c2", "false"), ("c3", "true")])
    assert not import_customers(engine, first, "UTC", clock=FixedClock(at(1))).problems
    assert changes(engine) == []

    again = tmp_path / "again.csv"
    again.write_text(
        "id,name,accepts_marketing\nc1,Ann,true\nc2,Bo,\nc3,Cy,false\nc3,Cy,true\n",
        encoding="utf-8",
    )
    assert not import_customers(engine, again, "UTC", clock=FixedClock(at(2))).problems
    assert changes(engine) == []

    withdrawn = csv_file(tmp_path / "withdrawn.csv", [("c1", "false"), ("c2", "yes")])
    assert not import_customers(engine, withdrawn, "UTC", clock=FixedClock(at(3, 9))).problems
    assert changes(engine) == [("c1", at(3, 9), True, False), ("c2", at(3, 9), False, True)]
    assert flags(engine) == {"c1": False, "c2": True, "c3": True}

    bad = csv_file(tmp_path / "bad.csv", [("c1", "maybe"), ("c3", "false")])
    report = import_customers(engine, bad, "UTC", clock=FixedClock(at(4)))
    assert len(report.problems) == 1  # the bad row changes nothing; the good one is kept
    assert changes(engine)[2:] == [("c3", at(4), True, False)]


def test_consent_given_to_a_customer_an_event_created_counts_from_the_import(
    engine, tmp_path, db_url
):
    """An order for an unknown customer creates it without consent; imported with consent on
    Nov 8, its order of Nov 5 was not thanked with marketing, that of Nov 9 is."""
    ruleset, config = setup(engine, tmp_path, db_url)
    orders = [
        {"id": "o1", "customer": "c9", "type": "order.paid", "at": iso(at(5, 12))},
        {"id": "o2", "customer": "c9", "type": "order.paid", "at": iso(at(9, 12))},
    ]
    assert not import_event_rows(engine, orders, "UTC").problems
    assert flags(engine) == {"c9": False}
    rows = [{"id": "c9", "accepts_marketing": True}]
    assert not import_customer_rows(engine, rows, "UTC", clock=FixedClock(at(8, 15))).problems
    assert changes(engine) == [("c9", at(8, 15), False, True)]
    thanks = [
        r for r in simulate_records(engine, ruleset, config, at(1), at(15)) if r["rule"] == "thanks"
    ]
    assert shown(thanks) == [
        ("thanks", "c9", iso(at(5, 12)), "suppressed (no-consent)"),
        ("thanks", "c9", iso(at(9, 12)), "sent"),
    ]
    news = [
        r for r in simulate_records(engine, ruleset, config, at(8), at(10)) if r["rule"] == "news"
    ]
    assert shown(news) == [
        ("news", "c9", iso(at(8, 10)), "suppressed (no-consent)"),  # due before the import
        ("news", "c9", iso(at(9, 10)), "sent"),
    ]


# -- the daemon and the simulation of the past ----------------------------------------------------


def test_simulate_of_the_past_is_what_the_daemon_did_after_consent_changed(
    engine, tmp_path, db_url
):
    """The daemon sends c1 its messages in November (consent yes) and suppresses c3's (no); on
    Nov 20 at 09:00, between two ticks, the shop re-imports c1 with `false` and c3 with `true`.
    `simulate` of Nov 1-15 then still says what `history` says the daemon did, and so does the
    whole month: c1's order at 08:00 that day was thanked, the one at 11:00 was not."""
    ruleset, config = setup(engine, tmp_path, db_url)
    first = csv_file(tmp_path / "c.csv", [("c1", "true"), ("c2", "true"), ("c3", "false")])
    assert not import_customers(engine, first, "UTC", clock=FixedClock(at(1) - DAY_US)).problems
    orders = [
        {"id": "o1", "customer": "c1", "type": "order.paid", "at": iso(at(10, 12))},
        {"id": "o2", "customer": "c1", "type": "order.paid", "at": iso(at(20, 8))},
        {"id": "o3", "customer": "c1", "type": "order.paid", "at": iso(at(20, 11))},
    ]
    assert not import_event_rows(engine, orders, "UTC").problems

    for now in range(at(1), at(20, 6) + 1, 6 * HOUR_US):
        assert not tick(engine, ruleset, config, "rules", now).skipped
    changed = csv_file(tmp_path / "c2.csv", [("c1", "false"), ("c3", "true")])
    assert not import_customers(engine, changed, "UTC", clock=FixedClock(at(20, 9))).problems
    for now in range(at(20, 12), at(22) + 1, 6 * HOUR_US):
        assert not tick(engine, ruleset, config, "rules", now).skipped

    past = simulate_records(engine, ruleset, config, at(1), at(15))
    assert shown(past) == shown(history(engine, at(1), at(15)))
    assert ("thanks", "c1", iso(at(10, 12)), "sent") in shown(past)
    assert ("news", "c1", iso(at(10, 10)), "sent") in shown(past)
    assert ("news", "c3", iso(at(10, 10)), "suppressed (no-consent)") in shown(past)
    month = simulate_records(engine, ruleset, config, at(1), at(22))
    assert json.dumps(month) == json.dumps([a.to_json() for a in history(engine, at(1), at(22))])
    that_day = [r for r in shown(month) if r[2].startswith("2026-11-20")]
    assert that_day == [
        ("thanks", "c1", iso(at(20, 8)), "sent"),
        ("news", "c1", iso(at(20, 10)), "suppressed (no-consent)"),
        ("news", "c2", iso(at(20, 10)), "sent"),
        ("news", "c3", iso(at(20, 10)), "sent"),
        ("thanks", "c1", iso(at(20, 11)), "suppressed (no-consent)"),
    ]


@pytest.mark.parametrize("flips", [1, 5], ids=["few changes: gated", "more than due: all"])
def test_a_condition_on_accepts_marketing_reads_it_as_it_stood(engine, tmp_path, db_url, flips):
    """`customer.accepts_marketing` in a condition is the flag at the due time, as consent is;
    whether the changes are fewer than the occurrences due (the customers behind a gate) or
    more (every occurrence looks)."""
    rules = (
        'rule "ask"\n  when order.paid\n  if customer.accepts_marketing == no\n'
        '  then task "ask for consent"\n\n' + RULES
    )
    ruleset, config = setup(engine, tmp_path, db_url, rules)
    assert not import_customer_rows(
        engine, [{"id": "c1", "accepts_marketing": False}], "UTC"
    ).problems
    # Flipped `flips` times on Nov 4 (an odd number: yes at the end), from 12:00 a minute apart.
    for n in range(flips):
        row = {"id": "c1", "accepts_marketing": n % 2 == 0}
        clock = FixedClock(at(4, 12, n))
        assert not import_customer_rows(engine, [row], "UTC", clock=clock).problems
    orders = [
        {"id": "o1", "customer": "c1", "type": "order.paid", "at": iso(at(3, 12))},
        {"id": "o2", "customer": "c1", "type": "order.paid", "at": iso(at(5, 12))},
    ]
    assert not import_event_rows(engine, orders, "UTC").problems
    records = simulate_records(engine, ruleset, config, at(3), at(6))
    assert shown(records) == [
        ("news", "c1", iso(at(3, 10)), "suppressed (no-consent)"),
        ("ask", "c1", iso(at(3, 12)), "sent"),
        ("thanks", "c1", iso(at(3, 12)), "suppressed (no-consent)"),
        ("news", "c1", iso(at(4, 10)), "suppressed (no-consent)"),
        ("news", "c1", iso(at(5, 10)), "sent"),
        ("thanks", "c1", iso(at(5, 12)), "sent"),
    ]


def test_explain_says_consent_as_it_stood_and_when_an_import_changed_it(engine, tmp_path, db_url):
    ruleset, config = setup(engine, tmp_path, db_url)
    assert not import_customer_rows(
        engine, [{"id": "c1", "accepts_marketing": True}], "UTC"
    ).problems
    withdrawn = [{"id": "c1", "accepts_marketing": False}]
    assert not import_customer_rows(engine, withdrawn, "UTC", clock=FixedClock(at(20, 9))).problems
    text = render(explain(engine, ruleset, config, "c1", at(19), at(21)), "c1", "UTC")
    assert 'message "news": sent' in text
    assert (
        "`accepts_marketing` was yes at the due time; an import made it no on 2026-11-20 09:00"
        in text
    )
    assert 'message "news": suppressed (the customer does not accept marketing)' in text


# -- the command line ------------------------------------------------------------------------------


def test_nudge_simulate_of_the_past_still_sends_after_a_re_import_withdrew_consent(
    tmp_path, db_url
):
    """The commands of the contract, on the system's clock: a message of 2025 stays sent in a
    simulation of 2025 after the customer is imported with `false` today."""
    rules = write_rules(tmp_path / "rules", {"shop.rules": RULES}, ["news", "thanks"])
    db = ["--db", db_url]
    runner = CliRunner()
    yes = csv_file(tmp_path / "yes.csv", [("c1", "true")])
    no = csv_file(tmp_path / "no.csv", [("c1", "false")])
    orders = tmp_path / "orders.csv"
    orders.write_text(
        "id,customer,type,at\no1,c1,order.paid,2025-11-10T12:00:00Z\n", encoding="utf-8"
    )
    window = ["--from", "2025-11-10", "--to", "2025-11-11", "--format", "jsonl"]
    for command in (["import", "customers", str(yes)], ["import", "events", str(orders)]):
        assert runner.invoke(cli, [*command, *db]).exit_code == 0
    before = runner.invoke(cli, ["simulate", str(rules), *window, *db])
    assert runner.invoke(cli, ["import", "customers", str(no), *db]).exit_code == 0
    after = runner.invoke(cli, ["simulate", str(rules), *window, *db])
    assert after.exit_code == 0, after.output
    assert after.output == before.output
    statuses = [(r["rule"], r["status"]) for r in map(json.loads, after.output.splitlines())]
    assert statuses == [("news", "sent"), ("thanks", "sent")]
    today = runner.invoke(
        cli,
        [
            "simulate",
            str(rules),
            "--from",
            "2099-01-01",
            "--to",
            "2099-01-02",
            "--format",
            "jsonl",
            *db,
        ],
    )
    assert [json.loads(line)["reason"] for line in today.output.splitlines()] == ["no-consent"]


# -- what it costs when nobody's consent changed -----------------------------------------------

READS_FLAG = """\
exclude if customer.accepts_marketing and "vip" in customer.tags

rule "ask"
  when order.paid
  if customer.accepts_marketing == no
  then task "ask for consent"
"""


def test_a_condition_on_accepts_marketing_looks_up_no_change_when_none_was_made_since(
    engine, tmp_path, db_url
):
    """With no change of consent after the window's start, `customer.accepts_marketing` in an
    `if` or an `exclude if` reads the stored flag: the SQL is what it was before changes were
    kept (only the gate's count reads `consent_changes`). It looked the changes up for every
    occurrence, whatever the gate said. With a change in the window, they are looked up and
    decide: c1, a vip who withdrew consent on Nov 4, is excluded on Nov 3 and asked on Nov 5."""
    ruleset, config = setup(engine, tmp_path, db_url, READS_FLAG + "\n" + RULES)
    rows = [
        {"id": "c1", "accepts_marketing": True, "tags": "vip"},
        {"id": "c2", "accepts_marketing": True},
    ]
    assert not import_customer_rows(engine, rows, "UTC", clock=FixedClock(at(1))).problems
    withdrawn = [{"id": "c1", "accepts_marketing": False}]
    assert not import_customer_rows(engine, withdrawn, "UTC", clock=FixedClock(at(4, 12))).problems
    orders = [
        {"id": f"o{n}{cid}", "customer": cid, "type": "order.paid", "at": iso(at(day, 12))}
        for n, day in enumerate((3, 5))
        for cid in ("c1", "c2")
    ]
    assert not import_event_rows(engine, orders, "UTC").problems
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", seen)
    later = simulate_records(engine, ruleset, config, at(5), at(6))
    assert ("ask", "c1", iso(at(5, 12)), "sent") in shown(later)
    reading = [s for s in statements if "consent_changes" in s]
    assert len(reading) == 1 and "count(" in reading[0]  # the gate's, and nothing else

    statements.clear()
    records = simulate_records(engine, ruleset, config, at(3), at(6))
    assert any("flag_changes" in s for s in statements)
    assert shown(records) == [
        ("news", "c1", iso(at(3, 10)), "suppressed (excluded)"),
        ("news", "c2", iso(at(3, 10)), "sent"),
        ("thanks", "c1", iso(at(3, 12)), "suppressed (excluded)"),
        ("thanks", "c2", iso(at(3, 12)), "sent"),
        ("news", "c1", iso(at(4, 10)), "suppressed (excluded)"),
        ("news", "c2", iso(at(4, 10)), "sent"),
        ("news", "c1", iso(at(5, 10)), "suppressed (no-consent)"),
        ("news", "c2", iso(at(5, 10)), "sent"),
        ("ask", "c1", iso(at(5, 12)), "sent"),
        ("thanks", "c1", iso(at(5, 12)), "suppressed (no-consent)"),
        ("thanks", "c2", iso(at(5, 12)), "sent"),
    ]


# -- a change and the daemon's ticks -----------------------------------------------------------


def test_a_change_is_dated_no_earlier_than_what_the_daemon_has_decided(engine, tmp_path, db_url):
    """The daemon has decided everything due before Nov 20 12:00 when an import on a machine
    whose clock is three hours behind withdraws c1's consent: the change is dated 12:00, not
    09:00, so a simulation still says the news of 10:00 was sent, as `history` does. Dated
    09:00 it said `suppressed (no-consent)` for a message the daemon had sent."""
    ruleset, config = setup(engine, tmp_path, db_url)
    yes = [{"id": "c1", "accepts_marketing": True}]
    assert not import_customer_rows(engine, yes, "UTC", clock=FixedClock(at(1))).problems
    for now in range(at(19), at(20, 12) + 1, 6 * HOUR_US):
        assert not tick(engine, ruleset, config, "rules", now).skipped
    no = [{"id": "c1", "accepts_marketing": False}]
    assert not import_customer_rows(engine, no, "UTC", clock=FixedClock(at(20, 9))).problems
    assert changes(engine) == [("c1", at(20, 12), True, False)]
    for now in range(at(20, 18), at(22) + 1, 6 * HOUR_US):
        assert not tick(engine, ruleset, config, "rules", now).skipped
    records = simulate_records(engine, ruleset, config, at(19), at(22))
    assert json.dumps(records) == json.dumps([a.to_json() for a in history(engine, at(19), at(22))])
    assert shown(records) == [
        ("news", "c1", iso(at(19, 10)), "sent"),
        ("news", "c1", iso(at(20, 10)), "sent"),
        ("news", "c1", iso(at(21, 10)), "suppressed (no-consent)"),
    ]


def test_no_tick_decides_while_an_import_dates_a_change_of_consent(engine, tmp_path, db_url):
    """On PostgreSQL a tick does not wait for an import, and reads what was committed: one
    running between the moment an import dated a change and its commit would decide what fell
    due since with the old flag, where a later simulation reads the new one. The import holds
    the rule sets' rows from then to its commit, so such a tick skips (the next one decides)."""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite's ticks and imports take the one write lock in turn")
    from engine.importing.customers import _decided_until

    ruleset, config = setup(engine, tmp_path, db_url)
    assert not tick(engine, ruleset, config, "rules", at(20)).skipped
    with engine.connect() as importing, importing.begin():
        assert _decided_until(importing) == at(20)
        assert tick(engine, ruleset, config, "rules", at(20, 6)).skipped
    assert not tick(engine, ruleset, config, "rules", at(20, 6)).skipped
