"""Templates: found by name, rendered in Jinja2's sandbox, every failure a TemplateError."""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import engine.outbox.templates as templates_module
from engine.outbox.templates import (
    Reference,
    TemplateError,
    Templates,
    TemplateSyntaxError,
    find_template,
    split_subject,
)

CONTEXT = {
    "customer": {"id": "c1", "name": "Li Wei", "tags": ["vip"]},
    "event": None,
    "coupon": {"code": "ABCD2345EF", "worth": 30, "unit": "money"},
    "shop": {"name": "Acme", "timezone": "Asia/Shanghai"},
}


def write(folder: Path, name: str, text: str) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def compiled(folder: Path, text: str) -> Templates:
    """The templates of `folder`, holding `text` as the template `t`, found valid as `check`
    finds them (`references`) before it asks what `t` reads."""
    write(folder, "t.txt", text)
    templates = Templates(folder)
    templates.references("t")
    return templates


def test_renders_subject_and_body(tmp_path: Path) -> None:
    write(
        tmp_path,
        "birthday.txt",
        "Subject: Happy birthday, {{ customer.name }}!\n\n"
        "Use {{ coupon.code }} for {{ coupon.worth }} off at {{ shop.name }}.\n",
    )
    rendered = Templates(tmp_path).render("birthday", CONTEXT)
    assert rendered.subject == "Happy birthday, Li Wei!"
    assert rendered.body == "Use ABCD2345EF for 30 off at Acme.\n"
    assert rendered.html is False


def test_text_without_subject_line_is_all_body(tmp_path: Path) -> None:
    write(tmp_path, "fit_check.md", "Hi {{ customer.name }}, does it fit?")
    rendered = Templates(tmp_path).render("fit_check", CONTEXT)
    assert rendered.subject is None
    assert rendered.body == "Hi Li Wei, does it fit?"


def test_split_subject() -> None:
    assert split_subject("Subject: Hi\r\n\r\nBody") == ("Hi", "Body")
    assert split_subject("subject:Hi") == ("Hi", "")
    assert split_subject("Hi\nSubject: no") == (None, "Hi\nSubject: no")
    assert split_subject("\n  \r\n  Subject: Hi\n\nBody") == ("Hi", "Body")


@pytest.mark.parametrize(
    "first",
    ["\ufeff", "{# the birthday message #}\n", "{% set name = customer.name %}\n", "  "],
    ids=["a byte-order mark", "a comment", "a set line", "blanks"],
)
def test_the_subject_line_may_follow_what_renders_as_nothing(tmp_path: Path, first: str) -> None:
    """A file saved with a byte-order mark (Notepad's "UTF-8 with BOM"), or a comment or a
    `{% set %}` line first: the subject is still the subject, and the body does not hold it."""
    write(tmp_path, "birthday.txt", first + "Subject: Happy birthday!\n\nHello\n")
    rendered = Templates(tmp_path).render("birthday", CONTEXT)
    assert (rendered.subject, rendered.body) == ("Happy birthday!", "Hello\n")


def test_html_templates_escape_values(tmp_path: Path) -> None:
    write(
        tmp_path, "news.html", "Subject: For {{ customer.name }} <3\n\n<p>{{ customer.name }}</p>"
    )
    context = dict(CONTEXT, customer={"name": "<script>Tom & Jerry</script>"})
    rendered = Templates(tmp_path).render("news", context)
    assert rendered.body == "<p>&lt;script&gt;Tom &amp; Jerry&lt;/script&gt;</p>"
    assert rendered.html is True
    # The subject is a plain-text header, not part of the page.
    assert rendered.subject == "For <script>Tom & Jerry</script> <3"


