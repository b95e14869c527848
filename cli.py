"""The `nudge` command: a thin adapter from the command line to the `engine` library.

Every command takes `--config FILE` and `--db URL`. A `NudgeError`, or output that cannot be
written (a full disk), becomes plain words on stderr and exit code 1; nothing else is caught
here, so a traceback always means a bug.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import click

from engine.config import Config, load_config
from engine.errors import ConfigError, ConfigErrors, NudgeError, RuleError

if TYPE_CHECKING:
    from sqlalchemy import Engine

F = TypeVar("F", bound=Callable[..., Any])


class Env:
    """What every command needs: the configuration, read once, with `--db` applied."""

    def __init__(self, config_path: Path | None, db: str | None) -> None:
        self.config_path = config_path
        self.db = db
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path, self.db)
        return self._config


def common_options(func: F) -> F:
    """`--config` and `--db`, accepted by every command (LANGUAGE.md section 6)."""
    return _common_options(func, "nudge.yaml in the current folder, optional")


def rules_options(func: F) -> F:
    """`common_options` of a command given a rules folder, whose own nudge.yaml it falls back
    on (`env_of`)."""
    return _common_options(
        func, "nudge.yaml in the current folder, else the one in the rules folder, optional"
    )


def _common_options(func: F, default_config: str) -> F:
    func = click.option(
        "--db",
        "db",
        metavar="URL",
        default=None,
        help="SQLAlchemy database URL; overrides the configuration (default sqlite:///nudge.db).",
    )(func)
    func = click.option(
        "--config",
        "config_path",
        metavar="FILE",
        default=None,
        type=click.Path(path_type=Path, dir_okay=False),
        help=f"Configuration file (default: {default_config}).",
    )(func)
    return func


def window_options(func: F) -> F:
    """`--from` and `--to`: the window of due times `[from, to)` a command looks at."""
    func = click.option(
        "--to", "end", required=True, metavar="DATE_OR_TIME", help="First due time excluded."
    )(func)
    func = click.option(
        "--from",
        "start",
        required=True,
        metavar="DATE_OR_TIME",
        help="First due time included (a date means 00:00 shop-local).",
    )(func)
    return func


def env_of(config_path: Path | None, db: str | None, rules_dir: Path | None = None) -> Env:
    """The command's environment. Without `--config` and without `nudge.yaml` in the current
    folder, a rule set's own `nudge.yaml` (beside its rule files) is used when it has one."""
    if config_path is None and rules_dir is not None and not Path("nudge.yaml").exists():
        beside = rules_dir / "nudge.yaml"
        if beside.is_file():
            config_path = beside
    return Env(config_path, db)


def shop_env(config_path: Path | None, db: str | None, doing: str = "reading") -> Env:
    """`env_of` for a command given no rules folder (`import`, `history`, `status`, `outbox`,
    `tasks`): a shop's own nudge.yaml beside its rules is not read, so without a configuration
    a person is told which database the command reads and that times are UTC."""
    env = env_of(config_path, db)
    if env.config.file is None and sys.stderr.isatty():
        from engine.storage.db import shown_url

        database = shown_url(env.config.database)
        click.echo(
            f"note: no configuration (nudge.yaml in this folder, or --config FILE): {doing}"
            f" {database}, in UTC time",
            err=True,
        )
    return env


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="nudge")
def cli() -> None:
    """Nudge: marketing and after-sales rules for shops, in plain text.

    \b
    Check rules:     nudge check rules/aftercare
    See what they do: nudge simulate rules/aftercare --from 2026-11-01 --to 2026-12-01
    Carry them out:  nudge run rules/aftercare
    """


WINDOW_YEARS = (1900, 2200)


def _fits_name(value: str, option: str) -> str:
    """A name the ledger can hold (`NAME_LENGTH` characters), else a usage error."""
    from engine.storage.tables import NAME_LENGTH

    if len(value) > NAME_LENGTH:
        raise click.BadParameter(
            f"a name of at most {NAME_LENGTH} characters; this one has {len(value):,}",
            param_hint=option,
        )
    return value


class RowId(click.ParamType):
    """The id of an outbox message or a task, as the command named `listed_by` shows it: one of
    the databases' 64-bit keys."""

    name = "id"

    def __init__(self, listed_by: str) -> None:
        self.listed_by = listed_by

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        text = str(value).strip()
        if not text.isdecimal() or not 1 <= int(text) < 2**63:
            self.fail(
                f"{value!r} is not an id: ids are whole numbers, as `{self.listed_by}` lists them",
                param,
                ctx,
            )
        return int(text)


# Words people write for a day, with how many days from today each is.
_DAY_WORDS = {"yesterday": -1, "today": 0, "now": 0, "tomorrow": 1}


