"""Parsed files → a checked `RuleSet`, with every problem found in one pass.

Checks, in the words of the diagnostics (codes in docs/diagnostics.md): names (duplicate
rules and segments, unknown segments, segment cycles, templates, channels, holidays, event
names close to known ones), triggers and clauses (clock times, offsets, durations, `unless`
without `within`), expression types (`engine.checking.types`), rules whose conditions depend on
their own actions through tags or points (`engine.checking.dependencies`), and the templates the
rules send with those they include: each must compile, name templates that exist and not include
itself, and a template a rule sends should read only the names it is given or sets. Templates are
read, never rendered.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from pathlib import Path, PurePosixPath

from engine.checking import dependencies
from engine.checking.calendar import holiday_names, is_country, knows
from engine.checking.types import (
    CUSTOMER_FIELDS,
    ZERO_PERIODS,
    Scope,
    check_condition,
    check_number,
)
from engine.config import Config
from engine.errors import Diagnostic
from engine.importing.customers import KNOWN as STORED_FIELDS
from engine.language import ast
from engine.language.fmt import duration_text
from engine.language.source import SAVE_AS_UTF8, SourceFile, Span
from engine.language.suggest import did_you_mean, nearest
from engine.outbox.templates import (
    COUPON_FIELDS,
    CUSTOMER_TEMPLATE_FIELDS,
    MAX_TEMPLATE_BYTES,
    SHOP_FIELDS,
    TEMPLATE_SCOPE,
    Reference,
    TemplateEncodingError,
    TemplateError,
    Templates,
    TemplateSyntaxError,
    TemplateTooLarge,
    find_template,
    left_by_an_editor,
    left_folder,
    unmarked,
)
from engine.render import remember_source
from engine.storage.tables import CHANNEL_NAME_LENGTH, NAME_LENGTH, RULE_NAME_LENGTH

# The event names LANGUAGE.md 3.2 names; a name close to one of these (or to one the shop has
# sent) but not equal is probably a typo.
STANDARD_EVENTS = frozenset(
    {
        "order.placed",
        "order.paid",
        "order.shipped",
        "order.received",
        "order.returned",
        "cart.updated",
        "review.posted",
        "product.launched",
        "customer.referred",
    }
)
_CUSTOMER_TRIGGERS = frozenset(
    f"customer.{n}" for n in ast.CUSTOMER_DATE_FIELDS | ast.CUSTOMER_TIME_FIELDS
)
MINUTES_A_DAY = 24 * 60
_ACTION_HELP = "`once` (at most once per customer) or `once every D`"


def rule_name(rule: ast.Rule, file: str) -> str:
    """The rule's own name, or `FILE:LINE` for a rule without one."""
    return rule.name if rule.name is not None else f"{file}:{rule.span.line}"


# Whether the shop's customers were imported with an attribute of a name (`points`), which a
# template reads as `customer.points`; `ruleset.imported_attributes` asks the database.
ImportedAttribute = Callable[[str], bool]


def none_imported(name: str) -> bool:
    return False


def check_files(
    files: Sequence[ast.RuleFile],
    config: Config,
    rules_dir: Path,
    known_events: Iterable[str] = (),
    complete: bool = True,
    imported: ImportedAttribute = none_imported,
) -> tuple[ast.RuleSet | None, list[Diagnostic]]:
    """Check the files of one rule set (in name order). `complete` is False when some file of
    the set did not parse: then names defined elsewhere may be missing, and unknown segments
    are not reported. `imported` says whether the customers hold an attribute of a name a
    template reads. Returns the rule set (None when there are errors) and the diagnostics."""
    checker = _Checker(files, config, rules_dir, known_events, complete, imported)
    return checker.run()


def evaluation_strata(ruleset: ast.RuleSet) -> list[list[ast.CheckedRule]]:
    """The rules in the order their tags and points must be applied: each stratum reads only
    what earlier strata write; within one, by position (LANGUAGE.md 3.8)."""
    return dependencies.strata(ruleset.rules, ruleset.segments)


