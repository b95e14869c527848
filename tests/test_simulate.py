"""The simulator over the demo shop: batches, writing nothing, the command's formats, explain."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import io
import itertools
import json
import os
import random
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from cli import cli
from engine.checking.ruleset import load_rule_set
from engine.config import load_config
from engine.demo.shop import generate_shop
from engine.errors import NudgeError
from engine.evaluation import simulate as engine_simulate
from engine.evaluation.explain import explain, render
from engine.evaluation.processes import worker_context
from engine.evaluation.records import ActionRecord, Row
from engine.evaluation.simulate import (
    GROUP_BATCHES,
    Spilled,
    Tally,
    _merged,
    _runs,
    _spill_part,
    simulate,
    stream,
)
from engine.evaluation.tick import tick
from engine.importing.importers import import_customer_rows, import_event_rows
from engine.outbox.history import history
from engine.plan.triggers import customer_batches
from engine.reports.table import print_list, print_table
from engine.storage.db import open_database
from engine.storage.tables import metadata
from engine.timeutil import US, parse_moment, to_us

SHOP = Path(__file__).resolve().parents[1] / "rules" / "shop"
CONFIG = load_config(SHOP / "nudge.yaml")
START = parse_moment("2026-09-01", CONFIG.timezone)
END = parse_moment("2026-10-15", CONFIG.timezone)


@pytest.fixture
def shop_db(db_url: str) -> str:
    """120 demo customers with half a year of history before the window."""
    customers, events = generate_shop(
        seed=3, customers=120, start=dt.datetime(2026, 3, 1), end=dt.datetime(2026, 10, 15)
    )
    engine = open_database(db_url)
    import_customer_rows(engine, customers, CONFIG.timezone)
    import_event_rows(engine, events, CONFIG.timezone)
    engine.dispose()
    return db_url


def test_batches_of_customers_change_nothing(shop_db: str) -> None:
    engine = open_database(shop_db)
    ruleset = load_rule_set(SHOP, CONFIG)
    whole = [a.to_json() for a in stream(engine, ruleset, CONFIG, START, END, batch=10**6)]
    with engine.connect() as conn:
        assert len(customer_batches(conn, 25)) == 5
    batched = [
        a.to_json() for a in stream(engine, ruleset, CONFIG, START, END, batch=25, workers=1)
    ]
    assert whole == batched
    # A run of more batches than a group: its occurrences are found group by group (24 batches
    # of 5 customers: groups of 10, 10 and 4).
    with engine.connect() as conn:
        assert len(customer_batches(conn, 5)) == 24 > 2 * GROUP_BATCHES
    grouped = [a.to_json() for a in stream(engine, ruleset, CONFIG, START, END, batch=5, workers=1)]
    assert whole == grouped
    # Runs of batches shared among worker processes: 14 batches of 9, in runs of 5, 5 and 4.
    with engine.connect() as conn:
        assert [len(run) for run in _runs(customer_batches(conn, 9), 3)] == [5, 5, 4]
    tally = Tally()
    shared = stream(engine, ruleset, CONFIG, START, END, batch=9, tally=tally, workers=3)
    assert [a.to_json() for a in shared] == whole
    assert tally.occurrences == len(simulate(engine, ruleset, CONFIG, START, END).occurrences)
    assert [a.to_json() for a in simulate(engine, ruleset, CONFIG, START, END, 25).actions] == whole
    rules_that_acted = {record["rule"] for record in whole}
    assert {"weekly group buy", "mid-autumn greeting", "thank you"} <= rules_that_acted


@pytest.fixture(params=["this one alone", "another too"])
def threads(request: pytest.FixtureRequest) -> str:
    """The test runs with this thread alone (workers are forked), then beside another (spawned)."""
    alone = request.param == "this one alone"
    request.getfixturevalue("only_this_thread" if alone else "another_thread")
    return str(request.param)


def test_workers_are_forked_unless_another_thread_runs(
    shop_db: str, threads: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fork would copy only this thread (a lock the other holds would stay held in the copy):
    then the workers are spawned, and simulate the same."""
    methods: list[str] = []

    def recorded() -> BaseContext:
        context = worker_context()
        methods.append(context.get_start_method())
        return context

    monkeypatch.setattr(engine_simulate, "worker_context", recorded)
    engine = open_database(shop_db)
    ruleset = load_rule_set(SHOP, CONFIG)
    shared = stream(engine, ruleset, CONFIG, START, END, batch=9, workers=3)
    alone = simulate(engine, ruleset, CONFIG, START, END).actions
    assert [a.to_json() for a in shared] == [a.to_json() for a in alone]
    assert methods == ["fork" if threads == "this one alone" else "spawn"]


