"""Syntax errors in plain words: what each terminal is called, and a table of typical mistakes.

`MISTAKES` is the `match_examples` table (see lark's `examples/advanced/error_reporting_lalr.py`):
each entry is a message and help for one kind of mistake, with short wrong inputs that put the
parser in the same state. `engine.language.syntax_diagnosis` asks Lark which entry an error
resembles; an entry applies only when one of its examples fails on the same kind of word as the
error at hand (unless it says `any_word`), so an unrelated mistake never gets a misleading
explanation.
"""

from __future__ import annotations

from dataclasses import dataclass

# How each terminal of grammar/nudge.lark is named in an error message.
_SYMBOLS = {
    "EQ": "==",
    "NE": "!=",
    "LE": "<=",
    "GE": ">=",
    "LT": "<",
    "GT": ">",
    "ASSIGN": "=",
    "PLUS": "+",
    "MINUS": "-",
    "STAR": "*",
    "SLASH": "/",
    "PERCENT": "%",
    "LPAR": "(",
    "RPAR": ")",
    "LSQB": "[",
    "RSQB": "]",
    "COMMA": ",",
}
_CLASSES = {
    "DOTTED": "a name such as `order.received` or `customer.orders`",
    "NAME": "a channel name such as `email`",
    "STRING": "text in double quotes",
    "NUMBER": "a number",
    "DURATION": "a duration such as `3d`",
    "CLOCK": "a clock time such as `09:00`",
    "DATE": "a date such as `2026-11-11`",
    "$END": "the end of the file",
}
# The order in which expected words are listed: the likeliest first.
_ORDER = [
    "THEN", "AND", "OR", "IF", "UNLESS", "ONCE", "AT", "WITHIN", "EVERY",
    "RULE", "WHEN", "SEGMENT", "LIMIT", "QUIET", "EXCLUDE",
    "STRING", "DOTTED", "NUMBER", "DURATION", "CLOCK", "DATE", "NAME",
]  # fmt: skip
_MAX_LISTED = 8


def describe_terminal(name: str) -> str:
    """`THEN` → "`then`", `STRING` → "text in double quotes"."""
    if name in _CLASSES:
        return _CLASSES[name]
    if name in _SYMBOLS:
        return f"`{_SYMBOLS[name]}`"
    if name == "QUIET":
        return "`quiet hours`"
    return f"`{name.lower()}`"


def keyword_of(name: str) -> str | None:
    """The word a keyword terminal spells (`FOLLOWUP` → `followup`); None for other terminals."""
    if name in _CLASSES or name in _SYMBOLS or not name.isalpha():
        return None
    return name.lower()


def describe_expected(names: set[str]) -> str:
    """ "`then`, `and` or text in double quotes" for a parser's set of acceptable terminals."""
    ranked = sorted(names, key=lambda n: (_ORDER.index(n) if n in _ORDER else len(_ORDER), n))
    words = [describe_terminal(n) for n in ranked]
    if len(words) > _MAX_LISTED:
        return ", ".join(words[:_MAX_LISTED]) + " or another word that fits here"
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


@dataclass(frozen=True)
class Mistake:
    """One kind of typical mistake: what to say and the inputs that show it."""

    code: str
    message: str
    label: str
    help: str | None
    examples: tuple[str, ...]
    any_word: bool = False


_UNFINISHED_RULES = (
    "when order.received",
    "when order.received + 3d",
    "when order.received at 10:00",
    'when holiday "x"',
    "when every day",
    "when every monday",
    "when every month on 1",
    "when on 2026-01-01",
    "when order.paid if customer.orders > 1",
    "when order.paid if yes",
    'when order.paid if customer in "x"',
    "when order.paid unless order.returned",
    "when order.paid unless order.returned within 1d",
    "when order.paid once",
    "when order.paid once every 1d",
)

ACTIONS = "message, followup, coupon, points, task, gift, tag or untag"

