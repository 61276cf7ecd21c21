"""SQL engines on the lineage database, set up for concurrent writers, and write transactions that retry.

Every table feastline keeps (the lineage graph, the training-set catalog, the push quarantine,
OpenLineage events, materialization jobs, write intents) lives in one database, opened through
:func:`create_db_engine`:

- SQLite: the WAL journal (readers never wait for the writer, nor the writer for readers) with
  ``synchronous = NORMAL`` (see below), a busy
  timeout of :data:`BUSY_TIMEOUT_SECONDS` on every connection, and ``BEGIN`` issued by SQLAlchemy
  rather than pysqlite, so a write transaction (:func:`write_connection`, :func:`transaction`) begins
  ``IMMEDIATE``: it takes the write lock up front, waiting up to the busy timeout, instead of failing
  with "database is locked" when a read transaction has to upgrade. Foreign keys are enforced.
- PostgreSQL: the driver's defaults.

**Durability (SQLite).** In WAL mode with ``synchronous = NORMAL`` a commit is written to the WAL file
before it returns but not fsynced; the WAL is fsynced at each checkpoint. A committed transaction
survives a crash of the application (``kill -9``: the OS still holds the written pages), and the
database is never corrupted; a power cut or an OS crash may roll back the last transactions (never
part of one). What that can leave (training-set files whose catalog row was rolled back, an
OpenLineage START without its end) is what the recovery pass (``service.recovery``) already repairs.
It saves one fsync per commit (the WAL's), a large part of a small training set's cost. (Files
feastline writes are still fsynced before they are renamed into place: see ``service.storage``.) For
durability across power cuts, use PostgreSQL.

:func:`transaction` runs a function in a write transaction and runs it again (a few times, with a
short random back-off) when the database answers busy/locked, so a burst of writers waits instead of
failing. The function must only touch the database: it may run more than once.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import OperationalError

log = logging.getLogger("feastline.database")

WRITE_OPTION = "lineage_write"
BUSY_TIMEOUT_SECONDS = 30
RETRIES = 5
_BUSY_MESSAGES = ("database is locked", "database table is locked", "database is busy")

T = TypeVar("T")


def create_db_engine(url: str, **kwargs: Any) -> Engine:
    """A SQLAlchemy engine on ``url`` (``sqlite:///path.db`` or ``postgresql+psycopg://...``), SQLite
    connections in WAL mode with a busy timeout and explicit (``IMMEDIATE`` for writes) transactions."""
    if not url.startswith("sqlite"):
        return create_engine(url, **kwargs)
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_SECONDS}, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy, not pysqlite, says when a transaction begins
        dbapi_connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_SECONDS * 1000}")
        if url not in ("sqlite://", "sqlite:///:memory:"):
            try:  # persistent in the file; a no-op once set
                (mode,) = dbapi_connection.execute("PRAGMA journal_mode = WAL").fetchone()
            except Exception as exc:  # e.g. another connection holds the file: stay in its current mode
                log.warning("could not switch the lineage database to WAL: %s", exc)
                mode = None
            if str(mode).lower() == "wal":  # NORMAL is safe (never corrupts) only in WAL mode
                dbapi_connection.execute("PRAGMA synchronous = NORMAL")
        dbapi_connection.execute("PRAGMA foreign_keys = ON")

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def is_busy(exc: BaseException) -> bool:
    """True for SQLite's "database is locked"/"busy" (the write lock was not had within the timeout)."""
    return isinstance(exc, OperationalError) and any(m in str(exc.orig).lower() for m in _BUSY_MESSAGES)


@contextmanager
def write_connection(engine: Engine) -> Iterator[Connection]:
    """A connection in an open write transaction (SQLite: ``BEGIN IMMEDIATE``), committed on exit,
    rolled back on an exception."""
    with engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            yield conn


def retrying(attempt: Callable[[], T], retries: int = RETRIES) -> T:
    """``attempt()``, again after a short random back-off while it raises a busy/locked error (at most
    ``retries`` more times; the last error propagates)."""
    for n in range(retries + 1):
        try:
            return attempt()
        except OperationalError as exc:
            if n == retries or not is_busy(exc):
                raise
            log.warning("database busy, retrying (%d of %d)", n + 1, retries)
            time.sleep(random.uniform(0.05, 0.25) * (n + 1))
    raise AssertionError("unreachable")


def transaction(engine: Engine, work: Callable[[Connection], T]) -> T:
    """``work(conn)`` in one write transaction on ``engine``, committed when it returns; the whole
    transaction is retried while the database is busy (so ``work`` must only touch the database)."""

    def attempt() -> T:
        with write_connection(engine) as conn:
            return work(conn)

    return retrying(attempt)