def test_a_template_rendered_again_is_not_looked_for_in_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rendered again, a template (and one it includes) is not found in its folder anew to be
    told HTML or not: listing the folder took most of a render's time, for every message. A
    file renamed to `.html` meanwhile is loaded again, and is HTML."""
    write(tmp_path, "partials/footer.html", "<i>{{ shop.name }}</i>")
    write(tmp_path, "news.txt", '{{ customer.name }} {% include "partials/footer" %}')
    templates = Templates(tmp_path)
    context = dict(CONTEXT, customer={"name": "Tom & Jerry"}, shop={"name": "A&B"})
    assert templates.render("news", context).body == "Tom & Jerry <i>A&amp;B</i>"
    listed: list[Path] = []
    iterdir = Path.iterdir

    def counted(self: Path) -> Any:
        listed.append(self)
        return iterdir(self)

    monkeypatch.setattr(Path, "iterdir", counted)
    assert templates.render("news", context).body == "Tom & Jerry <i>A&amp;B</i>"
    assert listed == []
    (tmp_path / "news.txt").rename(tmp_path / "news.html")
    rendered = templates.render("news", context)
    assert (rendered.body, rendered.html) == ("Tom &amp; Jerry <i>A&amp;B</i>", True)


def test_include_finds_other_templates_by_name(tmp_path: Path) -> None:
    write(tmp_path, "partials/footer.txt", "-- {{ shop.name }}")
    write(tmp_path, "thanks.txt", 'Thanks!\n{% include "partials/footer" %}')
    assert Templates(tmp_path).render("thanks", CONTEXT).body == "Thanks!\n-- Acme"


def test_a_missing_include_names_the_template_that_includes_it(tmp_path: Path) -> None:
    # `check` finds it (E502), but the file may go after the check, or the name be computed.
    write(tmp_path, "thanks.txt", '{% include "partials/" ~ customer.id %}')
    with pytest.raises(TemplateError) as raised:
        Templates(tmp_path).render("thanks", CONTEXT)
    assert str(raised.value).startswith("template 'thanks': template 'partials/c1': no file c1.*")
    with pytest.raises(TemplateError, match=r"^template 'gone': no file gone\.\*"):
        Templates(tmp_path).render("gone", CONTEXT)


def test_customer_attribute_named_like_a_dict_method(tmp_path: Path) -> None:
    write(tmp_path, "t.txt", "{{ customer.items }} {{ customer['values'] }}")
    context = dict(CONTEXT, customer={"items": 3, "values": "v"})
    assert Templates(tmp_path).render("t", context).body == "3 v"


def test_defaults_and_nested_values(tmp_path: Path) -> None:
    write(
        tmp_path,
        "t.txt",
        '{{ customer.language | default("zh") }} {{ event.items[0].sku }}'
        ' {{ customer.tags | join(",") }}',
    )
    context = dict(CONTEXT, event={"items": [{"sku": "S1"}]})
    assert Templates(tmp_path).render("t", context).body == "zh S1 vip"


def test_template_changes_on_disk_are_picked_up(tmp_path: Path) -> None:
    write(tmp_path, "t.txt", "one")
    templates = Templates(tmp_path)
    assert templates.render("t", CONTEXT).body == "one"
    write(tmp_path, "t.txt", "two")
    stat = (tmp_path / "t.txt").stat()
    os.utime(tmp_path / "t.txt", (stat.st_atime, stat.st_mtime + 5))
    assert templates.render("t", CONTEXT).body == "two"


@pytest.mark.parametrize(
    ("files", "name", "expected"),
    [
        ({}, "missing", r"template 'missing': no file missing\.\* in"),
        ({"a.txt": "x", "a.html": "y"}, "a", r"several files match \(a\.html, a\.txt\)"),
        ({}, "../secrets", r"not a template name"),
        ({"bad.txt": "line\n{% if %}"}, "bad", r"template 'bad': bad\.txt:2: "),
        (
            {"u.txt": "{{ customer.nickname }}"},
            "u",
            r"^template 'u': u\.txt:1: customer has no attribute 'nickname'$",
        ),
        (
            {"u.txt": 'Hi\n{% include "partials/sig" %}', "partials/sig.txt": "-\n{{ x.y }}"},
            "u",
            r"^template 'u': partials/sig\.txt:2: 'x' is undefined$",
        ),
        ({"u.txt": "{{ event.total }}"}, "u", r"'None' has no attribute 'total'"),
        ({"u.txt": "{{ missing }}"}, "u", r"'missing' is undefined"),
        ({"z.txt": "\n\n{{ 1 / 0 }}"}, "z", r"^template 'z': z\.txt:3: ZeroDivisionError"),
        (
            {"s.txt": '{{ "{0.__class__.__init__.__globals__}".format(customer) }}'},
            "s",
            r"not allowed in a template: .*unsafe",
        ),
        (
            {"s.txt": "{{ customer.__class__.__mro__ }}"},
            "s",
            r"not allowed in a template: access to attribute '__class__' .* unsafe",
        ),
        (
            {"rec.txt": 'Hi\n{% include "rec" %}'},
            "rec",
            r"^template 'rec': it includes itself, without end \(rec → rec\)$",
        ),
        (
            {"a.txt": '{% include "b" %}', "b.html": '{% if 1 %}{% include "a" %}{% endif %}'},
            "a",
            r"^template 'a': templates include each other without end \(a → b → a\)$",
        ),
        (
            {"top.txt": '{% include "rec" %}', "rec.txt": '{% include "./rec" %}'},
            "top",
            r"^template 'top': template 'rec' includes itself, without end \(rec → rec\)$",
        ),
        (
            {"m.txt": "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"},
            "m",
            r"^template 'm': it nests too deeply to be read or rendered \(an include or a macro",
        ),
        ({"deep.txt": "{{ " + "(" * 300 + "1" + ")" * 300 + " }}"}, "deep", r"nests too deeply"),
    ],
)
def test_template_errors_say_what_and_where(
    tmp_path: Path, files: dict[str, str], name: str, expected: str
) -> None:
    for file, content in files.items():
        write(tmp_path, file, content)
    with pytest.raises(TemplateError, match=expected):
        Templates(tmp_path).render(name, CONTEXT)


def test_a_template_that_is_not_utf8_or_cannot_be_read(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "latin.txt").write_bytes("Grüße".encode("latin-1"))
    with pytest.raises(
        TemplateError, match=r"^template 'latin': latin\.txt is not UTF-8 text \(line 1, column 3\)"
    ):
        Templates(tmp_path).render("latin", CONTEXT)
    (tmp_path / "marked.txt").write_bytes(b"\xef\xbb\xbf" + "Grüße".encode("latin-1"))
    with pytest.raises(TemplateError, match=r"marked\.txt is not UTF-8 text \(line 1, column 3\)"):
        Templates(tmp_path).render("marked", CONTEXT)  # after a byte-order mark, the same spot
    write(tmp_path, "locked.txt", "x")
    opened = Path.open

    def refuse(path: Path, *args: Any, **kwargs: Any) -> Any:
        if path.name == "locked.txt":
            raise PermissionError(13, "Permission denied")
        return opened(path, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refuse)
    with pytest.raises(TemplateError, match=r"template 'locked': cannot read .*Permission denied"):
        Templates(tmp_path).render("locked", CONTEXT)


def test_references_are_read_without_rendering(tmp_path: Path) -> None:
    write(
        tmp_path,
        "t.txt",
        '{% extends "base" %}\n{% import "macros" as m %}{% from "m2" import f %}\n'
        '{% if customer.vip %}{% include ["vip", "plain"] ignore missing %}{% endif %}\n'
        '{% include customer.language ~ "/footer" %}{{ customer.nickname }}',
    )
    path, references = Templates(tmp_path).references("t")
    assert path == tmp_path / "t.txt"
    assert references == [
        Reference(("base",), 1, False),
        Reference(("macros",), 2, False),
        Reference(("m2",), 2, False),
        Reference(("vip", "plain"), 3, True),
        Reference((None,), 4, False),
    ]
    write(tmp_path, "plain.txt", "x")
    write(tmp_path, "partials/footer.md", "x")
    templates = Templates(tmp_path)
    assert templates.resolve(references[3]) == "plain"
    assert templates.resolve(Reference(("./partials/footer",), 1, False)) == "partials/footer"
    assert templates.resolve(references[0]) is None
    assert templates.resolve(references[4]) is None
    assert templates.include_cycle("t") is None


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("line\n  {% if %}", 2, "Expected an expression, got 'end of statement block'"),
        ("{% for x in y %}\n{{ x }}\n", 2, "Unexpected end of template"),
        ("\n{{ customer.name | shout }}", 2, "No filter named 'shout'"),
        ("{{ customer is vipp }}", 1, "No test named 'vipp'"),
    ],
)
def test_references_report_where_a_template_does_not_compile(
    tmp_path: Path, text: str, line: int, reason: str
) -> None:
    write(tmp_path, "bad.txt", text)
    with pytest.raises(TemplateSyntaxError) as caught:
        Templates(tmp_path).references("bad")
    assert (caught.value.path, caught.value.line) == (tmp_path / "bad.txt", line)
    assert caught.value.reason.startswith(reason)


def test_find_template(tmp_path: Path) -> None:
    write(tmp_path, "fit_check.txt", "x")
    assert find_template(tmp_path, "fit_check") == tmp_path / "fit_check.txt"
    with pytest.raises(TemplateError):
        find_template(tmp_path / "nowhere", "fit_check")


def test_an_editor_s_backup_beside_a_template_is_no_second_template(tmp_path: Path) -> None:
    """Emacs keeps the text before a save as `thanks.txt~` (other editors `~` too): such a
    backup, or a hidden swap or lock file, is not a file of the template `thanks`, which it
    would make ambiguous, failing its messages and the rules' check."""
    write(tmp_path, "thanks.txt", "new")
    for name in ("thanks.txt~", "thanks~", ".thanks.txt.swp", ".#thanks.txt", "#thanks.txt#"):
        write(tmp_path, name, "old")
    assert find_template(tmp_path, "thanks") == tmp_path / "thanks.txt"
    assert Templates(tmp_path).render("thanks", CONTEXT).body == "new"
    (tmp_path / "thanks.txt").unlink()
    with pytest.raises(TemplateError, match="no file thanks"):
        find_template(tmp_path, "thanks")