MISTAKES: tuple[Mistake, ...] = (
    Mistake(
        "E110",
        "a rule's actions start with `then`",
        "expected `then` before this action",
        'write `then` before the first action, e.g. `then followup "fit_check"`',
        (
            'when order.received message "x"',
            'when order.received followup "x"',
            'when order.received coupon "x" worth 1',
            'when order.received + 3d tag "x"',
            "when order.received + 3d points 5",
            'when order.received at 10:00 task "x"',
            'when holiday "x" gift "x"',
            'when every day untag "x"',
            'when on 2026-01-01 message "x"',
            'when every monday message "x"',
            'when every month on 1 message "x"',
            'when order.paid if customer.orders > 1 message "x"',
            'when order.paid if yes tag "x"',
            'when order.paid if customer in "x" tag "x"',
            'when order.paid unless order.returned tag "x"',
            'when order.paid unless order.returned within 1d tag "x"',
            'when order.paid once tag "x"',
            'when order.paid once every 1d tag "x"',
        ),
    ),
    Mistake(
        "E111",
        "this rule has no `then`",
        "the rule ends here without an action",
        f"finish the rule with `then` and an action ({ACTIONS})",
        tuple(
            base + after
            for base in _UNFINISHED_RULES
            for after in (
                "",
                "\nwhen a.b",
                "\nrule",
                "\nsegment",
                "\nlimit",
                "\nquiet",
                "\nexclude",
            )
        ),
    ),
    Mistake(
        "E112",
        "`then` must be followed by an action",
        "expected an action here",
        f"the actions are {ACTIONS}",
        ("when a.b then", "when a.b then 5", 'when a.b then "x"'),
        any_word=True,
    ),
    Mistake(
        "E113",
        "actions are joined with `and`",
        "expected `and` before this action",
        'write `and` between two actions, e.g. `then tag "vip" and points 50`',
        (
            'when a.b then tag "x" tag "y"',
            'when a.b then untag "x" tag "y"',
            'when a.b then message "x" tag "y"',
            'when a.b then followup "x" tag "y"',
            'when a.b then message "x" via email tag "y"',
            'when a.b then coupon "x" worth 1 tag "y"',
            'when a.b then coupon "x" worth 1% tag "y"',
            'when a.b then coupon "x" worth 1 min 1 tag "y"',
            'when a.b then coupon "x" worth 1 expires 1d tag "y"',
            'when a.b then points 5 tag "y"',
            'when a.b then points a.b tag "y"',
            'when a.b then task "x" tag "y"',
            'when a.b then task "x" for "y" tag "y"',
            'when a.b then gift "x" tag "y"',
        ),
    ),
    Mistake(
        "E113",
        "actions are joined with `and`, not with a comma",
        "expected `and` here",
        'write `and` between two actions, e.g. `then tag "vip" and points 50`',
        (
            'when a.b then tag "x", tag "y"',
            'when a.b then untag "x", tag "y"',
            'when a.b then message "x", tag "y"',
            'when a.b then followup "x", tag "y"',
            'when a.b then message "x" via email, tag "y"',
            'when a.b then coupon "x" worth 1, tag "y"',
            'when a.b then points 5, tag "y"',
            'when a.b then task "x", tag "y"',
            'when a.b then gift "x", tag "y"',
        ),
    ),
    Mistake(
        "E114",
        "`if`, `unless` and `once` come before `then`",
        "this clause comes after the actions",
        "move it above the `then` line; the actions end the rule",
        (
            *(
                f"when a.b then {action} {clause}"
                for action in ('tag "x"', 'message "x"', 'followup "x"', "points 5", 'task "x"')
                for clause in ("if yes", "unless a.b", "once")
            ),
            'when a.b then gift "x" if yes',
            'when a.b then coupon "x" worth 1 if yes',
        ),
    ),
    Mistake(
        "E115",
        "use `==` to compare",
        "`=` gives a segment its condition; comparing is `==`",
        'write `==`, e.g. `order.category == "shoes"`',
        (
            "when a.b if customer.orders = 1",
            "when a.b if a.b = 1",
            'segment "x" = customer.orders = 1',
            "exclude if customer.orders = 1",
            "when a.b if count(a.b) = 1",
        ),
    ),
    Mistake(
        "E116",
        "the template name goes in double quotes",
        'expected a template name such as "thank_you"',
        'write it in quotes, e.g. `message "thank_you"`',
        ("when a.b then message x", "when a.b then followup x", "when a.b then coupon x"),
        any_word=True,
    ),
    Mistake(
        "E117",
        "text goes in double quotes",
        "expected text in double quotes",
        'write it in quotes, e.g. `tag "vip"`',
        (
            'rule x when a.b then tag "x"',
            "when a.b then tag x",
            "when a.b then untag x",
            "when a.b then task x",
            "when a.b then gift x",
            'when a.b then task "x" for x',
            "segment x = yes",
            'when holiday x then tag "x"',
        ),
        any_word=True,
    ),
    Mistake(
        "E117",
        "a segment's name goes in double quotes",
        "expected a segment's name in double quotes",
        'write it in quotes, e.g. `customer in "big spenders"`',
        (
            "when a.b if customer in x",
            "when a.b if customer not in x",
            "exclude if customer in x",
            'segment "s" = customer in x',
        ),
        any_word=True,
    ),
    Mistake(
        "E139",
        "a channel's name is written without quotes",
        "expected a channel name such as `email`",
        "write it without quotes, e.g. `via email`",
        (
            'when a.b then message "x" via "y"',
            'when a.b then followup "x" via "y"',
            'when a.b then coupon "x" worth 1 via "y"',
        ),
    ),
    Mistake(
        "E118",
        "a value that is text goes in double quotes",
        "a bare word is not a value",
        'write text in quotes, e.g. `order.category == "shoes"`',
        (
            "when a.b if a.b == x",
            "when a.b if a.b != x",
            "when a.b if customer.tags contains x",
            "when a.b if x in customer.tags",
            "when a.b if a.b in [x]",
            'segment "x" = a.b == x',
            "exclude if a.b == x",
        ),
    ),
    Mistake(
        "E119",
        "a coupon needs its value",
        "expected `worth` and an amount",
        'write e.g. `coupon "birthday" worth 30` or `coupon "miss_you" worth 15%`',
        (
            'when a.b then coupon "x"',
            'when a.b then coupon "x" 30',
            'when a.b then coupon "x" tag "y"',
        ),
        any_word=True,
    ),
    Mistake(
        "E120",
        "a coupon's worth is a number",
        "expected an amount such as 30 or 15%",
        "write e.g. `worth 30` (money) or `worth 15%` (percent)",
        ('when a.b then coupon "x" worth "30"', 'when a.b then coupon "x" worth x'),
        any_word=True,
    ),
    Mistake(
        "E121",
        "a duration needs a unit",
        "expected a duration such as 3d",
        "durations are written `30m`, `2h`, `3d`, `2w` "
        "or `30 minutes`, `2 hours`, `3 days`, `2 weeks`",
        (
            "when a.b + 3 then",
            "when a.b - 3 then",
            "when a.b unless a.b within 3 then",
            "when a.b once every 3 then",
            "limit marketing to 1 per 3",
            'when a.b then coupon "x" worth 1 expires 3',
            "when a.b if count(a.b within 3)",
        ),
        any_word=True,
    ),
    Mistake(
        "E122",
        "write `at` before a clock time",
        "expected `at` before this time",
        "e.g. `when order.received + 13d at 10:00`",
        (
            "when a.b 10:00",
            "when a.b + 1d 10:00",
            'when holiday "x" 10:00',
            "when every day 10:00",
            "when every monday 10:00",
            "when every month on 1 10:00",
            "when on 2026-01-01 10:00",
        ),
    ),
    Mistake(
        "E123",
        "a clock time is written HH:MM, 24-hour",
        "expected a time such as 09:00",
        "e.g. `at 09:00` or `at 22:30`",
        ("when a.b at 9", "when a.b at x"),
        any_word=True,
    ),
    Mistake(
        "E124",
        "`every month` needs the day of the month",
        "expected `on` and a day",
        "e.g. `every month on 1 at 09:00`",
        ("when every month then", "when every month at 09:00", "when every month 1"),
        any_word=True,
    ),
    Mistake(
        "E125",
        "`every` takes a weekday, `day` or `month on N`",
        "expected a weekday, `day` or `month`",
        "e.g. `every monday`, `every day` or `every month on 1`",
        ("when every 1d", "when every week", "when every then"),
        any_word=True,
    ),
    Mistake(
        "E126",
        "a segment's name and condition are joined with `=`",
        "expected `=` here",
        'e.g. `segment "big spenders" = customer.total_spent >= 2000`',
        ('segment "x" customer.orders > 1', 'segment "x" if customer.orders > 1'),
        any_word=True,
    ),
    Mistake(
        "E127",
        "`unless` takes an event name",
        "expected an event such as `order.returned`",
        "to skip on a condition, use `if not ...` instead",
        ('when a.b unless customer in "x"', "when a.b unless 1", 'when a.b unless "x"'),
        any_word=True,
    ),
    Mistake(
        "E128",
        "a statement starts with `rule`, `when`, `segment`, `limit`, `quiet hours` or `exclude`",
        "a statement cannot start here",
        None,
        ("a.b then", "then", '"x"', "1", "if", "and", "=", "x"),
        any_word=True,
    ),
    Mistake(
        "E129",
        "a rule's name is followed by `when`",
        "expected `when` and a trigger",
        'e.g. `rule "thank you"` then `when order.received + 28d`',
        ('rule "x" a.b', 'rule "x" then', 'rule "x" if', 'rule "x"', 'rule "x" "y"'),
        any_word=True,
    ),
    Mistake(
        "E130",
        "`when` must be followed by a trigger",
        "expected a trigger",
        "e.g. `when order.received + 3d`, `when customer.birthday - 1d`, "
        '`when holiday "中秋节"`, `when every monday` or `when on 2026-11-11`',
        ("when then", "when 1", 'when "x"', "when if", "when"),
        any_word=True,
    ),
    Mistake(
        "E131",
        "this `(` is not closed",
        "expected `)`",
        "add the missing `)`",
        (
            "when a.b if (yes then",
            "when a.b if (a.b > 1 then",
            "when a.b if (a.b between 1 and 2 then",
            'when a.b if (customer in "x" then',
            "when a.b if (a.b is set then",
        ),
    ),
)
