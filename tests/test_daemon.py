"""The daemon against real parts: real processes killed with -9 and restarted, two daemons on one
PostgreSQL, signals, hot reload, a database that goes away, consent withdrawn before sending."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_SUBMITTED
from daemon_helpers import (
    ROOT,
    DaemonProcess,
    assert_recorded_once,
    config_for,
    jsonl,
    read_ledger,
    write_config,
    write_rules,
)
from loopback import free_port
from sqlalchemy import Engine, event

from cli import main
from engine import daemon as engine_daemon
from engine.checking.ruleset import load_rule_set
from engine.clock import FixedClock, SystemClock
from engine.config import Channel, load_config
from engine.daemon import Daemon
from engine.demo.mark import DEMO_MARK, DEMO_VALUE
from engine.evaluation.simulate import simulate_records
from engine.evaluation.tick import tick
from engine.importing.importers import import_customer_rows, import_event_rows
from engine.outbox.history import history
from engine.outbox.tasks import list_tasks
from engine.outbox.templates import TemplateError, find_template
from engine.status import silent_after_us, status
from engine.storage.db import open_database
from engine.storage.tables import actions, customers, daemons, outbox, rule_set_state
from engine.timeutil import US, iso, to_us

MINUTE_US = 60 * US
HOUR_US = 60 * MINUTE_US
DAY_US = 24 * HOUR_US

REALTIME_RULES = """\
rule "fit"
  when order.paid + 1h
  then followup "fit_check" and points 5

rule "thanks"
  when order.paid + 1h
  then message "thanks" and task "Pack a sample"