def test_a_backup_or_a_temporary_file_beside_a_template_is_no_second_template(
    tmp_path: Path,
) -> None:
    """`thanks.bak` (a Windows editor's backup, in place of the extension), a merge's
    `thanks.orig`, a copy kept as `thanks.old`, a file written while saving (`thanks.tmp`,
    JetBrains' `thanks.txt___jb_tmp___`) are not files of the template `thanks`; two files
    that are (`thanks.html` beside `thanks.txt`) are still one too many."""
    write(tmp_path, "thanks.txt", "new")
    names = ("thanks.BAK", "thanks.orig", "thanks.old", "thanks.tmp", "thanks.txt___jb_tmp___")
    for name in (*names, "thanks.txt.bak"):
        write(tmp_path, name, "old")
    assert find_template(tmp_path, "thanks") == tmp_path / "thanks.txt"
    assert Templates(tmp_path).render("thanks", CONTEXT).body == "new"
    write(tmp_path, "thanks.html", "<p>new</p>")
    with pytest.raises(TemplateError, match=r"several files match \(thanks.html, thanks.txt\)"):
        find_template(tmp_path, "thanks")


def test_a_folder_that_a_backup_left_holds_no_templates(tmp_path: Path) -> None:
    """`emails.bak/welcome.txt` (a copy of the folder `emails`), `.git/...`: no template is in a
    folder named as a backup's or a hidden one, as none is a file so named; the daemon does not
    watch them either. They were served (`emails.bak/welcome`), includes too. The templates
    folder itself is the one named in nudge.yaml, whatever its name (`templates.old`)."""
    folder = tmp_path / "templates.old"
    write(folder, "emails/welcome.txt", "new")
    for copy in ("emails.bak", "emails.OLD", "emails~", ".git", "emails.orig"):
        write(folder, f"{copy}/welcome.txt", "old")
        with pytest.raises(TemplateError, match=re.escape(f"the folder {copy} is taken")):
            find_template(folder, f"{copy}/welcome")
    write(folder, "promo.txt", '{% include "emails.bak/welcome" %}')
    with pytest.raises(TemplateError, match=r"emails\.bak"):
        Templates(folder).render("promo", CONTEXT)
    assert find_template(folder, "emails/welcome") == folder / "emails" / "welcome.txt"
    assert Templates(folder).render("emails/welcome", CONTEXT).body == "new"


