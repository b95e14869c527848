"""Message templates: Jinja2 text rendered in a sandbox (LANGUAGE.md section 6).

A template named `fit_check` is the one file `fit_check.*` in the templates folder. It renders
with `customer`, `event`, `coupon` and `shop` in scope. Anything that goes wrong while finding,
parsing or rendering it — no such file, a syntax error, a variable that is not set, an operation
the sandbox forbids, templates that include each other without end — is a `TemplateError` naming
the template, never a crash of the caller.

`Templates.references` reads what a template names in `{% include %}`, `{% import %}`,
`{% from %}` and `{% extends %}` without rendering it, for `nudge check`.

When the rendered text starts with a line `Subject: ...` (after any blank lines), that line is the
message's subject and the rest (after one optional blank line) is its body.
"""

from __future__ import annotations

import codecs
import copy
import functools
import hashlib
import html
import math
import re
import string
import time
import traceback
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import jinja2
from jinja2 import meta, nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.filters import do_reverse, make_attrgetter
from jinja2.loaders import split_template_path
from jinja2.runtime import LoopContext
from jinja2.sandbox import SandboxedEnvironment, SecurityError
from jinja2.utils import _PassArg

from engine.errors import NudgeError
from engine.language.source import NotUtf8

_HTML_SUFFIXES = frozenset({".html", ".htm", ".xml"})
_SUBJECT = "subject:"


class TemplateError(NudgeError):
    """A template that cannot be found, parsed or rendered."""


class TemplateEncodingError(TemplateError):
    """A template file that is not UTF-8 text: `where` its first bad byte is."""

    def __init__(self, name: str, path: Path, where: NotUtf8) -> None:
        self.name, self.path, self.where = name, path, where
        span = where.span
        super().__init__(
            f"template {name!r}: {path.name} is not UTF-8 text (line {span.line},"
            f" column {span.column})"
        )


class TemplateTooLarge(TemplateError):
    """A template file over `MAX_TEMPLATE_BYTES`: not read, so never compiled (a 13 MB file took
    minutes, every time the daemon sent it)."""

    def __init__(self, name: str, path: Path) -> None:
        self.name, self.path = name, path
        super().__init__(
            f"template {name!r}: {path.name} is over {MAX_TEMPLATE_BYTES // 1_000_000} MB, more"
            " than a message template can be (a message is a few kilobytes: link to long texts"
            " and images rather than putting them in the file); make it smaller"
        )


class TemplateSyntaxError(TemplateError):
    """A template that is not valid Jinja: the file, the line and what Jinja says is wrong."""

    def __init__(self, name: str, path: Path, line: int, reason: str) -> None:
        self.name, self.path, self.line, self.reason = name, path, line, reason
        super().__init__(f"template {name!r}: {path.name}:{line}: {reason}")


@dataclass(frozen=True)
class Reference:
    """A template named by another's `{% include %}`, `{% import %}`, `{% from %}` or
    `{% extends %}` on line `line`: the names tried in turn (an include may list several; None
    for a name computed while rendering) and whether it is `ignore missing`."""

    names: tuple[str | None, ...]
    line: int
    optional: bool


@dataclass(frozen=True)
class Rendered:
    """A rendered template: its subject (when it has a `Subject:` line) and its body."""

    subject: str | None
    body: str
    html: bool


# How editors and tools end the names of the copies they leave beside a file: a backup
# (`thanks.bak`, Windows editors' in place of the extension, `thanks.txt.bak`; `thanks.orig`,
# a merge's or a patch's; `thanks.old`), a file written while saving (`thanks.tmp`, JetBrains'
# `thanks.txt___jb_tmp___` and `___jb_old___`). Matched whatever the case (`THANKS.BAK`).
_LEFT_ENDINGS = (".bak", ".orig", ".old", ".tmp", "___jb_tmp___", "___jb_old___")


def left_by_an_editor(name: str) -> bool:
    """Whether a file named `name` is an editor's backup (`fit_check.txt~`, `fit_check.bak`) or
    temporary file, or a hidden file (a swap or lock file): none is a template. A folder inside
    the templates folder so named (`emails.bak`, `emails.old`, `.git`) is a backup's or a tool's
    copy too, and holds none: `find_template` does not look into it, the daemon does not watch
    it (`daemon.Daemon._template_files`), and `check` offers none of its files."""
    return name.endswith("~") or name.startswith(".") or name.lower().endswith(_LEFT_ENDINGS)


def unmarked(name: str) -> str:
    """`name` without what marks it as an editor's or a backup's (`emails.bak` → `emails`)."""
    name = name.rstrip("~").lstrip(".")
    for ending in _LEFT_ENDINGS:
        if name.lower().endswith(ending):
            return name[: -len(ending)]
    return name


def left_folder(name: str) -> str | None:
    """The first folder of the template name `name` (`emails.bak/welcome`) that is taken for a
    copy an editor or a backup left (`emails.bak`), if one is."""
    return next((part for part in name.split("/")[:-1] if left_by_an_editor(part)), None)


def find_template(templates_dir: Path, name: str) -> Path:
    """The one file `NAME.*` in `templates_dir`; a TemplateError when there is none or several.

    `name` may reach into a subfolder (`emails/welcome`) but never out of the templates folder,
    nor into a folder that a backup left (`emails.bak`). An editor's backup (`fit_check.txt~`)
    or hidden file is none: it would make two.
    """
    try:
        parts = split_template_path(name)
    except jinja2.TemplateNotFound:
        raise TemplateError(f"template {name!r}: not a template name") from None
    if not parts:
        raise TemplateError(f"template {name!r}: not a template name")
    left = left_folder("/".join(parts))
    if left is not None:
        raise TemplateError(
            f"template {name!r}: the folder {left} is taken for a copy that an editor or a backup"
            " left, which holds no templates"
        )
    folder = templates_dir.joinpath(*parts[:-1])
    stem = parts[-1]
    matches = (
        sorted(
            p
            for p in folder.iterdir()
            if p.is_file() and p.stem == stem and p.suffix and not left_by_an_editor(p.name)
        )
        if folder.is_dir()
        else []
    )
    if not matches:
        raise TemplateError(f"template {name!r}: no file {stem}.* in {folder}")
    if len(matches) > 1:
        listed = ", ".join(p.name for p in matches)
        raise TemplateError(f"template {name!r}: several files match ({listed}); keep one")
    return matches[0]


