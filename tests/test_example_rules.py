"""The example rule sets in rules/: they check clean, they show the whole language, and every
template they name renders in both languages with what a real message would carry."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import warnings
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from engine.checking.ruleset import check_rule_set, load_rule_set
from engine.config import Config, load_config
from engine.demo.shop import generate_shop
from engine.evaluation.simulate import simulate
from engine.importing.importers import import_customer_rows, import_event_rows
from engine.language import ast
from engine.language.parse import parse_file
from engine.language.source import SourceFile
from engine.outbox.templates import Templates
from engine.render import render_text
from engine.storage.db import open_database
from engine.timeutil import local_text, parse_moment

RULES = Path(__file__).resolve().parent.parent / "rules"
FOLDERS = sorted(p for p in RULES.iterdir() if p.is_dir())
CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")


def config_of(folder: Path) -> Config:
    path = folder / "nudge.yaml"
    return load_config(path) if path.exists() else Config(base_dir=folder)


def rules_of(folder: Path) -> list[ast.Rule]:
    files = [parse_file(SourceFile.read(p, p.name)) for p in sorted(folder.glob("*.rules"))]
    return [s for f in files for s in f.statements if isinstance(s, ast.Rule)]


def test_every_example_folder_is_a_rule_set():
    assert [f.name for f in FOLDERS] == ["aftercare", "shop"]
    for folder in FOLDERS:
        assert rules_of(folder), folder


GUIDE_FIRST_FILE = """\
# rules/aftercare.rules — three check-ins in the month after delivery

when order.received + 3d then followup "fit_check"

rule "usage check"
  when order.received + 13d at 10:00
  then followup "usage_check"

rule "thank you"
  when order.received + 28d at 10:00
  unless order.returned
  then message "thank_you" via email
