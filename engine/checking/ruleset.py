"""A folder of `*.rules` files → a checked `RuleSet`: the entry point other modules call.

Files are read in name order; one that is missing, unreadable or not UTF-8 is a diagnostic
like any other, never a traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from engine.checking.check import ImportedAttribute, check_files, none_imported
from engine.config import Config
from engine.errors import DatabaseError, Diagnostic, RuleError
from engine.language import ast
from engine.language.parse import parse_source
from engine.language.source import SAVE_AS_UTF8, NotUtf8, SourceFile
from engine.plan.sqlfuncs import json_set
from engine.render import remember_source, sort_key
from engine.storage.db import create, server_tables, stored_tables
from engine.storage.distinct import EVENT_TYPES
from engine.storage.tables import NAME_LENGTH, customer_attributes, customers


def rule_files(rules_dir: Path) -> list[Path]:
    """The `*.rules` entries of the folder, in name order: files, and what is named as one but
    cannot be read as one (a folder, a link to nowhere), which `read_source` reports. Not
    hidden ones: an editor's lock or swap file (`.#a.rules`, a link to nowhere, while Emacs
    edits `a.rules`)."""
    found = (p for p in rules_dir.glob("*.rules") if not p.name.startswith("."))
    return sorted(found, key=lambda p: p.name)


def passed_over(rules_dir: Path) -> list[Diagnostic]:
    """A warning for each file that looks like a rule file but is not read as one: its name
    ends in `.RULES` or `.Rules` (read on Windows, not here), or it lies in a folder inside the
    rule set's (a rule set is the files of one folder)."""
    read = set(rule_files(rules_dir))  # on Windows, `.RULES` too
    found = [
        (path, "its name must end in `.rules`, in lower case")
        for path in rules_dir.glob("*")
        if path.suffix.lower() == ".rules" and path not in read and not path.name.startswith(".")
    ] + [
        (path, "a rule set is the `.rules` files of one folder, not of the folders inside it")
        for path in rules_dir.glob("*/*.rules")
        if not any(part.startswith(".") for part in path.relative_to(rules_dir).parts)
    ]
    return [
        Diagnostic("warning", "W005", f"`{path}` is not read as a rule file", help=why)
        for path, why in sorted(found)
    ]


def read_source(path: Path) -> tuple[SourceFile | None, list[Diagnostic]]:
    """The file's text, or a diagnostic saying why it cannot be read."""
    name = str(path)
    try:
        if not path.is_file():  # not read: a pipe would wait for a writer
            raise OSError(0, "not a file")
        data = path.read_bytes()
    except OSError as exc:
        if path.is_symlink() and not path.exists():
            why = f"it is a link to `{path.readlink()}`, which does not exist"
        elif path.is_dir():
            why = "it is a folder"
        else:
            why = exc.strerror or str(exc)
        return None, [Diagnostic("error", "E003", f"cannot read `{name}`: {why}")]
    try:
        return SourceFile(name, data.decode("utf-8")), []
    except UnicodeDecodeError as exc:
        bad = NotUtf8.at(name, data, exc.start)
        remember_source(SourceFile(name, bad.text))
        return None, [
            Diagnostic(
                "error",
                "E004",
                f"`{path.name}` is not UTF-8 text",
                bad.span,
                label=f"byte 0x{bad.byte:02x} cannot start a character here",
                help=SAVE_AS_UTF8,
            )
        ]


def unusable_folder(rules_dir: Path) -> Diagnostic | None:
    """E001 when `rules_dir` is not a folder; E006 when its name is longer than the ledger
    holds a rule set's (the daemon keeps its watermark under the folder's name)."""
    if (missing := not_a_folder(rules_dir)) is not None:
        return missing
    name = rules_dir.resolve().name
    if len(name) > NAME_LENGTH:
        return Diagnostic(
            "error",
            "E006",
            f"the rules folder's name is {len(name)} characters long; the daemon keeps a rule set"
            f" under its folder's name, of at most {NAME_LENGTH}",
            help="give the folder a shorter name",
        )
    return None


def not_a_folder(rules_dir: Path) -> Diagnostic | None:
    """E001 when `rules_dir` is not a folder, telling one who gave a rule file for its
    folder to give the folder."""
    if not rules_dir.is_dir():
        what = "is not a folder" if rules_dir.exists() else "does not exist"
        folder = rules_dir.parent
        # A rule file given for its folder (`nudge check shop/main.rules`): the folder is meant.
        meant = (
            f"give the folder that holds it, `{folder}`: every `*.rules` file of a folder is"
            " one rule set"
            if rules_dir.is_file() and rules_dir.suffix == ".rules"
            else "give the folder that holds your `*.rules` files"
        )
        return Diagnostic("error", "E001", f"the rules folder `{rules_dir}` {what}", help=meant)
    return None