def test_the_collector_is_as_before_once_the_merge_ends_or_is_left(shop_db: str) -> None:
    """The merge raises the threshold of collections (engine.evaluation.collector) while it
    streams."""
    engine = open_database(shop_db)
    ruleset = load_rule_set(SHOP, CONFIG)
    before = gc.get_threshold()
    records = stream(engine, ruleset, CONFIG, START, END, batch=9, workers=1)
    next(records)
    assert gc.get_threshold() != before
    records.close()  # the consumer stops early
    assert gc.get_threshold() == before
    assert list(stream(engine, ruleset, CONFIG, START, END, batch=9, workers=1))
    assert gc.get_threshold() == before


@given(
    st.lists(st.tuples(st.integers(0, 20), st.text("ab", max_size=2)), unique=True),
    st.integers(1, 6),
    st.randoms(use_true_random=False),
)
def test_sorted_runs_in_chunks_merge_into_one_order(
    rows: list[Row], count: int, rnd: random.Random
) -> None:
    """The merge of a simulation's spill files: runs of rows (the batches' actions, sorted), each
    cut into chunks of any size, some empty (none is spilled, but one would do no harm)."""
    runs: list[list[Row]] = [[] for _ in range(count)]
    for row in rows:
        runs[rnd.randrange(count)].append(row)
    sources = []
    for run in runs:
        run.sort()
        cuts = sorted(rnd.choices(range(len(run) + 1), k=rnd.randrange(4)))
        bounds = [0, *cuts, len(run)]
        sources.append(iter([run[a:b] for a, b in itertools.pairwise(bounds)]))
    assert list(_merged(sources)) == sorted(rows)


def _dies_in_a_worker(*args: Any) -> Spilled:
    """`_spill_part`, except that a worker process running it ends at once, as one killed
    would (the worker, forked or spawned, inherits the environment, which names the test's own
    process)."""
    if os.getpid() != int(os.environ["NUDGE_TEST_SIMULATING_PID"]):
        os._exit(3)
    return _spill_part(*args)