"""


@pytest.mark.parametrize("folder", FOLDERS, ids=[f.name for f in FOLDERS])
def test_every_example_checks_clean(folder):
    ruleset, diagnostics = check_rule_set(folder, config_of(folder))
    errors = [d for d in diagnostics if d.severity == "error"]
    assert not errors, render_text(errors)
    assert ruleset is not None and len(ruleset.rules) == len(rules_of(folder))
    for warning in diagnostics:
        warnings.warn(f"{folder.name}: {render_text([warning])}", stacklevel=1)


def test_aftercare_is_the_first_file_of_the_language_guide():
    text = (RULES / "aftercare" / "aftercare.rules").read_text(encoding="utf-8")
    assert text == GUIDE_FIRST_FILE


# --- the shop shows the whole language ----------------------------------------------------------


def trigger_kind(rule: ast.Rule) -> str:
    trigger = rule.when.trigger
    if isinstance(trigger, ast.EventTrigger):
        return "event + delay" if trigger.offset else "event"
    if isinstance(trigger, ast.CustomerTrigger):
        return "customer date" if trigger.name in ast.CUSTOMER_DATE_FIELDS else "customer time"
    return {
        ast.HolidayTrigger: "holiday",
        ast.ScheduleTrigger: "schedule",
        ast.DateTrigger: "date",
    }[type(trigger)]


def test_the_shop_uses_every_trigger_and_every_action():
    rules = rules_of(RULES / "shop")
    assert len(rules) >= 20
    assert {trigger_kind(r) for r in rules} == {
        "event",
        "event + delay",
        "customer date",
        "customer time",
        "holiday",
        "schedule",
        "date",
    }
    kinds = {a.kind for r in rules for a in r.actions}
    assert kinds == {"message", "followup", "coupon", "points", "task", "gift", "tag", "untag"}
    assert any(r.once and r.once.every is None for r in rules)
    assert any(r.once and r.once.every is not None for r in rules)
    assert any(r.unless and r.unless.within for r in rules)
    assert any(r.unless and not r.unless.within for r in rules)


def test_every_channel_a_rule_names_is_configured():
    for folder in FOLDERS:
        config = config_of(folder)
        for rule in rules_of(folder):
            for action in rule.actions:
                channel = getattr(action, "channel", None)
                assert channel is None or channel in config.channels, (folder.name, channel)


# --- templates ----------------------------------------------------------------------------------


@cache
def demo_events() -> dict[str, dict[str, Any]]:
    """One demo event of each type, as the outbox hands an event to a template."""
    _, events = generate_shop(seed=11, customers=300)
    found: dict[str, dict[str, Any]] = {}
    for event in events:
        if event["type"] not in found:
            fields = {k: v for k, v in event.items() if k not in ("id", "customer")}
            moment = dt.datetime.fromisoformat(event["at"]).astimezone(dt.UTC)
            found[event["type"]] = {**fields, "at": moment.isoformat().replace("+00:00", "Z")}
    return found


def customer(language: str | None) -> dict[str, Any]:
    """A customer as the outbox hands it to a template: fields, attributes and tags."""
    row: dict[str, Any] = {
        "id": "c1",
        "name": "Amy Wong" if language == "en" else "王芳",
        "email": "amy@example.com",
        "phone": None,
        "timezone": "Asia/Shanghai",
        "birthday": "05-20",
        "tags": ["silver"],
        "city": "上海",
    }
    if language is not None:
        row["language"] = language
    return row


def coupon(action: ast.Coupon) -> dict[str, Any]:
    """The coupon the ledger issues for `action`."""
    expires = "2026-11-25T02:00:00Z" if action.expires else None
    found = {
        "code": "7KQ2MX9PTA",
        "worth": float(action.worth.value),
        "unit": "percent" if action.percent else "money",
        "min_spend": float(action.min_spend.value) if action.min_spend else None,
        "expires": expires,
    }
    if expires:
        found["expires_local"] = "2026-11-25 10:00"  # in Shanghai, the customer's zone
    return found


def uses() -> list[tuple[str, str, ast.Rule, ast.Message | ast.Coupon]]:
    return [
        (folder.name, action.template, rule, action)
        for folder in FOLDERS
        for rule in rules_of(folder)
        for action in rule.actions
        if isinstance(action, ast.Message | ast.Coupon)
    ]


@pytest.mark.parametrize(
    ("folder", "template", "rule", "action"),
    uses(),
    ids=[f"{folder}-{template}" for folder, template, _, _ in uses()],
)
def test_every_template_renders_in_both_languages(folder, template, rule, action):
    config = config_of(RULES / folder)
    templates = Templates(config.templates_dir(RULES / folder))
    trigger = rule.when.trigger
    event = demo_events()[trigger.event] if isinstance(trigger, ast.EventTrigger) else None
    scope = {
        "event": event,
        "coupon": coupon(action) if isinstance(action, ast.Coupon) else None,
        "shop": config.shop,
    }
    english = templates.render(template, {**scope, "customer": customer("en")})
    chinese = templates.render(template, {**scope, "customer": customer("zh")})
    unset = templates.render(template, {**scope, "customer": customer(None)})

    assert CJK.search(chinese.body), chinese.body
    product = (event or {}).get("name", "")  # launched products have bilingual names
    assert not CJK.search(english.body.replace(product, "")), english.body
    assert "Amy Wong" in english.body and "王芳" in chinese.body
    assert unset.body == chinese.body  # the shop's main language when none is given
    for rendered in (english, chinese):
        assert rendered.body.strip() and "None" not in rendered.body
        assert not rendered.body.startswith(("\n", " "))
    if getattr(action, "channel", None) == "email":
        assert english.subject and chinese.subject and CJK.search(chinese.subject)
    if isinstance(action, ast.Coupon):
        assert "7KQ2MX9PTA" in english.body and "7KQ2MX9PTA" in chinese.body
        if action.expires:
            assert "2026-11-25" in chinese.body


def test_a_percent_coupon_reads_as_a_chinese_discount():
    templates = Templates(RULES / "shop" / "templates")
    scope = {
        "event": None,
        "shop": {},
        "coupon": {
            "code": "A",
            "worth": 15.0,
            "unit": "percent",
            "min_spend": None,
            "expires": None,
        },
    }
    assert "8.5折券" in templates.render("miss_you", {**scope, "customer": customer("zh")}).body
    assert "15% off" in templates.render("miss_you", {**scope, "customer": customer("en")}).body
    scope["coupon"] = {**scope["coupon"], "worth": 30.0, "unit": "money", "min_spend": 200.0}
    assert (
        "满200减30元券" in templates.render("birthday", {**scope, "customer": customer("zh")}).body
    )


def test_the_tier_rules_need_once_as_their_comment_says(tmp_path):
    """loyalty.rules explains that `once` replaces a condition on the rule's own tag."""
    (tmp_path / "tiers.rules").write_text(
        'rule "gold member"\n'
        "  when order.paid\n"
        '  if customer.total_spent >= 5000 and "gold" not in customer.tags\n'
        '  then tag "gold"\n',
        encoding="utf-8",
    )
    ruleset, diagnostics = check_rule_set(tmp_path, Config(base_dir=tmp_path))
    assert ruleset is None
    assert any("gold member" in d.message and d.severity == "error" for d in diagnostics)
    assert "once" in (RULES / "shop" / "loyalty.rules").read_text(encoding="utf-8")


