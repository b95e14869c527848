"""Every example of LANGUAGE.md parses and checks clean (the page's own words, LANGUAGE.md 1).

The contract lives beside the repository, in ../shared/LANGUAGE.md, as it does in CI. The
examples are taken from it: its fenced rule blocks, and every inline snippet that is a trigger
(`when ...`) or an action. Optional parts written `[like this]` are tried without and with them.
"""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path

import pytest

from engine.checking.ruleset import check_rule_set
from engine.config import Channel, Config
from engine.language.parse import parse_text

CONTRACT = Path(__file__).resolve().parents[2] / "shared" / "LANGUAGE.md"
if not CONTRACT.exists():
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        raise FileNotFoundError(f"the contract {CONTRACT} is missing")
    pytest.skip(f"the contract {CONTRACT} is not beside this checkout", allow_module_level=True)
PAGE = CONTRACT.read_text(encoding="utf-8")
ACTION_WORDS = ("message", "followup", "coupon", "points", "task", "gift", "tag", "untag")
TEMPLATES = ("fit_check", "usage_check", "thank_you", "new_arrival", "birthday", "miss_you")
# Conditions written inline on the page (section 3.3); each must appear there verbatim.
CONDITIONS = (
    'customer in "big spenders"',
    "count(order.returned)",
    "count(order.paid within 90d)",
    "sum(order.paid.total within 365d)",
    '"vip" in customer.tags',
    'customer.tags contains "vip"',
    'order.category in ["shoes", "bags"]',
)


def fenced_blocks() -> list[str]:
    blocks = re.findall(r"```\n(.*?)```", PAGE, flags=re.S)
    # Rule text only: not the clause summary of 3.1 (`[rule "NAME"]`) nor the JSON of section 5.
    return [b for b in blocks if not b.lstrip().startswith(("[", "{"))]


def inline_snippets() -> list[str]:
    spans = re.findall(r"`([^`\n]+)`", PAGE)
    return [
        s
        for s in spans
        if s.split(" ", 1)[0] in ("when", *ACTION_WORDS)
        and " " in s
        and not re.search(r"\b[A-Z]{2,}\b", s)  # `points EXPR` is a pattern, not an example
    ]


def expand_optional(snippet: str) -> list[str]:
    """`message "x" [via email]` → without and with the bracketed part."""
    parts = re.split(r"\s*\[([a-z][^\]]*)\]", snippet)
    head, optional = parts[0], parts[1::2]
    return [
        " ".join([head, *(o for o, keep in zip(optional, choice, strict=True) if keep)])
        for choice in itertools.product((False, True), repeat=len(optional))
    ]


def as_rule(snippet: str) -> str:
    if snippet.startswith("when"):
        return snippet if " then " in snippet else f'{snippet} then tag "seen"'
    return f"when order.paid then {snippet}"


def shop(tmp_path: Path, text: str) -> tuple[Path, Config]:
    rules = tmp_path / "rules"
    (rules / "templates").mkdir(parents=True)
    for name in TEMPLATES:
        (rules / "templates" / f"{name}.txt").write_text("Hello {{ customer.name }}\n")
    (rules / "example.rules").write_text(text, encoding="utf-8")
    if "segment " not in text:  # the segments of section 3.5, used by other examples
        (rules / "segments.rules").write_text(fenced_blocks()[1], encoding="utf-8")
    channels = {n: Channel(n, n) for n in ("file", "email", "sms")}
    return rules, Config(country="CN", channels=channels)


def assert_checks_clean(tmp_path: Path, text: str) -> None:
    rules, config = shop(tmp_path, text)
    ruleset, diagnostics = check_rule_set(rules, config)
    assert diagnostics == []
    assert ruleset is not None


def test_the_page_has_the_examples_this_file_expects():
    assert len(fenced_blocks()) == 3
    assert len(inline_snippets()) >= 23
    for condition in CONDITIONS[:5]:
        assert f"`{condition}`" in PAGE or condition in PAGE


@pytest.mark.parametrize("block", fenced_blocks(), ids=lambda b: b.split("\n", 1)[0][:40])
def test_fenced_examples_check_clean(tmp_path, block):
    assert_checks_clean(tmp_path, block)


def test_first_file_names_its_rules_as_the_page_says(tmp_path):
    rules, config = shop(tmp_path, fenced_blocks()[0])
    (rules / "example.rules").rename(rules / "aftercare.rules")
    ruleset, _ = check_rule_set(rules, config)
    assert ruleset is not None
    assert [r.name for r in ruleset.rules] == ["aftercare.rules:3", "usage check", "thank you"]
    assert [r.position for r in ruleset.rules] == [0, 1, 2]


@pytest.mark.parametrize("snippet", [s for raw in inline_snippets() for s in expand_optional(raw)])
def test_inline_triggers_and_actions_check_clean(tmp_path, snippet):
    assert_checks_clean(tmp_path, as_rule(snippet))


@pytest.mark.parametrize("condition", CONDITIONS)
def test_inline_conditions_check_clean(tmp_path, condition):
    assert_checks_clean(
        tmp_path,
        f'when order.paid if {condition} > 0 then tag "x"'
        if condition.startswith(("count", "sum"))
        else f'when order.paid if {condition} then tag "x"',
    )


def test_points_takes_any_numeric_expression():
    rule = parse_text('when order.paid then points order.total * 2 and tag "vip"').statements[0]
    assert [a.kind for a in rule.actions] == ["points", "tag"]