class _Checker:
    def __init__(
        self,
        files: Sequence[ast.RuleFile],
        config: Config,
        rules_dir: Path,
        known_events: Iterable[str],
        complete: bool,
        imported: ImportedAttribute,
    ) -> None:
        self.files = sorted(files, key=lambda f: f.name)
        self.imported = imported
        self.config = config
        self.templates_dir = config.templates_dir(rules_dir)
        self.known_events = frozenset(known_events) | STANDARD_EVENTS
        self.complete = complete
        self.diagnostics: list[Diagnostic] = []
        self.segments: dict[str, ast.Segment] = {}
        self.templates_used: dict[str, Span] = {}  # each template found, where first named
        # The names of its scope a rule sends the template with as none (`coupon` in a message),
        # each where first so sent.
        self.templates_none: dict[str, dict[str, Span]] = {}

    # -- reporting --------------------------------------------------------------------------------

    def error(
        self, code: str, message: str, span: Span | None, label: str, help: str | None = None
    ) -> None:
        self.diagnostics.append(Diagnostic("error", code, message, span, label, help))

    def report(self, diagnostic: Diagnostic) -> None:
        self.diagnostics.append(diagnostic)

    def warn_event(self, event: str, span: Span, trigger: bool = False) -> None:
        """W203 for an event name that is not known but close to a known one; outside `when`
        (`unless`, `count`, `sum`), also for a customer's field or metric, which names no
        event."""
        if event in self.known_events:
            return
        entity, _, name = event.partition(".")
        field = None
        if entity == "customer":
            field = name if name in CUSTOMER_FIELDS else nearest(name, CUSTOMER_FIELDS, cutoff=0.8)
        if not trigger and field is not None:
            value = f"customer.{field}"
            test = f"{value} > 0" if CUSTOMER_FIELDS[field].kind == "number" else f"{value} is set"
            self.report(
                Diagnostic(
                    "warning",
                    "W203",
                    (
                        f"`{event}` is a value of the customer, not an event"
                        if value == event
                        else f"`{event}` names no event; `{value}` is a value of the customer"
                    ),
                    span,
                    label="no event of this name is known",
                    help=f"compare the value itself, such as `{test}`; to count or add up"
                    " events, name them, such as `count(order.paid)`",
                )
            )
            return
        known = self.known_events | (_CUSTOMER_TRIGGERS if trigger else frozenset())
        close = nearest(event, known, cutoff=0.8)
        if close is not None:
            self.report(
                Diagnostic(
                    "warning",
                    "W203",
                    f"unknown event `{event}`",
                    span,
                    label="no event of this name is known",
                    help=f"did you mean `{close}`?",
                )
            )

    # -- the rule set -----------------------------------------------------------------------------

    def run(self) -> tuple[ast.RuleSet | None, list[Diagnostic]]:
        statements = [(f, s) for f in self.files for s in f.statements]
        self._collect_segments([s for _, s in statements if isinstance(s, ast.Segment)])
        rules: list[ast.CheckedRule] = []
        names: dict[str, ast.CheckedRule] = {}
        limits, quiet, excludes = [], [], []
        for file, statement in statements:
            match statement:
                case ast.Rule():
                    checked = ast.CheckedRule(
                        rule_name(statement, file.name), len(rules), file.name, statement
                    )
                    self._name_once(checked, names)
                    self._rule(statement)
                    self._once_without_a_name(checked)
                    rules.append(checked)
                case ast.Limit():
                    self._positive(statement.per, "limit")
                    limits.append(statement)
                case ast.QuietHours():
                    self._quiet_hours(statement)
                    quiet.append(statement)
                case ast.Exclude():
                    check_condition(statement.condition, self._scope(None, "exclude"))
                    excludes.append(statement)
        self._quiet_day(quiet)
        self._cycles(rules)
        templates = self._template_files()
        errors = any(d.severity == "error" for d in self.diagnostics)
        ruleset = ast.RuleSet(
            rules=tuple(rules),
            segments=dict(self.segments),
            limits=tuple(limits),
            quiet_hours=tuple(quiet),
            excludes=tuple(excludes),
            files=tuple(self.files),
            templates=templates,
        )
        return (None if errors else ruleset), self.diagnostics

    def _scope(self, event_entity: str | None, where: str) -> Scope:
        return Scope(
            event_entity=event_entity,
            where=where,
            segments=self.segments if self.complete else None,
            report=self.report,
            warn_event=self.warn_event,
        )

    def _name_once(self, rule: ast.CheckedRule, names: dict[str, ast.CheckedRule]) -> None:
        self._fits("rule name", rule.name, RULE_NAME_LENGTH, rule.rule.name_span or rule.rule.span)
        if rule.rule.name_span is not None and not rule.name.strip():
            self.error(
                "E306",
                "a rule's name cannot be empty",
                rule.rule.name_span,
                "empty",
                'name it, such as `rule "thank you"`, or leave out `rule ""` to have it named'
                " FILE:LINE",
            )
            return
        first = names.setdefault(rule.name, rule)
        if first is rule:
            return
        self.error(
            "E202",
            f'two rules are named "{rule.name}"',
            rule.rule.name_span or rule.rule.span,
            "second rule of this name",
            f"rule names are unique in a rule set; the first is at "
            f"{first.rule.span.file}:{first.rule.span.line}",
        )

    # -- segments ---------------------------------------------------------------------------------

    def _collect_segments(self, segments: list[ast.Segment]) -> None:
        for segment in segments:
            first = self.segments.setdefault(segment.name, segment)
            if first is not segment:
                self.error(
                    "E204",
                    f'two segments are named "{segment.name}"',
                    segment.name_span,
                    "second segment of this name",
                    f"segment names are unique in a rule set; the first is at "
                    f"{first.span.file}:{first.span.line}",
                )
        for segment in segments:
            if self.segments[segment.name] is segment:
                check_condition(segment.condition, self._scope(None, "segment"))
        self._segment_cycles()

    def _segment_cycles(self) -> None:
        names = sorted(self.segments)
        links = []
        for index, name in enumerate(names):
            for used in _segments_used(self.segments[name].condition):
                if used in self.segments:
                    links.append(dependencies.Edge(index, names.index(used), used))
        for component in dependencies.cycles(range(len(names)), links):
            members = [names[i] for i in component]
            first = self.segments[members[0]]
            listed = ", ".join(f'"{m}"' for m in members)
            self.error(
                "E205",
                f"segment {listed} is defined through itself"
                if len(members) == 1
                else f"segments {listed} are defined through each other",
                first.name_span,
                "part of a cycle",
                "a segment may use other segments, but not itself, directly or through others",
            )

    # -- rules ------------------------------------------------------------------------------------

    def _rule(self, rule: ast.Rule) -> None:
        trigger = rule.when.trigger
        self._trigger(trigger)
        if rule.when.at is not None and self._clock(rule.when.at):
            self._at_before_the_trigger(trigger, rule.when.at)
        event_entity = trigger.entity if isinstance(trigger, ast.EventTrigger) else None
        if rule.condition is not None:
            check_condition(rule.condition, self._scope(event_entity, "rule"))
        if rule.unless is not None:
            self._unless(rule.unless, trigger)
        if rule.once is not None and rule.once.every is not None:
            self._positive(rule.once.every, "once")
        for action in rule.actions:
            self._action(action, event_entity)

    def _once_without_a_name(self, checked: ast.CheckedRule) -> None:
        """W210: `once` or `once every` in a rule without a name. The daemon keeps what the
        rule did under its name, FILE:LINE (LANGUAGE.md 3), so a line added or taken away above
        it makes it a new rule, whose `once` starts afresh: a customer gets it again."""
        rule = checked.rule
        if rule.name is not None or rule.once is None:
            return
        self.report(
            Diagnostic(
                "warning",
                "W210",
                f"`once` in a rule without a name: the rule is {checked.name}, and a line added"
                " or taken away above it makes it a new rule, which acts again for a customer it"
                " acted for",
                rule.once.span,
                "kept under the rule's line",
                'give the rule a name on the line before `when`, e.g. `rule "first order gift"`',
            )
        )

    def _at_before_the_trigger(self, trigger: ast.Trigger, at: ast.ClockTime) -> None:
        """W319: `at HH:MM` after an event (or a customer timestamp) whose delay can end on the
        event's own day. The due time is HH:MM on the day the delay ends, so an event later
        than HH:MM whose delay ends that same day, one between HH:MM and 24:00 minus the
        delay, would be due before it happened, and nothing is done for it (3.3: the data of
        the due time does not hold it yet). On a day the clocks go back, 25 hours long, the
        window is an hour longer: that case alone is not warned of (docs/semantics.md)."""
        if isinstance(trigger, ast.EventTrigger):
            what = f"`{trigger.event}`"
        elif isinstance(trigger, ast.CustomerTrigger) and (
            trigger.name not in ast.CUSTOMER_DATE_FIELDS
        ):
            what = f"`customer.{trigger.name}`"
        else:
            return
        delay = 0 if trigger.offset is None else trigger.offset.seconds
        last = 86_400 - delay  # the latest time of day whose delay ends the same day
        if delay < 0 or last <= at.hour * 3600 + at.minute * 60:
            return  # before the event is E313; otherwise no event can be dropped
        clock = f"{at.hour:02d}:{at.minute:02d}"
        until = "" if not delay else f" and {last // 3600:02d}:{last % 3600 // 60:02d}"
        name = trigger.event if isinstance(trigger, ast.EventTrigger) else what.strip("`")
        self.report(
            Diagnostic(
                "warning",
                "W319",
                f"{what} {'between' if delay else 'after'} {clock}{until} (local) would be due"
                " before it happened, and is not acted on",
                at.span,
                "on its own day" if not delay else "on the day the delay ends",
                f"a delay that ends on a later day acts on every one: `{name} + 1d at {clock}`"
                f" is {clock} on the next day",
            )
        )

    def _trigger(self, trigger: ast.Trigger) -> None:
        match trigger:
            case ast.EventTrigger():
                self.warn_event(trigger.event, trigger.event_span, trigger=True)
                if trigger.offset is not None and trigger.offset.sign < 0:
                    back = duration_text(trigger.offset.duration)
                    entity, _, name = trigger.event.partition(".")
                    date = nearest(name, ast.CUSTOMER_DATE_FIELDS) if entity == "customer" else None
                    self.error(
                        "E313",
                        "a rule cannot act before the event that triggers it",
                        trigger.offset.span,
                        "a delay before the event",
                        f"did you mean `customer.{date} - {back}`? (a customer's date may be"
                        " moved back)"
                        if date is not None
                        else f"use `+` for a delay after the event, e.g. `{trigger.event} + "
                        f"{back}`",
                    )
            case ast.CustomerTrigger():
                offset = trigger.offset
                if trigger.name in ast.CUSTOMER_DATE_FIELDS:
                    self._whole_days(offset, f"`customer.{trigger.name}`")
                elif offset is not None and offset.sign < 0:
                    self.error(
                        "E313",
                        f"a rule cannot act before `customer.{trigger.name}` has happened",
                        offset.span,
                        "a time before it",
                        f"use `+`, e.g. `customer.{trigger.name} + "
                        f"{duration_text(offset.duration)}`",
                    )
            case ast.HolidayTrigger():
                self._holiday(trigger)
                self._whole_days(trigger.offset, "a holiday")
            case ast.ScheduleTrigger(every="month", day_of_month=day) if not 1 <= (day or 0) <= 31:
                self.error(
                    "E314",
                    f"no month has a day {day}",
                    trigger.span,
                    "not a day of the month",
                    "use a day from 1 to 31 (a month without that day has no slot)",
                )

    def _holiday(self, trigger: ast.HolidayTrigger) -> None:
        country = self.config.country
        if country is None:
            self.error(
                "E209",
                "holiday triggers need the shop's country",
                trigger.name_span,
                "no holiday calendar is configured",
                "set `country` in the configuration, e.g. `country: CN`",
            )
        elif not is_country(country):
            self.error(
                "E209",
                f"there is no holiday calendar for the country `{country}`",
                trigger.name_span,
                "no holiday calendar",
                "set `country` to an ISO code such as CN, US or DE",
            )
        elif not knows(country, trigger.name):
            self.error(
                "E208",
                f'"{trigger.name}" is not a holiday in the calendar of {country}',
                trigger.name_span,
                "unknown holiday",
                _holiday_help(trigger.name, country),
            )

    def _unless(self, unless: ast.Unless, trigger: ast.Trigger) -> None:
        self.warn_event(unless.event, unless.event_span)
        if unless.within is not None:
            self._positive(unless.within, "unless")
        elif not isinstance(trigger, ast.EventTrigger):
            self.error(
                "E315",
                "`unless` needs `within` here: this rule is not triggered by an event",
                unless.span,
                "since when?",
                f"say how far back to look, e.g. `unless {unless.event} within 30d`",
            )

    def _action(self, action: ast.Action, event_entity: str | None) -> None:
        if isinstance(action, ast.Message | ast.Coupon):
            self._template(action.template, action.template_span)
            nones = self.templates_none.setdefault(action.template, {})
            if not isinstance(action, ast.Coupon):
                nones.setdefault("coupon", action.template_span)
            if event_entity is None:
                nones.setdefault("event", action.template_span)
            if action.channel is not None and action.channel not in self.config.channels:
                # A warning: the rule is right and the configuration may not be written yet;
                # the daemon retries such messages, then keeps them as dead letters to retry.
                self.report(
                    Diagnostic(
                        "warning",
                        "W207",
                        f"no channel named `{action.channel}` is configured",
                        action.channel_span,
                        "unknown channel",
                        did_you_mean(action.channel, self.config.channels)
                        or "configure it under `channels:` in nudge.yaml (configured: "
                        + ", ".join(sorted(self.config.channels))
                        + ")",
                    )
                )
        if isinstance(action, ast.Coupon):
            self._coupon(action)
        elif isinstance(action, ast.Points):
            check_number(action.amount, self._scope(event_entity, "rule"), "`points`")
        elif isinstance(action, ast.Task | ast.TagAction):
            text, span = (
                (action.title, action.title_span)
                if isinstance(action, ast.Task)
                else (action.tag, action.tag_span)
            )
            if not text.strip():
                self.error("E306", f"`{action.kind}` needs a non-empty text", span, "empty")
            if isinstance(action, ast.TagAction):
                self._fits("tag", action.tag, NAME_LENGTH, span)
            elif action.assignee is not None:
                team_span = action.assignee_span or action.span
                if not action.assignee.strip():
                    self.error("E306", "`for` needs a team's name", team_span, "empty")
                self._fits("team", action.assignee, NAME_LENGTH, team_span)
        if isinstance(action, ast.Message | ast.Coupon) and action.channel is not None:
            span = action.channel_span or action.span
            self._fits("channel name", action.channel, CHANNEL_NAME_LENGTH, span)

    def _fits(self, what: str, name: str, longest: int, span: Span) -> None:
        """E320 for a name longer than the ledger holds."""
        if len(name) > longest:
            self.error(
                "E320",
                f"this {what} is {len(name):,} characters long; the most is {longest:,}",
                span,
                "too long",
                f"shorten the {what}",
            )

    def _template(self, name: str, span: Span) -> None:
        try:
            find_template(self.templates_dir, name)
        except TemplateError as exc:
            several = "several" in str(exc)
            self.error(
                "E206",
                f'several files could be the template "{name}"'
                if several
                else f'no template "{name}"',
                span,
                "ambiguous template" if several else "template not found",
                self._template_help(name, exc),
            )
        else:
            self.templates_used.setdefault(name, span)

    def _template_help(self, name: str, exc: TemplateError) -> str:
        """The help for a template name with no file, or with several."""
        if "several" in str(exc):
            return str(exc)
        left_in = left_folder(name)
        if left_in is not None:  # `emails.bak/welcome`
            return (
                f"`{left_in}` is taken for a folder that an editor or a backup left, which holds "
                "no templates: rename it to keep templates in it"
            )
        folder = self.templates_dir
        files = (
            sorted(p.relative_to(folder) for p in folder.rglob("*.*")) if folder.is_dir() else []
        )
        names = {
            f.with_suffix("").as_posix()
            for f in files
            if not any(left_by_an_editor(part) for part in f.parts)
        }
        in_a_copy = [  # `emails.bak/welcome.txt` for `emails/welcome`
            f
            for f in files
            if left_folder(f.as_posix()) is not None
            and not left_by_an_editor(f.name)
            and "/".join((*(unmarked(p) for p in f.parent.parts), f.stem)) == name
        ]
        if in_a_copy:
            return (
                f"`{in_a_copy[0].as_posix()}` is in a folder taken for a copy that an editor or "
                f"a backup left, which holds no templates: the template is a file "
                f"`{name}.*`"
            )
        stem = PurePosixPath(name).with_suffix("").as_posix() if "." in name else name
        if stem != name and stem in names:
            return f"a template is named without its extension: `{stem}`"
        left = [
            f for f in files if f.as_posix().startswith(f"{name}.") and left_by_an_editor(f.name)
        ]
        if left:  # `thanks.bak`, `thanks.txt.bak`: the only file the merchant sees for `thanks`
            base = PurePosixPath(name).name
            rest = left[0].name[len(base) + 1 :]  # `bak`, `txt.bak`, `txt~`
            parts = rest.removesuffix("~").split(".")
            extension = parts[0] if len(parts) > 1 or rest.endswith("~") else "txt"
            return (
                f"`{left[0].name}` is taken for a copy an editor left, not a template: name the "
                f"file `{base}.{extension}` (or another extension)"
            )
        elsewhere = "or set `templates:` in nudge.yaml to the folder that holds the templates"
        if folder.is_file():  # every template is missing, for this one reason
            return f"`{folder}` is a file: templates are files in a folder of its name, {elsewhere}"
        if not folder.exists():
            return (
                f"there is no templates folder `{folder}`: make it and put the template"
                f" `{name}.txt` in it, {elsewhere}"
            )
        return (
            did_you_mean(name, names)
            or f"a template `{name}` is a file `{name}.*` (any extension) in `{folder}`"
        )

    # -- template files ---------------------------------------------------------------------------

    def _template_files(self) -> tuple[Path, ...]:
        """E501-E504 and E508 for the templates that rules send and those they name, each file
        once: compiled (never rendered), every `{% include %}`, `{% import %}`, `{% from %}` and
        `{% extends %}` of a fixed name resolved, include cycles found. Returns the files of
        those that compiled."""
        templates = Templates(self.templates_dir)
        order: list[str] = []  # templates read, in the order they were reached
        paths: dict[str, Path] = {}  # name → file, for those that compiled
        links: list[tuple[str, Reference, str]] = []  # (from, reference, to)
        used_by = {
            name: f"the rule at {span} sends it" for name, span in self.templates_used.items()
        }
        waiting = list(self.templates_used)
        while waiting:
            name = waiting.pop(0)
            if name in order:
                continue
            order.append(name)
            try:
                path, references = templates.references(name)
            except TemplateSyntaxError as exc:
                self.error(
                    "E501",
                    f'template "{name}" is not valid Jinja',
                    _whole_line(exc.path, exc.line),
                    _lower_first(exc.reason).rstrip("."),
                    used_by[name],
                )
                continue
            except TemplateEncodingError as exc:
                remember_source(SourceFile(str(exc.path), exc.where.text))
                self.error(
                    "E504",
                    f'template "{name}" is not UTF-8 text',
                    exc.where.span,
                    f"byte 0x{exc.where.byte:02x} cannot start a character here",
                    f"{SAVE_AS_UTF8}; {used_by[name]}",
                )
                continue
            except TemplateTooLarge as exc:
                self.error(
                    "E508",
                    f'template "{name}" is too large: over {MAX_TEMPLATE_BYTES // 1_000_000} MB',
                    None,
                    f"{exc.path} is over {MAX_TEMPLATE_BYTES:,} bytes, and is not read",
                    "a template is the text of one message, a few kilobytes: put long texts and"
                    f" images on the shop's site and link to them; {used_by[name]}",
                )
                continue
            except TemplateError as exc:
                self.error("E504", f'template "{name}" cannot be read', None, str(exc))
                continue
            paths[name] = path
            if name in self.templates_used:  # rendered as sent, with the scope alone
                self._unknown_names(templates, name, path)
                self._none_reads(templates, name, path)
                self._unknown_fields(templates, name, path)
            for reference in references:
                target = templates.resolve(reference)
                if target is not None:
                    links.append((name, reference, target))
                    used_by.setdefault(target, f'included by "{name}" at {path}:{reference.line}')
                    waiting.append(target)
                elif reference.names and None not in reference.names and not reference.optional:
                    self._missing_include(name, path, reference)
        self._include_cycles(order, paths, links)
        return tuple(paths.values())

    def _unknown_names(self, templates: Templates, name: str, path: Path) -> None:
        """W505 for each name the template reads that it is not given and does not set."""
        given = ", ".join(f"`{n}`" for n in TEMPLATE_SCOPE)
        for unknown, line in templates.unknown_names(name):
            self.report(
                Diagnostic(
                    "warning",
                    "W505",
                    f'template "{name}" reads `{unknown}`, which is not defined',
                    _word_on_line(path, line, unknown),
                    label="not given to the template, nor set in it",
                    help=did_you_mean(unknown, TEMPLATE_SCOPE)
                    or f"a template is given {given}; a message whose template reads "
                    "another name fails when it is sent, unless it asks `is defined` first",
                )
            )

    def _none_reads(self, templates: Templates, name: str, path: Path) -> None:
        """W506 for each name of the scope that a rule sends the template with as none
        (`coupon` in a message, `event` on a date) and that it reads unguarded."""
        nones = self.templates_none.get(name, {})
        for read, line in templates.none_reads(name, nones):
            why = (
                "sends it as a message, without a coupon"
                if read == "coupon"
                else "is triggered by a date, not an event"
            )
            self.report(
                Diagnostic(
                    "warning",
                    "W506",
                    f'template "{name}" reads `{read}`, but a rule sends it without one',
                    _word_on_line(path, line, read),
                    label=f"`{read}` is none when that rule sends it",
                    help=f"the rule at {nones[read]} {why}; read `{read}` inside"
                    f" `{{% if {read} %}}`",
                )
            )

    def _unknown_fields(self, templates: Templates, name: str, path: Path) -> None:
        """W507 for each field of `coupon` or `shop` the template reads that they do not have:
        a coupon's are fixed, the shop's are nudge.yaml's `shop:` settings."""
        known = {
            "coupon": (COUPON_FIELDS, "a coupon does not have", "a coupon has"),
            "shop": (
                (*SHOP_FIELDS, *map(str, self.config.shop)),
                "`shop` does not hold",
                "`shop` holds nudge.yaml's `shop:` settings, and"
                if self.config.shop
                else "nudge.yaml has no `shop:` settings; `shop` holds only",
            ),
        }
        for record, (fields, lacks, has) in known.items():
            for read, line in templates.field_reads(name, record):
                if read in fields:
                    continue
                self.report(
                    Diagnostic(
                        "warning",
                        "W507",
                        f'template "{name}" reads `{record}.{read}`, which {lacks}',
                        _field_on_line(path, line, record, read),
                        label=f"not a field of `{record}`",
                        help=did_you_mean(read, fields)
                        or f"{has} {', '.join(f'`{f}`' for f in fields)}",
                    )
                )
        self._customer_fields(templates, name, path)

    def _customer_fields(self, templates: Templates, name: str, path: Path) -> None:
        """W507 for a field of `customer` that a template is not given although rules know it
        (a metric such as `points`, unless the customers were imported with an attribute of
        that name, which the template shows; `signed_up`, `accepts_marketing`), or that is
        close to one it is given (`customer.nmae`): read, it fails the message, or `| default`
        hides it for good. Any other is taken for an attribute of the shop's data."""
        given = ", ".join(f"`{f}`" for f in CUSTOMER_TEMPLATE_FIELDS)
        for read, line in templates.field_reads(name, "customer"):
            if read in CUSTOMER_TEMPLATE_FIELDS:
                continue
            if read in CUSTOMER_FIELDS:
                how = "read" if read in _STORED_FOR_RULES else "compute"
                if how == "compute" and self.imported(read):
                    continue
                message = f"which the rules {how} but a template is not given"
                help = (
                    f"a template is given the customer's {given} and the attributes the"
                    f" customers were imported with; `{read}` is for the rules' conditions"
                )
            else:
                close = nearest(read, CUSTOMER_TEMPLATE_FIELDS, cutoff=0.8)
                if close is None:
                    continue
                message = "which is not a customer field"
                help = f"did you mean `{close}`?"
            self.report(
                Diagnostic(
                    "warning",
                    "W507",
                    f'template "{name}" reads `customer.{read}`, {message}',
                    _field_on_line(path, line, "customer", read),
                    label="not a field of `customer` in a template",
                    help=help,
                )
            )

    def _missing_include(self, name: str, path: Path, reference: Reference) -> None:
        wanted = str(reference.names[0])
        try:
            find_template(self.templates_dir, wanted)
        except TemplateError as exc:
            problem = exc
        else:  # not reached: `resolve` found no file for any of the names
            return
        several = "several" in str(problem) and len(reference.names) == 1
        listed = ", ".join(f'"{n}"' for n in reference.names)
        self.error(
            "E502",
            f'template "{name}" names a template that does not exist: {listed}'
            if not several
            else f'template "{name}" names "{wanted}", which several files could be',
            _name_on_line(path, reference.line, wanted),
            "ambiguous template" if several else "template not found",
            self._template_help(wanted, problem),
        )

    def _include_cycles(
        self, order: list[str], paths: dict[str, Path], links: list[tuple[str, Reference, str]]
    ) -> None:
        edges = [
            dependencies.Edge(order.index(source), order.index(target), target)
            for source, _, target in links
        ]
        for component in dependencies.cycles(range(len(order)), edges):
            members = {order[i] for i in component}
            first = order[component[0]]
            chain = _cycle_through(first, [(s, t) for s, _, t in links if {s, t} <= members])
            source, reference, target = next(
                link for link in links if link[0] == first and link[2] == chain[1]
            )
            self.error(
                "E503",
                f'template "{first}" includes itself'
                if len(members) == 1
                else "templates "
                + ", ".join(f'"{m}"' for m in sorted(members))
                + " include each other",
                _name_on_line(paths[source], reference.line, target),
                " → ".join(chain),
                "rendering would never end; a template may include others, but not itself, "
                "directly or through others (to repeat a part, use a `{% for %}` loop)",
            )

    def _coupon(self, coupon: ast.Coupon) -> None:
        worth = coupon.worth.value
        if worth <= 0 or (coupon.percent and worth > 100):
            self.error(
                "E306",
                "a percentage coupon is worth more than 0% and at most 100%"
                if coupon.percent
                else "a coupon must be worth more than 0",
                coupon.worth.span,
                "impossible value",
            )
        elif not coupon.percent and worth < 1:
            # `worth 0.3`: valid, 0.3 in money, but meant as 30% off almost always.
            share = format((Decimal(coupon.worth.text) * 100).normalize(), "f")
            self.report(
                Diagnostic(
                    "warning",
                    "W325",
                    f"a coupon worth {coupon.worth.text} takes {coupon.worth.text} off, in the "
                    "shop's currency",
                    coupon.worth.span,
                    "less than 1 in money",
                    f"for {share}% off, write `{share}%`; a coupon's worth without `%` is an "
                    "amount of money",
                )
            )
        if coupon.expires is not None:
            self._positive(coupon.expires, "expires")

    # -- policies ---------------------------------------------------------------------------------

    def _quiet_hours(self, quiet: ast.QuietHours) -> None:
        valid = self._clock(quiet.start) & self._clock(quiet.end)
        if valid and quiet.start == quiet.end:
            self.error(
                "E316",
                "quiet hours from a time to the same time are empty",
                quiet.span,
                "an empty window",
                "give two different times, e.g. `quiet hours 22:00 to 08:00`",
            )

    def _quiet_day(self, windows: list[ast.QuietHours]) -> None:
        """E323 where quiet hours together leave no minute of the day to send in: a message to
        a customer would wait for their end forever."""
        quiet = [False] * MINUTES_A_DAY
        for window in windows:
            clocks = (window.start, window.end)
            if window.start == window.end or not all(_is_clock(c) for c in clocks):
                continue  # E316 or E310
            start, end = (clock.hour * 60 + clock.minute for clock in clocks)
            for minute in range(start, end if start < end else end + MINUTES_A_DAY):
                quiet[minute % MINUTES_A_DAY] = True
            if all(quiet):
                self.error(
                    "E323",
                    "quiet hours cover the whole day: no message to a customer could be sent",
                    window.span,
                    "with the quiet hours before it, no time of day is left",
                    "leave part of the day outside quiet hours, e.g. `quiet hours 22:00 to 08:00`",
                )
                return

    # -- values -----------------------------------------------------------------------------------

    def _clock(self, clock: ast.ClockTime) -> bool:
        if _is_clock(clock):
            return True
        self.error(
            "E310",
            f"{clock.hour:02d}:{clock.minute:02d} is not a time of day",
            clock.span,
            "no such time",
            "clock times go from 00:00 to 23:59"
            + ("; midnight is 00:00" if clock.hour == 24 else ""),
        )
        return False

    def _positive(self, duration: ast.Duration, where: str) -> None:
        """E311 for a period of zero (`once every 0d`, `per 0d`, `within 0h`, `expires 0d`):
        what it would do, which is not what it says, and the duration to write."""
        if duration.seconds == 0:
            message, label, help = ZERO_PERIODS[where]
            self.error("E311", message, duration.span, label, help)

    def _whole_days(self, offset: ast.Offset | None, what: str) -> None:
        if offset is not None and offset.duration.whole_days is None:
            self.error(
                "E312",
                f"the offset of {what} must be whole days or weeks",
                offset.duration.span,
                "not whole days",
                "it moves the calendar date; add a clock time with `at`, e.g. `- 1d at 09:00`",
            )

    # -- dependency cycles ------------------------------------------------------------------------

    def _cycles(self, rules: list[ast.CheckedRule]) -> None:
        """E401 for a cycle through a condition: a rule's condition that depends on its own
        actions. A cycle through the amounts of `points` alone is evaluated in the order of
        due times (`dependencies`), no error."""
        conditions = dependencies.edges(rules, self.segments)
        links = conditions + dependencies.amount_edges(rules)
        for component in dependencies.condition_cycles(rules, self.segments):
            members = set(component)
            inside = [e for e in links if e.reader in members and e.writer in members]
            first = rules[min(e.reader for e in conditions if e.reader in members)]
            read = [e.what for e in conditions if e.reader == first.position and e in inside]
            reasons = "; ".join(_reason(rules, e) for e in inside)
            if len(component) == 1:
                message = f'rule "{first.name}" tests what its own actions change'
            else:
                listed = ", ".join(f'"{rules[p].name}"' for p in component)
                message = f"rules {listed} test what each other's actions change"
            condition = first.rule.condition
            assert condition is not None  # it reads what the cycle's rules give
            self.error(
                "E401",
                message,
                _reading(condition, read[0], self.segments).span if read else condition.span,
                reasons,
                f"a rule may not depend on its own tags or points; to act only once, drop "
                f"that test and use {_ACTION_HELP}",
            )


