"""Alembic environment: runs on the connection handed over in ``config.attributes["connection"]``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from lineage.migrations import version_table

config = context.config
prefix: str = config.attributes.get("table_prefix", "")


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:  # plain `alembic -x ...` use: open our own connection
        engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
        with engine.begin() as own:
            _migrate(own)
        engine.dispose()
    else:
        _migrate(connection)


def _migrate(connection: Connection) -> None:
    context.configure(connection=connection, version_table=version_table(prefix), render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported")
run()