def _moment(text: str, option: str, shop_tz: str) -> int:
    """`--from` or `--to` as an instant; a usage error naming the option when it is none. A word
    such as `tomorrow` is answered with the date it stands for, to be written instead."""
    import datetime as dt

    from engine.timeutil import parse_moment, zone

    try:
        return parse_moment(text, shop_tz)
    except ValueError as exc:
        said = str(exc)
        word = text.strip()
        days = _DAY_WORDS.get(word.casefold())
        if days is not None:
            now = dt.datetime.now(zone(shop_tz))
            meant = (
                f"{now:%Y-%m-%dT%H:%M}"
                if word.casefold() == "now"
                else (now.date() + dt.timedelta(days=days)).isoformat()
            )
            said += f"; write it out instead: {word} is {meant} (shop time)"
        raise click.BadParameter(said, param_hint=option) from None


def _window(env: Env, start: str, end: str) -> tuple[int, int]:
    from engine.timeutil import clock_text, parse_moment

    shop_tz = env.config.timezone
    window = _moment(start, "--from", shop_tz), _moment(end, "--to", shop_tz)
    if window[0] >= window[1]:
        # As the shop's clock reads them: a time the clocks skip is moved forward by the gap.
        first, last = (clock_text(us, shop_tz) for us in window)
        raise click.BadParameter(
            f"must be before --to (here {first} and {last}, shop time)", param_hint="--from"
        )
    # Far enough for any shop's history and plans, near enough that a rule's offsets (up to a
    # hundred years) stay on the calendar.
    first, last = (f"{year}-01-01" for year in WINDOW_YEARS)
    if window[0] < parse_moment(first, env.config.timezone) or window[1] > parse_moment(
        last, env.config.timezone
    ):
        raise click.BadParameter(f"--from and --to must fall between {first} and {last}")
    return window


def _stdout_format(fmt: str | None) -> str:
    return fmt or ("table" if sys.stdout.isatty() else "jsonl")


@cli.command()
@click.argument("rules_dir", type=click.Path(path_type=Path))
@window_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "jsonl", "html"]),
    default=None,
    help="table (default on a terminal), jsonl (default otherwise) or html.",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write to this file instead of standard output.",
)
@rules_options
def simulate(
    rules_dir: Path,
    start: str,
    end: str,
    fmt: str | None,
    output: Path | None,
    config_path: Path | None,
    db: str | None,
) -> None:
    """Show exactly what the rules would do for occurrences due in [--from, --to).

    Nothing is sent and nothing is written to the database.

    \b
    Example:
      nudge simulate rules/shop --from 2026-11-01 --to 2026-12-01 --format html --output sim.html
    """
    from engine.evaluation.simulate import stream
    from engine.storage.db import open_existing

    env = env_of(config_path, db, rules_dir)
    start_us, end_us = _window(env, start, end)
    engine = open_existing(env.config.database)
    ruleset = _load_rules(rules_dir, env, engine)
    records = stream(engine, ruleset, env.config, start_us, end_us)
    fmt = _stdout_format(fmt) if output is None else (fmt or "jsonl")
    _emit(records, fmt, output, env, f"Simulation of {rules_dir}", start_us, end_us, rules_dir)


def _load_rules(rules_dir: Path, env: Env, engine: Any) -> Any:
    """Check the rule set, warning about event names close to ones the shop has sent."""
    import sqlalchemy as sa

    from engine.checking.ruleset import check_rule_set, imported_attributes
    from engine.storage.tables import events

    with engine.connect() as conn:
        known = [t for (t,) in conn.execute(sa.select(events.c.type).distinct())]
    ruleset, diagnostics = check_rule_set(
        rules_dir, env.config, known_events=known, imported=imported_attributes(engine)
    )
    if ruleset is None:
        raise RuleError(diagnostics)
    if diagnostics:
        from engine.render import render_text

        click.echo(render_text(diagnostics), err=True)
    return ruleset


def _emit(
    records: Iterable[Any],
    fmt: str,
    output: Path | None,
    env: Env,
    title: str,
    start_us: int,
    end_us: int,
    rules_dir: Path | None = None,
) -> None:
    """Write actions as JSON Lines, an HTML page or tables, streaming them once."""
    import json

    from rich.console import Console

    from engine.timeutil import from_us, zone

    with contextlib.ExitStack() as stack:
        # Opened before the first action is worked out: a bad path fails at once.
        handle = (
            sys.stdout if output is None else stack.enter_context(_writing(output, env, rules_dir))
        )
        if fmt == "html":
            from engine.reports.html import render_html

            tz = zone(env.config.timezone)
            page = render_html(
                records, env.config.timezone, title, from_us(start_us, tz), from_us(end_us, tz)
            )
            handle.write(page)
            if output is not None:
                click.echo(f"Wrote {output}.", err=True)
            return
        if fmt == "jsonl":
            for record in records:
                handle.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
            return
        from engine.reports.table import print_table

        console = Console(file=handle, width=None if output is None else 120)
        tz = zone(env.config.timezone)
        window = f"{from_us(start_us, tz):%Y-%m-%d %H:%M} to {from_us(end_us, tz):%Y-%m-%d %H:%M}"
        print_table(records, env.config.timezone, console, f"{title}, {window} (shop time)")


