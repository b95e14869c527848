"""Templates: found by name, rendered in Jinja2's sandbox, every failure a TemplateError."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.templates import TemplateError, Templates, find_template, split_subject

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


def test_html_templates_escape_values(tmp_path: Path) -> None:
    write(tmp_path, "news.html", "<p>{{ customer.name }}</p>")
    context = dict(CONTEXT, customer={"name": "<script>x</script>"})
    rendered = Templates(tmp_path).render("news", context)
    assert rendered.body == "<p>&lt;script&gt;x&lt;/script&gt;</p>"
    assert rendered.html is True


def test_include_finds_other_templates_by_name(tmp_path: Path) -> None:
    write(tmp_path, "partials/footer.txt", "-- {{ shop.name }}")
    write(tmp_path, "thanks.txt", 'Thanks!\n{% include "partials/footer" %}')
    assert Templates(tmp_path).render("thanks", CONTEXT).body == "Thanks!\n-- Acme"


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
            r"template 'u': customer has no attribute 'nickname'",
        ),
        ({"u.txt": "{{ event.total }}"}, "u", r"'None' has no attribute 'total'"),
        ({"u.txt": "{{ missing }}"}, "u", r"'missing' is undefined"),
        ({"z.txt": "{{ 1 / 0 }}"}, "z", r"ZeroDivisionError"),
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
    ],
)
def test_template_errors_say_what_and_where(
    tmp_path: Path, files: dict[str, str], name: str, expected: str
) -> None:
    for file, content in files.items():
        write(tmp_path, file, content)
    with pytest.raises(TemplateError, match=expected):
        Templates(tmp_path).render(name, CONTEXT)


def test_find_template(tmp_path: Path) -> None:
    write(tmp_path, "fit_check.txt", "x")
    assert find_template(tmp_path, "fit_check") == tmp_path / "fit_check.txt"
    with pytest.raises(TemplateError):
        find_template(tmp_path / "nowhere", "fit_check")