"""
REALTIME_ACTIONS = {"fit": 2, "thanks": 2}
ORDERS = 24
SPREAD_S = 10.0  # the occurrences fall due over this many seconds


def realtime_shop(engine: Engine, tmp_path: Path, db_url: str) -> tuple[Path, Path, int, int]:
    """Rules, a daemon configuration and orders whose occurrences fall due over the next
    SPREAD_S seconds. The rule set is started now (its first tick), so they all act.
    Returns the rules folder, the configuration file, the start and the last due time."""
    rules = write_rules(tmp_path / "rules", {"shop.rules": REALTIME_RULES}, ["fit_check", "thanks"])
    config_path = write_config(tmp_path / "nudge.yaml", db_url, tick_seconds=1)
    people = [{"id": f"c{i}", "name": f"Customer {i}", "accepts_marketing": True} for i in range(6)]
    import_customer_rows(engine, people, "UTC")
    start = SystemClock().now_us()
    config = config_for(tmp_path, db_url)
    tick(engine, load_rule_set(rules, config), config, "rules", start)
    first_due = start + 3 * US
    step = int(SPREAD_S * US / (ORDERS - 1))
    dues = [first_due + k * step for k in range(ORDERS)]
    orders = [
        {"customer": f"c{k % 6}", "type": "order.paid", "at": iso(due - HOUR_US), "total": 20 + k}
        for k, due in enumerate(dues)
    ]
    import_event_rows(engine, orders, "UTC")
    return rules, config_path, start, dues[-1]


def all_sent(engine: Engine) -> bool:
    with engine.connect() as conn:
        counts = dict(
            conn.execute(
                sa.select(outbox.c.status, sa.func.count()).group_by(outbox.c.status)
            ).all()
        )
    return counts == {"sent": 2 * ORDERS}


def assert_exactly_once(engine: Engine, tmp_path: Path, rules: Path, start: int, end: int) -> None:
    """Every occurrence recorded once, every action once, every outbox row once and sent; the
    file channel holds every outbox row under its own idempotency key; history equals the
    simulation of the same window."""
    ledger = assert_recorded_once(engine, REALTIME_ACTIONS)
    assert len(ledger.occurrences) == 2 * ORDERS
    assert {status for *_, status in ledger.occurrences} == {"acted"}
    assert len(ledger.actions) == 4 * ORDERS
    assert sorted(status for _a, status, _k in ledger.outbox) == ["sent"] * (2 * ORDERS)
    delivered = jsonl(tmp_path / "outbox.jsonl")
    keys = {key for _a, _s, key in ledger.outbox}
    assert {line["idempotency_key"] for line in delivered} == keys
    by_key: dict[str, set[tuple[str, str]]] = {}
    for line in delivered:
        by_key.setdefault(line["idempotency_key"], set()).add((line["rule"], line["customer_id"]))
    assert all(len(found) == 1 for found in by_key.values())
    config = config_for(tmp_path, str(engine.url))
    ruleset = load_rule_set(rules, config)
    simulated = simulate_records(engine, ruleset, config, start, end + US)
    assert [r.to_json() for r in history(engine, start, end + US)] == simulated
    assert len(simulated) == 4 * ORDERS


def test_kill_9_at_any_moment_and_restart_acts_exactly_once(engine, tmp_path, db_url) -> None:
    rules, config_path, start, last_due = realtime_shop(engine, tmp_path, db_url)
    rng = random.Random(9)
    log = tmp_path / "daemon.log"
    kills = 0
    # At least three kills, however long a daemon takes to start on a loaded machine.
    while kills < 3 or SystemClock().now_us() < last_due:
        daemon = DaemonProcess(rules, config_path, log)
        try:
            daemon.wait_running()
            time.sleep(rng.uniform(0.05, 1.2))
        finally:
            daemon.kill()
        kills += 1
    # Each killed daemon left its row, and each that started on this machine forgot those
    # before it: `nudge status` on this machine shows the last one stopped (no process runs
    # under its number), not silent, however long after.
    for later in (SystemClock().now_us(), SystemClock().now_us() + silent_after_us(1) + US):
        seen = status(engine, later, tick_seconds=1).daemons
        assert [(d.gone, d.silent) for d in seen] == [(True, False)]
    daemon = DaemonProcess(rules, config_path, log)
    try:
        daemon.wait_running()  # a signal before the daemon's handlers would end it at once
        daemon.wait_until(lambda: all_sent(engine), 20, "every message to be sent")
        assert daemon.stop() == 0
    finally:
        daemon.ensure_dead()
    assert_exactly_once(engine, tmp_path, rules, start, last_due)


def test_two_daemons_on_postgresql_act_exactly_once(engine, tmp_path, db_url) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("on SQLite one daemon runs (see the next test)")
    rules, config_path, start, last_due = realtime_shop(engine, tmp_path, db_url)
    first = DaemonProcess(rules, config_path, tmp_path / "first.log")
    second = DaemonProcess(rules, config_path, tmp_path / "second.log")
    try:
        first.wait_running()
        second.wait_running()
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(daemons)).scalar() == 2
        first.wait_until(lambda: all_sent(engine), 30, "every message to be sent")
        second.wait_until(lambda: SystemClock().now_us() > last_due + US, 10, "the last due")
        assert first.stop() == 0
        assert second.stop() == 0
    finally:
        first.ensure_dead()
        second.ensure_dead()
    assert_exactly_once(engine, tmp_path, rules, start, last_due)


def test_a_second_daemon_on_sqlite_says_so_and_exits(tmp_path) -> None:
    db_url = f"sqlite:///{tmp_path / 'shop.db'}"
    rules = write_rules(tmp_path / "rules", {"shop.rules": REALTIME_RULES}, ["fit_check", "thanks"])
    config_path = write_config(tmp_path / "nudge.yaml", db_url, tick_seconds=1)
    first = DaemonProcess(rules, config_path, tmp_path / "first.log")
    try:
        first.wait_running()
        # The same database by another path: a link to it.
        (tmp_path / "link.db").symlink_to(tmp_path / "shop.db")
        command = [sys.executable, str(ROOT / "cli.py"), "run", str(rules)]
        second = subprocess.run(
            [*command, "--config", str(config_path), "--db", f"sqlite:///{tmp_path / 'link.db'}"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode == 1
        assert f"another `nudge run` (process {first.process.pid}) is already running" in (
            second.stderr
        )
        assert "Traceback" not in second.stderr + second.stdout
        assert first.process.poll() is None
        assert first.stop() == 0
    finally:
        first.ensure_dead()
    again = DaemonProcess(rules, config_path, tmp_path / "again.log")
    try:
        again.wait_running()
        assert again.stop() == 0
    finally:
        again.ensure_dead()


def ticked_again(engine: Engine) -> bool:
    """Whether the rule set has ticked since its first start."""
    with engine.connect() as conn:
        state = conn.execute(sa.select(rule_set_state)).first()
    return state is not None and (state.last_tick_us or 0) > state.first_run_us


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_daemon_cleanly_within_10_seconds(engine, tmp_path, db_url, sig):
    rules = write_rules(tmp_path / "rules", {"shop.rules": REALTIME_RULES}, ["fit_check", "thanks"])
    config_path = write_config(tmp_path / "nudge.yaml", db_url, tick_seconds=1)
    daemon = DaemonProcess(rules, config_path, tmp_path / "daemon.log")
    try:
        daemon.wait_running()
        with engine.connect() as conn:
            assert conn.execute(sa.select(daemons.c.pid)).scalars().all() == [daemon.process.pid]
        daemon.wait_until(lambda: ticked_again(engine), 20, "a second tick")
        began = time.monotonic()
        assert daemon.stop(sig, timeout=10) == 0
        assert time.monotonic() - began < 10
    finally:
        daemon.ensure_dead()
    assert "Traceback" not in daemon.log()
    assert f"received {sig.name}" in daemon.log()
    # `-v` (as DaemonProcess runs it) logs the ticks with nothing due too; Alembic's and
    # APScheduler's INFO lines stay out of the daemon's log.
    assert ": 0 occurrences acted, 0 actions, 0 queued" in daemon.log()
    assert " INFO alembic" not in daemon.log() and " INFO apscheduler" not in daemon.log()
    with engine.connect() as conn:
        assert conn.execute(sa.select(daemons)).all() == []
        state = conn.execute(sa.select(rule_set_state)).one()
    assert state.last_tick_us is not None and state.last_tick_us > state.first_run_us


def test_a_signal_whose_handler_the_main_thread_did_not_run_at_once_still_stops_the_daemon(
    tmp_path,
) -> None:
    """A signal that comes as the main thread is about to block (under load, just after the
    daemon started) has its C-level part done there and its Python handler left pending until
    the main thread is back in the interpreter; a wait without a timeout never came back, and
    the daemon ignored SIGTERM until it was killed. Here the main thread blocks SIGTERM, so that
    another thread takes it every time and the main thread is never interrupted: the same
    pending handler, made certain."""
    db_url = f"sqlite:///{tmp_path / 'shop.db'}"
    rules = write_rules(tmp_path / "rules", {"shop.rules": REALTIME_RULES}, ["fit_check", "thanks"])
    config_path = write_config(tmp_path / "nudge.yaml", db_url, tick_seconds=1)
    other_thread_takes_sigterm = (
        "import signal, threading, time\n"
        "threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()\n"
        "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})\n"
    )
    daemon = DaemonProcess(
        rules, config_path, tmp_path / "daemon.log", before=other_thread_takes_sigterm
    )
    try:
        daemon.wait_running()
        time.sleep(0.5)  # the main thread is asleep, waiting for a signal
        assert daemon.stop(timeout=10) == 0
    finally:
        daemon.ensure_dead()
    assert "received SIGTERM" in daemon.log()
    assert "Traceback" not in daemon.log()


def test_a_signal_stops_the_daemon_within_10_seconds_while_a_mail_server_hangs(tmp_path) -> None:
    """A mail server accepts the connection and never answers: the daemon is stuck sending when
    SIGTERM comes, and must still exit 0 within 10 s (the message stays queued)."""
    db_url = f"sqlite:///{tmp_path / 'shop.db'}"
    rules = write_rules(
        tmp_path / "rules",
        {"shop.rules": 'rule "hello"\n  when order.paid\n  then followup "fit_check" via email\n'},
        ["fit_check"],
    )
    mail = {"type": "email", "host": "127.0.0.1", "security": "none", "from": "shop@a.test"}
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        mail["port"] = server.getsockname()[1]
        config_path = write_config(tmp_path / "nudge.yaml", db_url, tick_seconds=1)
        document = yaml.safe_load(config_path.read_text())
        document["channels"]["email"] = mail
        config_path.write_text(yaml.safe_dump(document))
        engine = open_database(db_url)
        now = SystemClock().now_us()
        config = load_config(config_path)
        tick(engine, load_rule_set(rules, config), config, "rules", now - 10 * US)
        customer = [{"id": "c1", "email": "c1@example.com"}]
        import_customer_rows(engine, customer, "UTC")
        import_event_rows(engine, [{"customer": "c1", "type": "order.paid", "at": iso(now)}], "UTC")
        engine.dispose()
        daemon = DaemonProcess(rules, config_path, tmp_path / "daemon.log")
        try:
            server.settimeout(20)
            connection, _ = server.accept()  # the daemon now waits for the server's greeting
            with connection:
                began = time.monotonic()
                daemon.process.send_signal(signal.SIGTERM)
                try:
                    code = daemon.process.wait(10)
                except subprocess.TimeoutExpired:
                    code = None
                assert code == 0 and time.monotonic() - began < 10
        finally:
            daemon.ensure_dead()


# -- one daemon, step by step, on a fixed clock ------------------------------------------------

T0 = to_us(dt.datetime(2026, 5, 4, 12, 0, tzinfo=dt.UTC))


def add_orders(engine: Engine, *moments: int, customer: str = "c1") -> None:
    rows = [
        {"customer": customer, "type": "order.paid", "at": iso(at), "total": 30} for at in moments
    ]
    assert not import_event_rows(engine, rows, "UTC").problems


def acted_rules(engine: Engine) -> list[tuple[str, str]]:
    """(rule, due) of every action recorded, in order of due time."""
    recorded = sorted(history(engine, 0, 2**62), key=lambda r: (r.due_us, r.rule))
    return [(r.rule, iso(r.due_us)) for r in recorded]


def stepper(engine: Engine, tmp_path: Path, rules: Path) -> Daemon:
    """A daemon on a fixed clock at T0, its rule set started, customer c1 stored."""
    config = config_for(tmp_path, str(engine.url))
    import_customer_rows(engine, [{"id": "c1", "name": "Ann", "accepts_marketing": True}], "UTC")
    daemon = Daemon(rules, config, engine, FixedClock(T0))
    assert daemon.step() is not None  # the first step starts the rule set
    return daemon


def at(daemon: Daemon, moment: int) -> Any:
    assert isinstance(daemon.clock, FixedClock)
    daemon.clock.advance_to(moment)
    return daemon.step()


FIT = 'rule "fit"\n  when order.paid\n  then followup "fit_check"\n'
THANKS = 'rule "thanks"\n  when order.paid\n  then message "thanks"\n'


def test_hot_reload_swaps_in_good_edits_and_keeps_running_through_bad_ones(
    engine, tmp_path, caplog
) -> None:
    rules = write_rules(tmp_path / "rules", {"fit.rules": FIT}, ["fit_check", "thanks"])
    daemon = stepper(engine, tmp_path, rules)
    add_orders(engine, T0 + 10 * MINUTE_US)
    at(daemon, T0 + HOUR_US)
    assert acted_rules(engine) == [("fit", iso(T0 + 10 * MINUTE_US))]

    (rules / "thanks.rules").write_text(THANKS, encoding="utf-8")
    add_orders(engine, T0 + 70 * MINUTE_US)
    at(daemon, T0 + 2 * HOUR_US)
    assert acted_rules(engine)[1:] == [
        ("fit", iso(T0 + 70 * MINUTE_US)),
        ("thanks", iso(T0 + 70 * MINUTE_US)),
    ]

    caplog.set_level(logging.INFO, logger="nudge")
    (rules / "fit.rules").write_text(FIT + 'rule "bad"\n  when order.paid\n  then explode 3\n')
    add_orders(engine, T0 + 130 * MINUTE_US)
    report = at(daemon, T0 + 3 * HOUR_US)
    assert report is not None and report.recorded.occurrences == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].startswith("the rule files changed but do not check; the running rules stay")
    assert "template" not in errors[0]
    assert f"{rules / 'fit.rules'}:6:8" in errors[0]
    assert "then explode 3" in errors[0]
    assert acted_rules(engine)[3:] == [
        ("fit", iso(T0 + 130 * MINUTE_US)),
        ("thanks", iso(T0 + 130 * MINUTE_US)),
    ]

    caplog.clear()
    at(daemon, T0 + 4 * HOUR_US)  # the same bad edit is not reported at every tick
    assert not [r for r in caplog.records if r.levelno == logging.ERROR]

    (rules / "thanks.rules").unlink()
    (rules / "fit.rules").write_text(FIT, encoding="utf-8")
    add_orders(engine, T0 + 250 * MINUTE_US)
    at(daemon, T0 + 5 * HOUR_US)
    assert acted_rules(engine)[5:] == [("fit", iso(T0 + 250 * MINUTE_US))]
    assert any("rules loaded" in r.getMessage() for r in caplog.records)


def test_events_imported_after_a_tick_passed_their_time_are_a_warning(
    engine, tmp_path, caplog
) -> None:
    """An order imported an hour after it was paid: the step that passed its time decided
    without it; the next one says so, naming when, and acts on it late (within grace)."""
    rules = write_rules(tmp_path / "rules", {"fit.rules": FIT}, ["fit_check"])
    daemon = stepper(engine, tmp_path, rules)
    at(daemon, T0 + HOUR_US)
    add_orders(engine, T0 + 10 * MINUTE_US)
    caplog.set_level(logging.INFO, logger="nudge")
    at(daemon, T0 + 2 * HOUR_US)
    assert acted_rules(engine) == [("fit", iso(T0 + 10 * MINUTE_US))]
    (warned,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned.startswith(
        "1 event or sign-up was imported after a tick had passed its time (the earliest happened"
        f" at {iso(T0 + 10 * MINUTE_US)}): occurrences it made due before {iso(T0 + HOUR_US)} act"
        " late within the grace period and are missed after it; what was decided without it"
        " stands."
    )


def test_a_tick_is_logged_at_info_when_it_did_something_and_at_debug_when_nothing_was_due(
    engine, tmp_path, caplog
) -> None:
    rules = write_rules(tmp_path / "rules", {"thanks.rules": THANKS}, ["thanks"])
    daemon = stepper(engine, tmp_path, rules)
    caplog.set_level(logging.DEBUG, logger="nudge")
    at(daemon, T0 + MINUTE_US)
    add_orders(engine, T0 + MINUTE_US)
    at(daemon, T0 + 2 * MINUTE_US)
    logged = [(r.levelno, r.getMessage()) for r in caplog.records]
    ticks = [(level, message) for level, message in logged if message.startswith("tick")]
    assert ticks == [
        (logging.DEBUG, f"tick {iso(T0 + MINUTE_US)}: 0 occurrences acted, 0 actions, 0 queued"),
        (logging.INFO, f"tick {iso(T0 + 2 * MINUTE_US)}: 1 occurrences acted, 1 actions, 1 queued"),
    ]


def test_the_rules_warnings_are_logged_when_they_are_loaded(engine, tmp_path, caplog) -> None:
    """What `nudge check` warns of (a channel not configured, an event name the shop never
    sent) is in the daemon's log too, once per load."""
    text = 'rule "fit"\n  when order.payed\n  then followup "fit_check" via hook2\n'
    rules = write_rules(tmp_path / "rules", {"fit.rules": text}, ["fit_check"])
    caplog.set_level(logging.INFO, logger="nudge")
    daemon = stepper(engine, tmp_path, rules)
    at(daemon, T0 + HOUR_US)
    (warned,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned.startswith("the rules have warnings:")
    assert "warning[W203]" in warned and "warning[W207]" in warned


def test_a_gift_is_a_task_for_the_fulfilment_team(engine, tmp_path) -> None:
    """LANGUAGE.md 3.6: `nudge tasks --for fulfilment` lists the gifts."""
    text = 'rule "box"\n  when order.paid\n  then gift "mooncake box" and task "call"\n'
    rules = write_rules(tmp_path / "rules", {"box.rules": text}, [])
    daemon = stepper(engine, tmp_path, rules)
    add_orders(engine, T0 + 10 * MINUTE_US)
    at(daemon, T0 + HOUR_US)
    found = list_tasks(engine, assignee="fulfilment")
    assert [(task.kind, task.title) for task in found] == [("gift", "mooncake box")]
    assert [task.assignee for task in list_tasks(engine)] == ["fulfilment", None]


def test_an_editor_s_lock_file_beside_the_rules_changes_nothing(engine, tmp_path) -> None:
    rules = write_rules(tmp_path / "rules", {"fit.rules": FIT}, ["fit_check"])
    daemon = stepper(engine, tmp_path, rules)
    # Emacs marks a file being edited with a link to nowhere named like a rule file.
    (rules / ".#fit.rules").symlink_to("root@host.4242:1764000000")
    (rules / "old.rules").mkdir()
    add_orders(engine, T0 + 10 * MINUTE_US)
    report = at(daemon, T0 + HOUR_US)
    assert report is not None and report.recorded.occurrences == 1
    assert acted_rules(engine) == [("fit", iso(T0 + 10 * MINUTE_US))]


def test_a_template_edited_to_include_itself_fails_its_messages_not_the_step(
    engine, tmp_path, caplog
) -> None:
    """Templates are read when a message is sent, so one can break while the daemon runs. The
    edit is checked at the next step, and reported once; a template that includes itself fails
    its own messages (status `failed`, the reason in `last_error`); the step goes on and the
    other messages are sent, with no traceback."""
    rules = write_rules(tmp_path / "rules", {"shop.rules": FIT + THANKS}, ["fit_check", "thanks"])
    daemon = stepper(engine, tmp_path, rules)
    (rules / "templates" / "thanks.txt").write_text('{% include "thanks" %}', encoding="utf-8")
    add_orders(engine, T0 + 10 * MINUTE_US, T0 + 20 * MINUTE_US)
    caplog.set_level(logging.INFO)
    assert at(daemon, T0 + HOUR_US) is not None
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(outbox.c.status, outbox.c.last_error, outbox.c.payload).order_by(outbox.c.id)
        ).all()
    assert sorted((r.payload["template"], r.status, r.last_error) for r in rows) == [
        ("fit_check", "sent", None),
        ("fit_check", "sent", None),
        (
            "thanks",
            "failed",
            "template 'thanks': it includes itself, without end (thanks → thanks)",
        ),
        (
            "thanks",
            "failed",
            "template 'thanks': it includes itself, without end (thanks → thanks)",
        ),
    ]
    assert [line["subject"] for line in jsonl(tmp_path / "outbox.jsonl")] == [
        "fit_check for c1"
    ] * 2
    assert not [r for r in caplog.records if r.exc_info]
    (error,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert error.startswith("the rules' templates do not check; the running rules stay")
    (sent,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("outbox:")]
    assert sorted(sent.removeprefix("outbox: ").split(", ")) == ["2 failed", "2 sent"]
    assert f"{rules / 'templates' / 'thanks.txt'}:1:12" in error
    caplog.clear()
    assert at(daemon, T0 + 2 * HOUR_US) is not None  # and it keeps going, without saying it again
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    (rules / "templates" / "thanks.txt").write_text("thanks, {{ customer.name }}")
    assert at(daemon, T0 + 3 * HOUR_US) is not None
    assert any("rules loaded" in r.getMessage() for r in caplog.records)
    # A template gone is the templates' fault too, not the rule files'.
    (rules / "templates" / "thanks.txt").unlink()
    caplog.clear()
    assert at(daemon, T0 + 4 * HOUR_US) is not None
    (error,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert error.startswith("the rules' templates do not check") and "E206" in error


def test_an_edit_naming_a_template_not_yet_written_is_loaded_once_it_is_written(
    engine, tmp_path, caplog
) -> None:
    """A new rule written before its template does not check (E206), and the running rules
    stay. Writing the template mends the edit: the next step loads it, though the template is
    none of those the running rules read. So does removing the second file of a template that
    two files matched."""
    rules = write_rules(tmp_path / "rules", {"fit.rules": FIT}, ["fit_check"])
    daemon = stepper(engine, tmp_path, rules)
    caplog.set_level(logging.INFO, logger="nudge")
    (rules / "thanks.rules").write_text(THANKS, encoding="utf-8")
    at(daemon, T0 + HOUR_US)
    (error,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert "E206" in error
    caplog.clear()
    at(daemon, T0 + 2 * HOUR_US)  # nothing changed: not said again
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    (rules / "templates" / ".thanks.txt.swp").write_bytes(b"\0vim")  # the editor's, not one
    (rules / "templates" / "thanks.bak").write_text("a backup, not one either")
    at(daemon, T0 + 3 * HOUR_US)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    (rules / "templates" / "thanks.txt").write_text("thanks, {{ customer.name }}")
    (rules / "templates" / "thanks.html").write_text("<p>thanks</p>")
    at(daemon, T0 + 4 * HOUR_US)  # two files match `thanks`: still E206, said once
    (error,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert "several files match" in error
    (rules / "templates" / "thanks.html").unlink()
    add_orders(engine, T0 + 5 * HOUR_US + 10 * MINUTE_US)
    at(daemon, T0 + 6 * HOUR_US)
    assert any("rules loaded" in r.getMessage() for r in caplog.records)
    assert acted_rules(engine) == [
        ("fit", iso(T0 + 5 * HOUR_US + 10 * MINUTE_US)),
        ("thanks", iso(T0 + 5 * HOUR_US + 10 * MINUTE_US)),
    ]
    caplog.clear()
    (rules / "templates" / "thanks.html").write_text("sent by no rule's message any more")
    assert daemon.reload() is False  # in force again, only the templates the rules read count


def test_the_daemon_watches_the_template_files_that_may_be_served(engine, tmp_path) -> None:
    """After a bad edit every file of the templates folder is watched, but those in a folder
    that a backup left (`emails.bak/`), which hold no template: they are not served either
    (`find_template`). A templates folder named like a backup in nudge.yaml (`templates.old`)
    is the merchant's: watched, and served."""
    rules = write_rules(tmp_path / "rules", {"fit.rules": FIT}, [])
    folder = tmp_path / "templates.old"
    for name in ("fit_check.txt", "emails/welcome.txt", "emails.bak/welcome.txt"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("hi")
    config = config_for(tmp_path, str(engine.url), templates=folder)
    daemon = Daemon(rules, config, engine, FixedClock(T0))
    watched = daemon._template_files()
    assert [p.relative_to(folder).as_posix() for p in watched] == [
        "emails/welcome.txt",
        "fit_check.txt",
    ]
    for path in folder.rglob("*.txt"):
        name = path.relative_to(folder).with_suffix("").as_posix()
        try:
            served = find_template(folder, name)
        except TemplateError:
            served = None
        assert (served == path) == (path in watched), name


def test_only_the_templates_the_rules_send_or_include_are_watched(engine, tmp_path, caplog) -> None:
    # An editor's swap file, or a file no rule reads (a database kept in the folder), must not
    # reload the rules at every step; an edit of an included part must.
    rules = write_rules(tmp_path / "rules", {"fit.rules": FIT}, ["thanks", "footer"])
    (rules / "templates" / "fit_check.txt").write_text('hi {% include "footer" %}')
    daemon = stepper(engine, tmp_path, rules)
    assert daemon.ruleset is not None
    assert sorted(p.name for p in daemon.ruleset.templates) == ["fit_check.txt", "footer.txt"]
    caplog.set_level(logging.INFO, logger="nudge")
    (rules / "templates" / ".fit_check.txt.swp").write_bytes(b"\0vim")
    (rules / "templates" / "thanks.txt").write_text("edited, sent by no rule")
    assert daemon.reload() is False
    (rules / "templates" / "footer.txt").write_text("-- the shop")
    assert daemon.reload() is True
    assert daemon.reload() is False  # and once only
    assert sum("rules loaded" in r.getMessage() for r in caplog.records) == 1


def test_a_value_the_database_refuses_is_not_called_an_outage(engine, tmp_path, caplog) -> None:
    """A statement the server refuses (a value too long or too large for its column) fails the
    step with words that send the operator to the rules, not to the database."""
    rules = write_rules(tmp_path / "rules", {"fit.rules": FIT}, ["fit_check"])
    daemon = stepper(engine, tmp_path, rules)
    add_orders(engine, T0 + 5 * MINUTE_US)

    @event.listens_for(engine, "before_cursor_execute")
    def refuse(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("INSERT INTO occurrences"):
            raise sa.exc.DataError(statement, {}, Exception("value too long for type"))

    caplog.set_level(logging.ERROR, logger="nudge")
    assert at(daemon, T0 + 30 * MINUTE_US) is None
    (logged,) = [r.getMessage() for r in caplog.records]
    assert logged.startswith("tick failed, the database refused what it wrote (run `nudge check`")
    event.remove(engine, "before_cursor_execute", refuse)
    assert at(daemon, T0 + 60 * MINUTE_US).recorded.occurrences == 1


def test_a_database_that_goes_away_fails_steps_not_the_daemon(engine, tmp_path, caplog) -> None:
    """While no connection can be made, each step logs and returns None; once the database is
    back the next step catches up: what fell due meanwhile acts (within grace) and is sent."""
    rules = write_rules(tmp_path / "rules", {"fit.rules": FIT}, ["fit_check"])
    daemon = stepper(engine, tmp_path, rules)
    add_orders(engine, T0 + 5 * MINUTE_US, T0 + 40 * MINUTE_US, T0 + 100 * MINUTE_US)
    assert at(daemon, T0 + 30 * MINUTE_US).recorded.occurrences == 1

    down = {"now": True}
    dbapi = engine.dialect.loaded_dbapi

    @event.listens_for(engine, "do_connect")
    def refuse(*_args: Any) -> None:
        if down["now"]:
            raise dbapi.OperationalError("connection refused: the database is down")

    engine.dispose()  # drop pooled connections: every step must connect afresh
    caplog.set_level(logging.ERROR, logger="nudge")
    for minutes in (60, 90, 120):
        assert at(daemon, T0 + minutes * MINUTE_US) is None
    assert len(caplog.records) == 3
    assert all("database unavailable" in r.getMessage() for r in caplog.records)

    down["now"] = False
    report = at(daemon, T0 + 150 * MINUTE_US)
    assert report is not None
    assert (report.start_us, report.recorded.occurrences, report.recorded.missed) == (
        T0 + 30 * MINUTE_US,
        2,
        0,
    )
    assert acted_rules(engine) == [
        ("fit", iso(T0 + 5 * MINUTE_US)),
        ("fit", iso(T0 + 40 * MINUTE_US)),
        ("fit", iso(T0 + 100 * MINUTE_US)),
    ]
    assert sorted(s for _a, s, _k in read_ledger(engine).outbox) == ["sent"] * 3
    assert len(jsonl(tmp_path / "outbox.jsonl")) == 3


def test_a_database_server_restart_costs_at_most_one_step(engine, tmp_path, db_url) -> None:
    """PostgreSQL drops every connection (a restart, a failover): the pooled connections are
    dead. At most the next step fails; the one after catches up, and nothing acts twice."""
    if engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL server's connections")
    rules = write_rules(tmp_path / "rules", {"fit.rules": FIT}, ["fit_check"])
    daemon = stepper(engine, tmp_path, rules)
    add_orders(engine, T0 + 5 * MINUTE_US, T0 + 40 * MINUTE_US)
    assert at(daemon, T0 + 30 * MINUTE_US).recorded.occurrences == 1
    admin = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    admin.dispose()
    reports = [at(daemon, T0 + minutes * MINUTE_US) for minutes in (60, 90)]
    assert reports[1] is not None
    assert acted_rules(engine) == [
        ("fit", iso(T0 + 5 * MINUTE_US)),
        ("fit", iso(T0 + 40 * MINUTE_US)),
    ]
    assert sorted(s for _a, s, _k in read_ledger(engine).outbox) == ["sent"] * 2


def refused_run(rules: Path, config_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """What `nudge run` says on standard error when it refuses to start (exit 1, no
    traceback)."""
    with pytest.raises(SystemExit) as exited:
        main(["run", str(rules), "--config", str(config_path)])
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_run_on_rules_that_do_not_check_lists_the_problems_and_exits_1(tmp_path, capsys) -> None:
    rules = write_rules(
        tmp_path / "rules", {"shop.rules": 'rule "fit"\n  when order.paid\n  then explode\n'}, []
    )
    config_path = write_config(tmp_path / "nudge.yaml", f"sqlite:///{tmp_path / 'shop.db'}")
    err = refused_run(rules, config_path, capsys)
    assert f"{rules / 'shop.rules'}:3:" in err


def test_run_with_channels_that_cannot_be_used_names_every_setting_at_fault(
    tmp_path, capsys, monkeypatch
) -> None:
    """Not one error per start: an unset secret and a bad timeout in one channel, a missing
    setting in another, all at their lines, before anything is made."""
    rules = write_rules(tmp_path / "rules", {"fit.rules": FIT}, ["fit_check"])
    monkeypatch.delenv("NUDGE_TEST_UNSET", raising=False)
    hooks = {
        "hook": {
            "type": "webhook",
            "url": "https://hooks.example.com",
            "secret_env": "NUDGE_TEST_UNSET",
            "timeout": 0,
        },
        "sms": {"type": "sms"},
    }
    config_path = write_config(
        tmp_path / "nudge.yaml", f"sqlite:///{tmp_path / 'shop.db'}", channels=hooks
    )
    err = refused_run(rules, config_path, capsys)
    found = [line for line in err.splitlines() if line.startswith("error[")]
    assert found == [
        "error[E603]: channels.hook: environment variable NUDGE_TEST_UNSET (named by"
        " `secret_env`) is not set",
        "error[E602]: channels.hook: `timeout` must be a positive number of seconds or a"
        " duration such as 10s or 1m; got 0",
        "error[E602]: channels.sms: `url` is required",
    ]
    assert not (tmp_path / "shop.db").exists()


def test_run_with_a_file_channel_it_cannot_write_to_names_the_path_at_start(
    tmp_path, capsys
) -> None:
    """A file in the way of the folder, a folder in place of the file: the daemon ran, and each
    message was retried for a day before it was a dead letter; now it does not start, and the
    error is at the `path` of each. A good file channel's file is made."""
    rules = write_rules(tmp_path / "rules", {"fit.rules": FIT}, ["fit_check"])
    (tmp_path / "notes").write_text("a file", encoding="utf-8")
    (tmp_path / "sent").mkdir()
    files = {
        "file": {"type": "file", "path": "notes/outbox.jsonl"},
        "copy": {"type": "file", "path": "sent"},
        "spare": {"type": "file", "path": "new/outbox.jsonl"},
    }
    config_path = write_config(
        tmp_path / "nudge.yaml", f"sqlite:///{tmp_path / 'shop.db'}", channels=files
    )
    err = refused_run(rules, config_path, capsys)
    found = [line for line in err.splitlines() if line.startswith(("error[", " -->"))]
    assert found == [  # in the file's order
        f"error[E605]: channels.copy: cannot write {tmp_path / 'sent'}: Is a directory",
        f" --> {config_path}:{place_of_path(config_path, 'sent')}",
        f"error[E605]: channels.file: cannot write {tmp_path / 'notes' / 'outbox.jsonl'}:"
        f" {tmp_path / 'notes'} is a file, not a folder",
        f" --> {config_path}:{place_of_path(config_path, 'notes/outbox.jsonl')}",
    ]
    assert "help: every message of this channel is added to that file" in err
    assert not (tmp_path / "shop.db").exists()
    assert (tmp_path / "new" / "outbox.jsonl").read_bytes() == b""


def place_of_path(config: Path, value: str) -> str:
    """`LINE:COLUMN` of the setting `path: VALUE` in the configuration file `config`."""
    for number, line in enumerate(config.read_text(encoding="utf-8").splitlines(), 1):
        if line.endswith(f"path: {value}"):
            return f"{number}:{len(line) - len(value) + 1}"
    raise AssertionError(f"no `path: {value}` in {config}")


@pytest.mark.parametrize(
    ("withdrawal", "policies"),
    [
        ("event", ""),
        ("event", "limit marketing to 5 per 1d\n"),
        ("import", "limit marketing to 5 per 1d\n"),
    ],
    ids=["unsubscribe-event", "unsubscribe-event-capped", "accepts-marketing-false-capped"],
)
def test_consent_withdrawn_after_queueing_cancels_the_message(
    engine, tmp_path, withdrawal, policies
) -> None:
    """A marketing message due at 23:00 waits for 08:00 (quiet hours); its customer withdraws
    consent at 02:00: at 08:00 it is cancelled, not sent. Another customer's goes out."""
    text = policies + "quiet hours 22:00 to 08:00\n" + THANKS
    rules = write_rules(tmp_path / "rules", {"shop.rules": text}, ["thanks"])
    daemon = stepper(engine, tmp_path, rules)
    import_customer_rows(engine, [{"id": "c2", "name": "Bo", "accepts_marketing": True}], "UTC")
    night = T0 + 11 * HOUR_US  # 23:00 UTC
    add_orders(engine, night, customer="c1")
    add_orders(engine, night, customer="c2")
    at(daemon, night + 30 * MINUTE_US)
    if withdrawal == "event":
        unsubscribe = [
            {"customer": "c1", "type": "customer.unsubscribed", "at": iso(night + 3 * HOUR_US)}
        ]
        assert not import_event_rows(engine, unsubscribe, "UTC").problems
    else:
        at(daemon, night + 3 * HOUR_US)
        import_customer_rows(engine, [{"id": "c1", "accepts_marketing": False}], "UTC")
    morning = T0 + 20 * HOUR_US  # 08:00 UTC
    at(daemon, morning + 5 * MINUTE_US)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(outbox.c.status, outbox.c.payload).order_by(outbox.c.id)
        ).all()
    assert {(r.payload["customer_id"], r.status) for r in rows} == {
        ("c1", "cancelled"),
        ("c2", "sent"),
    }
    assert all(r.payload["at"] == iso(morning) for r in rows)
    assert [line["customer_id"] for line in jsonl(tmp_path / "outbox.jsonl")] == ["c2"]
    # What the daemon decided at the due time stands: the message was due and planned.
    assert [(r.customer_id, r.status) for r in history(engine, night, morning)] == [
        ("c1", "sent"),
        ("c2", "sent"),
    ]


def test_a_step_longer_than_the_interval_is_logged_once_not_at_each_run_it_outlasts(
    tmp_path, monkeypatch, caplog
) -> None:
    """A step that outlasts several intervals (a catch-up, a burst, a slow database): the
    runs of the interval job that come meanwhile return at once, and the overrun is logged
    once, in words. APScheduler warned at each of them that it "skipped" the job, "maximum
    number of running instances reached" (with `tick_seconds: 0.01`, a flood)."""
    rules = write_rules(tmp_path / "rules", {"fit.rules": FIT}, ["fit_check"])
    engine = sa.create_engine("sqlite://")  # never reached: the step is the test's
    daemon = Daemon(rules, config_for(tmp_path, str(engine.url), tick_seconds=1.0), engine)
    release, steps = threading.Event(), []

    def slow_step() -> None:
        steps.append(threading.current_thread().name)
        release.wait(30)

    monkeypatch.setattr(daemon, "step", slow_step)
    runs: list[int] = []
    caplog.set_level(logging.INFO)
    scheduler = daemon.scheduler = daemon._scheduler()
    scheduler.add_listener(
        lambda event: runs.append(event.code), EVENT_JOB_SUBMITTED | EVENT_JOB_MAX_INSTANCES
    )
    scheduler.start()
    try:
        deadline = time.monotonic() + 30
        while len(runs) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        release.set()
        scheduler.shutdown(wait=True)
    assert len(runs) >= 4  # the step, then three runs while it was in flight
    assert len(steps) == 1
    warned = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.name for r in warned] == ["nudge.daemon"]
    assert (
        warned[0]
        .getMessage()
        .startswith(
            "a step is still running after tick_seconds (1.0s): the next tick comes at the first"
            " interval after it ends"
        )
    )


def test_a_run_of_the_job_that_comes_as_the_daemon_stops_takes_no_step(tmp_path) -> None:
    """SIGTERM: `run` sets `stopping`, then waits for the step in flight. A run of the
    interval job that had looked at `stopping` just before, and took the lock just after,
    began a whole step (a tick) while `run`, which had seen no step in flight, unregistered
    the daemon and closed its database. It now asks once it holds the lock, and `run` holds
    the lock once the step in flight is done: no step begins after."""
    rules = write_rules(tmp_path / "rules", {"fit.rules": FIT}, ["fit_check"])
    engine = sa.create_engine("sqlite://")  # never reached: the steps are the test's
    daemon = Daemon(rules, config_for(tmp_path, str(engine.url), tick_seconds=1.0), engine)
    steps: list[str] = []
    in_step, release = threading.Event(), threading.Event()

    def step() -> None:
        steps.append(threading.current_thread().name)
        in_step.set()
        release.wait(30)

    daemon.step = step  # type: ignore[method-assign]
    lock = daemon._stepping

    class SignalMeanwhile:
        """The lock, with SIGTERM's `stopping` set just before it is taken."""

        def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
            daemon.stopping.set()
            return lock.acquire(blocking, timeout)

        def release(self) -> None:
            lock.release()

    daemon._stepping = SignalMeanwhile()  # type: ignore[assignment]
    daemon.step_in_turn()
    assert steps == [] and not lock.locked()

    daemon._stepping = lock
    daemon.stopping.clear()
    first = threading.Thread(target=daemon.step_in_turn, name="first")
    first.start()
    assert in_step.wait(30)
    daemon.stopping.set()
    assert not daemon._hold_the_steps(0.05)  # in flight
    release.set()
    assert daemon._hold_the_steps(30)
    first.join(30)
    daemon.step_in_turn()  # after the stop: returns at once
    assert steps == ["first"]


def a_reminder_queued_then_three_days_down(engine: Engine, tmp_path: Path) -> tuple[Daemon, int]:
    """A cart reminder rule; a tick at T0 + 71 min recorded c1's reminder, due at T0 + 70 min,
    and the daemon stopped before sending it. Returns the daemon and when it comes back, three
    days later."""
    text = 'rule "cart"\n  when cart.updated + 1h\n  then message "remind"\n'
    rules = write_rules(tmp_path / "rules", {"cart.rules": text}, ["remind"])
    daemon = stepper(engine, tmp_path, rules)
    carts = [{"customer": "c1", "type": "cart.updated", "at": iso(T0 + 10 * MINUTE_US)}]
    assert not import_event_rows(engine, carts, "UTC").problems
    assert daemon.ruleset is not None
    tick(engine, daemon.ruleset, daemon.config, daemon.name, T0 + 71 * MINUTE_US)
    back = T0 + 72 * HOUR_US
    return daemon, back


def test_a_message_queued_before_downtime_beyond_grace_is_missed_not_sent(
    engine, tmp_path, db_url, caplog, capsys
) -> None:
    """A tick recorded a cart reminder, and the daemon stopped before sending it (killed
    after its tick); it came back three days later. The reminder is not sent days late: it is
    missed, as an occurrence due then would be, and `nudge status` and `nudge outbox --missed`
    show it; `history` keeps it sent (decided at its due time, counted by the cap). The
    reminder the first tick back records, due within grace, goes out."""
    daemon, back = a_reminder_queued_then_three_days_down(engine, tmp_path)
    carts = [{"customer": "c1", "type": "cart.updated", "at": iso(back - 2 * HOUR_US)}]
    assert not import_event_rows(engine, carts, "UTC").problems
    caplog.set_level(logging.INFO, logger="nudge")
    at(daemon, back)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(outbox).order_by(outbox.c.id)).all()
    assert [(r.payload["at"], r.status) for r in rows] == [
        (iso(T0 + 70 * MINUTE_US), "missed"),
        (iso(back - HOUR_US), "sent"),
    ]
    assert [line["payload"]["at"] for line in jsonl(tmp_path / "outbox.jsonl")] == [
        iso(back - HOUR_US)
    ]
    (warned,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned.startswith(
        "1 message to a customer was not sent: the daemon was down (no tick since"
        f" {iso(T0 + 71 * MINUTE_US)}) for longer than the grace period (and a tick interval"
        " and a second) after it could go out."
    )
    assert [(r.rule, r.status) for r in history(engine, T0, back)] == [
        ("cart", "sent"),
        ("cart", "sent"),
    ]
    engine.dispose()
    main(["status", "--db", db_url])
    assert "outbox missed: 1 (not sent: queued before downtime beyond grace;" in (
        capsys.readouterr().out
    )
    main(["outbox", "--missed", "--db", db_url])
    header, line, counts = capsys.readouterr().out.splitlines()
    assert header.split()[:2] == ["ID", "STATUS"] and "QUEUED" in header
    assert line.split()[:2] == [str(rows[0].id), "missed"]
    assert f"`nudge outbox --retry {rows[0].id}` sends it all the same" in line
    assert counts == "0 pending, 1 sent, 0 failed, 0 dead, 0 cancelled, 1 missed"


def test_a_rule_set_under_a_new_folder_name_is_noted_as_new(engine, tmp_path, caplog) -> None:
    """A rule set is named after its folder: renamed, it is a new one, which starts from now.
    The daemon says so when the database knows other rule sets but not this name."""
    rules = write_rules(tmp_path / "rules", {"fit.rules": FIT}, ["fit_check"])
    stepper(engine, tmp_path, rules)
    caplog.set_level(logging.WARNING, logger="nudge")
    config = config_for(tmp_path, str(engine.url))
    Daemon(rules, config, engine, FixedClock(T0))._note_a_new_name()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # it carries on

    renamed = rules.rename(tmp_path / "shoprules")
    Daemon(renamed, config, engine, FixedClock(T0))._note_a_new_name()
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warning.startswith("the rule set 'shoprules' (named after its folder) is new")
    assert f"'rules' (last tick {iso(T0)})" in warning


def test_a_rule_set_run_through_a_link_is_named_after_the_link(engine, tmp_path, caplog) -> None:
    """`nudge run shop/current`, `current` a link to the release deployed, as deploy tools
    make it: the rule set is named after the folder given, not the one the link leads to, so
    that a deploy that moves the link and restarts the daemon carries on where it stopped
    (what fell due meanwhile acts late) instead of starting a new rule set."""
    releases = [
        write_rules(tmp_path / "releases" / name, {"fit.rules": FIT}, ["fit_check"])
        for name in ("v41", "v42")
    ]
    current = tmp_path / "current"
    current.symlink_to(releases[0], target_is_directory=True)
    stepper(engine, tmp_path, current)
    add_orders(engine, T0 + 10 * MINUTE_US)  # while the daemon is stopped for the deploy

    current.unlink()
    current.symlink_to(releases[1], target_is_directory=True)
    caplog.set_level(logging.WARNING, logger="nudge")
    config = config_for(tmp_path, str(engine.url))
    daemon = Daemon(current, config, engine, FixedClock(T0 + HOUR_US))
    daemon._note_a_new_name()
    assert daemon.name == "current"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert daemon.step() is not None
    assert acted_rules(engine) == [("fit", iso(T0 + 10 * MINUTE_US))]


def test_a_daemon_on_the_demo_s_database_says_so(engine, tmp_path, caplog) -> None:
    rules = write_rules(tmp_path / "rules", {"fit.rules": FIT}, ["fit_check"])
    config = config_for(tmp_path, str(engine.url))
    caplog.set_level(logging.WARNING, logger="nudge")
    shop = {"id": "c1", "name": "Ann"}
    import_customer_rows(engine, [shop], "UTC")
    Daemon(rules, config, engine, FixedClock(T0))._note_a_demo_shop()
    assert not caplog.records  # a shop's own
    with engine.begin() as conn:
        conn.execute(customers.delete())
    import_customer_rows(engine, [{**shop, DEMO_MARK: DEMO_VALUE}], "UTC")
    Daemon(rules, config, engine, FixedClock(T0))._note_a_demo_shop()
    (warning,) = [r.getMessage() for r in caplog.records]
    assert warning.startswith("the database holds the synthetic shop of `nudge demo`")


def test_a_rule_set_run_as_dot_inside_a_linked_folder_is_named_after_the_link(
    engine, tmp_path, monkeypatch
) -> None:
    """`cd /srv/shop/current && nudge run .`: the shell's current folder is the link, and so is
    the rule set's name (not the release it leads to); a `$PWD` that is not the current folder
    (a stale environment) is not believed."""
    release = write_rules(tmp_path / "releases" / "v41", {"fit.rules": FIT}, ["fit_check"])
    current = tmp_path / "current"
    current.symlink_to(release, target_is_directory=True)
    config = config_for(tmp_path, str(engine.url))
    monkeypatch.chdir(current)
    monkeypatch.setenv("PWD", str(current))
    assert Daemon(Path("."), config, engine, FixedClock(T0)).name == "current"
    monkeypatch.setenv("PWD", str(tmp_path))
    assert Daemon(Path("."), config, engine, FixedClock(T0)).name == "v41"


def test_a_backlog_the_daemon_works_through_while_it_runs_is_sent_not_missed(
    engine, tmp_path, monkeypatch
) -> None:
    """`grace: 0s`, and a channel so slow that each step sends one message (its dispatch
    ends at half an interval): four messages queued at once go out one a step, the last
    ninety seconds after its time. The daemon never stopped: none is missed. They were, all
    but the first two, "more than the grace period and a tick interval" late."""
    rules = write_rules(tmp_path / "rules", {"fit.rules": FIT}, ["fit_check"])
    config = config_for(tmp_path, str(engine.url), grace_seconds=0.0, tick_seconds=30.0)
    people = [{"id": f"c{i}", "name": f"C{i}"} for i in range(4)]
    import_customer_rows(engine, people, "UTC")
    daemon = Daemon(rules, config, engine, FixedClock(T0))
    assert daemon.step() is not None
    real = engine_daemon.dispatch_due
    monkeypatch.setattr(engine_daemon, "DISPATCH_BATCH", 2)  # one sent: the step's time is up
    monkeypatch.setattr(
        engine_daemon, "dispatch_due", lambda *a, **k: real(*a, **{**k, "limit": 1})
    )
    for person in people:
        add_orders(engine, T0 + US, customer=person["id"])
    for step in range(1, 5):
        at(daemon, T0 + step * 30 * US + step * 1_000)  # each a millisecond later
    with engine.connect() as conn:
        assert conn.execute(sa.select(outbox.c.status)).scalars().all() == ["sent"] * 4
    assert len(jsonl(tmp_path / "outbox.jsonl")) == 4


def test_a_message_the_cap_held_for_after_quiet_hours_is_missed_after_downtime(
    engine, tmp_path
) -> None:
    """A thank-you ordered at 23:00 waits for the end of quiet hours, 08:00, and for the cap
    to decide it then (`pending`); the daemon stopped at 23:01 and came back three days
    later. Its first tick decides it sent (`history`), and the message, to go out at 08:00
    three days ago, is missed: it was queued by that tick, and went out days late."""
    text = (
        "limit marketing to 1 per 1d\nquiet hours 22:00 to 08:00\n"
        'rule "thanks"\n  when order.paid\n  then message "thanks"\n'
    )
    rules = write_rules(tmp_path / "rules", {"thanks.rules": text}, ["thanks"])
    daemon = stepper(engine, tmp_path, rules)
    add_orders(engine, T0 + 11 * HOUR_US)
    at(daemon, T0 + 11 * HOUR_US + MINUTE_US)
    with engine.connect() as conn:
        assert conn.execute(sa.select(actions.c.status)).scalars().all() == ["pending"]
    at(daemon, T0 + 3 * DAY_US)
    assert [(r.status, r.at_us) for r in history(engine, T0, T0 + DAY_US)] == [
        ("sent", T0 + 20 * HOUR_US)
    ]
    with engine.connect() as conn:
        assert conn.execute(sa.select(outbox.c.status)).scalars().all() == ["missed"]
    assert jsonl(tmp_path / "outbox.jsonl") == []


def test_a_second_daemon_back_from_downtime_sends_nothing_its_peer_s_first_tick_will_miss(
    engine, tmp_path
) -> None:
    """Two daemons on PostgreSQL come back together after three days. The first one's tick,
    the first back, holds the rule set's lock while it works (here: a transaction holding that
    row) and marks the reminders queued before the downtime missed when it commits; the second
    one's tick meanwhile finds the lock taken and skips. Its dispatch must not send those
    reminders, days late, before the first one's tick marks them: once that tick is done they
    are missed, not sent, whichever daemon dispatched first."""
    if engine.dialect.name != "postgresql":
        pytest.skip("on SQLite one daemon runs")
    daemon, back = a_reminder_queued_then_three_days_down(engine, tmp_path)
    with engine.connect() as first, first.begin():  # the first daemon's tick, in flight
        first.execute(
            sa.select(rule_set_state.c.name)
            .where(rule_set_state.c.name == daemon.name)
            .with_for_update()
        ).one()
        report = at(daemon, back)
        assert report is not None and report.skipped
        with engine.connect() as conn:
            assert conn.execute(sa.select(outbox.c.status)).scalars().all() == ["pending"]
    assert jsonl(tmp_path / "outbox.jsonl") == []
    at(daemon, back + US)  # the tick back, done now: it marks the reminder missed
    with engine.connect() as conn:
        assert conn.execute(sa.select(outbox.c.status)).scalars().all() == ["missed"]
    assert jsonl(tmp_path / "outbox.jsonl") == []


class _Moving(FixedClock):
    """A clock that moves on two seconds each time it is read."""

    def now_us(self) -> int:
        self.current += 2 * US
        return self.current - 2 * US


def test_a_step_tries_each_message_once_while_its_channel_is_down(
    engine, tmp_path, monkeypatch
) -> None:
    """`retry_base: 1s`, and the webhook's server down: in each batch the first message fails
    (its retry comes within a second), the others are not tried (they wait as long). The
    step's next batch, two seconds later, claimed them again, and again: a step tries each
    message at most once, and comes to every message due."""
    rules = write_rules(
        tmp_path / "rules",
        {"fit.rules": 'rule "fit"\n  when order.paid\n  then followup "fit_check" via hook\n'},
        ["fit_check"],
    )
    hook = Channel("hook", "webhook", {"url": f"http://127.0.0.1:{free_port()}/hook"})
    config = dataclasses.replace(
        config_for(tmp_path, str(engine.url), retry_base_seconds=1.0, tick_seconds=2.0),
        channels={"hook": hook},
    )
    people = [{"id": f"c{i}", "name": f"C{i}"} for i in range(6)]
    import_customer_rows(engine, people, "UTC")
    daemon = Daemon(rules, config, engine, FixedClock(T0))
    assert daemon.step() is not None
    for person in people:
        add_orders(engine, T0 + US, customer=person["id"])
    tried: list[int] = []
    real = engine_daemon.dispatch_due

    def dispatch(*args: Any, **kwargs: Any) -> Any:
        report = real(*args, **kwargs)
        tried.extend(outcome.outbox_id for outcome in report.outcomes)
        return report

    monkeypatch.setattr(engine_daemon, "DISPATCH_BATCH", 2)
    monkeypatch.setattr(engine_daemon, "dispatch_due", dispatch)
    daemon.clock = _Moving(T0 + 10 * US)
    assert daemon.step() is not None
    with engine.connect() as conn:
        queued = conn.execute(sa.select(outbox.c.id, outbox.c.status)).all()
    assert sorted(tried) == sorted(oid for oid, _ in queued)
    assert {status for _, status in queued} == {"pending"}


def test_a_rule_set_back_from_downtime_misses_nothing_another_one_kept_sending(
    engine, tmp_path
) -> None:
    """Two rule sets share the database: `shop` runs all along, `old` stopped long ago. Every
    daemon dispatches the whole outbox, so `shop`'s daemon sent, and sends, whatever waits:
    the outbox had no downtime. `old` coming back marked missed the reminder `shop`'s daemon
    had in its backlog (a slow channel) since more than grace, though a daemon ran."""
    config = config_for(tmp_path, str(engine.url), grace_seconds=60.0, tick_seconds=30.0)
    import_customer_rows(engine, [{"id": "c1", "name": "Ann", "accepts_marketing": True}], "UTC")
    text = 'rule "cart"\n  when cart.updated + 1h\n  then message "remind"\n'
    shop = load_rule_set(write_rules(tmp_path / "shop", {"cart.rules": text}, ["remind"]), config)
    old = load_rule_set(write_rules(tmp_path / "old", {"fit.rules": FIT}, ["fit_check"]), config)
    tick(engine, old, config, "old", T0)
    tick(engine, shop, config, "shop", T0)
    carts = [{"customer": "c1", "type": "cart.updated", "at": iso(T0 + 10 * MINUTE_US)}]
    assert not import_event_rows(engine, carts, "UTC").problems
    for minute in range(70, 100):  # `shop`'s daemon ticks every minute; its channel is slow
        assert not tick(engine, shop, config, "shop", T0 + minute * MINUTE_US).missed_messages
    back = tick(engine, old, config, "old", T0 + 100 * MINUTE_US)
    assert back.missed_messages == []
    with engine.connect() as conn:
        assert conn.execute(sa.select(outbox.c.status)).scalars().all() == ["pending"]


def test_a_rule_set_renamed_after_downtime_sends_nothing_queued_before_it(engine, tmp_path) -> None:
    """The daemon stopped for three days with a reminder queued; its folder was renamed
    meanwhile (a new rule set, which starts from now). Its first tick is the first of any
    since the downtime: the reminder is missed, not sent three days late."""
    daemon, back = a_reminder_queued_then_three_days_down(engine, tmp_path)
    renamed = daemon.rules_dir.rename(tmp_path / "shoprules")
    daemon = Daemon(renamed, daemon.config, engine, FixedClock(back))
    report = daemon.step()
    assert report is not None and len(report.missed_messages) == 1
    with engine.connect() as conn:
        assert conn.execute(sa.select(outbox.c.status)).scalars().all() == ["missed"]
    assert jsonl(tmp_path / "outbox.jsonl") == []