@contextlib.contextmanager
def _writing(path: Path, env: Env, rules_dir: Path | None) -> Iterator[TextIO]:
    """A file to write the output to, which takes `path`'s place only once it is complete: a
    failure part way leaves what was there. A path that the command reads or another part of
    Nudge writes (the database, the configuration, a rule file or template, a `file` channel's
    messages) is refused before anything is written."""
    _check_output(path, env, rules_dir)
    if path.exists() and not path.is_file() and not path.is_dir():
        # A device or a pipe (`/dev/stdout`, a FIFO a reader waits on): written to as it is,
        # never replaced by a file of its name.
        try:
            device = path.open("w", encoding="utf-8")
        except OSError as exc:
            raise _cannot_write(path, exc) from None
        with device:
            yield device
        return
    target = path.resolve()  # through a link: the file it names is replaced, not the link
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        handle = partial.open("w", encoding="utf-8")
        if target.exists():  # the file keeps its permissions
            partial.chmod(target.stat().st_mode & 0o7777)
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    try:
        with handle:
            yield handle
        partial.replace(target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _cannot_write(path: Path, exc: OSError) -> click.BadParameter:
    return click.BadParameter(f"cannot write {path}: {exc.strerror or exc}", param_hint="--output")


def _check_output(path: Path, env: Env, rules_dir: Path | None) -> None:
    """Refuse an output that would lose something (`_an_input`), or whose folder does not
    exist: before the work, for a command that does much of it first (`demo`)."""
    if path.is_dir():  # `--output ""` is the current folder, which click lets through
        raise click.BadParameter(
            "the name is empty: give the name of a file to write, such as sim.html",
            param_hint="--output",
        )
    if what := _an_input(path, env, rules_dir):
        raise click.BadParameter(
            f"{path} is {what}: write the output to another file", param_hint="--output"
        )
    if not path.resolve().parent.is_dir():
        raise click.BadParameter(
            f"cannot write {path}: No such file or directory", param_hint="--output"
        )


def _an_input(path: Path, env: Env, rules_dir: Path | None) -> str | None:
    """What `path` is to Nudge, if writing it would lose something: None if nothing. Judged by
    the file it names (through links), which need not exist yet."""
    from sqlalchemy.engine import make_url

    config = env.config
    target = path.resolve()
    url = make_url(config.database)
    named: list[tuple[Path, str]] = []
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        named += [(Path(url.database + end), "the database") for end in ("", "-wal", "-shm")]
    if config.file:
        named.append((Path(config.file), "the configuration file"))
    if rules_dir is not None:  # the rule set's own, even when another one is given
        named.append((rules_dir / "nudge.yaml", "the rule set's configuration file"))
    for channel in config.channels.values():
        if channel.type == "file":
            written = config.base_dir / str(channel.options.get("path", "outbox.jsonl"))
            named.append((written, f"where the channel `{channel.name}` writes its messages"))
    for other, what in named:
        if target == other.resolve() or _same_file(target, other):
            return what
    # A new file there too: it would be read as a template, or as rules.
    if rules_dir is not None:
        if target.is_relative_to(config.templates_dir(rules_dir).resolve()):
            return "in the templates folder"
        if target.suffix == ".rules" and target.is_relative_to(rules_dir.resolve()):
            return "named as a rule file in the rules folder"
    return None


def _same_file(path: Path, other: Path) -> bool:
    """The same file under two names (a hard link)."""
    try:
        return path.exists() and other.exists() and os.path.samefile(path, other)
    except OSError:
        return False


def _shown(cell: str) -> str:
    return "".join(
        "\ufffd" if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") else char
        for char in cell
    )


def _columns(rows: list[list[str]]) -> str:
    """Rows of text as left-aligned columns, the first row a header. Widths are counted in
    terminal cells, so that a name in Chinese (two cells a character) keeps its column. A
    character a terminal would not show in one cell (a tab, a line feed, an escape, which a
    customer's name as imported may hold) is shown as �: it would break the row or drive the
    terminal."""
    from rich.cells import cell_len

    rows = [[_shown(cell) for cell in row] for row in rows]
    widths = [max(cell_len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            cell + " " * (width - cell_len(cell)) for cell, width in zip(row, widths, strict=True)
        ).rstrip()
        for row in rows
    )


@cli.command("outbox")
@click.argument("ids", nargs=-1, type=RowId("nudge outbox --dead"), metavar="[ID]...")
@click.option(
    "--dead",
    is_flag=True,
    help="List dead letters: messages refused for good or retried in vain (dead), "
    "and messages whose template failed (failed).",
)
@click.option(
    "--missed",
    is_flag=True,
    help="List the messages not sent because the daemon was down for more than `grace` after "
    "their time (missed).",
)
@click.option(
    "--retry",
    is_flag=True,
    help="Requeue dead and failed messages: the IDs given, or else all of them (with "
    "--missed, every missed message; with --dead --missed, both). A missed message is "
    "requeued only by its ID or with --missed.",
)
@click.option(
    "--customer",
    metavar="ID",
    help="Only this customer's messages, in every status (with --dead or --missed, only "
    "those), with when each was queued and sent.",
)
@common_options
def outbox_command(
    ids: tuple[int, ...],
    dead: bool,
    missed: bool,
    retry: bool,
    customer: str | None,
    config_path: Path | None,
    db: str | None,
) -> None:
    """Messages waiting to be sent, and the dead letter list. Times are shop time (`timezone`).

    \b
    The backlog:         nudge outbox
    Dead letters:        nudge outbox --dead
    Missed (downtime):   nudge outbox --missed
    One customer's:      nudge outbox --customer C1001
    Send again, all:     nudge outbox --retry
    Send again, some:    nudge outbox --retry 12 15
    Send missed ones:    nudge outbox --retry --missed
    """
    from engine.clock import SystemClock
    from engine.outbox.dispatch import STATUSES, OutboxEntry, list_outbox, requeue, status_counts
    from engine.storage.db import open_existing
    from engine.timeutil import local_text

    if ids and not retry:
        raise click.UsageError("message IDs are only taken with --retry")
    if customer is not None and retry:
        raise click.UsageError("--customer lists messages; --retry takes their IDs")
    if ids and (dead or missed):
        raise click.UsageError(
            "--retry takes message IDs, or --dead or --missed for all of those, not both"
        )
    config = shop_env(config_path, db).config
    engine = open_existing(config.database)
    try:
        if retry:
            requeued = [*(["dead", "failed"] if dead or not missed else []), *["missed"] * missed]
            done = requeue(engine, list(ids) if ids else None, SystemClock().now_us(), requeued)
            plural = "" if len(done) == 1 else "s"
            click.echo(
                f"Requeued {len(done)} message{plural}"
                + (f": {', '.join(map(str, done))}." if done else ".")
            )
            return
        statuses = (["dead", "failed"] if dead else []) + (["missed"] if missed else [])
        if not statuses:
            statuses = list(STATUSES) if customer is not None else ["pending"]
        entries = list_outbox(engine, statuses, customer=customer)
        if entries:
            # The backlog's time is its next try; dead letters' when they were queued; one
            # customer's messages, both that and when each was sent.
            times: list[tuple[str, Callable[[OutboxEntry], int | None]]] = [
                ("NEXT TRY", lambda e: e.next_attempt_us)
            ]
            if dead or missed or customer is not None:
                times = [("QUEUED", lambda e: e.created_us)]
            if customer is not None:
                times.append(("SENT", lambda e: e.sent_us))
            head = ["ID", "STATUS", "CHANNEL", "KIND", "CUSTOMER", "TEMPLATE", "TRIES"]
            rows = [[*head, *(name for name, _ in times), "LAST ERROR"]]
            for e in entries:
                cells = [e.id, e.status, e.channel, e.kind, e.customer_id, e.template, e.attempts]
                stamps = [when(e) for _, when in times]
                rows.append(
                    [
                        *("" if cell is None else str(cell) for cell in cells),
                        *("" if us is None else local_text(us, config.timezone) for us in stamps),
                        e.last_error or "",
                    ]
                )
            click.echo(_columns(rows))
        elif customer is not None:
            which = " or ".join(
                [*(["dead or failed"] if dead else []), *(["missed"] if missed else [])]
            )
            click.echo(f"No {which + ' ' if which else ''}message for customer {customer}.")
        if customer is None:  # the whole outbox's
            counts = status_counts(engine)
            click.echo(", ".join(f"{n} {status}" for status, n in counts.items()))
    finally:
        engine.dispose()


def _task_env(ctx: click.Context, config_path: Path | None, db: str | None) -> Env:
    """The options given to `tasks` itself, overridden by those given to its subcommand. The
    list's filters given to `tasks` belong to `list` alone."""
    if ctx.info_name != "list":
        filters = [option for option, value in ctx.meta["tasks_filters"].items() if value]
        if filters:
            raise click.UsageError(
                f"{' and '.join(filters)} {'filter' if len(filters) > 1 else 'filters'} the"
                f" list; `{ctx.info_name}` takes a task's id"
            )
    parent: Env = ctx.obj
    return shop_env(config_path or parent.config_path, db or parent.db)


def _show_tasks(env: Env, status: str | None, assignee: str | None) -> None:
    from engine.outbox.tasks import list_tasks
    from engine.storage.db import open_existing
    from engine.timeutil import local_text

    engine = open_existing(env.config.database)
    try:
        found = list_tasks(engine, status=status, assignee=assignee)
    finally:
        engine.dispose()
    if not found:
        click.echo("No tasks.")
        return
    rows = [
        [
            "ID",
            "STATUS",
            "KIND",
            "FOR",
            "CLAIMED BY",
            "CUSTOMER",
            "NAME",
            "PHONE",
            "CREATED",
            "TITLE",
        ]
    ]
    rows += [
        [
            str(t.id),
            t.status,
            t.kind,
            t.assignee or "",
            t.claimed_by or "",
            t.customer_id,
            t.customer_name or "",
            t.customer_phone or "",
            local_text(t.created_us, env.config.timezone),
            t.title,
        ]
        for t in found
    ]
    click.echo(_columns(rows))


# `engine.outbox.tasks.TASK_STATUSES`, written out so that `nudge --help` does not load the engine.
TASK_STATUS = click.option(
    "--status",
    type=click.Choice(["open", "claimed", "done"]),
    default=None,
    help="Only tasks in this status.",
)


@cli.group("tasks", invoke_without_command=True)
@TASK_STATUS
@click.option(
    "--for",
    "assignee",
    default=None,
    metavar="TEAM",
    help='Only tasks for this person or team (`task ... for "TEAM"`).',
)
@common_options
@click.pass_context
def tasks_command(
    ctx: click.Context,
    status: str | None,
    assignee: str | None,
    config_path: Path | None,
    db: str | None,
) -> None:
    """The task list: tasks and gifts that rules hand to people or agents. Times are shop
    time (`timezone`).

    \b
    Open tasks:          nudge tasks --status open
    One team's tasks:    nudge tasks list --for service
    Take one on:         nudge tasks claim 12 --by ann
    Finish it:           nudge tasks done 12
    """
    ctx.obj = env_of(config_path, db)
    ctx.meta["tasks_filters"] = {"--status": status, "--for": assignee}
    if ctx.invoked_subcommand is None:
        _show_tasks(shop_env(config_path, db), status, assignee)


@tasks_command.command("list")
@TASK_STATUS
@click.option(
    "--for", "assignee", default=None, metavar="TEAM", help="Only tasks for this person or team."
)
@common_options
@click.pass_context
def tasks_list(
    ctx: click.Context,
    status: str | None,
    assignee: str | None,
    config_path: Path | None,
    db: str | None,
) -> None:
    """List tasks, oldest first: nudge tasks list --status open --for service"""
    given = ctx.meta["tasks_filters"]
    for option, here in (("--status", status), ("--for", assignee)):
        if given[option] is not None and here is not None and given[option] != here:
            raise click.UsageError(f"{option} is given twice, before and after `list`")
    status, assignee = status or given["--status"], assignee or given["--for"]
    _show_tasks(_task_env(ctx, config_path, db), status, assignee)


@tasks_command.command("claim")
@click.argument("task_id", type=RowId("nudge tasks"), metavar="ID")
@click.option(
    "--by",
    "by",
    required=True,
    metavar="NAME",
    callback=lambda _ctx, _param, value: _fits_name(value, "--by"),
    help="Who takes the task on.",
)
@common_options
@click.pass_context
def tasks_claim(
    ctx: click.Context, task_id: int, by: str, config_path: Path | None, db: str | None
) -> None:
    """Take a task on: nudge tasks claim 12 --by ann"""
    from engine.clock import SystemClock
    from engine.outbox.tasks import claim
    from engine.storage.db import open_existing

    engine = open_existing(_task_env(ctx, config_path, db).config.database)
    try:
        task = claim(engine, task_id, by, SystemClock().now_us())
    finally:
        engine.dispose()
    click.echo(f"Task {task.id} claimed by {task.claimed_by}: {task.title}")


@tasks_command.command("done")
@click.argument("task_id", type=RowId("nudge tasks"), metavar="ID")
@common_options
@click.pass_context
def tasks_done(ctx: click.Context, task_id: int, config_path: Path | None, db: str | None) -> None:
    """Mark a task done: nudge tasks done 12"""
    from engine.clock import SystemClock
    from engine.outbox.tasks import done
    from engine.storage.db import open_existing

    engine = open_existing(_task_env(ctx, config_path, db).config.database)
    try:
        task = done(engine, task_id, SystemClock().now_us())
    finally:
        engine.dispose()
    click.echo(f"Task {task.id} done: {task.title}")


@cli.command()
@click.argument("rules_dir", type=click.Path(path_type=Path))
@click.argument("customer")
@click.option("--rule", "rule_name", default=None, metavar="NAME", help="Only this rule.")
@window_options
@rules_options
def explain(
    rules_dir: Path,
    customer: str,
    rule_name: str | None,
    start: str,
    end: str,
    config_path: Path | None,
    db: str | None,
) -> None:
    """Why a customer did or did not get something: every occurrence in the window, the value
    of each condition at its due time, what cancelled or suppressed it.

    \b
    Example:
      nudge explain rules/shop c42 --rule "thank you" --from 2026-11-01 --to 2026-12-01
    """
    from engine.evaluation.explain import customer_zone, render
    from engine.evaluation.explain import explain as run_explain
    from engine.language.suggest import did_you_mean
    from engine.storage.db import open_existing

    env = env_of(config_path, db, rules_dir)
    start_us, end_us = _window(env, start, end)
    engine = open_existing(env.config.database)
    ruleset = _load_rules(rules_dir, env, engine)
    if rule_name is not None and rule_name not in {r.name for r in ruleset.rules}:
        names = sorted(r.name for r in ruleset.rules)
        nearest = did_you_mean(rule_name, names)
        known = f"{nearest} The rules are" if nearest else "the rules are"
        raise click.BadParameter(
            f"no rule named {rule_name!r}; {known}: {', '.join(names)}", param_hint="--rule"
        )
    stories = run_explain(engine, ruleset, env.config, customer, start_us, end_us, rule_name)
    if not stories and not _is_customer(engine, customer):
        alike = _customers_alike(engine, customer)
        meant = f": did you mean {', '.join(f'`{a}`' for a in alike)}?" if alike else ""
        raise NudgeError(
            f"no customer {customer!r} in the shop's data (ids are case-sensitive){meant}"
        )
    zone = customer_zone(engine, customer)
    click.echo(render(stories, customer, env.config.timezone, zone).rstrip("\n"))


def _is_customer(engine: Engine, customer_id: str) -> bool:
    from sqlalchemy import select

    from engine.storage.tables import customers

    with engine.connect() as conn:
        found = conn.execute(select(customers.c.id).where(customers.c.id == customer_id))
        return found.first() is not None


def _customers_alike(engine: Engine, customer_id: str) -> list[str]:
    """Stored ids that are `customer_id` but for case and blanks around it (`c42` for `C42 `),
    five at most."""
    import sqlalchemy as sa

    from engine.storage.tables import customers

    wanted = customer_id.strip().lower()
    query = (
        sa.select(customers.c.id)
        .where(sa.func.lower(sa.func.trim(customers.c.id)) == wanted)
        .order_by(customers.c.id)
        .limit(5)
    )
    with engine.connect() as conn:
        return list(conn.execute(query).scalars())


@cli.command()
@click.argument("rules_dir", type=click.Path(path_type=Path))
@click.option("-v", "--verbose", is_flag=True, help="Log every tick, also those with nothing due.")
@rules_options
def run(rules_dir: Path, verbose: bool, config_path: Path | None, db: str | None) -> None:
    """Run the daemon: carry the rules out, exactly once, until stopped (SIGTERM or Ctrl-C).

    It evaluates every `tick_seconds` (configuration, default 30). Nothing due before its first
    start acts; after downtime, occurrences due within `grace` (default 6h) act late and older
    ones are recorded as missed. So do those of events imported after a tick passed their time.

    \b
    Example:
      nudge run rules/shop --config rules/shop/nudge.yaml
    """
    import logging

    from engine.channels import check_channels
    from engine.checking.ruleset import unusable_folder
    from engine.daemon import Daemon
    from engine.storage.db import open_database

    missing = unusable_folder(rules_dir)
    if missing is not None:  # before the database is opened (and made)
        raise RuleError([missing])
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # What the daemon does at INFO, each tick and wake-up besides with -v (DEBUG); other
    # libraries (APScheduler, whose runs are our ticks, Alembic) only when something is wrong.
    logging.getLogger("nudge").setLevel(logging.DEBUG if verbose else logging.INFO)
    env = env_of(config_path, db, rules_dir)
    check_channels(env.config, prepare=True)  # as the daemon does, before the database is made
    Daemon(rules_dir, env.config, open_database(env.config.database)).run()


@cli.command()
@window_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "jsonl"]),
    default=None,
    help="table (default on a terminal) or jsonl (default otherwise).",
)
@common_options
def history(
    start: str, end: str, fmt: str | None, config_path: Path | None, db: str | None
) -> None:
    """The actions the daemon took whose due time falls in [--from, --to), sent and suppressed.

    \b
    Example:
      nudge history --from 2026-11-01 --to 2026-12-01 --format jsonl
    """
    from rich.console import Console

    from engine.outbox.history import history as load_history
    from engine.outbox.history import waiting
    from engine.reports.table import print_list
    from engine.storage.db import open_existing

    env = shop_env(config_path, db)
    start_us, end_us = _window(env, start, end)
    engine = open_existing(env.config.database)
    records = load_history(engine, start_us, end_us)
    if _stdout_format(fmt) == "table":
        print_list(records, env.config.timezone, Console(), waiting(engine, start_us, end_us))
    else:
        _emit(records, "jsonl", None, env, "History", start_us, end_us)


