"""`python -m bench --size S|M|L [--db URL] --json FILE`: see `bench/__init__.py`."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import click
from rich.console import Console

from bench.report import table, write_json
from bench.run import REPO, run
from bench.shop import SIZES


@click.command()
@click.option(
    "--size",
    type=click.Choice(list(SIZES), case_sensitive=False),
    required=True,
    help="S: 10k customers, M: 100k, L: 1M (about 13 events each).",
)
@click.option(
    "--db",
    "server_url",
    default=None,
    help="A PostgreSQL URL: the harness creates and drops its own scratch databases on that"
    " server. Without it, SQLite files in a temporary folder.",
)
@click.option("--json", "json_path", type=click.Path(path_type=Path), required=True)
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder in which to keep the generated shops between runs (default: a temporary one).",
)
@click.option(
    "--runs",
    type=click.IntRange(1),
    default=None,
    help="Runs of each timed workload (default: 3 for S and M, 1 for L).",
)
def main(
    size: str, server_url: str | None, json_path: Path, data: Path | None, runs: int | None
) -> None:
    """Benchmark Nudge on a synthetic shop against the naive loop, APScheduler and hand SQL.

    Example: python -m bench --size S --json bench/results/S.json
    """
    console = Console(stderr=True)
    chosen = SIZES[size.upper()]
    if runs is not None:
        chosen = dataclasses.replace(chosen, runs=runs, import_runs=min(runs, chosen.import_runs))
    database = "sqlite" if server_url is None else "postgresql"
    with tempfile.TemporaryDirectory(prefix="nudge-bench-data-") as temporary:
        figures = run(chosen, server_url, data or Path(temporary), console)
    write_json(json_path, chosen.name, database, figures, REPO)
    Console().print(
        table(f"Nudge benchmark, size {chosen.name}", {f"{chosen.name}/{database}": figures})
    )


if __name__ == "__main__":
    main()