# Letters two words begin with alike for one to be taken for the other's kin (`Weihnachten`,
# `Weihnachtstag`); fewer match words that only share a prefix (`Christ`mas, `Christ`i).
_HOLIDAY_STEM = 7


def _holiday_help(name: str, country: str) -> str:
    """Help for a holiday name `country`'s calendar does not know: the nearest name; else
    the names with a word of the same stem (`Weihnachten`: `Erster Weihnachtstag`); else every
    holiday of the calendar, in English and the country's language, but the days off that a
    calendar (CN) moves from one date to another, which are no holidays of their own."""
    names = holiday_names(country)
    near = did_you_mean(name, names, cutoff=0.6)
    if near:
        return near
    words = [w.casefold() for w in re.findall(r"\w+", name) if len(w) >= _HOLIDAY_STEM]
    kin = [
        n
        for n in names
        if any(
            w[:_HOLIDAY_STEM] == own.casefold()[:_HOLIDAY_STEM]
            for own in re.findall(r"\w+", n)
            for w in words
        )
    ]
    if kin:
        return "did you mean " + " or ".join(f"`{n}`" for n in kin[:3]) + "?"
    listed = ", ".join(n for n in names if not any(c.isdigit() for c in n))
    return (
        f"the holidays of {country}'s calendar, as the `holidays` package spells them in English"
        f" and the country's own language: {listed}"
    )