@cli.command()
@common_options
def status(config_path: Path | None, db: str | None) -> None:
    """How the daemons are doing: running or silent, last tick, work waiting, outbox backlog,
    failures. Times are shop time (`timezone`).

    \b
    Example:
      nudge status --db postgresql://localhost/shop
    """
    from engine.clock import SystemClock
    from engine.status import status as read_status
    from engine.status import status_lines
    from engine.storage.db import open_existing

    env = shop_env(config_path, db)
    now = SystemClock().now_us()
    engine = open_existing(env.config.database)
    try:
        state = read_status(engine, now, env.config.tick_seconds)
    finally:
        engine.dispose()
    for line in status_lines(state, env.config.timezone):
        click.echo(line)


@cli.command()
@click.option("--customers", default=3000, show_default=True, help="How many customers.")
@click.option("--seed", default=7, show_default=True, help="Random seed: same seed, same shop.")
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=30,
    show_default=True,
    help="How many days to simulate.",
)
@click.option(
    "--rules",
    "rules_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Rule set to simulate (default: the bundled rules/shop).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "jsonl", "html"]),
    default="table",
    show_default=True,
)
@click.option("--output", type=click.Path(path_type=Path, dir_okay=False), default=None)
@common_options
def demo(
    customers: int,
    seed: int,
    days: int,
    rules_dir: Path | None,
    fmt: str,
    output: Path | None,
    config_path: Path | None,
    db: str | None,
) -> None:
    """Create a realistic synthetic shop and simulate the example rules over the next days.

    The shop (customers with Chinese and English names, carts, orders, deliveries, returns and
    reviews over the past year) goes into the database (default: sqlite:///nudge.db, or the
    one the rules' own nudge.yaml names unless --config is given); the simulation writes
    nothing. A database holding customers the demo did not make is refused: the demo would
    write its customers over those with the same ids. So is one holding the shop of an earlier
    demo with another --customers or --seed, which the new one would be mixed into.

    \b
    Example:
      nudge demo --customers 3000 --days 30
    """
    from engine.demo.run import run_demo

    shop_rules = rules_dir or Path(__file__).resolve().parent / "rules" / "shop"
    if config_path is None and (shop_rules / "nudge.yaml").exists():
        config_path = shop_rules / "nudge.yaml"
    env = env_of(config_path, db)
    if output is not None:
        _check_output(output, env, shop_rules)
    result = run_demo(env.config, shop_rules, customers=customers, seed=seed, days=days)
    _emit(
        result.actions,
        fmt,
        output,
        env,
        f"Demo: {result.customers} customers, {result.events} events; {shop_rules.name} rules",
        result.start_us,
        result.end_us,
        shop_rules,
    )


