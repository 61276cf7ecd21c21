"""Alembic migrations of the lineage tables, run programmatically (no ``alembic.ini``).

:func:`upgrade` brings the tables of one ``table_prefix`` to the newest revision. Each prefix keeps its
own version table, ``{prefix}alembic_version``, so several isolated sets of tables can share a database.
The migrations read the prefix from ``context.config.attributes["table_prefix"]``.
"""

from __future__ import annotations

import zlib
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text

SCRIPT_LOCATION = Path(__file__).resolve().parent


def alembic_config(connection: Connection, table_prefix: str = "") -> Config:
    """An Alembic config running on ``connection`` for the tables named ``{table_prefix}lineage_*``."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.set_main_option("sqlalchemy.url", connection.engine.url.render_as_string().replace("%", "%%"))
    config.attributes["connection"] = connection
    config.attributes["table_prefix"] = table_prefix
    return config


def version_table(table_prefix: str) -> str:
    """The name of the Alembic version table of ``table_prefix``."""
    return f"{table_prefix}alembic_version"


def upgrade(connection: Connection, table_prefix: str = "", revision: str = "head") -> None:
    """``alembic upgrade <revision>`` inside the caller's open transaction (idempotent).

    On PostgreSQL an advisory lock per prefix serialises concurrent upgrades; on SQLite the caller's
    ``BEGIN IMMEDIATE`` does.
    """
    if connection.dialect.name == "postgresql":
        key = zlib.crc32(f"feastline-lineage:{table_prefix}".encode()) - 2**31
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    command.upgrade(alembic_config(connection, table_prefix), revision)
