"""Scratch databases for one benchmark run: fresh SQLite files in a temporary folder, or fresh
databases on the PostgreSQL server of `--db`, dropped at the end. The harness never touches
a database it did not create."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


class Scratch:
    """Hands out URLs of new, empty databases and removes them all on `close`."""

    def __init__(self, server_url: str | None) -> None:
        self.server_url = server_url
        self.folder = Path(tempfile.mkdtemp(prefix="nudge-bench-"))
        self.created: list[str] = []
        self.dialect = "sqlite" if server_url is None else make_url(server_url).get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise SystemExit(f"--db must be a PostgreSQL URL (got {server_url!r})")

    def new(self, label: str) -> str:
        """The URL of a new empty database (its schema is made by `open_database`)."""
        if self.server_url is None:
            return f"sqlite:///{self.folder / label}.db"
        name = f"nudge_bench_{label}_{uuid.uuid4().hex[:8]}"
        admin = create_engine(self.server_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            admin.dispose()
        self.created.append(name)
        return make_url(self.server_url).set(database=name).render_as_string(hide_password=False)

    def close(self) -> None:
        if self.created:
            admin = create_engine(self.server_url or "", isolation_level="AUTOCOMMIT")
            try:
                with admin.connect() as conn:
                    for name in self.created:
                        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            finally:
                admin.dispose()
        shutil.rmtree(self.folder, ignore_errors=True)
