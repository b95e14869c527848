"""`nudge run`: the long-running daemon.

APScheduler (3.x, in memory, UTC) is only the clock: an interval job calls `Daemon.step` every
`tick_seconds`, brought forward to just after the next due time known in advance (a schedule,
`at HH:MM`: `engine.evaluation.wakeups`) when one comes sooner. Everything that decides what acts
lives in the database (`engine.evaluation.tick`), so a crash, a restart or a second daemon on
PostgreSQL never makes anything act twice. Each step:
1. reloads the rule files when they changed on disk: a set that checks clean replaces the running
   one whole; a bad edit is logged with its located errors and the running set stays;
2. runs one tick (evaluate and record what fell due);
3. dispatches the outbox rows whose send time has come.
A database that cannot be reached fails the step, not the daemon: the next step catches up. A run
of the job that comes while a step is in flight returns at once (`step_in_turn`).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import IO

import sqlalchemy as sa
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from engine.channels import check_channels
from engine.checking.ruleset import check_rule_set, imported_attributes
from engine.clock import Clock, SystemClock
from engine.config import Config
from engine.demo.mark import holds_demo_shop
from engine.errors import DatabaseError, Diagnostic, NudgeError, RuleError
from engine.evaluation.evaluate import customer_zones
from engine.evaluation.tick import TickReport, fingerprint, tick
from engine.evaluation.wakeups import knows_due_times, next_wake
from engine.language import ast
from engine.outbox.dispatch import dispatch_due
from engine.outbox.templates import left_by_an_editor
from engine.render import render_text
from engine.status import pid_space, stopped
from engine.storage.distinct import EVENT_TYPES
from engine.storage.tables import daemons, rule_set_state
from engine.timeutil import US, from_us, iso, to_us

log = logging.getLogger("nudge.daemon")
DISPATCH_BATCH = 100
STOP_GRACE_S = 8.0
# A due time known in advance this close is waited for in the step, not left to the scheduler
# (which would skip a run that comes while the job still runs); steps taken so in a row, at most.
WAKE_MARGIN_S = 0.5
MAX_STEPS_IN_TURN = 10
# How long the main thread sleeps at a time while it waits for SIGTERM or SIGINT (`_wait_for_a_
# signal`): the longest a signal can wait for its handler.
SIGNAL_POLL_S = 0.2


def _of_a_template(diagnostic: Diagnostic) -> bool:
    """An error in a template (E5xx), or a rule's template that is missing or ambiguous (E206):
    until it is mended, the running rules' messages that send it fail."""
    return diagnostic.code.startswith("E5") or diagnostic.code == "E206"


def _bad_edit(diagnostics: Sequence[Diagnostic]) -> str:
    """What the daemon logs of an edit that does not check, by what is at fault: the rule files,
    the templates, or both."""
    errors = [d for d in diagnostics if d.severity == "error"]
    in_templates = any(_of_a_template(d) for d in errors)
    in_rules = not all(_of_a_template(d) for d in errors)
    if not in_templates:
        return "the rule files changed but do not check; the running rules stay"
    what = "the rule files and their templates" if in_rules else "the rules' templates"
    return (
        f"{what} do not check; the running rules stay (a template is read when its message is"
        " sent: until it is mended, its messages fail)"
    )


def logical_path(path: Path) -> str:
    """`path` made absolute as the shell's `pwd -L` would: from the current folder as the shell
    reached it (`$PWD`, through its links, when it is that folder), not as the kernel resolves
    it. `nudge run .` in `/srv/shop/current`, a link to the release deployed, is `current`'s."""
    here = os.environ.get("PWD")
    if os.path.isabs(path) or not here or not os.path.isabs(here):
        return os.path.abspath(path)
    try:
        same = os.path.samefile(here, ".")
    except OSError:  # $PWD names a folder that is gone
        same = False
    return os.path.normpath(os.path.join(here if same else os.getcwd(), path))