@cli.command()
@click.argument("rules_dir", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Diagnostics as text for people or JSON for tools.",
)
@rules_options
def check(rules_dir: Path, fmt: str, config_path: Path | None, db: str | None) -> None:
    """Parse and check a rule set, the templates its rules send (compiled, not rendered) and
    the configuration's channels (without connecting): exit 0 when clean (warnings allowed),
    1 with every problem.

    \b
    Example:  nudge check rules/aftercare
    """
    from engine.channels import channel_diagnostics
    from engine.checking.ruleset import check_rule_set, stored_attributes, stored_event_types
    from engine.render import render_json, render_text

    try:
        config = env_of(config_path, db, rules_dir).config
    except ConfigError as exc:
        ruleset, diagnostics = None, [exc.diagnostic()]
    except ConfigErrors as exc:
        ruleset, diagnostics = None, [error.diagnostic() for error in exc.errors]
    else:
        ruleset, diagnostics = check_rule_set(
            rules_dir,
            config,
            stored_event_types(config.database),
            stored_attributes(config.database),
        )
        diagnostics += channel_diagnostics(config)
    failed = ruleset is None or any(d.severity == "error" for d in diagnostics)
    if fmt == "json":
        click.echo(render_json(diagnostics))
    elif diagnostics:
        click.echo(render_text(diagnostics), err=failed)
    if ruleset is None or failed:
        sys.exit(1)
    if fmt == "text":
        count = len(ruleset.rules)
        warned = len(diagnostics)  # warnings alone: an error has exited above
        verdict = (
            f"no errors, {warned} warning{'' if warned == 1 else 's'} above"
            if warned
            else "all clear"
        )
        click.echo(f"{rules_dir}: {count} rule{'' if count == 1 else 's'}, {verdict}")


