"""`nudge fmt`: the canonical layout, comments kept, idempotent, meaning unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli import cli
from engine.errors import RuleError
from engine.language.fmt import format_source
from engine.language.parse import parse_text
from engine.language.source import SourceFile

MESSY = """# header comment

when order.received + 3 days then followup "fit_check"  # short
rule "usage check" when order.received + 13d at 9:00   # at nine
  # about the condition
  if (customer.orders > 1 and customer.orders < 5) and customer.tags contains "x"
  then followup "usage_check"
segment "a" = customer.orders >= 3
segment "b" = customer.orders - (1 - 2) > -3
when a.b
  once then tag "x" and points order.total * (2 + 1)
# trailing file comment
"""

CANONICAL = """# header comment

when order.received + 3 days then followup "fit_check"  # short

rule "usage check"
  when order.received + 13d at 09:00  # at nine
  # about the condition
  if (customer.orders > 1 and customer.orders < 5) and customer.tags contains "x"
  then followup "usage_check"

segment "a" = customer.orders >= 3
segment "b" = customer.orders - (1 - 2) > -3
when a.b once then tag "x" and points order.total * (2 + 1)
# trailing file comment
"""


def fmt(text: str) -> str:
    return format_source(SourceFile("t.rules", text))


def test_canonical_layout():
    assert fmt(MESSY) == CANONICAL
    assert fmt(CANONICAL) == CANONICAL


def test_long_unnamed_rule_becomes_a_block():
    condition = " and ".join(f'"t{i}" in customer.tags' for i in range(6))
    text = fmt(f'when order.paid if {condition} then tag "x"')
    assert text.splitlines()[0] == "when order.paid"
    assert text.splitlines()[1].startswith("  if ")


def test_durations_keep_their_form_and_strings_their_escapes():
    text = 'when a.b + 1 day then task "say \\"hi\\"" and coupon "c" worth 15% expires 2 weeks\n'
    assert fmt(text) == text


def test_a_comment_after_two_statements_on_one_line_stays_once_with_the_second():
    text = fmt('when a.b then tag "x" when a.b + 1d then tag "y" # c\n')
    assert text == 'when a.b then tag "x"\nwhen a.b + 1d then tag "y"  # c\n'
    assert fmt(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'rule "r"\n  when order.paid\n  # before if\n  if order.total > 5 # if1\n'
            '    and order.total < 100 # if2\n  then task "t"\n',
            'rule "r"\n  when order.paid\n  # before if\n  # if1\n'
            '  if order.total > 5 and order.total < 100  # if2\n  then task "t"\n',
        ),
        (
            'rule "r"\n  when order.paid\n  if order.total > 5 # p1\n  # mid\n'
            '    and order.total < 100 # p2\n  then task "t" # one\n  and tag "x" # two\n',
            'rule "r"\n  when order.paid\n  # p1\n  # mid\n'
            "  if order.total > 5 and order.total < 100  # p2\n  # one\n"
            '  then task "t" and tag "x"  # two\n',
        ),
        (
            'segment "big" = # seg head\n  customer.orders > 3 # seg tail\n',
            '# seg head\nsegment "big" = customer.orders > 3  # seg tail\n',
        ),
    ],
    ids=["if", "own line between", "segment"],
)
def test_comments_keep_their_order_when_lines_are_joined(text: str, expected: str):
    """A line keeps the last comment of the lines joined into it; the ones before go above it."""
    assert fmt(text) == expected
    assert fmt(expected) == expected
    assert [c.text for c in parse_text(expected).comments] == [
        c.text for c in parse_text(text).comments
    ]


def test_fmt_refuses_a_file_that_does_not_parse():
    try:
        fmt("when a.b then")
    except RuleError as error:
        assert error.diagnostics[0].code == "E112"
    else:
        raise AssertionError("expected a RuleError")


def test_cli_check_lists_files_and_rewrites(tmp_path: Path):
    (tmp_path / "a.rules").write_text(MESSY)
    (tmp_path / "b.rules").write_text(CANONICAL)
    runner = CliRunner()
    result = runner.invoke(cli, ["fmt", "--check", str(tmp_path)])
    assert result.exit_code == 1
    assert f"would reformat {tmp_path / 'a.rules'}" in result.output
    assert "b.rules" not in result.output
    assert (tmp_path / "a.rules").read_text() == MESSY
    assert runner.invoke(cli, ["fmt", str(tmp_path)]).exit_code == 0
    assert (tmp_path / "a.rules").read_text() == CANONICAL
    assert runner.invoke(cli, ["fmt", "--check", str(tmp_path)]).exit_code == 0


def test_fmt_keeps_a_windows_file_s_line_ends_and_byte_order_mark(tmp_path: Path):
    """A file saved by a Windows editor (CRLF, a BOM) was rewritten whole with LF and no BOM,
    and `--check` failed it though its layout was canonical."""
    windows = "\ufeff" + CANONICAL.replace("\n", "\r\n")
    (tmp_path / "w.rules").write_bytes(windows.encode("utf-8"))
    assert CliRunner().invoke(cli, ["fmt", "--check", str(tmp_path)]).exit_code == 0
    (tmp_path / "w.rules").write_bytes(("\ufeff" + MESSY.replace("\n", "\r\n")).encode("utf-8"))
    assert CliRunner().invoke(cli, ["fmt", str(tmp_path)]).exit_code == 0
    assert (tmp_path / "w.rules").read_bytes() == windows.encode("utf-8")


def test_fmt_gives_a_file_of_mixed_line_ends_its_first_line_s(tmp_path: Path):
    """One line with another end (pasted from elsewhere) decides nothing: an LF file with a
    CRLF line in it was turned CRLF on every line, a change to the whole file."""
    lines = CANONICAL.split("\n")
    mostly_lf = "\n".join(lines[:2]) + "\r\n" + "\n".join(lines[2:])
    mostly_crlf = mostly_lf.replace("\n", "\r\n").replace("\r\r\n", "\n")
    for mixed, end in ((mostly_lf, "\n"), (mostly_crlf, "\r\n")):
        assert "\r\n" in mixed and "\n" in mixed.replace("\r\n", "")
        (tmp_path / "m.rules").write_bytes(mixed.encode("utf-8"))
        runner = CliRunner()
        assert runner.invoke(cli, ["fmt", "--check", str(tmp_path)]).exit_code == 1
        assert runner.invoke(cli, ["fmt", str(tmp_path)]).exit_code == 0
        assert (tmp_path / "m.rules").read_bytes() == CANONICAL.replace("\n", end).encode()


def test_fmt_of_a_folder_without_rule_files_says_so_as_check_does(tmp_path: Path):
    (tmp_path / "a.RULES").write_text(CANONICAL)
    for command in (["fmt", str(tmp_path)], ["fmt", "--check", str(tmp_path)]):
        result = CliRunner().invoke(cli, command)
        assert result.exit_code == 1
        codes = [d.code for d in result.exception.diagnostics]  # printed by `main`
        assert codes == ["E002", "W005"]
    assert (tmp_path / "a.RULES").read_text() == CANONICAL


def test_fmt_warns_of_the_unnamed_rules_it_moves(tmp_path: Path):
    """An unnamed rule is named `FILE:LINE`: two blank lines made one make it a new rule to the
    daemon (its `once` history lost). `fmt` says so; a named rule moved is not mentioned."""
    (tmp_path / "e.rules").write_text(
        '# once per customer\n\n\nwhen order.paid once then gift "welcome pack"\n\n\n'
        'rule "kept"\n  when order.paid\n  then task "call"\n\n\n'
        'when order.received then task "check"\n'
    )
    result = CliRunner().invoke(cli, ["fmt", str(tmp_path)])
    assert result.exit_code == 0
    moved = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert moved == [
        f"warning: the unnamed rule at {tmp_path / 'e.rules'}:{old} moved to line {new}; it is"
        " named by its line, so to a running daemon it is a new rule (its `once` starts"
        ' afresh): give it a `rule "NAME"`'
        for old, new in ((4, 3), (12, 9))
    ]
    assert CliRunner().invoke(cli, ["fmt", str(tmp_path)]).stderr == ""


# ---------------------------------------------------------------------------------------------
# Properties over generated rule files

names = st.sampled_from(["order.total", "customer.orders", "customer.points", "order.category"])
atoms = st.one_of(
    names,
    st.integers(0, 999).map(str),
    st.sampled_from(['"vip"', "yes", "3d", "2 weeks", "2026-11-11", '["a", "b"]']),
)


def wrap(text: str) -> str:
    return f"({text})" if " " in text else text


def binary(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    ops = st.sampled_from(["+", "-", "*", "/", "==", "<", "and", "or", "contains"])
    return st.one_of(
        st.tuples(children, ops, children).map(lambda t: f"{wrap(t[0])} {t[1]} {wrap(t[2])}"),
        st.tuples(children, children, children).map(
            lambda t: f"{wrap(t[0])} and {wrap(t[1])} and {wrap(t[2])}"
        ),
        st.tuples(children, children).map(lambda t: f"{wrap(t[0])} + {wrap(t[1])} * 2"),
        children.map(lambda c: f"(({c}))"),
        children.map(lambda c: f"not {wrap(c)}"),
        children.map(lambda c: f"-{wrap(c)}"),
        children.map(lambda c: f"{wrap(c)} is not set"),
        st.tuples(children, children, children).map(
            lambda t: f"{wrap(t[0])} between {wrap(t[1])} and {wrap(t[2])}"
        ),
    )


exprs = st.recursive(atoms, binary, max_leaves=8)
triggers = st.sampled_from(
    [
        "order.paid",
        "order.received + 3d",
        "customer.birthday - 1 day at 09:00",
        'holiday "中秋节"',
        "every monday at 10:00",
        "every month on 1",
        "on 2026-11-11",
    ]
)
actions = st.sampled_from(
    ['tag "vip"', 'message "m" via email', 'coupon "c" worth 15% min 2 expires 1w', "points 5"]
)
comment = st.sampled_from(["", "  # note {}", "\n# own line {}"])


@st.composite
def rule_files(draw: st.DrawFn) -> str:
    parts = []
    numbers = iter(range(100))

    def noted() -> str:  # each comment told apart, to see that their order is kept
        return draw(comment).format(next(numbers))

    for _ in range(draw(st.integers(1, 4))):
        name = draw(st.sampled_from(["", 'rule "r"\n']))
        condition = draw(st.one_of(st.just(""), exprs.map(lambda e: f"\n  if {e}")))
        acts = " and ".join(draw(st.lists(actions, min_size=1, max_size=3)))
        parts.append(f"{name}when {draw(triggers)}{noted()}{condition}\nthen {acts}{noted()}")
    return "\n".join(parts) + "\n"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule_files())
def test_fmt_is_idempotent_and_keeps_the_meaning(text):
    once = fmt(text)
    assert fmt(once) == once
    assert parse_text(once).statements == parse_text(text).statements
    kept = [c.text for c in parse_text(once).comments]
    assert kept == [c.text for c in parse_text(text).comments]  # all, in their order