def no_rule_files(rules_dir: Path) -> Diagnostic:
    """E002: `rules_dir` holds no rule file."""
    return Diagnostic(
        "error",
        "E002",
        f"no `*.rules` files in `{rules_dir}`",
        help="rule files end in `.rules`, e.g. `aftercare.rules`",
    )


def check_rule_set(
    rules_dir: Path,
    config: Config,
    known_events: Iterable[str] = (),
    imported: ImportedAttribute = none_imported,
) -> tuple[ast.RuleSet | None, list[Diagnostic]]:
    """Parse and check every rule file of `rules_dir`. Returns the rule set (None when there
    are errors) and every diagnostic, warnings included, in file and line order. `known_events`
    and `imported` are what the shop's database holds (`stored_event_types`,
    `imported_attributes`)."""
    missing = unusable_folder(rules_dir)
    if missing is not None:
        return None, [missing]
    paths = rule_files(rules_dir)
    if not paths:
        return None, [no_rule_files(rules_dir), *passed_over(rules_dir)]
    diagnostics: list[Diagnostic] = passed_over(rules_dir)
    files: list[ast.RuleFile] = []
    for path in paths:
        source, problems = read_source(path)
        if source is not None:
            rule_file, problems = parse_source(source)
            files.append(rule_file)
        diagnostics.extend(problems)
    complete = not diagnostics
    ruleset, problems = check_files(files, config, rules_dir, known_events, complete, imported)
    diagnostics.extend(problems)
    diagnostics.sort(key=sort_key)
    errors = any(d.severity == "error" for d in diagnostics)
    return (None if errors else ruleset), diagnostics


def load_rule_set(rules_dir: Path, config: Config, known_events: Iterable[str] = ()) -> ast.RuleSet:
    """The checked rule set of `rules_dir`; raises `RuleError` with every diagnostic when there
    is any error."""
    ruleset, diagnostics = check_rule_set(rules_dir, config, known_events)
    if ruleset is None:
        raise RuleError(diagnostics)
    return ruleset


def stored_event_types(database_url: str) -> list[str]:
    """The event types the shop's database holds, to recognise the shop's own event names.

    Empty when there is no Nudge database there yet: nothing is made or changed in it (a SQLite
    file that does not exist is not created), and a server that cannot be reached is not an
    error for checking rules.
    """
    try:
        engine = create(database_url)
    except DatabaseError:
        return []
    try:
        # A SQLite file is looked at read-only first; a server's tables are read on the
        # connection that then reads the types (one connection).
        sqlite = engine.dialect.name == "sqlite"
        tables = stored_tables(database_url) if sqlite else server_tables(engine)
        if tables is None or not {"alembic_version", "events"} <= tables:
            return []
        with engine.connect() as conn:
            return list(conn.scalars(EVENT_TYPES))
    except SQLAlchemyError:
        return []
    finally:
        engine.dispose()


def imported_attributes(engine: Engine, recorded: bool = True) -> ImportedAttribute:
    """Whether a customer in `engine`'s database holds an attribute of a name, imported from a
    column of that name (`points`): a template shows it as `customer.points`, where a rule reads
    the metric. Each name asked once, of the names the imports recorded (`customer_attributes`:
    an index lookup, where a scan of the customers took a second a name at 1,000,000 of them);
    without `recorded` (a database from before they were, which `check` reads as it is), of the
    customers, stopping at the first that holds it. False when it cannot be read."""

    @functools.cache
    def imported(name: str) -> bool:
        if recorded:
            query = select(customer_attributes.c.name).where(customer_attributes.c.name == name)
        else:
            held = customers.c.attributes
            query = select(customers.c.id).where(json_set(held, name)).limit(1)
        try:
            with engine.connect() as conn:
                return conn.execute(query).first() is not None
        except SQLAlchemyError:
            return False

    return imported


def stored_attributes(database_url: str) -> ImportedAttribute:
    """`imported_attributes` of the shop's database at `database_url`, for `nudge check`, which
    reads it as `stored_event_types` does: False for every name when there is no Nudge database
    there (nothing is made or changed in it) or it cannot be reached."""

    @functools.cache
    def imported(name: str) -> bool:
        tables = stored_tables(database_url)
        if tables is None or not {"alembic_version", "customers"} <= tables:
            return False
        try:
            engine = create(database_url)
        except DatabaseError:
            return False
        try:
            return imported_attributes(engine, "customer_attributes" in tables)(name)
        finally:
            engine.dispose()

    return imported