class Daemon:
    def __init__(
        self, rules_dir: Path, config: Config, engine: Engine, clock: Clock | None = None
    ) -> None:
        self.rules_dir = rules_dir
        self.config = config
        self.engine = engine
        self.clock = clock or SystemClock()
        # The folder given, `.` and `..` taken out but not its links: a link to the release
        # deployed (`shop/current`) keeps its name when a deploy moves it.
        self.name = Path(logical_path(rules_dir)).name
        self.id = uuid.uuid4().hex
        self.stopping = threading.Event()
        self.ruleset: ast.RuleSet | None = None
        # Digests (`fingerprint`) of the rule files and templates last read, good or bad, and of
        # those whose rules are running.
        self.loaded: str | None = None
        self.in_force: str | None = None
        self.noted: str | None = None  # the digest last written to the database
        self._lock_file: IO[str] | None = None
        self._signal: int | None = None  # the SIGTERM or SIGINT received, noted by its handler
        self.scheduler: BackgroundScheduler | None = None  # while `run` runs
        # Held by the step in flight (a run of the interval job that comes meanwhile returns),
        # and by `run` once it stops (`_hold_the_steps`).
        self._stepping = threading.Lock()
        self._steps = 0  # steps begun in turn
        self._overrun_told = 0  # the last of them whose overrun was logged

    # -- rules --------------------------------------------------------------------------------

    def reload(self) -> bool:
        """Load the rule files if they or the templates of the rules in force changed; True when a
        new rule set is in force. After an edit that does not check, every file of the templates
        folder is watched too: the edit may name a template not written yet, or one that two
        files match, and writing it (removing one) mends the edit."""
        watched = self.ruleset.templates if self.ruleset is not None else ()
        after_a_bad_edit = self.loaded != self.in_force

        def with_every_template() -> str:
            return fingerprint(self.rules_dir, (*watched, *self._template_files()))

        if after_a_bad_edit:
            current = with_every_template()
        else:
            current = fingerprint(self.rules_dir, watched)
        if current == self.loaded:
            return False
        # What a bad edit is remembered by, read before the check: a template written meanwhile
        # is then noticed at the next step.
        every = current if after_a_bad_edit else with_every_template()
        with self.engine.connect() as conn:
            known = list(conn.scalars(EVENT_TYPES))
        imported = imported_attributes(self.engine)
        ruleset, diagnostics = check_rule_set(self.rules_dir, self.config, known, imported)
        if ruleset is None:
            if self.ruleset is None:
                raise RuleError(diagnostics)
            log.error("%s:\n%s", _bad_edit(diagnostics), render_text(diagnostics))
            self.loaded = every  # report a bad edit once, not every tick
            return False
        if ruleset.templates != watched or after_a_bad_edit:  # the digest of what it reads
            current = fingerprint(self.rules_dir, ruleset.templates)
        self.ruleset, self.loaded, self.in_force = ruleset, current, current
        log.info("rules loaded from %s: %d rules", self.rules_dir, len(ruleset.rules))
        if diagnostics:  # warnings: what `nudge check` says of them
            log.warning("the rules have warnings:\n%s", render_text(diagnostics))
        return True

    def _template_files(self) -> list[Path]:
        """Every file of the templates folder and of the folders inside it, but an editor's
        (a backup, a swap file: `templates.left_by_an_editor`), in order."""
        folder = self.config.templates_dir(self.rules_dir)
        try:
            return sorted(
                path
                for path in folder.rglob("*")
                if path.is_file()
                and not any(left_by_an_editor(part) for part in path.relative_to(folder).parts)
            )
        except OSError:  # no such folder, or one removed while it was read: the check says so
            return []

    # -- one step -------------------------------------------------------------------------------

    def step(self) -> TickReport | None:
        """Reload, tick, dispatch. Never raises for a database outage: it logs and returns."""
        try:
            self.reload()
            assert self.ruleset is not None
            now = self.clock.now_us()
            report = tick(self.engine, self.ruleset, self.config, self.name, now)
            if report.recorded.missed:
                log.warning(
                    "%d occurrences due more than the grace period (and a tick interval and a"
                    " second) ago were missed",
                    report.recorded.missed,
                )
            if report.missed_messages:
                one = len(report.missed_messages) == 1
                log.warning(
                    "%s not sent: the daemon was down (no tick since %s) for longer than the"
                    " grace period (and a tick interval and a second) after %s could go out."
                    " `nudge outbox --missed` lists them; `nudge outbox --retry ID` sends one"
                    " all the same",
                    "1 message to a customer was"
                    if one
                    else f"{len(report.missed_messages)} messages to customers were",
                    iso(report.down_since_us),
                    "it" if one else "they",
                )
            if report.late:
                one = report.late == 1
                log.warning(
                    "%s imported after a tick had passed %s time (the earliest happened at %s):"
                    " occurrences %s made due before %s act late within the grace period and"
                    " are missed after it; what was decided without %s stands. Import events"
                    " and customers as they happen (`nudge status` counts them)",
                    "1 event or sign-up was" if one else f"{report.late} events or sign-ups were",
                    "its" if one else "their",
                    iso(report.late_since_us or report.start_us),
                    "it" if one else "they",
                    iso(report.start_us),
                    "it" if one else "them",
                )
            if report.skipped:
                log.debug("tick %s: skipped, another daemon is ticking this rule set", iso(now))
            else:
                log.log(
                    logging.INFO if report.recorded.occurrences or report.queued else logging.DEBUG,
                    "tick %s: %d occurrences acted, %d actions, %d queued",
                    iso(now),
                    report.recorded.occurrences,
                    report.recorded.actions,
                    report.queued,
                )
            self._dispatch()
            self._heartbeat(now)
            self._note_rules()
            return report
        except (DataError, IntegrityError) as exc:  # refused what the tick wrote: no outage
            log.error(
                "tick failed, the database refused what it wrote (run `nudge check` on the"
                " rules; the tick is retried): %s",
                exc.orig or exc,
            )
        except DBAPIError as exc:  # connections, a read-only standby, a damaged file...
            log.error("database unavailable, will retry next tick: %s", exc.orig or exc)
        except NudgeError as exc:
            log.error("tick failed: %s", exc)
        return None

    def step_in_turn(self) -> None:
        """What the interval job runs: a step; then, when a due time known in advance (a
        schedule, a holiday, a birthday, `at HH:MM`: `engine.evaluation.wakeups`) comes before the
        job's next run, the job is brought forward to just after it, and the interval goes on from
        there. A due time that came while the step ran gets another step at once.

        A run that comes while a step is still in flight (one longer than the interval: a
        catch-up, a large burst, a slow database) returns at once, and the next comes at the
        interval; the overrun is logged once a step. APScheduler would log each run it skips,
        every interval (the job allows two instances so that it never has to)."""
        if not self._stepping.acquire(blocking=False):
            if not self.stopping.is_set():  # stopping, `run` holds it: no overrun
                self._note_overrun()
            return
        try:
            # Asked after the lock is taken: a signal that comes between a look at `stopping`
            # and the lock would otherwise let a step begin after `run` saw none in flight.
            if self.stopping.is_set():
                return
            self._steps += 1
            for _ in range(MAX_STEPS_IN_TURN):
                report = self.step()
                if report is None or self.stopping.is_set() or not self._due_now(report.end_us):
                    return
        finally:
            self._stepping.release()

    def _hold_the_steps(self, timeout: float) -> bool:
        """Once `stopping` is set: wait up to `timeout` seconds for the step in flight, if any,
        to end, and keep any other from beginning. False when a step is still in flight."""
        return self._stepping.acquire(timeout=timeout)

    def _note_overrun(self) -> None:
        if self._overrun_told == self._steps:
            return
        self._overrun_told = self._steps
        log.warning(
            "a step is still running after tick_seconds (%ss): the next tick comes at the first"
            " interval after it ends, and occurrences of events plus a delay are recorded that"
            " much later (a longer `tick_seconds` keeps the ticks in step)",
            self.config.tick_seconds,
        )

    def _due_now(self, tick_us: int) -> bool:
        """Whether a due time known in advance came after the tick at `tick_us` began: then
        step again (after waiting for it, when it is only moments away). Otherwise the next run
        of the job is brought forward to just after the next such due time before it."""
        job = self.scheduler.get_job("tick") if self.scheduler is not None else None
        ruleset = self.ruleset
        if job is None or job.next_run_time is None or ruleset is None:
            return False
        if not knows_due_times(ruleset, self.config):
            return False
        try:
            with self.engine.connect() as conn:
                zones = customer_zones(conn, self.config.timezone)
        except DBAPIError as exc:  # the next interval tick will do
            log.error("database unavailable, next tick at its interval: %s", exc.orig or exc)
            return False
        wake = next_wake(ruleset, self.config, zones, tick_us, to_us(job.next_run_time))
        if wake is None:
            return False
        wait_s = (wake - self.clock.now_us()) / US
        if wait_s > WAKE_MARGIN_S:
            job.modify(next_run_time=from_us(wake))
            log.debug("next tick brought forward to %s", iso(wake))
            return False
        return not self.stopping.wait(max(0.0, wait_s))

    def _dispatch(self) -> None:
        """Send what is due, batch after batch, until the backlog is empty, we stop, or half a
        tick's interval has gone by: a slow channel then leaves the rest for the next step rather
        than holding back the ticks (occurrences would be missed after `grace`)."""
        templates = self.config.templates_dir(self.rules_dir)
        # Every batch claims what was due when the first began: a message one of them left
        # pending (failed for now, not tried, waiting for quiet hours' end) is due after that,
        # and the step tries each message once (with a second's `retry_base`, a retry came
        # due within the step, and was claimed again and again while its channel was down).
        due_by = self.clock.now_us()
        # Half an interval (a second at least), so that the step with its tick and the last
        # send begun in time ends before the next run of the job is due.
        until = time.monotonic() + max(1.0, self.config.tick_seconds / 2)
        while not self.stopping.is_set() and time.monotonic() < until:
            report = dispatch_due(
                self.engine,
                self.config,
                templates,
                self.clock.now_us(),
                limit=DISPATCH_BATCH,
                stop=self.stopping,
                until=until,
                quiet=self.ruleset.quiet_hours if self.ruleset is not None else (),
                due_by_us=due_by,
            )
            if report.outcomes:
                log.info("outbox: %s", report.summary())
            if len(report.outcomes) < DISPATCH_BATCH:
                return

    def _note_a_new_name(self) -> None:
        """Warn when the database knows other rule sets but not this one's name (its folder's):
        a folder renamed or moved to another name makes a new rule set, which starts from now,
        and what fell due meanwhile under the old name is never acted on."""
        with self.engine.connect() as conn:
            known = dict(
                conn.execute(sa.select(rule_set_state.c.name, rule_set_state.c.last_tick_us)).all()
            )
        if not known or self.name in known:
            return
        others = ", ".join(
            f"{name!r} (last tick {iso(last) if last is not None else 'never'})"
            for name, last in sorted(known.items())
        )
        log.warning(
            "the rule set %r (named after its folder) is new to this database, which holds %s:"
            " it starts now, and nothing due before acts. If the folder was renamed or moved,"
            " give it its old name back to carry on where that rule set stopped",
            self.name,
            others,
        )

    def _note_a_demo_shop(self) -> None:
        """Warn when the database holds the synthetic shop of `nudge demo`: the rules would act
        on its made-up customers, through the channels configured."""
        with self.engine.connect() as conn:
            if not holds_demo_shop(conn):
                return
        log.warning(
            "the database holds the synthetic shop of `nudge demo`: these rules act on its"
            " made-up customers, and send their messages through the channels configured. A"
            " shop's own customers go into a database of their own (--db or `database:`)"
        )

    # -- lifecycle -------------------------------------------------------------------------------

    def run(self) -> None:
        """Run until SIGTERM or SIGINT, then let the step in flight finish and return.

        Steps run on the scheduler's thread, so a signal is seen within `SIGNAL_POLL_S`. A step
        that has not finished `STOP_GRACE_S` after the signal (a delivery blocked on an
        unresponsive server) is abandoned: the process exits, and what that step had not
        recorded is redone by the next start, as after a crash.
        """
        self._single_daemon_on_sqlite()
        check_channels(self.config, prepare=True)
        self.reload()
        self._register()
        self._note_a_new_name()
        self._note_a_demo_shop()
        scheduler = self.scheduler = self._scheduler()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        scheduler.start()
        log.info(
            "nudge run: %s every %ss (database %s)",
            self.rules_dir,
            self.config.tick_seconds,
            make_url(self.config.database).render_as_string(),
        )
        signum = self._wait_for_a_signal()
        log.info("received %s; stopping: finishing the step in flight", signal.Signals(signum).name)
        self.stopping.set()
        scheduler.shutdown(wait=False)
        finished = self._hold_the_steps(STOP_GRACE_S)
        self._unregister()
        if not finished:
            log.warning("a step is still blocked after %ss; exiting without it", STOP_GRACE_S)
            logging.shutdown()
            os._exit(0)  # the blocked thread would otherwise hold the interpreter open
        self.engine.dispose()

    def _scheduler(self) -> BackgroundScheduler:
        """The clock, not started: the interval job, its first run now. Runs missed while the
        process was held up are one (`coalesce`), however late (`misfire_grace_time` None: not
        skipped with a warning); a run while a step is in flight returns (`step_in_turn`)."""
        scheduler = BackgroundScheduler(timezone="UTC")
        scheduler.add_job(
            self.step_in_turn,
            "interval",
            seconds=self.config.tick_seconds,
            id="tick",
            next_run_time=dt.datetime.now(dt.UTC),
            max_instances=2,
            coalesce=True,
            misfire_grace_time=None,
        )
        return scheduler

    def _wait_for_a_signal(self) -> int:
        """Sleep until SIGTERM or SIGINT, `SIGNAL_POLL_S` at a time, and return which came.

        Python runs a signal's handler in the main thread, once that thread is back in the
        interpreter. A signal that comes just before the main thread blocks in C (after its
        last look at pending signals, before the system call that sleeps), or that the kernel
        hands to another thread, does not interrupt that sleep: the handler waits for the main
        thread to come back, and from a wait without a timeout it never does. Asleep in
        `Event.wait()`, the daemon so ignored a SIGTERM sent just after it started (a loaded
        machine widens the gap) until it was killed: by systemd, mid-step, once
        `TimeoutStopSec` ran out. A short sleep comes back to the interpreter, which runs the
        pending handler."""
        while self._signal is None:
            time.sleep(SIGNAL_POLL_S)
        return self._signal

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        """Only note the signal. The handler runs in the main thread wherever it was, maybe
        inside a log call or holding the lock of an `Event` (which `Event.set` takes again, and
        would wait for forever): the main thread logs and stops once it sees the note."""
        self._signal = signum

    def _single_daemon_on_sqlite(self) -> None:
        """On SQLite one daemon runs: a second one finds the lock taken, says so and exits."""
        url = make_url(self.config.database)
        if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
            return
        # Beside the file the path leads to: another path to the same database (a link, a
        # relative one from elsewhere) finds the same lock.
        path = Path(f"{Path(url.database).resolve()}.daemon-lock")
        # Opened without emptying it: it holds the process number of the daemon that has it.
        handle = path.open("a+", encoding="ascii")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            which = f" (process {holder})" if holder.isdigit() else ""
            raise DatabaseError(
                f"another `nudge run`{which} is already running against {url.database}; on"
                " SQLite one daemon runs at a time (stop that one first, or use PostgreSQL to"
                " run several)"
            ) from None
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock_file = handle  # held until the process ends, even by kill -9

    def _register(self) -> None:
        """Announce this daemon; forget daemons silent for long (killed without a goodbye),
        those of this machine whose process no longer runs (`status.stopped`), or on SQLite
        every other one: holding the lock, this one knows that they are gone."""
        now = self.clock.now_us()
        here = pid_space()
        silent_us = int(max(10 * self.config.tick_seconds, 300) * 1_000_000)
        gone = daemons.c.heartbeat_us < now - silent_us
        if self._lock_file is not None:  # SQLite's one daemon
            gone = sa.true()
        with self.engine.begin() as conn:
            stopped_here: list[str] = []
            if here is not None:
                mine = conn.execute(
                    sa.select(daemons.c.id, daemons.c.pid).where(daemons.c.pid_space == here)
                )
                stopped_here = [oid for oid, pid in mine if stopped(here, pid, here)]
            conn.execute(daemons.delete().where(sa.or_(gone, daemons.c.id.in_(stopped_here))))
            conn.execute(
                daemons.insert().values(
                    id=self.id,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    started_us=now,
                    heartbeat_us=now,
                    tick_seconds=self.config.tick_seconds,
                    pid_space=here,
                )
            )

    def _heartbeat(self, now_us: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                daemons.update().where(daemons.c.id == self.id).values(heartbeat_us=now_us)
            )

    def _note_rules(self) -> None:
        """Record which rule files are in force (a digest), for `nudge status`."""
        if self.noted == self.in_force:
            return
        with self.engine.begin() as conn:
            conn.execute(
                rule_set_state.update()
                .where(rule_set_state.c.name == self.name)
                .values(fingerprint=self.in_force)
            )
        self.noted = self.in_force

    def _unregister(self) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(daemons.delete().where(daemons.c.id == self.id))
        except DBAPIError:
            log.warning("could not unregister from the database")
