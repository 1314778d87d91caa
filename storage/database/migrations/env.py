"""Alembic's environment: migrate the connection `storage.database.engine.migrate` hands over.

Run programmatically (see storage/database/migrations/__init__.py); the connection arrives in
`config.attributes["connection"]`, already inside the transaction that holds the migration lock.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from storage.database.migrations import target_metadata


def run() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if connection is None:  # e.g. `python -m storage.database.migrations revision` with a URL
        engine = create_engine(config.get_main_option("sqlalchemy.url") or "sqlite://")
        with engine.begin() as connection:
            _migrate(connection)
        engine.dispose()
    else:
        _migrate(connection)


def _migrate(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata(),
        render_as_batch=True,  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


# Alembic sets `context.config` only while it runs this file; pytest's doctest collection
# imports it too, and must find nothing to do.
if getattr(context, "config", None) is not None:
    run()