def _reading(condition: ast.Expr, what: str, segments: dict[str, ast.Segment]) -> ast.Expr:
    """The first part of `condition` that reads `what` (a tag or "points"): a comparison, a
    value or a segment (E401 is shown there); else the whole condition."""
    for node in ast.walk(condition):
        if isinstance(node, ast.InSegment | ast.Compare | ast.Ref):
            read = dependencies.reads(node, segments)
            if read.points if what == "points" else bool({what, dependencies.ALL_TAGS} & read.tags):
                return node
    return condition


def _reason(rules: list[ast.CheckedRule], edge: dependencies.Edge) -> str:
    reader, writer = rules[edge.reader].name, rules[edge.writer].name
    if edge.what == "points":
        return f'"{reader}" reads points that "{writer}" gives'
    return f'"{reader}" reads tag "{edge.what}" that "{writer}" sets'


def _cycle_through(start: str, links: list[tuple[str, str]]) -> list[str]:
    """The shortest path of `links` from `start` back to it: `[start, ..., start]`."""
    paths = {start: [start]}
    waiting = [start]
    while waiting:
        current = waiting.pop(0)
        for source, target in links:
            if source != current:
                continue
            if target == start:
                return [*paths[current], start]
            if target not in paths:
                paths[target] = [*paths[current], target]
                waiting.append(target)
    raise ValueError(f"{start} is on no cycle")