@pytest.mark.parametrize(
    ("text", "unknown"),
    [
        ("Hi {{ customer.name }} from {{ shop.name }}", []),
        ("{% set n = customer.name %}{{ n }}{% for t in customer.tags %}{{ t }}{% endfor %}", []),
        ("{{ range(2) | list }} {{ dict(a=1).a }} {{ coupon.code if coupon else '' }}", []),
        ("{% macro hi(who) %}{{ who }}{% endmacro %}{{ hi(customer.name) }}", []),
        ("{% if event %}{% set w = 'a' %}{% else %}{% set w = 'b' %}{% endif %}{{ w }}", []),
        ("{% with w = 1 %}{{ w }}{% endwith %}{% for t in 'ab' %}{{ loop.index }}{% endfor %}", []),
        ("{{ custome.name }}", [("custome", 1)]),
        ("Hi\n{{ voucher }}\n{{ voucher }} {{ item }}", [("voucher", 2), ("item", 3)]),
        ("{% for t in tags %}{{ t }}{% endfor %}", [("tags", 1)]),
        ("{% if voucher is defined %}{{ voucher }}{% endif %}", []),
        ("{% if voucher is not defined %}-{% else %}{{ voucher.code }}{% endif %}", []),
        ('{{ voucher | default("none") }} {{ item | d("") }}', []),
        ('{{ voucher | default("none") }}\n{{ voucher.code }}', [("voucher", 2)]),
        ("{{ voucher.code | default('none') }}", [("voucher", 1)]),
        ("{% if voucher is defined %}y{% endif %}\n{{ voucher }}", [("voucher", 2)]),
        ("{% if voucher is undefined %}{{ voucher }}{% endif %}", [("voucher", 1)]),
        ("{% if voucher is undefined %}-{% elif voucher.code %}{{ voucher.code }}{% endif %}", []),
        ("{{ voucher.code if voucher is defined and voucher.code else '-' }}", []),
        ("{{ '-' if voucher is not defined or not voucher.code else voucher.code }}", []),
        ("{% filter upper %}{{ voucher | d('') }}{% endfilter %}", []),
    ],
)
def test_the_names_a_template_reads_but_is_not_given(
    tmp_path: Path, text: str, unknown: list[tuple[str, int]]
) -> None:
    # What `check` warns of (W505): such a name fails the message when it is sent. A name
    # tested with `is defined`, or read through `| default`, is safe.
    templates = compiled(tmp_path, text)
    assert templates.unknown_names("t") == unknown
    if not unknown:
        templates.render("t", CONTEXT)
    else:
        with pytest.raises(TemplateError, match=f"'{unknown[0][0]}' is undefined"):
            templates.render("t", CONTEXT)


@pytest.mark.parametrize(
    ("text", "reads"),
    [
        ("Hi {{ customer.name }}", []),
        ("{{ coupon.code }}", [("coupon", 1)]),
        ("Hi\n{{ coupon }}\n{{ event.total }}", [("coupon", 2), ("event", 3)]),
        ("{% if coupon %}{{ coupon.code }}{% endif %}", []),
        ("{% if coupon is not none %}{{ coupon.code }}{% else %}-{% endif %}", []),
        ("{% if coupon is none %}-{% else %}{{ coupon.code }}{% endif %}", []),
        ("{% if not coupon %}-{% elif event %}{{ event.type }}{% endif %}", []),
        ("{{ coupon.code if coupon else '-' }} {{ (event and event.total) or '' }}", []),
        ("{{ coupon.code | default('-') }} {{ event['total'] | d('') }}", []),
        ("{% if coupon is defined %}{{ coupon.code }}{% endif %}", [("coupon", 1)]),
        ("{% if coupon.code %}{{ coupon.code }}{% endif %}", [("coupon", 1)]),
        ("{% set coupon = {'code': 'X'} %}{{ coupon.code }}", []),
    ],
)
def test_the_names_a_template_reads_that_a_rule_gives_as_none(
    tmp_path: Path, text: str, reads: list[tuple[str, int]]
) -> None:
    # What `check` warns of (W506): a message's template reading `coupon`, a date rule's
    # reading `event`, outside a test of them: the message fails or shows "None".
    templates = compiled(tmp_path, text)
    assert templates.none_reads("t", {"coupon", "event"}) == reads
    try:
        body = templates.render("t", {**CONTEXT, "coupon": None, "event": None}).body
    except TemplateError:
        assert reads
    else:
        assert ("None" in body) == bool(reads)


def test_a_template_that_extends_another_may_read_what_that_one_sets(tmp_path: Path) -> None:
    write(tmp_path, "base.txt", '{% set title = "Mid-Autumn" %}{% block body %}{% endblock %}')
    write(tmp_path, "t.txt", '{% extends "base" %}{% block body %}{{ title }}{% endblock %}')
    templates = Templates(tmp_path)
    assert templates.unknown_names("t") == []
    assert templates.render("t", CONTEXT).body == "Mid-Autumn"


