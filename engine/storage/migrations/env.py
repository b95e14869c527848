"""The Alembic environment.

`engine.storage.db.open_database` runs it with a connection it has already locked and opened a
transaction on (`config.attributes["connection"]`); the `alembic` command line, used only to
write new revisions, runs it with `-x db=URL` instead.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from engine.storage.tables import metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        # SQLite alters a table by copying it; batch mode does that for `op.alter_column` & co.
        render_as_batch=connection.dialect.name == "sqlite",
    )


def run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return

    from engine.storage.db import create

    url = context.get_x_argument(as_dictionary=True).get("db")
    if not url:
        raise SystemExit("give the database with -x db=URL")
    engine = create(url)
    with engine.connect() as connection:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run()