@cli.command("fmt")
@click.argument("rules_dir", type=click.Path(path_type=Path))
@click.option(
    "--check",
    "check_only",
    is_flag=True,
    help="Change nothing; list the files that would change and exit 1 if any.",
)
@common_options
def fmt_command(
    rules_dir: Path, check_only: bool, config_path: Path | None, db: str | None
) -> None:
    """Rewrite rule files in the one canonical layout, comments kept.

    \b
    Example:  nudge fmt rules/aftercare
              nudge fmt --check rules/aftercare
    """
    from engine.checking.ruleset import (
        no_rule_files,
        not_a_folder,
        passed_over,
        read_source,
        rule_files,
    )
    from engine.errors import Diagnostic
    from engine.language.fmt import format_source, unnamed_moves

    if (missing := not_a_folder(rules_dir)) is not None:
        raise RuleError([missing])
    paths = rule_files(rules_dir)
    if not paths:  # as `check` says: a slip of the folder, not a rule set already formatted
        raise RuleError([no_rule_files(rules_dir), *passed_over(rules_dir)])
    problems: list[Diagnostic] = []
    changed: list[Path] = []
    moved: list[tuple[Path, int, int]] = []
    for path in paths:
        source, unreadable = read_source(path)
        if source is None:
            problems.extend(unreadable)
            continue
        try:
            text = format_source(source)
        except RuleError as exc:
            problems.extend(exc.diagnostics)
            continue
        # The file's own line ends and byte-order mark are kept (a Windows editor's): a file
        # laid out canonically is not rewritten whole for them, nor failed by `--check`. Its
        # first line's end is its own, as black takes it: one line pasted from elsewhere does
        # not turn every line of the file.
        first_line, newline, _ = source.text.partition("\n")
        if newline and first_line.endswith("\r"):
            text = text.replace("\n", "\r\n")
        if source.text.startswith("\ufeff") and not text.startswith("\ufeff"):
            text = "\ufeff" + text
        if text != source.text:
            changed.append(path)
            moved.extend((path, old, new) for old, new in unnamed_moves(source, text))
            if not check_only:
                path.write_text(text, encoding="utf-8", newline="")
    for path in changed:
        click.echo(f"{'would reformat' if check_only else 'reformatted'} {path}")
    for path, old, new in moved:
        click.echo(
            f"warning: the unnamed rule at {path}:{old} {'would move' if check_only else 'moved'}"
            f" to line {new}; it is named by its line, so to a running daemon it is a new rule"
            f' (its `once` starts afresh): give it a `rule "NAME"`',
            err=True,
        )
    if problems:
        raise RuleError(problems)
    if check_only and changed:
        sys.exit(1)