@pytest.mark.usefixtures("threads")  # forked, then spawned
def test_a_worker_that_dies_is_an_error(shop_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUDGE_TEST_SIMULATING_PID", str(os.getpid()))
    monkeypatch.setattr(engine_simulate, "_spill_part", _dies_in_a_worker)
    engine = open_database(shop_db)
    ruleset = load_rule_set(SHOP, CONFIG)
    with pytest.raises(NudgeError, match="worker process ended without finishing"):
        list(stream(engine, ruleset, CONFIG, START, END, batch=9, workers=3))


def test_a_tick_in_batches_records_what_the_simulation_shows(shop_db: str) -> None:
    engine = open_database(shop_db)
    ruleset = load_rule_set(SHOP, CONFIG)
    end = START + 7 * 86_400_000_000
    expected = [a.to_json() for a in stream(engine, ruleset, CONFIG, START, end)]
    patient = dataclasses.replace(CONFIG, grace_seconds=8 * 86_400)  # a week in one tick
    tick(engine, ruleset, patient, "shop", START, batch=25)  # the first tick starts the rule set
    report = tick(engine, ruleset, patient, "shop", end, batch=25)
    assert report.recorded.occurrences > 0
    assert [a.to_json() for a in history(engine, START, end)] == expected


def test_a_simulation_writes_nothing(shop_db: str) -> None:
    engine = open_database(shop_db)

    def counts() -> dict[str, int]:
        with engine.connect() as conn:
            return {
                t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                for t in metadata.sorted_tables
            }

    before = counts()
    assert simulate(engine, load_rule_set(SHOP, CONFIG), CONFIG, START, END).actions
    assert counts() == before


def test_the_command_prints_jsonl_tables_and_a_self_contained_page(
    shop_db: str, tmp_path: Path
) -> None:
    runner = CliRunner()
    common = ["--config", str(SHOP / "nudge.yaml"), "--db", shop_db]
    window = ["--from", "2026-09-01", "--to", "2026-10-15"]
    jsonl = runner.invoke(cli, ["simulate", str(SHOP), *window, "--format", "jsonl", *common])
    assert jsonl.exit_code == 0, jsonl.output
    records = [json.loads(line) for line in jsonl.output.splitlines()]
    assert records
    keys = {"rule", "customer", "action", "template", "channel", "due", "at", "status", "reason"}
    assert all(keys <= set(r) for r in records)
    assert [r["at"] for r in records] == sorted(r["at"] for r in records)

    table = runner.invoke(cli, ["simulate", str(SHOP), *window, "--format", "table", *common])
    assert table.exit_code == 0, table.output
    assert f"{len(records)} actions" in table.output
    flowing = " ".join(table.output.split())  # the title wraps at the terminal's width
    assert "2026-09-01 00:00 to 2026-10-15 00:00 (shop time): " in flowing
    assert "Per day" in table.output and "coupons issued" in table.output
    quiet = ["--from", "2026-09-01T03:00", "--to", "2026-09-01T03:01"]
    nothing = runner.invoke(cli, ["simulate", str(SHOP), *quiet, "--format", "table", *common])
    assert nothing.exit_code == 0, nothing.output
    assert " ".join(nothing.output.split()).endswith(
        "2026-09-01 03:01 (shop time): no rule acted, nothing would be sent."
    )

    page = tmp_path / "sim.html"
    html = runner.invoke(
        cli, ["simulate", str(SHOP), *window, "--format", "html", "--output", str(page), *common]
    )
    assert html.exit_code == 0, html.output
    text = page.read_text(encoding="utf-8")
    assert "<svg" in text and records[0]["customer"] in text
    assert "http://" not in text and "https://" not in text  # nothing loaded from the network
    # As LANGUAGE.md section 6 writes it, without --output: the page on standard output.
    piped = runner.invoke(cli, ["simulate", str(SHOP), *window, "--format", "html", *common])
    assert piped.exit_code == 0, piped.output
    assert piped.stdout == text


def test_explain_says_why(shop_db: str) -> None:
    engine = open_database(shop_db)
    ruleset = load_rule_set(SHOP, CONFIG)
    actions = simulate(engine, ruleset, CONFIG, START, END).actions
    suppressed = next(a for a in actions if a.status == "suppressed")
    stories = explain(engine, ruleset, CONFIG, suppressed.customer_id, START, END)
    told = [a for s in stories for a in s.actions]
    mine = [a.to_json() for a in actions if a.customer_id == suppressed.customer_id]
    assert sorted(json.dumps(a.to_json()) for a in told) == sorted(json.dumps(r) for r in mine)
    text = render(stories, suppressed.customer_id, CONFIG.timezone)
    assert "suppressed (" in text
    skipped = [s for s in stories if s.outcome == "skipped"]
    assert all(s.reasons for s in skipped)


def test_the_per_rule_table_shows_a_rule_s_name_whole_on_a_terminal_80_columns_wide() -> None:
    """Its headers (`suppressed: no-consent`...) took the width: an unnamed rule was shown as
    `aftercare.r…`, any of the file's. They are short now, said in full in the caption."""
    records = [
        ActionRecord(
            at_us=START,
            rule_position=0,
            customer_id=f"c{i}",
            position=0,
            due_us=START,
            occurrence_key="k",
            rule="aftercare.rules:12",
            kind="message",
            status=status,
            reason=reason,
            template="thank_you",
        )
        for i, (status, reason) in enumerate([("sent", None), ("suppressed", "no-consent")])
    ]
    out = io.StringIO()
    print_table(records, CONFIG.timezone, Console(file=out, width=80))
    shown = out.getvalue()
    assert "│ aftercare.rules:12 │     2 │    1 │          1 │          │     │" in shown
    assert "acted: occurrences that acted; sent: actions sent; no-consent, excluded, cap:" in (
        " ".join(shown.split())
    )


def test_names_with_brackets_are_shown_as_written_not_read_as_markup() -> None:
    record = ActionRecord(
        at_us=START,
        rule_position=0,
        customer_id="c[1]",
        position=0,
        due_us=START,
        occurrence_key="k",
        rule="a[/b]",
        kind="message",
        status="sent",
        template="[bold]t",
    )
    for show in (print_table, print_list):
        out = io.StringIO()
        show([record], CONFIG.timezone, Console(file=out, width=200))
        shown = out.getvalue()
        assert "a[/b]" in shown and "c[1]" in shown
    assert "[bold]t" in shown


def test_explain_names_a_customer_the_shop_does_not_have(shop_db: str) -> None:
    runner = CliRunner()
    common = ["--config", str(SHOP / "nudge.yaml"), "--db", shop_db]
    window = ["--from", "2026-09-01", "--to", "2026-09-02"]
    unknown = runner.invoke(cli, ["explain", str(SHOP), "nosuch", *window, *common])
    assert unknown.exit_code == 1
    assert (
        str(unknown.exception) == "no customer 'nosuch' in the shop's data (ids are case-sensitive)"
    )
    # An id written in another case, or with a blank around it, is answered with the stored one.
    for written in ("C1", " c1 "):
        capital = runner.invoke(cli, ["explain", str(SHOP), written, *window, *common])
        assert capital.exit_code == 1
        assert str(capital.exception) == (
            f"no customer {written!r} in the shop's data (ids are case-sensitive): did you mean"
            " `c1`?"
        )
    quiet = runner.invoke(cli, ["explain", str(SHOP), "c1", *window, "--rule", "welcome", *common])
    assert quiet.exit_code == 0
    assert quiet.output == "No rule had an occurrence for customer c1 in this window.\n"


def test_explain_names_a_rule_the_rule_set_does_not_have(shop_db: str) -> None:
    runner = CliRunner()
    common = ["--config", str(SHOP / "nudge.yaml"), "--db", shop_db]
    window = ["--from", "2026-09-01", "--to", "2026-09-02"]
    misspelt = ["--rule", "thank yuo"]
    result = runner.invoke(cli, ["explain", str(SHOP), "c1", *window, *misspelt, *common])
    assert result.exit_code == 2
    said = " ".join(result.output.split())
    assert "no rule named 'thank yuo'; did you mean `thank you`? The rules are: " in said
    far = runner.invoke(cli, ["explain", str(SHOP), "c1", *window, "--rule", "zzz", *common])
    assert "no rule named 'zzz'; the rules are: " in " ".join(far.output.split())


def test_an_empty_history_says_so_rather_than_print_an_empty_table() -> None:
    out = io.StringIO()
    print_list([], CONFIG.timezone, Console(file=out, width=200))
    assert out.getvalue() == "History: the daemon recorded no action due in this window.\n"


def test_history_tells_apart_the_two_hours_of_the_night_clocks_go_back() -> None:
    """New York's 01:30 of 2026-11-01 happens twice: the list gives each its offset, and a time
    outside that hour as before."""
    first = to_us(dt.datetime(2026, 11, 1, 5, 30, tzinfo=dt.UTC))  # 01:30 EDT
    records = [
        ActionRecord(
            at_us=at_us,
            rule_position=0,
            customer_id="c1",
            position=0,
            due_us=at_us,
            occurrence_key=str(at_us),
            rule="late night",
            kind="tag",
            status="sent",
        )
        for at_us in (first, first + 3600 * US, first + 7200 * US)
    ]
    out = io.StringIO()
    print_list(records, "America/New_York", Console(file=out, width=200))
    shown = out.getvalue()
    assert "2026-11-01 01:30 -04:00" in shown and "2026-11-01 01:30 -05:00" in shown
    assert "2026-11-01 02:30 " in shown and "02:30 -05:00" not in shown
