"""`nudge status`: daemons running or silent, and its times in shop time as the other commands
print them."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import pytest
import sqlalchemy as sa
from daemon_helpers import DaemonProcess, config_for, write_config, write_rules

from cli import main
from engine.checking.ruleset import load_rule_set
from engine.clock import FixedClock, SystemClock
from engine.daemon import Daemon
from engine.evaluation.tick import tick
from engine.status import ago, pid_space, silent_after_us, status, stopped
from engine.storage.db import open_database
from engine.storage.tables import daemons
from engine.timeutil import US, local_text, parse_moment

NOW = parse_moment("2026-11-25T12:05:30Z", "UTC")
MINUTE_US = 60 * US


def test_a_daemon_not_heard_from_in_three_ticks_is_silent_and_its_row_stays(db_url) -> None:
    """Three tick intervals without a heartbeat (a minute at least) make a daemon silent; the
    rows are only read, never removed."""
    engine = open_database(db_url)
    beats = {"live": NOW - 5 * US, "a minute": NOW - MINUTE_US, "edge": NOW - 90 * US}
    beats |= {"gone": NOW - 90 * US - 1, "long gone": NOW - 24 * 60 * MINUTE_US}
    rows = [
        {"id": name, "host": name, "pid": 1, "started_us": NOW - 3600 * US, "heartbeat_us": beat}
        for name, beat in beats.items()
    ]
    with engine.begin() as conn:
        conn.execute(daemons.insert(), rows)
    assert silent_after_us(30) == 90 * US
    seen = {d.host: d.silent for d in status(engine, NOW, tick_seconds=30).daemons}
    assert {name for name, silent in seen.items() if silent} == {"gone", "long gone"}
    # A short interval (a test's 0.2 s) still leaves a minute.
    seen = {d.host: d.silent for d in status(engine, NOW, tick_seconds=0.2).daemons}
    assert {name for name, silent in seen.items() if silent} == {"edge", "gone", "long gone"}
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(daemons)).scalar_one() == 5
    engine.dispose()


def test_a_daemon_is_judged_by_its_own_interval_where_it_noted_one(db_url, tmp_path) -> None:
    """A daemon ticking every ten minutes, read by a `status` whose configuration says 30 s,
    is running five minutes after its last heartbeat, and silent after half an hour."""
    engine = open_database(db_url)
    rules = write_rules(tmp_path / "rules", {"a.rules": 'when order.paid then tag "x"'}, [])
    config = config_for(tmp_path, db_url, tick_seconds=600)
    daemon = Daemon(rules, config, engine, FixedClock(NOW - 5 * MINUTE_US))
    daemon._register()
    (seen,) = status(engine, NOW, tick_seconds=30).daemons
    assert not seen.silent
    (later,) = status(engine, NOW + 26 * MINUTE_US, tick_seconds=30).daemons
    assert later.silent
    engine.dispose()


@pytest.mark.parametrize(
    ("span_us", "text"),
    [
        (-2 * US, "just now"),
        (999_999, "just now"),
        (1 * US, "1 s ago"),
        (89 * US, "89 s ago"),
        (90 * US, "1 min ago"),
        (89 * MINUTE_US + 59 * US, "89 min ago"),
        (90 * MINUTE_US, "1 h ago"),
        (47 * 60 * MINUTE_US, "47 h ago"),
        (48 * 60 * MINUTE_US, "2 d ago"),
    ],
)
def test_ago_reads_at_a_glance(span_us: int, text: str) -> None:
    assert ago(span_us) == text


def test_status_prints_shop_time_and_a_killed_daemon_as_silent(tmp_path, capsys) -> None:
    """Two daemons' rows as `nudge run` writes them: one beat a few seconds ago, one went
    silent ten minutes ago without unregistering (killed with -9). Times are in the shop's zone,
    to the minute, as `nudge history` prints them."""
    db_url = f"sqlite:///{tmp_path / 'shop.db'}"
    config_path = write_config(tmp_path / "nudge.yaml", db_url, timezone="Asia/Shanghai")
    config = config_for(tmp_path, db_url, timezone="Asia/Shanghai")
    rules = write_rules(
        tmp_path / "shop", {"r.rules": 'rule "thanks"\n  when order.paid\n  then task "t"\n'}, []
    )
    engine = open_database(db_url)
    now = SystemClock().now_us()  # the CLI reads the system clock
    tick(engine, load_rule_set(rules, config), config, "shop", now - 2 * MINUTE_US)
    killed = Daemon(rules, config, engine, FixedClock(now - 70 * MINUTE_US))
    killed._register()
    killed._heartbeat(now - 10 * MINUTE_US)
    running = Daemon(rules, config, engine, FixedClock(now - 30 * MINUTE_US))
    running._register()
    running._heartbeat(now - 5 * US)
    engine.dispose()

    main(["status", "--config", str(config_path)])
    out = capsys.readouterr().out
    shop = "Asia/Shanghai"
    host_pid = re.escape(f"{socket.gethostname()}:")
    assert "shop time (Asia/Shanghai):" in out.splitlines()[0]
    assert re.search(
        rf"^rule set shop: last tick {local_text(now - 2 * MINUTE_US, shop)} \(2 min ago\),"
        rf" done up to {local_text(now - 2 * MINUTE_US, shop)}$",
        out,
        re.M,
    )
    assert re.search(
        rf"^daemon {host_pid}\d+ silent since {local_text(now - 10 * MINUTE_US, shop)} \(10 min"
        rf" ago\), started {local_text(now - 70 * MINUTE_US, shop)}: it did not stop cleanly",
        out,
        re.M,
    )
    assert re.search(
        rf"^daemon {host_pid}\d+ running since {local_text(now - 30 * MINUTE_US, shop)}, last"
        rf" seen {local_text(now - 5 * US, shop)} \([56] s ago\)$",
        out,
        re.M,
    )
    assert "no daemon running" not in out
    # No UTC instant, no seconds: the shop's clock to the minute, as elsewhere.
    assert not re.search(r"\d\d:\d\d:\d\d|\dZ\b", out)


def test_a_daemon_restarted_on_sqlite_forgets_the_one_killed_before_it(tmp_path) -> None:
    """On SQLite one daemon runs, by the lock beside the database: the one that takes it knows
    that every other daemon noted is gone (killed with -9 and restarted at once by systemd),
    and `status` shows it alone rather than the killed one silent beside it, for good."""
    db_url = f"sqlite:///{tmp_path / 'shop.db'}"
    config = config_for(tmp_path, db_url)
    rules = write_rules(tmp_path / "shop", {"a.rules": 'when order.paid then tag "x"'}, [])
    engine = open_database(db_url)
    killed = Daemon(rules, config, engine, FixedClock(NOW - 2 * MINUTE_US))
    killed._single_daemon_on_sqlite()
    killed._register()
    assert killed._lock_file is not None
    killed._lock_file.close()  # its process ends without unregistering: the lock goes with it
    restarted = Daemon(rules, config, engine, FixedClock(NOW - MINUTE_US))
    restarted._single_daemon_on_sqlite()
    restarted._register()
    (seen,) = status(engine, NOW + 10 * MINUTE_US, tick_seconds=30).daemons
    assert seen.started_us == NOW - MINUTE_US
    assert restarted._lock_file is not None
    restarted._lock_file.close()
    engine.dispose()


def test_status_with_no_daemon_says_so(tmp_path, capsys) -> None:
    db_url = f"sqlite:///{tmp_path / 'shop.db'}"
    open_database(db_url).dispose()
    main(["status", "--db", db_url])
    out = capsys.readouterr().out
    assert "No rule set has run yet" in out
    assert "no daemon running (start one with `nudge run RULES_DIR`)" in out


def test_a_daemon_killed_on_this_machine_is_shown_stopped_at_once(db_url, tmp_path, capsys):
    """`nudge run` killed with -9: its row stays, its heartbeat a second old. `status` on the
    same machine finds no process of its pid and says that it stopped, not that it is running
    until the heartbeat ages out; the row is only read."""
    engine = open_database(db_url)
    rules = write_rules(tmp_path / "rules", {"a.rules": 'when order.paid then tag "x"'}, [])
    config_path = write_config(tmp_path / "nudge.yaml", db_url, tick_seconds=1)
    daemon = DaemonProcess(rules, config_path, tmp_path / "daemon.log")
    try:
        daemon.wait_running()
        daemon.kill()
    finally:
        daemon.ensure_dead()
    main(["status", "--db", db_url])
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if line.startswith("daemon ")]
    pid = daemon.process.pid
    assert line.startswith(
        f"daemon {socket.gethostname()}:{pid} stopped without saying so (killed, or crashed):"
        " no process runs under its number on this machine; last seen "
    )
    assert "no daemon running (start one with `nudge run RULES_DIR`)" in out
    (seen,) = status(engine, SystemClock().now_us(), tick_seconds=1).daemons
    assert seen.gone and not seen.silent
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(daemons)).scalar_one() == 1
    # The next daemon to start on this machine forgets it (on PostgreSQL too, where it was
    # kept until silent for ten ticks, five minutes at least).
    config = config_for(tmp_path, db_url, tick_seconds=1)
    Daemon(rules, config, engine, SystemClock())._register()
    (seen,) = status(engine, SystemClock().now_us(), tick_seconds=1).daemons
    assert seen.pid != pid and not seen.gone
    engine.dispose()


def test_a_daemon_s_process_is_looked_for_only_where_its_number_is_its_own() -> None:
    """Another machine's, or another container's (its own process numbers, maybe the same
    machine name), or a row written before daemons noted where: not judged, as before."""
    ended = subprocess.Popen([sys.executable, "-c", ""])
    ended.wait()
    here = pid_space()
    assert stopped(here, ended.pid, here)
    assert not stopped(here, os.getpid(), here)
    assert not stopped("boot 0 pid:[1]", ended.pid, here)
    assert not stopped(None, ended.pid, here)
    assert not stopped(here, 0, here) and not stopped(here, -1, here)


def test_where_the_system_does_not_say_whose_a_number_is_no_daemon_is_judged_by_it(
    db_url, tmp_path, monkeypatch
) -> None:
    """Not Linux (no boot id, no namespace of process numbers): two machines of the same name
    (a jail, a host and its container) would each have looked for the other's daemons among
    their own processes, shown them stopped while they ran, and forgotten their rows when a
    daemon started. Their heartbeats judge them, as before."""

    def not_here(path: object) -> str:
        raise OSError(f"no {path}")

    monkeypatch.setattr(os, "readlink", not_here)
    here = pid_space()
    assert here is None
    ended = subprocess.Popen([sys.executable, "-c", ""])  # another machine's daemon's number
    ended.wait()
    assert not stopped(here, ended.pid, here)
    engine = open_database(db_url)
    now = SystemClock().now_us()
    with engine.begin() as conn:
        conn.execute(
            daemons.insert().values(
                id="elsewhere",
                host=socket.gethostname(),
                pid=ended.pid,
                started_us=now,
                heartbeat_us=now,
                tick_seconds=30,
                pid_space=here,
            )
        )
    (seen,) = status(engine, now, tick_seconds=30).daemons
    assert not seen.gone and not seen.silent
    rules = write_rules(tmp_path / "rules", {"a.rules": 'when order.paid then tag "x"'}, [])
    Daemon(rules, config_for(tmp_path, db_url), engine, SystemClock())._register()
    with engine.connect() as conn:
        assert "elsewhere" in conn.execute(sa.select(daemons.c.id)).scalars().all()
    engine.dispose()
