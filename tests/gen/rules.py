"""Hypothesis strategies for random rule sets, as TEXT in the rule language.

Valid by construction, so that every generated set parses and checks clean with the
templates in `TEMPLATES`, the channels in `CHANNELS` and `country: CN`:
- standard event names only; event properties only of the trigger's entity (or `event.X`);
- `unless` without `within` only on event triggers;
- no cycle through a condition: rule i tags only `t{i}` and reads only tags `t{j}`, j < i;
  the rules before a cut may give points and never read them in a condition (their amounts
  may: `0 - customer.points`, a cycle through amounts alone, which the engine takes in rounds),
  the rules after it may read points and never give them. Segments and `exclude` read no tags
  given by rules nor points.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from hypothesis import strategies as st

from tests.gen.shops import EVENT_TYPES, TAGS, WINDOW_DAYS, WINDOW_STARTS

TEMPLATES = ("welcome", "promo", "fit_check", "thanks")
CHANNELS = ("file", "email", "sms")
HOLIDAYS = ("春节", "中秋节", "Mid-Autumn Festival", "National Day", "国庆节")
SEGMENTS = ("big spenders", "returners")
DURATIONS = ("30m", "2h", "1d", "3d", "1w", "2 hours", "1 day")
DAY_OFFSETS = ("1d", "3d", "1w", "2 days")
CLOCKS = ("00:00", "01:30", "02:30", "09:00", "10:00", "22:30")
WEEKDAYS = ("monday", "wednesday", "friday", "sunday")
QUIET = (("22:00", "08:00"), ("12:00", "14:00"), ("01:00", "03:00"), ("00:30", "02:00"))
TASKS = ('"call back"', '"call back" for "service"')
# Event and timestamp triggers weigh more: they have the most rules of their own.
TRIGGER_KINDS = (
    "event",
    "event",
    "event",
    "date field",
    "timestamp",
    "timestamp",
    "holiday",
    "every",
    "on",
)
COMPARE = ("==", "!=", "<", "<=", ">", ">=")


@dataclass(frozen=True)
class Scope:
    """What a condition may read."""

    entity: str | None = None  # the trigger's entity, for `order.total` and friends
    tags: tuple[str, ...] = ()  # tags given by earlier rules
    points: bool = False
    segments: tuple[str, ...] = ()


numbers = st.sampled_from(["0", "1", "2", "3", "10", "100", "250", "0.5", "1000"])


def _atoms(scope: Scope) -> st.SearchStrategy[str]:
    """One comparison, test or membership (only the chosen kind draws anything)."""
    pick = st.sampled_from
    events, durations = pick(EVENT_TYPES), pick(DURATIONS)
    options = [
        st.builds("customer.orders {} {}".format, pick(COMPARE), st.integers(0, 4)),
        numbers.map("customer.total_spent >= {}".format),
        numbers.map("customer.average_order < {}".format),
        st.integers(0, 2).map("customer.returns > {}".format),
        pick(["0", "0.5", "1"]).map("customer.return_rate >= {}".format),
        st.integers(0, 60).map("customer.days_since_last_order <= {}".format),
        # Thresholds with fractions, and a number on the left (a count compared so that only
        # "is there one" matters is decided by one lookup; others must not be).
        st.builds(
            "customer.days_since_last_order {} {}".format,
            pick(["<", "<="]),
            pick(["0", "0.5", "1", "7.5", "30"]),
        ),
        st.builds(
            "{} {} customer.{}".format,
            pick(["0", "0.5", "1", "2"]),
            pick(COMPARE),
            pick(["orders", "returns"]),
        ),
        pick(["average_order", "last_order", "vip_level"]).map("customer.{} is set".format),
        pick(["city", "first_order"]).map("customer.{} is not set".format),
        st.builds(
            "customer.vip_level between {} and {}".format, st.integers(0, 2), st.integers(2, 4)
        ),
        pick(["in", "not in"]).map('customer.city {} ["Beijing", "Shanghai"]'.format),
        st.just('customer.name contains "Li"'),
        pick(TAGS).map('"{}" in customer.tags'.format),
        pick(TAGS).map('customer.tags contains "{}"'.format),
        st.builds("count({}) >= {}".format, events, st.integers(0, 3)),
        st.builds("count({} within {}) == {}".format, events, durations, st.integers(0, 2)),
        st.builds("sum(order.paid.total within {}) > {}".format, durations, numbers),
        pick(["==", "!="]).map('customer.rfm {} "111"'.format),
        st.just('customer.rfm in ["511", "411", "512"]'),
        st.just("customer.accepts_marketing == yes"),
        st.integers(0, 6).map("customer.orders * 2 + 1 > {}".format),
    ]
    if scope.tags:
        options.append(pick(scope.tags).map('"{}" in customer.tags'.format))
    if scope.points:
        options.append(numbers.map("customer.points >= {}".format))
    if scope.segments:
        options.append(
            st.builds('customer {} "{}"'.format, pick(["in", "not in"]), pick(scope.segments))
        )
    if scope.entity == "order":
        options += [
            numbers.map("order.total > {}".format),
            pick(["shoes", "beauty"]).map('order.category == "{}"'.format),
            st.just("order.total is set"),
            numbers.map("order.total / 2 <= {}".format),
            numbers.map("event.total >= {}".format),
        ]
    elif scope.entity == "review":
        options.append(st.integers(1, 5).map("review.rating <= {}".format))
    elif scope.entity == "cart":
        options.append(st.just("cart.items between 1 and 3"))
    return st.one_of(options)


@st.composite
def conditions(draw: st.DrawFn, scope: Scope, depth: int = 0) -> str:
    """A condition of at most two levels of `and`, `or`, `not` over atoms."""
    shape = draw(st.integers(0, 5)) if depth < 2 else 0
    if shape == 1:
        op = draw(st.sampled_from(["and", "or"]))
        left, right = draw(conditions(scope, depth + 1)), draw(conditions(scope, depth + 1))
        return f"({left} {op} {right})"
    if shape == 2:
        return f"not ({draw(conditions(scope, depth + 1))})"
    return draw(_atoms(scope))


@st.composite
def _trigger(draw: st.DrawFn, window_start: dt.date) -> tuple[str, str | None]:
    """The text after `when`, and the entity of an event trigger (None for the others)."""
    at = draw(st.none() | st.sampled_from(CLOCKS))
    suffix = f" at {at}" if at else ""
    kind = draw(st.sampled_from(TRIGGER_KINDS))
    if kind == "event":
        event = draw(st.sampled_from(EVENT_TYPES))
        delay = draw(st.none() | st.sampled_from(DURATIONS))
        return f"{event}{f' + {delay}' if delay else ''}{suffix}", event.split(".", 1)[0]
    if kind in ("date field", "holiday"):
        sign = draw(st.sampled_from(["+", "-"]))
        offset = draw(st.none() | st.sampled_from(DAY_OFFSETS))
        moved = f" {sign} {offset}" if offset else ""
        if kind == "holiday":
            return f'holiday "{draw(st.sampled_from(HOLIDAYS))}"{moved}{suffix}', None
        return f"customer.birthday{moved}{suffix}", None
    if kind == "timestamp":
        field = draw(st.sampled_from(["signed_up", "first_order", "last_order"]))
        delay = draw(st.none() | st.sampled_from(DURATIONS))
        return f"customer.{field}{f' + {delay}' if delay else ''}{suffix}", None
    if kind == "every":
        every = draw(
            st.sampled_from(["day", *WEEKDAYS, f"month on {window_start.day + 1}", "month on 31"])
        )
        return f"every {every}{suffix}", None
    day = window_start + dt.timedelta(days=draw(st.integers(-1, WINDOW_DAYS)))
    return f"on {day.isoformat()}{suffix}", None


def _actions(index: int, scope: Scope, gives_points: bool) -> st.SearchStrategy[str]:
    """One action; rule `index` tags only `t{index}`."""
    pick = st.sampled_from
    via = pick(["", *(f" via {channel}" for channel in CHANNELS)])
    templates = pick(TEMPLATES)
    options = [
        st.builds('message "{}"{}'.format, templates, via),
        st.builds('followup "{}"{}'.format, templates, via),
        st.builds(
            'coupon "{}" worth {}{}{}{}'.format,
            templates,
            pick(["30", "15%", "9.5"]),
            pick(["", " min 200"]),
            pick(["", " expires 14d"]),
            via,
        ),
        pick(TASKS).map("task {}".format),
        st.just('gift "mooncake box"'),
        pick(["tag", "untag"]).map(f'{{}} "t{index}"'.format),
    ]
    if gives_points:
        amounts = [
            "10",
            "2.5",
            "customer.orders * 10",
            "customer.points / 2 + 10",
            "0 - customer.points",
        ]
        if scope.entity == "order":
            amounts += ["order.total", "order.total * 2", "0 - order.total", "event.total"]
        options.append(pick(amounts).map("points {}".format))
    return st.one_of(options)


@st.composite
def _rule(
    draw: st.DrawFn, index: int, window_start: dt.date, segments: tuple[str, ...], cut: int
) -> str:
    trigger, entity = draw(_trigger(window_start))
    scope = Scope(
        entity=entity,
        tags=tuple(f"t{j}" for j in range(index)),
        points=index >= cut,
        segments=segments,
    )
    lines = [f'rule "r{index}"'] if draw(st.integers(0, 4)) else []
    lines.append(f"  when {trigger}")
    if draw(st.booleans()):
        lines.append(f"  if {draw(conditions(scope))}")
    if draw(st.integers(0, 2)) == 0:
        event = draw(st.sampled_from(EVENT_TYPES))
        within = None
        if entity is None or draw(st.booleans()):
            within = draw(st.sampled_from(DURATIONS))
        lines.append(f"  unless {event}{f' within {within}' if within else ''}")
    once = draw(st.sampled_from(["", "", "once", f"once every {draw(st.sampled_from(DURATIONS))}"]))
    if once:
        lines.append(f"  {once}")
    actions = draw(st.lists(_actions(index, scope, index < cut), min_size=1, max_size=3))
    lines.append(f"  then {' and '.join(actions)}")
    return "\n".join(lines)


@st.composite
def _statements(draw: st.DrawFn, window_start: dt.date | None) -> list[str]:
    start = window_start or draw(st.sampled_from(WINDOW_STARTS)).date()
    statements = []
    segments = tuple(draw(st.sets(st.sampled_from(SEGMENTS))))
    customer_only = Scope()
    for name in sorted(segments):
        statements.append(f'segment "{name}" = {draw(conditions(customer_only))}')
    if draw(st.booleans()):
        count, per = draw(st.integers(1, 3)), draw(st.sampled_from(["1d", "2d", "1w"]))
        statements.append(f"limit marketing to {count} per {per}")
    if draw(st.booleans()):
        quiet_start, quiet_end = draw(st.sampled_from(QUIET))
        statements.append(f"quiet hours {quiet_start} to {quiet_end}")
    policy_scope = Scope(segments=segments)
    for _ in range(draw(st.sampled_from((0, 0, 0, 1, 1, 2, 3)))):
        statements.append(f"exclude if {draw(conditions(policy_scope))}")
    count = draw(st.integers(1, 5))
    cut = draw(st.integers(0, count))
    statements += [draw(_rule(index, start, segments, cut)) for index in range(count)]
    return draw(st.permutations(statements))


@st.composite
def rule_set_texts(draw: st.DrawFn, window_start: dt.date | None = None) -> str:
    """One rule file's text. `window_start` puts dates and monthly slots near that day."""
    return "\n\n".join(draw(_statements(window_start))) + "\n"


@st.composite
def rule_set_files(draw: st.DrawFn, window_start: dt.date | None = None) -> dict[str, str]:
    """A rule set spread over one to three files, `a.rules`, `b.rules`, `c.rules`."""
    statements = draw(_statements(window_start))
    names = ["a.rules", "b.rules", "c.rules"][: draw(st.integers(1, 3))]
    files: dict[str, list[str]] = {name: [] for name in names}
    for statement in statements:
        files[draw(st.sampled_from(names))].append(statement)
    return {name: "\n\n".join(parts) + "\n" for name, parts in files.items()}