# --- the shop's rules do what their comments say ------------------------------------------------


def _shop_actions(
    tmp_path: Path, people: list[dict[str, Any]], happenings: list[dict[str, Any]], days: int
) -> list[tuple[str, str, str, str]]:
    """(customer, rule, what, shop-local minute) of each action the shop's rules take over
    `days` days from 2026-06-01 on these customers and events, in order."""
    folder = RULES / "shop"
    config = dataclasses.replace(config_of(folder), database=f"sqlite:///{tmp_path / 's.db'}")
    engine = open_database(config.database)
    try:
        import_customer_rows(engine, people, config.timezone)
        import_event_rows(engine, happenings, config.timezone)
        start = parse_moment("2026-06-01", config.timezone)
        found = simulate(engine, load_rule_set(folder, config), config, start, start + days * DAY)
    finally:
        engine.dispose()
    return [
        (
            a.customer_id,
            a.rule,
            a.detail.get("tag") or a.template or a.kind,
            local_text(a.at_us, config.timezone),
        )
        for a in found.actions
        if a.kind != "points"
    ]


DAY = 86_400 * 1_000_000


def _event(customer: str, kind: str, at: str, **properties: Any) -> dict[str, Any]:
    return {"customer": customer, "type": kind, "at": f"2026-06-{at}", **properties}


def test_an_abandoned_cart_is_reminded_2_hours_after_its_last_change(tmp_path):
    people = [{"id": "c1", "accepts_marketing": True}]
    edits = [_event("c1", "cart.updated", "01T10:00"), _event("c1", "cart.updated", "01T11:30")]
    assert [a for a in _shop_actions(tmp_path, people, edits, 2) if a[1] == "abandoned cart"] == [
        ("c1", "abandoned cart", "cart_reminder", "2026-06-01 13:30")
    ]


def test_a_first_order_paid_within_the_welcome_s_ten_minutes_ends_new(tmp_path):
    people = [{"id": "c1", "signed_up": "2026-06-01T10:00", "accepts_marketing": True}]
    paid = [_event("c1", "order.paid", "01T10:05", total=120)]
    welcome = [
        a
        for a in _shop_actions(tmp_path, people, paid, 1)
        if a[1] in ("new customer", "welcome", "no longer new")
    ]
    assert welcome == [
        ("c1", "new customer", "new", "2026-06-01 10:00"),
        ("c1", "no longer new", "new", "2026-06-01 10:05"),
        ("c1", "welcome", "welcome", "2026-06-01 10:10"),
    ]


def test_a_customer_who_jumps_straight_to_gold_gets_the_gold_message_only(tmp_path):
    people = [{"id": "c1", "accepts_marketing": True}]
    paid = [_event("c1", "order.paid", "01T10:00", total=6000)]
    tiers = [a for a in _shop_actions(tmp_path, people, paid, 1) if "member" in a[1]]
    assert [(rule, what) for _, rule, what, _ in tiers] == [
        ("gold member", "silver"),  # untag
        ("gold member", "gold"),
        ("gold member", "tier_gold"),
    ]


def test_a_complaint_stays_open_30_days_after_the_last_low_rating_or_until_a_better_one(
    tmp_path,
):
    people = [{"id": "c1"}, {"id": "c2"}, {"id": "c3"}]
    reviews = [
        _event("c1", "review.posted", "01T10:00", rating=1),
        _event("c1", "review.posted", "11T10:00", rating=2),  # the complaint goes on
        _event("c2", "review.posted", "01T10:00", rating=1),
        _event("c2", "review.posted", "05T10:00", rating=4),  # and is resolved
        _event("c3", "review.posted", "01T10:00", rating=1),
        _event("c3", "review.posted", "05T10:00"),  # a review without a rating resolves it too
    ]
    closing = [
        (customer, rule, when)
        for customer, rule, what, when in _shop_actions(tmp_path, people, reviews, 60)
        if what == "complaint"
    ]
    assert closing == [
        ("c1", "low rating", "2026-06-01 10:00"),
        ("c2", "low rating", "2026-06-01 10:00"),
        ("c3", "low rating", "2026-06-01 10:00"),
        ("c2", "complaint resolved", "2026-06-05 10:00"),
        ("c3", "complaint resolved", "2026-06-05 10:00"),
        ("c1", "low rating", "2026-06-11 10:00"),
        ("c1", "complaint closed", "2026-07-11 10:00"),
    ]