@pytest.mark.parametrize(
    ("text", "rendered"),
    [
        ('{{ "ab" * 3 }} {{ 3 * [1] | length }} {{ 2 ** 10 }} {{ 2.5 * 2 }}', "ababab 3 1024 5.0"),
        ('{{ "x" * 10 ** 9 }}', "`*` would make 1,000,000,000 characters or items"),
        ("{{ 10 ** 9 * [customer.name] }}", "`*` would make 1,000,000,000 characters or items"),
        ("{{ 2 ** 100000 }}", "`**` would make a number of over 4,096 bits"),
        (
            "{% set n = namespace(v=2 ** 4000) %}{% set n.v = n.v * n.v %}{{ n.v }}",
            "`*` would make a number of over 4,096 bits",
        ),
        # Widths: in a format, a filter, a string's method, given as an argument.
        (
            '{{ "%s" | format(1) }} {{ "x" | center(5) }}|{{ "%05.1f" % 3.14159 }}'
            ' {{ "{:>4}".format("ab") }} {{ "{:>{w}}".format("c", w=3) }} {{ "7".zfill(3) }}'
            ' {{ "50% 200000000".upper() }} {{ "a,b".split(",", 1) | join }}',
            "1   x  |003.1   ab   c 007 50% 200000000 ab",
        ),
        (  # numbers, however large, are not widths
            '{{ "{:,}".format(1234567) }} {{ "#%d" % 1234567 }} {{ "%d pts" | format(1234567) }}'
            ' {{ "%g" | format(250000) }} {{ "%s%%" % 5 }} {{ "{0:>8}".format(7) }}',
            "1,234,567 #1234567 1234567 pts 250000 5%        7",
        ),
        ('{{ "%0200000000d" % 1 }}', "`%` would make 200,000,000 characters"),
        ('{{ "%(a)20000000s" % {"a": "x"} }}', "`%` would make 20,000,000 characters"),
        ('{{ "{:0>20000000}".format(1) }}', "`format` would make 20,000,000 characters"),
        ('{{ "{:>{w}}".format("x", w="20000000") }}', "`format` would make 20,000,000"),
        ('{{ "{:>{}}".format("x", 20000000) }}', "`format` would make 20,000,000"),
        ('{{ "%*d" % (200000000, 1) }}', "`%` would make 200,000,000 characters"),
        ('{{ "%0200000000d" | format(1) }}', "`format` would make 200,000,000 characters"),
        ('{{ "{:0200000000d}".format(1) }}', "`format` would make 200,000,000 characters"),
        ('{{ "{:>{w}}".format("x", w=200000000) }}', "`format` would make 200,000,000"),
        ('{{ "{a:>200000000}".format_map({"a": 1}) }}', "`format_map` would make 200,000,000"),
        ('{{ "x" | center(200000000) }}', "`center` would make 200,000,000 characters"),
        ('{{ "x" | indent(200000000, true) }}', "`indent` would make 200,000,000 characters"),
        ('{{ "x".ljust(200000000) }}', "`ljust` would make 200,000,000 characters"),
    ],
)
def test_a_template_cannot_make_more_than_a_message_holds(
    tmp_path: Path, text: str, rendered: str
) -> None:
    # `{{ "x" * 10**9 }}` would take the daemon's memory; the message fails instead. What a
    # message holds is made as written.
    write(tmp_path, "t.txt", text)
    templates = Templates(tmp_path)
    if "would make" not in rendered:
        assert templates.render("t", CONTEXT).body == rendered
    else:
        with pytest.raises(
            TemplateError, match=f"not allowed in a template: {re.escape(rendered)}"
        ):
            templates.render("t", CONTEXT)


def ticking(step: float) -> Callable[[], float]:
    """A clock that moves `step` seconds each time it is read."""
    moments = itertools.count(0.0, step)
    return lambda: next(moments)


@pytest.mark.parametrize(
    "text",
    [
        "{% for i in range(1000) %}\n{% for j in range(1000) %}{% endfor %}{% endfor %}",
        "{% for i in range(1000) %}\n{% for c in 'x' * 1000 if c == 'y' %}{% endfor %}{% endfor %}",
        "{% macro f(n) %}{% if n %}\n{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
        "{{ f(20) }}",
        "{% for i in [0] recursive %}{% if loop.depth < 20 %}\n{{ loop([0, 1]) }}{% endif %}"
        "{% endfor %}",
    ],
)
def test_a_template_that_renders_without_end_fails_instead_of_holding_the_daemon(
    tmp_path: Path, text: str
) -> None:
    # A loop in a loop of 100,000 steps each, or a macro calling itself twice each time, held
    # the daemon in one message for hours, and again after each restart. Here every read of
    # the clock takes a second: the render stops at its 10 seconds, at the loop's line.
    write(tmp_path, "t.txt", text)
    with pytest.raises(
        TemplateError,
        match=r"^template 't': t\.txt:2: not allowed in a "
        r"template: rendering took over 10 seconds \(a loop inside a loop",
    ):
        Templates(tmp_path, clock=ticking(1.0)).render("t", CONTEXT)


def test_loops_render_as_jinja_renders_them(tmp_path: Path) -> None:
    write(
        tmp_path,
        "t.txt",
        "{% for i in range(3) %}{{ loop.index }}/{{ loop.length }}{% if loop.last %}!{% endif %}"
        "{% endfor %} {% for x in [] %}x{% else %}none{% endfor %}"
        " {% for i in range(6) if i is odd %}{{ i }}{% endfor %}"
        ' {% for k, v in {"a": 1}.items() %}{{ k }}={{ v }}{% endfor %}'
        " {% for i in [1, [2, [3]]] recursive %}<{{ i if i is number else loop(i) }}>{% endfor %}"
        " {% for tag in customer.tags %}{{ tag }}{% endfor %}",
    )
    assert Templates(tmp_path, clock=ticking(0.001)).render("t", CONTEXT).body == (
        "1/32/33/3! none 135 a=1 <1><<2><<3>>> vip"
    )


