"""A self-contained HTML page of a simulation: charts as inline SVG, tables, a searchable list.

Nothing is loaded from the network: the page opens from a file on any machine.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from importlib.resources import files

from jinja2 import Environment, select_autoescape

from engine.evaluation.records import ActionRecord
from engine.reports.summary import REASONS, summarize
from engine.timeutil import clock_text

PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
LIST_LIMIT = 20_000


def render_html(
    records: Iterable[ActionRecord], shop_tz: str, title: str, start: dt.datetime, end: dt.datetime
) -> str:
    listed: list[ActionRecord] = []

    def keeping(all_records: Iterable[ActionRecord]) -> Iterator[ActionRecord]:
        for record in all_records:
            if len(listed) < LIST_LIMIT:
                listed.append(record)
            yield record

    summary = summarize(keeping(records), shop_tz)
    rules = [line.rule for line in summary.rules]
    colour = {rule: PALETTE[i % len(PALETTE)] for i, rule in enumerate(rules)}
    days = list(summary.per_day.items())
    peak = max((sum(c.values()) for _, c in days), default=0) or 1
    bars = []
    for i, (day, counts) in enumerate(days):
        y = 0.0
        stack = []
        for rule in rules:
            n = counts.get(rule, 0)
            if n:
                height = 200 * n / peak
                stack.append(
                    {
                        "y": 200 - y - height,
                        "h": height,
                        "colour": colour[rule],
                        "label": f"{day} {rule}: {n}",
                    }
                )
                y += height
        bars.append({"x": i * 14, "day": day.isoformat(), "stack": stack})
    weekly = sorted(summary.per_week.items())
    weekly_peak = max((n for _, n in weekly), default=0) or 1
    rows = [
        {
            "at": clock_text(r.at_us, shop_tz),
            "rule": r.rule,
            "customer": r.customer_id,
            "action": r.kind,
            "template": r.template or "",
            "status": r.status + (f" ({r.reason})" if r.reason else ""),
        }
        for r in listed
    ]
    env = Environment(autoescape=select_autoescape(default=True))
    template = env.from_string(
        files("engine.reports").joinpath("simulation.html.j2").read_text(encoding="utf-8")
    )
    return template.render(
        title=title,
        start=start,
        end=end,
        summary=summary,
        reasons=REASONS,
        colour=colour,
        bars=bars,
        chart_width=max(len(bars) * 14, 100),
        weekly=weekly,
        weekly_peak=weekly_peak,
        rows=rows,
        truncated=summary.total > LIST_LIMIT,
    )
