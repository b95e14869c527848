"""The `nudge` command: a thin adapter from the command line to the `engine` library.

Every command takes `--config FILE` and `--db URL`. A `NudgeError` becomes plain words on
stderr and exit code 1; nothing else is caught here, so a traceback always means a bug.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from engine.config import Config, load_config
from engine.errors import NudgeError, RuleError

F = TypeVar("F", bound=Callable[..., Any])


class Env:
    """What every command needs: the configuration, read once, with `--db` applied."""

    def __init__(self, config_path: Path | None, db: str | None) -> None:
        self.config_path = config_path
        self.db = db
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path, self.db)
        return self._config


def common_options(func: F) -> F:
    """`--config` and `--db`, accepted by every command (LANGUAGE.md section 6)."""
    func = click.option(
        "--db",
        "db",
        metavar="URL",
        default=None,
        help="SQLAlchemy database URL; overrides the configuration (default sqlite:///nudge.db).",
    )(func)
    func = click.option(
        "--config",
        "config_path",
        metavar="FILE",
        default=None,
        type=click.Path(path_type=Path, dir_okay=False),
        help="Configuration file (default: nudge.yaml in the current folder, optional).",
    )(func)
    return func


def env_of(config_path: Path | None, db: str | None) -> Env:
    return Env(config_path, db)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="nudge")
def cli() -> None:
    """Nudge: marketing and after-sales rules for shops, in plain text.

    \b
    Check rules:     nudge check rules/aftercare
    See what they do: nudge simulate rules/aftercare --from 2026-11-01 --to 2026-12-01
    Carry them out:  nudge run rules/aftercare
    """


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `nudge` console script and of `python cli.py`."""
    try:
        cli.main(args=argv, prog_name="nudge", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except RuleError as exc:
        from engine.render import render_text

        click.echo(render_text(exc.diagnostics), err=True)
        sys.exit(1)
    except NudgeError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