@cli.group("import")
def import_group() -> None:
    """Import the shop's customers or events from CSV or JSON Lines (idempotent).

    \b
    Examples:
      nudge import customers customers.csv
      nudge import events events.jsonl --db postgresql://localhost/shop
    """


def _import_command(kind: str, file: Path, config_path: Path | None, db: str | None) -> None:
    """Run an import; print every bad row and a summary; exit 1 when a row was bad."""
    from engine.importing import importers
    from engine.storage.db import open_database

    # Times without an offset read in the default zone also get a warning (`assumed`).
    env = shop_env(config_path, db, "importing into")
    engine = open_database(env.config.database)
    run = importers.import_customers if kind == "customers" else importers.import_events
    try:
        report = run(
            engine,
            file,
            env.config.timezone,
            progress=sys.stderr.isatty(),
            assumed=env.config.file is None,
        )
    finally:
        engine.dispose()
    for problem in report.problems:
        click.echo(f"error: {problem}", err=True)
    for note in report.notes.values():
        click.echo(f"warning: {note}", err=True)
    if not report.rows:  # an export that went wrong, or of the wrong file: not a bad row
        click.echo(f"warning: {report.source} holds no rows", err=True)
    click.echo(report.summary())
    if report.problems:
        sys.exit(1)


@import_group.command("customers")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@common_options
def import_customers_command(file: Path, config_path: Path | None, db: str | None) -> None:
    """Import customers: `id` (required), `name`, `email`, `phone`, `birthday` (YYYY-MM-DD or
    MM-DD), `timezone`, `signed_up`, `accepts_marketing`, `tags` (comma-separated); any other
    column is an attribute. A customer already stored gets the fields the file gives; a change
    of `accepts_marketing` is kept with the time of the import, so that rules read consent as it
    stood at each moment.

    \b
    Example:
      nudge import customers customers.csv
    """
    _import_command("customers", file, config_path, db)