def test_a_message_longer_than_a_message_can_be_fails(tmp_path: Path) -> None:
    # Each step within bounds (100,000 characters), but written 101 times: ten million and
    # more characters, where a loop written a thousand times more took the daemon's memory.
    written = '{% set x = "a" * 100000 %}{% for i in range(TIMES) %}{{ x }}{% endfor %}'
    write(tmp_path, "t.txt", written.replace("TIMES", "101"))
    with pytest.raises(TemplateError, match=r"the message would be over 10,000,000 characters"):
        Templates(tmp_path).render("t", CONTEXT)
    write(tmp_path, "t.txt", written.replace("TIMES", "100"))
    assert len(Templates(tmp_path).render("t", CONTEXT).body) == 10_000_000


@pytest.mark.parametrize(
    "text",
    [
        "{% macro m() %}LOOP{% endmacro %}{{ m() | length }}",
        "{% set made %}LOOP{% endset %}{{ made | length }}",
        "{% set made %}{% filter upper %}LOOP{% endfilter %}{% endset %}{{ made | length }}",
        "{% macro m() %}{{ caller() | length }}{% endmacro %}{% call m() %}LOOP{% endcall %}",
    ],
)
def test_text_too_long_fails_also_where_a_macro_or_a_block_makes_it(
    tmp_path: Path, text: str
) -> None:
    # The message was counted only as it was written out: inside a macro, a `{% set %}` block,
    # a `{% filter %}` or a `{% call %}`, 300 times 100,000 characters rendered as "30000000"
    # (90,000 times: gigabytes, as before the limit). Now the text fails as it grows, at the
    # template's line.
    loop = '{% for i in range(101) %}{{ "a" * 100000 }}{% endfor %}'
    write(tmp_path, "t.txt", text.replace("LOOP", loop))
    with pytest.raises(
        TemplateError,
        match=r"^template 't': t\.txt:1: not allowed in a template: the message would be over"
        r" 10,000,000 characters",
    ):
        Templates(tmp_path).render("t", CONTEXT)
    write(tmp_path, "t.txt", text.replace("LOOP", loop.replace("101", "100")))
    assert Templates(tmp_path).render("t", CONTEXT).body == "10000000"


def test_a_value_that_is_not_set_shows_nothing_and_takes_its_default(tmp_path: Path) -> None:
    # A customer imported without a name got "Hi None", with `| default("there")` too (the
    # advice for what may be missing), and a coupon without a minimum spend "满None减30".
    write(
        tmp_path,
        "t.txt",
        "Hi {{ customer.name }}|{{ customer.name | default('there') }}|{{ customer.phone | d }}"
        "|{{ coupon.min_spend }}|{% if customer.name %}named{% else %}nameless{% endif %}"
        "|{{ customer.name is none }}|{{ 0 | default(5) }}|{{ '' | default(5, true) }}",
    )
    context = {**CONTEXT, "customer": {"id": "c1", "name": None, "phone": None}}
    context["coupon"] = {"code": "ABCD2345EF", "worth": 30, "min_spend": None}
    assert Templates(tmp_path).render("t", context).body == ("Hi |there|||nameless|True|0|5")


def test_a_template_file_over_a_megabyte_fails_without_being_compiled(tmp_path: Path) -> None:
    write(tmp_path, "t.txt", "Hi {{ customer.name }}" + " " * (1_000_000 - 22))
    assert Templates(tmp_path).render("t", CONTEXT).body.startswith("Hi Li Wei  ")
    write(tmp_path, "t.txt", "Hi {{ customer.name }}" + " " * (1_000_000 - 21))
    message = (
        "template 't': t.txt is over 1 MB, more than a message template can be (a message is a"
        " few kilobytes: link to long texts and images rather than putting them in the file);"
        " make it smaller"
    )
    with pytest.raises(TemplateError, match=f"^{re.escape(message)}$"):
        Templates(tmp_path).render("t", CONTEXT)
    with pytest.raises(TemplateError, match=f"^{re.escape(message)}$"):
        Templates(tmp_path).references("t")


