"""The terminal report of a simulation (rich tables). Names from rule files and the shop's data
go in as `Text`, never as markup: `rule "a[/b]"` is shown as written."""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console
from rich.table import Table
from rich.text import Text

from engine.evaluation.records import ActionRecord
from engine.reports.summary import REASONS, summarize
from engine.timeutil import clock_text


def print_table(
    records: Iterable[ActionRecord], shop_tz: str, console: Console, title: str = "Simulation"
) -> None:
    summary = summarize(records, shop_tz)
    if not summary.total:
        console.print(Text(f"{title}: no rule acted, nothing would be sent."))
        return
    # Short headers, said in full in the caption: on a terminal 80 columns wide the long ones
    # left the rule's name a few letters (`main.rule…`, any of a file's unnamed rules).
    rules = Table(
        title=Text(f"{title}: {summary.total} actions"),
        title_justify="left",
        caption=f"acted: occurrences that acted; sent: actions sent; {', '.join(REASONS)}:"
        " actions suppressed, by reason",
        caption_justify="left",
    )
    rules.add_column("rule", overflow="fold")
    rules.add_column("acted", justify="right")
    rules.add_column("sent", justify="right")
    for reason in REASONS:
        rules.add_column(reason, justify="right")
    for line in summary.rules:
        rules.add_row(
            Text(line.rule),
            str(line.occurrences),
            str(line.sent),
            *(str(line.suppressed.get(reason, 0) or "") for reason in REASONS),
        )
    console.print(rules)

    days = Table(title="Per day (actions sent, shop time)", title_justify="left")
    days.add_column("day")
    days.add_column("sent", justify="right")
    days.add_column("busiest rules")
    for day, counts in summary.per_day.items():
        top = ", ".join(f"{rule} {n}" for rule, n in counts.most_common(3))
        days.add_row(day.isoformat(), str(sum(counts.values())), Text(top))
    console.print(days)

    facts = Table(show_header=False, title="Totals", title_justify="left")
    facts.add_row("coupons issued", str(summary.coupons))
    facts.add_row("coupon face value (money)", f"{summary.coupon_money:,.2f}")
    facts.add_row("percentage coupons", str(summary.coupon_percent))
    facts.add_row("tasks created", str(summary.tasks))
    facts.add_row("gift tasks", str(summary.gifts))
    console.print(facts)

    if summary.busiest:
        busiest = Table(title="Busiest customers (actions sent)", title_justify="left")
        busiest.add_column("customer")
        busiest.add_column("actions", justify="right")
        for customer, n in summary.busiest:
            busiest.add_row(Text(customer), str(n))
        console.print(busiest)


def print_list(
    records: Iterable[ActionRecord],
    shop_tz: str,
    console: Console,
    waiting: tuple[int, int | None] = (0, None),
) -> None:
    """Every action the daemon took, one row each (`history`); then how many actions due in
    the window wait for the cap's verdict at their send time (`history.waiting`), which are
    not listed yet, though `simulate` lists them."""
    table = Table()
    for col in ("at (shop time)", "rule", "customer", "action", "template", "status"):
        table.add_column(col)
    for r in records:
        status = r.status if not r.reason else f"{r.status} ({r.reason})"
        table.add_row(
            clock_text(r.at_us, shop_tz),
            Text(r.rule),
            Text(r.customer_id),
            r.kind,
            Text(r.template or ""),
            status,
        )
    if table.row_count:
        console.print(table)
    else:
        console.print(Text("History: the daemon recorded no action due in this window."))
    count, first_us = waiting
    if count and first_us is not None:
        first = clock_text(first_us, shop_tz)
        console.print(
            Text(
                "Not listed yet: 1 marketing action due in this window, moved by quiet hours to"
                f" {first}, when the marketing limit decides it."
                if count == 1
                else f"Not listed yet: {count} marketing actions due in this window, moved by"
                " quiet hours: the marketing limit decides each at its send time (the first"
                f" at {first})."
            )
        )