class Record:
    """A mapping shown to templates as an object whose attributes are its keys, and only those:
    `customer.items` is the customer's attribute `items`, never a dict method. Nested mappings
    become records too, and a value that is not set (None) an `Unset`. Its `label` names it in
    errors (`customer has no attribute 'x'`)."""

    _label: str

    def __init__(self, label: str, fields: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_label", label)
        for key, value in fields.items():
            object.__setattr__(self, str(key), _field(f"{label}.{key}", value))

    def __getitem__(self, key: str) -> Any:
        return self.__dict__[key]

    def __repr__(self) -> str:
        return f"<{self._label}>"


def as_record(label: str, value: object) -> object:
    """`value` with every mapping in it (also inside lists) turned into a `Record`, and every
    None inside those records and lists into an `Unset`, named by its place in a list
    (`customer.codes[1]`: the list itself is set)."""
    if isinstance(value, Mapping):
        return Record(label, value)
    if isinstance(value, list | tuple):
        return [
            Unset(name=f"{label}[{at}]") if item is None else as_record(label, item)
            for at, item in enumerate(value)
        ]
    return value


def _field(label: str, value: object) -> object:
    """A value of a record (`as_record`), an `Unset` when it is None."""
    return Unset(name=label) if value is None else as_record(label, value)


class Unset(jinja2.Undefined):
    """A field that is held but not set (a customer imported without a name, a coupon without
    a minimum spend): Jinja's lenient Undefined, so that it is no text wherever text is made of
    it, through a filter (`| title`), `~` or `join` as well as written out, where None was the
    word "None". It tests as none and as defined, equals none, is false, and takes a default
    (`| default("there")`); `| int` and `| float` give 0 for it, as for none. Used as a number
    (`customer.points + 1`, `> 100`) or read further (`.x`), it fails the message, saying which
    field is not set."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        field = self._undefined_name
        return (
            f"{field} is not set for this message's {str(field).partition('.')[0]} (write"
            f" `{field} | default(...)` for what to use then)"
        )

    def __eq__(self, other: object) -> bool:
        return other is None or isinstance(other, Unset)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(None)

    def __repr__(self) -> str:
        """As none shows in a list or a mapping shown whole (`{{ customer.codes }}`, `pprint`):
        `['A', None]`, not Jinja's `Undefined`."""
        return "None"

    def _no_number(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(self._undefined_message)

    __int__ = __float__ = _no_number  # `| int` and `| float` give their default, as for none


def _none(value: Any) -> bool:
    """Jinja's test `none`, an `Unset` field too."""
    return value is None or isinstance(value, Unset)


def _sameas(value: Any, other: Any) -> bool:
    """Jinja's test `sameas`: an `Unset` field is the same as none (`is sameas none`)."""
    return value is other or (other is None and isinstance(value, Unset))


def _reverse(value: Any) -> Any:
    """Jinja's `reverse`: no text for an `Unset` field, which it gave as Python's words for a
    reversed list (`<reversed object at 0x7f...>`)."""
    return "" if isinstance(value, Unset) else do_reverse(value)


def _is_defined(value: Any) -> bool:
    """Jinja's test `defined`: an `Unset` field is defined (held, not set), as None was."""
    return not isinstance(value, jinja2.Undefined) or isinstance(value, Unset)


def _json_default(value: Any) -> Any:
    """`| tojson` of an `Unset` field: null, as of none."""
    if isinstance(value, Unset):
        return None
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


class _Undefined(jinja2.StrictUndefined):
    """StrictUndefined that names a record by its label rather than its Python type."""

    @property
    def _undefined_message(self) -> str:
        owner = self._undefined_obj
        if isinstance(owner, Record) and self._undefined_name and not self._undefined_hint:
            return f"{owner._label} has no attribute {self._undefined_name!r}"
        return str(super()._undefined_message)


# The largest template file read, in bytes. Jinja compiles a megabyte of template in seconds, and
# compiles it again whenever the daemon starts or the file changes; a message is a few kilobytes.
MAX_TEMPLATE_BYTES = 1_000_000


def read_template(name: str, path: Path) -> str:
    """The text of template `name`'s file; a TemplateError when it cannot be read as UTF-8, a
    TemplateTooLarge when it is over `MAX_TEMPLATE_BYTES` (read no further than that)."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_TEMPLATE_BYTES + 1)
    except OSError as exc:
        raise TemplateError(f"template {name!r}: cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_TEMPLATE_BYTES:
        raise TemplateTooLarge(name, path)
    if data.startswith(codecs.BOM_UTF8):  # an editor's byte-order mark is no part of the text
        data = data[len(codecs.BOM_UTF8) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TemplateEncodingError(name, path, NotUtf8.at(str(path), data, exc.start)) from None


# The names a template sees when it is sent (`outbox`, `_render`), as LANGUAGE.md gives them.
TEMPLATE_SCOPE = ("customer", "event", "coupon", "shop")
# What `coupon` holds (`ledger._issue_coupons` makes it), and `shop` besides nudge.yaml's `shop:`
# settings (`outbox`).
COUPON_FIELDS = ("code", "worth", "unit", "min_spend", "expires", "expires_local")
SHOP_FIELDS = ("timezone", "country")
# What `customer` holds besides the customer's imported attributes (`ledger._customers`): no
# metric of the rules (`points`, `orders`...), nor `signed_up` or `accepts_marketing`.
CUSTOMER_TEMPLATE_FIELDS = ("id", "name", "email", "phone", "birthday", "timezone", "tags")
_REFERENCES = (nodes.Extends, nodes.FromImport, nodes.Import, nodes.Include)
_TOO_DEEP = (
    "it nests too deeply to be read or rendered (an include or a macro that calls itself "
    "without end, or expressions or blocks inside one another hundreds deep)"
)


class _FolderLoader(jinja2.BaseLoader):
    """Loads `NAME` from the file `NAME.*`, so that `{% include "footer" %}` works the same way.
    `loaded` holds the file each name was last loaded from."""

    def __init__(self, templates_dir: Path) -> None:
        self.templates_dir = templates_dir
        self.loaded: dict[str, Path] = {}

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        try:
            path = find_template(self.templates_dir, template)
        except TemplateError as exc:
            raise jinja2.TemplateNotFound(template, str(exc)) from None
        mtime = path.stat().st_mtime
        source = read_template(template, path)
        self.loaded[template] = path

        def uptodate() -> bool:
            try:
                return path.stat().st_mtime == mtime
            except OSError:
                return False

        return source, str(path), uptodate


def _assigned(parsed: nodes.Template) -> set[str]:
    """The names a template sets anywhere in it: `{% set %}`, loop and `with` targets, macros
    and their parameters, imports."""
    found = {name.name for name in parsed.find_all(nodes.Name) if name.ctx in ("store", "param")}
    found |= {macro.name for macro in parsed.find_all(nodes.Macro)}
    found |= {imported.target for imported in parsed.find_all(nodes.Import)}
    for imported in parsed.find_all(nodes.FromImport):
        found |= {name if isinstance(name, str) else name[1] for name in imported.names}
    return found


def _unguarded_reads(
    node: nodes.Node, guarded: frozenset[str] = frozenset(), *, none: bool = False
) -> Iterator[nodes.Name]:
    """The names `node` reads where nothing guards them: not within the branch of an `if`
    (or `and`, `or`, `… if … else …`) whose test says the name is defined there, and not
    through `| default`. Such a read fails when the template is not given the name.

    With `none`, for names given as none (`coupon` to a message's template): the guards are
    tests of the name's truth or `is none` instead, and `| default` covers its attributes too
    (`coupon.code | default("")`), as reading an attribute of none is undefined."""
    if isinstance(node, nodes.If | nodes.CondExpr):
        yes, no = _defined(node.test, none)
        yield from _unguarded_reads(node.test, guarded | yes | no, none=none)
        if isinstance(node, nodes.CondExpr):
            yield from _unguarded_reads(node.expr1, guarded | yes, none=none)
            if node.expr2 is not None:
                yield from _unguarded_reads(node.expr2, guarded | no, none=none)
            return
        for child in node.body:
            yield from _unguarded_reads(child, guarded | yes, none=none)
        for child in [*node.elif_, *node.else_]:
            yield from _unguarded_reads(child, guarded | no, none=none)
        return
    if isinstance(node, nodes.And | nodes.Or):
        yes, no = _defined(node.left, none)
        yield from _unguarded_reads(node.left, guarded | yes | no, none=none)
        yield from _unguarded_reads(
            node.right, guarded | (yes if isinstance(node, nodes.And) else no), none=none
        )
        return
    if isinstance(node, nodes.Filter) and node.name in ("default", "d"):
        for child in node.iter_child_nodes():  # `voucher.code | default` still fails
            covered = child
            while none and isinstance(covered, nodes.Getattr | nodes.Getitem):
                covered = covered.node
            if not (child is node.node and isinstance(covered, nodes.Name)):
                yield from _unguarded_reads(child, guarded, none=none)
        return
    if isinstance(node, nodes.Name) and node.ctx == "load" and node.name not in guarded:
        yield node
    for child in node.iter_child_nodes():
        yield from _unguarded_reads(child, guarded, none=none)


def _defined(test: nodes.Node, none: bool = False) -> tuple[frozenset[str], frozenset[str]]:
    """The names that `test` says are defined when it holds, and those when it does not; with
    `none`, the names it says are not none (`coupon`, `coupon is not none`)."""
    if none and isinstance(test, nodes.Name):
        return frozenset({test.name}), frozenset()
    if isinstance(test, nodes.Test) and isinstance(test.node, nodes.Name):
        if test.name == ("none" if none else "undefined"):
            return frozenset(), frozenset({test.node.name})
        if test.name == "defined" and not none:
            return frozenset({test.node.name}), frozenset()
    if isinstance(test, nodes.Not):
        yes, no = _defined(test.node, none)
        return no, yes
    if isinstance(test, nodes.And):
        return _defined(test.left, none)[0] | _defined(test.right, none)[0], frozenset()
    if isinstance(test, nodes.Or):
        return frozenset(), _defined(test.left, none)[1] | _defined(test.right, none)[1]
    return frozenset(), frozenset()


def _first_lines(reads: Iterable[nodes.Name], names: set[str]) -> list[tuple[str, int]]:
    """Each of `names` that `reads` holds, with the first line it is read on, in line order."""
    lines: dict[str, int] = {}
    for node in reads:
        if node.name in names:
            lines[node.name] = min(lines.get(node.name, node.lineno), node.lineno)
    return sorted(lines.items(), key=lambda item: (item[1], item[0]))


# The longest text or list a template may make in one step (`*`, a width in `%` or `format`,
# `center`, `ljust`…), and the most binary digits a number made by `*` or `**` may have: a
# message is a few kilobytes, and `{{ "x" * 10**10 }}` would take the daemon's memory.
MAX_REPEATED = 100_000
MAX_POWER_BITS = 4_096
# A `%` conversion (`%08.2f`, `%(name)-20s`, `%*d`): its width and precision, a number or `*`.
_PERCENT = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?(.)", re.DOTALL)
# A `str.format` spec (`0>20`, `>{w}` once filled in, `,.2f`): its width and precision.
_SPEC = re.compile(r"(?:.?[<>=^])?[-+ ]?z?#?0?(\d+)?[_,]?(?:\.(\d+))?")
# The string methods whose numbers are widths.
_PADDING = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})


def _percent_widths(text: str, args: Any) -> list[int]:
    """The widths and precisions that `text % args` asks for, `*` taken from `args`."""
    given = list(args) if isinstance(args, tuple) else [args]
    widths, position = [], 0
    for match in _PERCENT.finditer(text):
        if match.group(3) == "%":
            continue
        for number in match.group(1, 2):
            if number == "*":
                taken = given[position] if position < len(given) else 0
                widths.append(taken if isinstance(taken, int) else 0)
                position += 1
            elif number:
                widths.append(int(number))
        position += 1
    return widths


def _brace_widths(text: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> list[int]:
    """The widths and precisions that `text.format(*args, **kwargs)` asks for, the fields nested
    in a spec (`{:>{w}}`) filled in; none for a format that does not parse."""
    formatter, automatic = string.Formatter(), iter(range(len(args)))

    def filled(name: str) -> str:
        key = next(automatic, -1) if name == "" else int(name) if name.isdigit() else name
        value = args[key] if isinstance(key, int) and 0 <= key < len(args) else kwargs.get(str(key))
        return str(value)

    widths = []
    try:
        for _, field, spec, _ in formatter.parse(text):
            if field == "":  # an automatic number, taken before those nested in its spec
                next(automatic, None)
            if not spec:
                continue
            spec = "".join(
                literal + (filled(nested) if nested is not None else "")
                for literal, nested, _, _ in formatter.parse(spec)
            )
            found = _SPEC.match(spec)
            widths += [int(n) for n in (found.groups() if found else ()) if n]
    except (ValueError, IndexError):
        return []
    return widths


def _too_wide(what: str, widths: Iterable[int]) -> str | None:
    """Why a format or padding with these widths would make more than a message can hold;
    None if it would not."""
    widest = max(widths, default=0)
    if widest > MAX_REPEATED:
        return f"{what} would make {widest:,} characters (at most {MAX_REPEATED:,})"
    return None


def _too_large(operator: str, left: Any, right: Any) -> str | None:
    """Why `left operator right` would make more than a message can hold; None if it would
    not."""
    numbers = isinstance(left, int) and isinstance(right, int)
    if operator == "*" and numbers and left.bit_length() + right.bit_length() > MAX_POWER_BITS:
        return f"`*` would make a number of over {MAX_POWER_BITS:,} bits"  # squared, and again
    if operator == "*":
        for items, times in ((left, right), (right, left)):
            repeated = isinstance(items, str | list | tuple) and isinstance(times, int)
            size = len(items) * times if repeated else 0
            if size > MAX_REPEATED:
                return f"`*` would make {size:,} characters or items (at most {MAX_REPEATED:,})"
    powers = numbers and abs(left) > 1 and right > 0
    if operator == "**" and powers and right * math.log2(abs(left)) > MAX_POWER_BITS:
        return f"`**` would make a number of over {MAX_POWER_BITS:,} bits"
    if operator == "%" and isinstance(left, str):
        return _too_wide("`%`", _percent_widths(left, right))
    return None


def _widths(name: str, value: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> list[int]:
    """The widths that filter `name` is asked for (`center(80)`, `indent(4)`, the `%` format
    of `format`); none for another filter."""
    if name == "format":  # `value % (args or kwargs)`
        return _percent_widths(str(value), tuple(args) if args else kwargs)
    if name in ("center", "indent"):
        return [width for width in [*args[:1], kwargs.get("width")] if isinstance(width, int)]
    return []


def _size(value: Any) -> int:
    """How much of a message `value` would take: a text's characters; a list's items and the
    characters of the texts in it; a mapping's items; nothing for anything else."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list | tuple):
        return len(value) + sum(len(item) for item in value if isinstance(item, str))
    if isinstance(value, Mapping):
        return len(value)
    return 0


def _made(name: str, value: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> int:
    """How much the filter or method `name` would make of `value` with these arguments, for
    those that can make far more than they are given: the filters `join` and `sum` of a list,
    `replace` and `indent` of a text; a text's methods `join`, `replace` and `expandtabs`, a
    list's `extend`. 0 for the others: what they make is measured once made."""

    def given(position: int, keyword: str, default: Any) -> Any:
        return args[position] if len(args) > position else kwargs.get(keyword, default)

    if isinstance(value, list):
        if name == "join":  # `items | join(d)`
            items, separator = value, given(0, "d", "")
        elif name == "sum":  # `lists | sum(start=[])`
            return sum(map(_size, value)) + _size(given(1, "start", 0))
        elif name == "extend" and args and isinstance(args[0], list | tuple):
            return _size(value) + _size(args[0])
        else:
            return 0
    elif isinstance(value, str) and name == "join" and args and isinstance(args[0], list):
        items, separator = args[0], value  # `d.join(items)`
    elif isinstance(value, str) and name == "replace":
        old, new, count = str(given(0, "old", "")), str(given(1, "new", "")), given(2, "count", -1)
        times = len(value) + 1 if old == "" else value.count(old)
        if isinstance(count, int) and count >= 0:
            times = min(times, count)
        return len(value) + times * (len(new) - len(old))
    elif isinstance(value, str) and name == "indent":
        width = given(0, "width", 4)
        indention = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
        return len(value) + (value.count("\n") + 1) * indention
    elif isinstance(value, str) and name == "expandtabs":
        tab = given(0, "tabsize", 8)
        return len(value) + value.count("\t") * (tab if isinstance(tab, int) else 0)
    else:
        return 0
    return sum(map(_size, items)) + len(str(separator)) * max(0, len(items) - 1)


# Where the filters `join` and `sum` take an `attribute` of each item, after the value.
_ATTRIBUTE_AT = {"join": 1, "sum": 0}
# The filters asked for a width (`_widths`), and those that can make far more than they are
# given (`_made`), measured before they run.
_WIDENING = frozenset({"format", "center", "indent"})
_MADE = frozenset({"join", "sum", "replace", "indent"})
# The filters that give a number, or one of the values they are given (`default`, `first`,
# `attr`), never anything longer: not measured (`_Sandbox._bounded`).
_KEEPS_SIZE = frozenset(
    {"default", "d", "first", "last", "min", "max", "random", "attr"}
    | {"length", "count", "wordcount", "int", "float", "abs", "round"}
)


def _too_long(what: str, size: int) -> str | None:
    """Why a step that makes `size` characters or items makes more than a message can hold;
    None if it does not."""
    if size > MAX_MESSAGE:
        return (
            f"{what} would make {size:,} characters or items, more than a message holds"
            f" ({MAX_MESSAGE:,}: a loop that doubles a text each time?)"
        )
    return None


def _checked(problem: str | None) -> None:
    if problem is not None:
        raise SecurityError(problem)


# How long one message may take to render, and how much text it may make. A message renders in
# milliseconds; a loop in a loop (`range(100000)` twice) or a macro calling itself twice each
# time would hold the daemon in that message for hours, and again after every restart. No text
# or list made on the way is longer either (`~`, `+`, `join`...: `_Sandbox`): a loop doubling a
# text in a `{% set %}` took the daemon's memory before any of it was written.
RENDER_SECONDS = 10.0
MAX_MESSAGE = 10_000_000
# When the render in progress must end (`clock` seconds), or None outside a render.
_DEADLINE: ContextVar[float | None] = ContextVar("nudge_template_deadline", default=None)


class _TooSlow(SecurityError):
    """A render that went past its deadline (`_Sandbox.on_time`)."""


# The templates whose last renders went past their deadline, as their files stood, for the life
# of the process (the daemon's, over the `Templates` that each dispatch makes): (templates
# folder, name) → (`Templates._digest` of the files then, where and why it stopped, how many
# renders in a row did). A broadcast of such a template held the outbox back for 10 seconds a
# message, about a day: after `SLOW_RENDERS` in a row, its other messages fail at once, until
# one of its files changes. Not after one: a message whose data makes it slow (a huge order's
# items), or a daemon stopped or starved of the processor during a render, would fail every
# message of a template that renders in a moment; a render that ends in time forgets them.
_TIMED_OUT: dict[tuple[Path, str], tuple[str, str, int]] = {}
SLOW_RENDERS = 3


def _unset_as_nothing(value: Any) -> Any:
    """What `{{ ... }}` shows of a value: nothing for none (`{{ coupon }}` in a message without
    one; a field not set is an `Unset`), never the word "None"."""
    return "" if value is None else value


def _default(value: Any, default_value: Any = "", boolean: bool = False) -> Any:
    """Jinja's `default`, for a value that is not set too: `customer.name | default("there")`
    gave "None" for a customer imported without a name."""
    if value is None or isinstance(value, jinja2.Undefined) or (boolean and not value):
        return default_value
    return value


class _Written(list[str]):
    """Text as a template makes it, piece by piece; a SecurityError once it passes
    `MAX_MESSAGE` characters (a loop that writes a long text too often). The message itself,
    and what a macro, a `{% set %}` block, a `{% filter %}` or a `{% call %}` makes before it
    shows any of it (Jinja's buffers: `_Generator.buffer`)."""

    size = 0

    def append(self, part: str) -> None:
        self.size += len(part)
        if self.size > MAX_MESSAGE:
            raise SecurityError(
                f"the message would be over {MAX_MESSAGE:,} characters long (a loop that writes"
                " a long text too often?)"
            )
        super().append(part)

    def extend(self, parts: Iterable[str]) -> None:
        for part in parts:
            self.append(part)


class _Generator(CodeGenerator):
    """Jinja's code generator, with every `{% for %}` iterating through `_Sandbox.counted`, so
    that a loop is seen running past the render's deadline, and what a macro or a block makes
    written to a `_Written`, so that a text too long is seen as it grows."""

    def buffer(self, frame: Frame) -> None:
        frame.buffer = self.temporary_identifier()
        self.writeline(f"{frame.buffer} = environment.written()")

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        """`a ~ b`, the parts measured before they are joined (`_Sandbox.joinable`)."""
        if frame.eval_ctx.volatile:
            joiner = "(markup_join if context.eval_ctx.volatile else str_join)"
        elif frame.eval_ctx.autoescape:
            joiner = "markup_join"
        else:
            joiner = "str_join"
        self.write(f"{joiner}(environment.joinable((")
        for part in node.nodes:
            self.visit(part, frame)
            self.write(", ")
        self.write(")))")

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        counted = nodes.Call(
            nodes.EnvironmentAttribute("counted"), [node.iter], [], None, None, lineno=node.lineno
        )
        guarded = copy.copy(node)  # the parsed tree stays as it was read
        guarded.iter = counted
        super().visit_For(guarded, frame)


class _Sandbox(SandboxedEnvironment):
    """Jinja's sandbox, with `*`, `**`, `%`, string methods and the filters that pad kept to
    sizes a message can hold (Jinja's own operator interception; its `range` has such a limit
    already), and a render that goes on past its deadline stopped at its next loop step or
    call (`counted`, `call`)."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})
    code_generator_class = _Generator

    def __init__(self, clock: Callable[[], float] = time.monotonic, **options: Any) -> None:
        super().__init__(finalize=_unset_as_nothing, **options)
        self.clock = clock
        self.filters["default"] = self.filters["d"] = _default
        self.filters["reverse"] = _reverse
        for name, filter_ in self.filters.items():
            self.filters[name] = self._bounded(name, filter_)
        self.tests["none"] = _none
        self.tests["sameas"] = _sameas
        self.tests["defined"] = _is_defined
        self.tests["undefined"] = lambda value: not _is_defined(value)
        self.policies["json.dumps_kwargs"] = {"sort_keys": True, "default": _json_default}

    def on_time(self) -> None:
        """Raise a SecurityError when the render in progress has gone past its deadline."""
        deadline = _DEADLINE.get()
        if deadline is not None and self.clock() > deadline:
            raise _TooSlow(
                f"rendering took over {RENDER_SECONDS:g} seconds (a loop inside a loop, or a"
                " macro calling itself, repeats too often); a message is rendered in a moment"
            )

    @staticmethod
    def written() -> _Written:
        """A buffer of Jinja's (`_Generator.buffer`)."""
        return _Written()

    def counted(self, iterable: Any) -> Iterator[Any]:
        """The items of a `{% for %}` loop, the deadline checked before each."""
        for item in iterable:
            self.on_time()
            yield item

    def _bounded(self, name: str, filter_: Callable[..., Any]) -> Callable[..., Any]:
        """Jinja's filter `name`, refusing a width or a format that makes more than a message
        can hold (`center`, `indent`, `format`), a text or a list longer than a message that
        it would make (`_made`), or one that it made; as it is for one that makes nothing
        longer than it is given (`_KEEPS_SIZE`). What is asked of each call is chosen here,
        once: a render calls filters (`default`) several times a message."""
        if name in _KEEPS_SIZE:
            return filter_
        passes = _PassArg.from_obj(filter_) is not None  # its first argument is Jinja's
        what = f"`{name}`"
        widths = name in _WIDENING
        made_of = name in _MADE
        listed = name in ("join", "sum")  # their value measured, then joined: listed first
        at = _ATTRIBUTE_AT.get(name)

        @functools.wraps(filter_)
        def bounded(*args: Any, **kwargs: Any) -> Any:
            head, (value, *rest) = (args[:1], args[1:]) if passes else ((), args)
            if listed and not isinstance(value, list):
                value = list(value)
            if widths:
                _checked(_too_wide(what, _widths(name, value, rest, kwargs)))
            if made_of:
                # `join(d, attribute)`, `sum(attribute, start)`: the attributes are joined
                attribute = (
                    None if at is None else rest[at] if len(rest) > at else kwargs.get("attribute")
                )
                measured = (
                    value
                    if attribute is None
                    else list(map(make_attrgetter(self, attribute), value))
                )
                _checked(_too_long(what, _made(name, measured, rest, kwargs)))
            made = filter_(*head, value, *rest, **kwargs)
            _checked(_too_long(what, _size(made)))
            return made

        return bounded

    def joinable(self, parts: tuple[Any, ...]) -> tuple[Any, ...]:
        """The parts of `a ~ b ~ ...`, once they are found to make no more than a message."""
        _checked(_too_long("`~`", sum(map(_size, parts))))
        return parts

    def call_binop(
        self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any
    ) -> Any:
        _checked(_too_large(operator, left, right))
        if operator == "+" and isinstance(left, str | list | tuple):
            _checked(_too_long("`+`", _size(left) + _size(right)))
        made = super().call_binop(context, operator, left, right)
        _checked(_too_long(f"`{operator}`", _size(made)))
        return made

    def call(
        __self, __context: jinja2.runtime.Context, __obj: Any, *args: Any, **kwargs: Any
    ) -> Any:
        """A call: a string's padding method (`"x".center(10**9)`), its width checked first,
        and its `join`, `replace` and `expandtabs` what they would make (`_made`); a recursive
        loop's `loop(...)` counted as `{% for %}` is (`counted`). What it makes, and a list or
        a mapping whose method it is (`items.extend(items)`), no longer than a message."""
        __self.on_time()
        if isinstance(__obj, LoopContext) and args:
            args = (__self.counted(args[0]), *args[1:])
        name = getattr(__obj, "__name__", "")
        owner = getattr(__obj, "__self__", None)
        what = f"`{name}`"
        if isinstance(owner, str) and name in _PADDING:
            _checked(
                _too_wide(what, [w for w in [*args[:1], *kwargs.values()] if isinstance(w, int)])
            )
        if isinstance(owner, str) and name == "join" and args:
            args = (list(args[0]), *args[1:])  # measured, then joined
        if isinstance(owner, str):
            _checked(_too_long(what, _made(name, owner, args, kwargs)))
        made = super().call(__context, __obj, *args, **kwargs)
        _checked(_too_long(what, _size(made)))
        if isinstance(owner, list | dict):
            _checked(_too_long(what, _size(owner)))
        return made

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """Jinja's sandboxed `str.format` and `format_map`, their widths checked first (`{:>{w}}`
        takes its width from the arguments)."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        text, name = value.__self__, value.__name__

        def checked(*args: Any, **kwargs: Any) -> str:
            if name == "format_map":
                mapping = args[0] if args and isinstance(args[0], Mapping) else {}
                widths = _brace_widths(text, (), mapping)
            else:
                widths = _brace_widths(text, args, kwargs)
            problem = _too_wide(f"`{name}`", widths)
            if problem is not None:
                raise SecurityError(problem)
            return wrapped(*args, **kwargs)

        checked.__name__ = name  # as `call` names it
        return checked


class Templates:
    """The templates of one folder, compiled once and recompiled when their file changes."""

    def __init__(self, templates_dir: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.templates_dir = templates_dir
        self._loader = _FolderLoader(templates_dir)
        self._env = _Sandbox(
            clock,
            loader=self._loader,
            undefined=_Undefined,
            autoescape=self._autoescape,
            keep_trailing_newline=True,
        )

    def _autoescape(self, name: str | None) -> bool:
        """Whether template `name` is HTML, its values escaped. Jinja asks at each render: told
        by the file it was loaded from (a file renamed from `.txt` to `.html` is loaded again),
        as finding the file again lists the folder, which took most of a render."""
        if name is None:
            return False
        path = self._loader.loaded.get(name)
        if path is None:
            try:
                path = find_template(self.templates_dir, name)
            except TemplateError:
                return False
        return path.suffix.lower() in _HTML_SUFFIXES

    def render(self, name: str, context: Mapping[str, Any]) -> Rendered:
        """Render template `name` with `context`; a TemplateError says what went wrong, where.

        Mappings in `context` are shown as `Record`s labelled with their names. A template
        whose last `SLOW_RENDERS` renders went past `RENDER_SECONDS` fails at once while its
        files stay as they were (`_TIMED_OUT`).
        """
        key = (self.templates_dir, name)
        timed_out = _TIMED_OUT.get(key)
        if timed_out is not None and timed_out[2] >= SLOW_RENDERS:
            digest, stopped, times = timed_out
            if self._digest(name) == digest:
                raise TemplateError(
                    f"template {name!r}: not rendered, as it took too long for the {times}"
                    f" messages before and its files have not changed since ({stopped}); fix it,"
                    " then `nudge outbox --retry` sends its messages again"
                )
            _TIMED_OUT.pop(key, None)
        started = _DEADLINE.set(self._env.clock() + RENDER_SECONDS)
        try:
            template = self._env.get_template(name)
            text = _joined(
                template.generate({key: as_record(key, value) for key, value in context.items()})
            )
        except jinja2.TemplateNotFound as exc:
            missing = exc.message or f"template {exc.name!r} not found"
            if exc.name != name:  # one that it includes (imports, extends): say which has it
                missing = f"template {name!r}: {missing}"
            raise TemplateError(missing) from None
        except jinja2.TemplateSyntaxError as exc:
            where = Path(exc.filename).name if exc.filename else name
            raise TemplateError(f"template {name!r}: {where}:{exc.lineno}: {exc.message}") from None
        except SecurityError as exc:
            where = self._line_of(exc)
            if isinstance(exc, _TooSlow):
                digest = self._digest(name)
                before = _TIMED_OUT.get(key)
                times = before[2] + 1 if before is not None and before[0] == digest else 1
                _TIMED_OUT[key] = (digest, f"{where or name + ': '}{exc}", times)
                if times >= SLOW_RENDERS:
                    raise TemplateError(
                        f"template {name!r}: {where}not allowed in a template: {exc}; that is"
                        f" {times} messages in a row, so its other messages fail at once until it"
                        " is changed: fix it, then `nudge outbox --retry` sends them again"
                    ) from None
            raise TemplateError(
                f"template {name!r}: {where}not allowed in a template: {exc}"
            ) from None
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"template {name!r}: {self._line_of(exc)}{exc.message}") from None
        except (ArithmeticError, TypeError, ValueError, LookupError) as exc:
            # Errors of the template's own expressions (`{{ 1 / 0 }}`, `{{ "a" + 1 }}`).
            where = self._line_of(exc)
            raise TemplateError(f"template {name!r}: {where}{type(exc).__name__}: {exc}") from None
        except RecursionError:
            # `{% include %}` of itself, or a macro calling itself, without end (or nesting
            # hundreds deep): the stack is unwound by now, so the caller carries on.
            raise TemplateError(f"template {name!r}: {self._endless(name)}") from None
        except MemoryError:  # what the sandbox's limits do not catch (a filter's `center(10**9)`)
            raise TemplateError(f"template {name!r}: rendering it ran out of memory") from None
        except jinja2.TemplateError as exc:
            raise TemplateError(f"template {name!r}: {exc}") from None
        finally:
            _DEADLINE.reset(started)
        if timed_out is not None:  # in time: the renders before were slow for their data
            _TIMED_OUT.pop(key, None)
        subject, body = split_subject(text)
        # The file it was read from (not found again: that lists the folder, most of a render)
        is_html = Path(template.filename or name).suffix.lower() in _HTML_SUFFIXES
        if is_html and subject is not None:  # a subject is plain text, escaped with the page
            subject = html.unescape(subject)
        return Rendered(subject=subject, body=body, html=is_html)

    def _digest(self, name: str) -> str:
        """A digest of template `name`'s file and of the files of the templates it names
        (`{% include %}`, `{% import %}`, `{% from %}`, `{% extends %}`, by fixed names, and
        theirs in turn), found without rendering: another when any of them is changed, made,
        or removed."""
        digest = hashlib.sha256()
        waiting, seen = [name], set()
        while waiting:
            current = waiting.pop()
            if current in seen:
                continue
            seen.add(current)
            try:
                path = find_template(self.templates_dir, current)
                source = read_template(current, path)
                parsed = self._env.parse(source, current, str(path))
            except (TemplateError, jinja2.TemplateSyntaxError, RecursionError) as exc:
                digest.update(f"{current}\0{type(exc).__name__}: {exc}\0".encode())
                continue
            digest.update(f"{current}\0{path}\0{len(source)}\0{source}".encode())
            for node in parsed.find_all(_REFERENCES):
                named = meta.find_referenced_templates(nodes.Template([node]))
                waiting += [other for other in named if other is not None]
        return digest.hexdigest()

    def _line_of(self, exc: BaseException) -> str:
        """`FILE:LINE: ` of the template line that raised `exc` (the innermost, in a template it
        includes too), from the frames Jinja gives its templates' code; empty when none is."""
        for frame in reversed(traceback.extract_tb(exc.__traceback__)):
            path = Path(frame.filename)
            if self.templates_dir in path.parents:
                return f"{path.relative_to(self.templates_dir).as_posix()}:{frame.lineno}: "
        return ""

    def references(self, name: str) -> tuple[Path, list[Reference]]:
        """Template `name`'s file and the templates it names, found without rendering it
        (`jinja2.meta.find_referenced_templates`, one tag at a time to keep its line).

        A TemplateError when it cannot be found or read (or nests too deeply for Jinja to read);
        a TemplateSyntaxError when it does not compile (a syntax error, an unknown filter or
        test).
        """
        path = find_template(self.templates_dir, name)
        source = read_template(name, path)
        try:
            parsed = self._env.parse(source, name, str(path))
            found = [
                Reference(
                    tuple(meta.find_referenced_templates(nodes.Template([node]))),
                    node.lineno,
                    bool(getattr(node, "ignore_missing", False)),
                )
                for node in parsed.find_all(_REFERENCES)
            ]
            self._env.compile(source, name, str(path))
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateSyntaxError(
                name, path, exc.lineno or 1, exc.message or str(exc)
            ) from None
        except RecursionError:
            raise TemplateError(f"template {name!r}: {_TOO_DEEP}") from None
        return path, found

    def _parsed(self, name: str) -> nodes.Template | None:
        """Template `name` parsed; None when it extends another, whose blocks may read what the
        other sets. For a template `references` found valid."""
        path = find_template(self.templates_dir, name)
        parsed = self._env.parse(read_template(name, path), name, str(path))
        return None if parsed.find(nodes.Extends) is not None else parsed

    def unknown_names(self, name: str) -> list[tuple[str, int]]:
        """The names template `name` reads that are not in `TEMPLATE_SCOPE`, not Jinja's own
        (`range`…) and not set in the template (`{% set %}`, `{% for %}`, a macro, an import),
        each with the first line reading it: rendered as a rule sends it, the template fails
        on them. Reads guarded by `is defined`, or through `| default`, are left out
        (`_unguarded_reads`). None for a template that extends another (`_parsed`)."""
        parsed = self._parsed(name)
        if parsed is None:
            return []
        # Jinja's answer holds the names that may be read before they are set: one set in each
        # branch of an `{% if %}` too. Those set anywhere are left out.
        unknown = meta.find_undeclared_variables(parsed) - _assigned(parsed)
        unknown -= {*TEMPLATE_SCOPE, *self._env.globals}
        return _first_lines(_unguarded_reads(parsed), unknown)

    def none_reads(self, name: str, nones: Collection[str]) -> list[tuple[str, int]]:
        """The names of `nones`, those of `TEMPLATE_SCOPE` that a rule sending template `name`
        gives as none (`coupon` to a message's), that it reads outside a test of them
        (`{% if coupon %}`, `coupon is none`) and not through `| default`, each with the first
        line reading it: rendered so, `coupon.code` fails and `{{ coupon }}` shows nothing."""
        parsed = self._parsed(name)
        if parsed is None:
            return []
        return _first_lines(_unguarded_reads(parsed, none=True), set(nones) - _assigned(parsed))

    def field_reads(self, name: str, record: str) -> list[tuple[str, int]]:
        """The fields of `record`, a name of the scope, that template `name` reads by name
        (`coupon.min`, `coupon["min"]`), each with its first line; none when the template sets
        that name itself, or extends another (`_parsed`)."""
        parsed = self._parsed(name)
        if parsed is None or record in _assigned(parsed):
            return []
        lines: dict[str, int] = {}
        reads: Iterator[nodes.Getattr | nodes.Getitem] = parsed.find_all(
            (nodes.Getattr, nodes.Getitem)
        )
        for node in reads:
            if not (isinstance(node.node, nodes.Name) and node.node.name == record):
                continue
            key = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
            if isinstance(key, str):
                lines[key] = min(lines.get(key, node.lineno), node.lineno)
        return sorted(lines.items(), key=lambda item: (item[1], item[0]))

    def resolve(self, reference: Reference) -> str | None:
        """The name that `reference` loads when rendered, the first of its names with a file
        (written `partials/footer`, without `./`); None when none has one, or when a computed
        name comes before any that has."""
        for candidate in reference.names:
            if candidate is None:
                return None
            try:
                find_template(self.templates_dir, candidate)
            except TemplateError:
                continue
            return "/".join(split_template_path(candidate))
        return None

    def include_cycle(self, name: str) -> list[str] | None:
        """Names from `name` through templates it names back to one already on the way
        (`["a", "b", "a"]`), found without rendering; None when there is no such cycle."""
        path: list[str] = []
        done: set[str] = set()

        def visit(current: str) -> list[str] | None:
            if current in path:
                return [*path[path.index(current) :], current]
            if current in done:
                return None
            path.append(current)
            try:
                _, references = self.references(current)
            except TemplateError:
                references = []
            for reference in references:
                target = self.resolve(reference)
                if target is not None and (cycle := visit(target)) is not None:
                    return cycle
            path.pop()
            done.add(current)
            return None

        return visit(name)

    def _endless(self, name: str) -> str:
        """Why rendering `name` went on without end, in the words of a TemplateError."""
        cycle = self.include_cycle(name)
        if cycle is None:
            return _TOO_DEEP
        chain = " → ".join(cycle)
        if len(cycle) == 2:
            who = "it" if cycle[0] == name else f"template {cycle[0]!r}"
            return f"{who} includes itself, without end ({chain})"
        return f"templates include each other without end ({chain})"


def _joined(parts: Iterable[str]) -> str:
    """The text a template renders, piece by piece; a SecurityError once it passes
    `MAX_MESSAGE` characters (`_Written`)."""
    kept = _Written()
    kept.extend(parts)
    return "".join(kept)


def split_subject(text: str) -> tuple[str | None, str]:
    """`Subject: Hello\\n\\nBody` → ("Hello", "Body"); text without that first line (after any
    blank lines) is all body."""
    # Blank lines and blanks before it are passed over: what a comment, a `{% set %}` line or an
    # indented first line leaves in front of it.
    first, newline, rest = text.lstrip(" \t\r\n").partition("\n")
    if not first.lower().startswith(_SUBJECT):
        return None, text
    subject = first[len(_SUBJECT) :].strip()
    if rest.startswith("\r\n"):
        rest = rest[2:]
    elif rest.startswith("\n"):
        rest = rest[1:]
    return subject, rest if newline else ""