def test_a_template_that_took_too_long_three_times_in_a_row_fails_at_once_until_it_changes(
    tmp_path: Path,
) -> None:
    # A broadcast with a template that renders for ever took its 10 seconds a message: about a
    # day of the outbox for 10,000 customers. Once it has for three messages in a row, its
    # messages fail at once, until it or a template it includes changes; each dispatch makes
    # its own `Templates`.
    loop = "{% for i in range(1000) %}\n{% for j in range(1000) %}{% endfor %}{% endfor %}"
    write(tmp_path, "t.txt", 'Hi {% include "part" %}')
    write(tmp_path, "part.txt", loop)
    write(tmp_path, "other.txt", 'Also {% include "part" %}')
    stopped = (
        "part.txt:2: rendering took over 10 seconds (a loop inside a loop, or a macro calling"
        " itself, repeats too often); a message is rendered in a moment"
    )
    slow = f"template 't': part.txt:2: not allowed in a template: {stopped.partition(': ')[2]}"
    for _ in range(2):
        with pytest.raises(TemplateError) as first:
            Templates(tmp_path, clock=ticking(1.0)).render("t", CONTEXT)
        assert str(first.value) == slow
    with pytest.raises(TemplateError) as third:
        Templates(tmp_path, clock=ticking(1.0)).render("t", CONTEXT)
    assert str(third.value) == (
        f"{slow}; that is 3 messages in a row, so its other messages fail at once until it is"
        " changed: fix it, then `nudge outbox --retry` sends them again"
    )
    reads = itertools.count()

    def clock() -> float:  # a render reads it first to set its deadline
        return float(next(reads))

    for _ in range(2):
        with pytest.raises(TemplateError) as again:
            Templates(tmp_path, clock=clock).render("t", CONTEXT)
        assert str(again.value) == (
            "template 't': not rendered, as it took too long for the 3 messages before and its"
            f" files have not changed since ({stopped}); fix it, then `nudge outbox --retry`"
            " sends its messages again"
        )
    assert next(reads) == 0
    # Another template including the same part is tried on its own, and so is another folder.
    with pytest.raises(TemplateError, match=r"part\.txt:2: not allowed in a template: rendering"):
        Templates(tmp_path, clock=ticking(1.0)).render("other", CONTEXT)
    elsewhere = tmp_path / "elsewhere"
    write(elsewhere, "t.txt", "Hi")
    assert Templates(elsewhere).render("t", CONTEXT).body == "Hi"
    # The part mended, the template renders again.
    write(tmp_path, "part.txt", "there")
    assert Templates(tmp_path).render("t", CONTEXT).body == "Hi there"
    # Its own file changed, and still too slow: tried again, and remembered again.
    write(tmp_path, "part.txt", loop)
    write(tmp_path, "t.txt", 'Hello {% include "part" %}')
    for _ in range(2):
        with pytest.raises(TemplateError, match="rendering took over 10 seconds"):
            Templates(tmp_path, clock=ticking(1.0)).render("t", CONTEXT)
    with pytest.raises(TemplateError, match="its other messages fail at once"):
        Templates(tmp_path, clock=ticking(1.0)).render("t", CONTEXT)
    with pytest.raises(TemplateError, match="not rendered, as it took too long"):
        Templates(tmp_path, clock=ticking(1.0)).render("t", CONTEXT)
    write(tmp_path, "t.txt", "Hello")
    assert Templates(tmp_path).render("t", CONTEXT).body == "Hello"


def test_a_message_slow_for_its_own_data_fails_alone(tmp_path: Path) -> None:
    """A template slow for one customer's data (a huge order's items), or one that a daemon
    stopped or starved of the processor during its render made slow, fails that message; the
    others are rendered: a render in time forgets the slow ones before it. It failed every
    message of a template that renders in a moment, until the file was changed."""
    loop = "{% for i in customer.tags | default([]) %}{% for j in range(i) %}{% endfor %}"
    write(tmp_path, "t.txt", loop + "{% endfor %}ok")
    slow, quick = dict(CONTEXT, customer={"tags": [1000] * 1000}), dict(CONTEXT, customer={})
    for context in (slow, slow, quick, slow, slow, quick):
        templates = Templates(tmp_path, clock=ticking(1.0))
        if context is slow:
            with pytest.raises(TemplateError, match="rendering took over 10 seconds") as failed:
                templates.render("t", context)
            assert "fail at once" not in str(failed.value)
        else:
            assert templates.render("t", context).body == "ok"


def test_a_value_that_is_not_set_is_no_text_through_filters_and_joins_too(tmp_path: Path) -> None:
    # "None" still showed through `| title`, `~`, `join` and `%`, for a customer imported
    # without a name. A field not set is still none and defined to tests, equals none, gives 0
    # to `| int`, null to `| tojson`, and fails as a number, saying which field is not set.
    write(
        tmp_path,
        "t.html",
        "[{{ customer.name | title }}|{{ 'Hi ' ~ customer.name }}|{{ [customer.name, 'a'] | join }}"
        "|{{ customer.codes | join('/') }}|{{ '%s!' % customer.name }}|{{ customer.name | upper }}"
        "|{{ customer.name | string | length }}|{{ customer.name is none }}"
        "|{{ customer.name is defined }}|{{ customer.name is undefined }}"
        "|{{ customer.name == none }}|{{ customer.name != none }}|{{ customer.points | int }}"
        "|{{ customer.points | float }}|{{ customer.name | tojson }}"
        "|{{ customer.name | default('there') | title }}|{{ coupon.min_spend ~ '' }}"
        "|{% for c in customer.name %}{{ c }}{% endfor %}|{{ customer.name | reverse }}"
        "|{{ customer.name is sameas none }}|{{ customer.codes }}|{{ customer.name | pprint }}]",
    )
    context = {**CONTEXT, "customer": {"id": "c1", "name": None, "points": None}}
    context["customer"]["codes"] = ["A", None, "B"]
    context["coupon"] = {"code": "ABCD2345EF", "worth": 30, "min_spend": None}
    assert Templates(tmp_path).render("t", context).body == (
        "[|Hi |a|A//B|!||0|True|True|False|True|False|0|0.0|null|There|||"
        "|True|[&#39;A&#39;, None, &#39;B&#39;]|None]"
    )
    for used in ("customer.points + 1", "customer.points > 100", "customer.points.x"):
        write(tmp_path, "t.html", f"Hi\n{{{{ {used} }}}}")
        with pytest.raises(TemplateError) as failed:
            Templates(tmp_path).render("t", context)
        assert str(failed.value) == (
            "template 't': t.html:2: customer.points is not set for this message's customer"
            " (write `customer.points | default(...)` for what to use then)"
        )
    # Not set in a list that is: the item is named, not the list.
    write(tmp_path, "t.html", "{{ customer.codes | sort | join }}")
    with pytest.raises(TemplateError) as failed:
        Templates(tmp_path).render("t", context)
    assert str(failed.value) == (
        "template 't': t.html:1: customer.codes[1] is not set for this message's customer"
        " (write `customer.codes[1] | default(...)` for what to use then)"
    )