def _source_line(path: Path, line: int) -> str:
    """Line `line` of the file as `engine.render` shows it ("" when it cannot be read)."""
    try:
        lines = path.read_text(encoding="utf-8").removeprefix("\ufeff").splitlines()
    except (OSError, UnicodeDecodeError):
        return ""
    return lines[line - 1] if 0 < line <= len(lines) else ""


def _whole_line(path: Path, line: int) -> Span:
    """The text of line `line` of a template, without its indentation: Jinja says which line
    is wrong, not where on it."""
    text = _source_line(path, line)
    start = len(text) - len(text.lstrip())
    end = max(len(text.rstrip()), start + 1)
    return Span(str(path), line, start + 1, line, end + 1)


def _name_on_line(path: Path, line: int, name: str) -> Span:
    """The quoted `name` on line `line` of a template, else the whole line."""
    text = _source_line(path, line)
    for quote in "\"'":
        start = text.find(f"{quote}{name}{quote}")
        if start >= 0:
            return Span(str(path), line, start + 1, line, start + len(name) + 3)
    return _whole_line(path, line)


def _word_on_line(path: Path, line: int, word: str) -> Span:
    """`word` on line `line` of a template where it stands as a name, the first such inside
    `{{ }}` or `{% %}` (else the first; else the whole line)."""
    text = _source_line(path, line)
    found = list(re.finditer(rf"(?<![\w.]){re.escape(word)}(?!\w)", text))
    if not found:
        return _whole_line(path, line)
    tags = [m.span() for m in re.finditer(r"\{[{%].*?(?:[}%]\}|$)", text)]
    inside = [m for m in found if any(start < m.start() < end for start, end in tags)]
    chosen = (inside or found)[0]
    return Span(str(path), line, chosen.start() + 1, line, chosen.end() + 1)


# The customer's stored fields that the rules read but a template is not given
# (`signed_up`, `accepts_marketing`); the other fields no template has are metrics.
_STORED_FOR_RULES = STORED_FIELDS - set(CUSTOMER_TEMPLATE_FIELDS)


def _field_on_line(path: Path, line: int, record: str, field: str) -> Span:
    """`field` where line `line` of a template reads it of `record` (`coupon.min`,
    `coupon["min"]`); else the whole line."""
    text = _source_line(path, line)
    quoted = rf"\[\s*['\"]({re.escape(field)})['\"]\s*\]"
    found = re.search(
        rf"(?<![\w.]){re.escape(record)}\s*(?:\.\s*({re.escape(field)})\b|{quoted})", text
    )
    if found is None:
        return _whole_line(path, line)
    group = 1 if found.group(1) is not None else 2
    return Span(str(path), line, found.start(group) + 1, line, found.end(group) + 1)


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _segments_used(expr: ast.Expr) -> set[str]:
    return {node.segment for node in ast.walk(expr) if isinstance(node, ast.InSegment)}


def _is_clock(clock: ast.ClockTime) -> bool:
    return 0 <= clock.hour <= 23 and 0 <= clock.minute <= 59