@import_group.command("events")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@common_options
def import_events_command(file: Path, config_path: Path | None, db: str | None) -> None:
    """Import events: `customer`, `type` (such as order.paid) and `at` (ISO 8601; without an
    offset, shop-local time) are required, `id` optional; any other column is a property.
    An event already stored is skipped; an unknown customer is created.

    \b
    Example:
      nudge import events orders.jsonl
    """
    _import_command("events", file, config_path, db)


def _show_config_errors(errors: Sequence[ConfigError]) -> None:
    """Settings that cannot be used: those located in the configuration file as diagnostics,
    at their line; the others (an option, a configuration made in code) as plain words."""
    from engine.render import render_text

    located = [error.diagnostic() for error in errors if error.span is not None]
    for error in errors:
        if error.span is None:
            click.echo(f"Error: {error}", err=True)
    if located:
        click.echo(render_text(located), err=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `nudge` console script and of `python cli.py`."""
    try:
        cli.main(args=argv, prog_name="nudge", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except RuleError as exc:
        from engine.render import render_text

        click.echo(render_text(exc.diagnostics), err=True)
        sys.exit(1)
    except ConfigError as exc:
        _show_config_errors([exc])
        sys.exit(1)
    except ConfigErrors as exc:
        _show_config_errors(exc.errors)
        sys.exit(1)
    except NudgeError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:
        if exc.errno not in _CANNOT_WRITE:
            raise
        # The output could not be written (`> /dev/full`, a full disk): said in words, and
        # what is still buffered for it dropped, as writing it at exit would fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        click.echo(f"Error: the output could not be written: {exc.strerror}", err=True)
        sys.exit(1)


_CANNOT_WRITE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})


if __name__ == "__main__":
    main()