@pytest.mark.parametrize(
    ("step", "what"),
    [
        ("{% set ns.s = ns.s ~ ns.s %}", "`~`"),
        ("{% set ns.s = ns.s + ns.s %}", "`+`"),
        ("{% set ns.s = [ns.s, ns.s] | join %}", "`join`"),
        ('{% set ns.s = "".join([ns.s, ns.s]) %}', "`join`"),
        ('{% set ns.s = ns.s | replace("x", "xx") %}', "`replace`"),
        ('{% set ns.s = ns.s.replace("x", "xx") %}', "`replace`"),
        ('{% set ns.s = "%s%s" % (ns.s, ns.s) %}', "`%`"),
        ('{% set ns.s = "{}{}".format(ns.s, ns.s) %}', "`format`"),
        ('{% set ns.s = "%s%s" | format(ns.s, ns.s) %}', "`format`"),
        ("{% set ns.l = ns.l + ns.l %}", "`+`"),
        ("{% set ns.l = [ns.l, ns.l] | sum(start=[]) %}", "`sum`"),
        ("{{ ns.l.extend(ns.l) or '' }}", "`extend`"),
    ],
)
def test_a_text_doubled_in_a_loop_fails_before_it_takes_the_memory(
    tmp_path: Path, step: str, what: str
) -> None:
    # Doubled 40 times in a `{% set %}`, a text of 2**40 characters took the daemon's memory
    # before the message's 10,000,000 characters, counted as it is written, saw any of it.
    # Now no step makes a text or a list longer than that: 6,400,000 are made, not 12,800,000.
    loop = '{% set ns = namespace(s="x" * 100000, l=[1] * 100000) %}\n'
    loop += "{% for i in range(TIMES) %}STEP{% endfor %}{{ ns.s | length }}/{{ ns.l | length }}"
    write(tmp_path, "t.txt", loop.replace("STEP", step).replace("TIMES", "6"))
    made = Templates(tmp_path).render("t", CONTEXT).body
    assert made.strip() in ("6400000/100000", "100000/6400000")
    write(tmp_path, "t.txt", loop.replace("STEP", step).replace("TIMES", "40"))
    with pytest.raises(TemplateError) as failed:
        Templates(tmp_path).render("t", CONTEXT)
    assert str(failed.value) == (
        f"template 't': t.txt:2: not allowed in a template: {what} would make 12,800,000"
        " characters or items, more than a message holds (10,000,000: a loop that doubles a"
        " text each time?)"
    )


@pytest.mark.parametrize(
    ("text", "made"),
    [
        ('{{ s | replace("x", s) }}', "`replace` would make 16,000,000"),
        ('{{ s.replace("", s) }}', "`replace` would make 16,008,000"),
        ("{{ ([s] * 90000) | join }}", "`*` would make 360,090,000"),
        ('{{ ([{"a": s}] * 90000) | join(",", "a") }}', "`join` would make 360,089,999"),
        ("{{ ('\\n' * 90000) | indent(s) }}", "`indent` would make 360,094,000"),
        ("{{ ('\\t' * 3000).expandtabs(90000) }}", "`expandtabs` would make 270,003,000"),
    ],
)
def test_one_step_that_would_make_far_more_than_it_is_given_fails_before_it(
    tmp_path: Path, text: str, made: str
) -> None:
    # `{{ s | replace("x", s) }}` of 3,000 characters made 9,000,000, of 4,000 16,000,000; a
    # step such as these, on texts made longer in a loop, took the daemon's memory at once.
    write(tmp_path, "t.txt", '{% set s = "x" * 4000 %}' + text)
    with pytest.raises(TemplateError, match=f"not allowed in a template: {re.escape(made)} "):
        Templates(tmp_path).render("t", CONTEXT)


def test_filters_that_make_nothing_longer_than_they_are_given_run_unmeasured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`default`, `first`, `length`... give one of the values they are given, or a number:
    they run as Jinja's own, never measured; a message calls `default` several times, and
    measured it took 80 times as long (3 µs a call)."""
    measured: list[Any] = []
    size = templates_module._size
    monkeypatch.setattr(
        templates_module, "_size", lambda value: measured.append(value) or size(value)
    )
    write(
        tmp_path,
        "t.txt",
        '{{ customer.phone | default("-") }} {{ customer.name | d("there", true) }}'
        " {{ customer.tags | first }} {{ customer.tags | length }} {{ '%d' | format(2) }}",
    )
    assert Templates(tmp_path).render("t", CONTEXT).body == "- Li Wei vip 1 2"
    assert measured == ["2"]  # `format` makes a text: measured
