"""Write intents: what an unfinished write is about to do, so that a crash can be finished or undone.

A write that spans files and rows (a training set, an offline push, a materialization job) first
commits an intent row (table ``feastline_intents`` in the lineage database): its ``kind``, a ``key``
(the training set id, the push id, the job id), the process that owns it and ``details`` (its temporary
and final files, its OpenLineage run ids, its phase). The intent is deleted in the same transaction that
commits the write's rows, so an intent whose owner is dead marks a write a crash cut short: the
recovery pass (:mod:`service.recovery`) takes it over (:meth:`Intents.claim`) and finishes or undoes it.
While its owner lives, an intent also says which files and runs are in flight and must not be touched.

**Owners.** A process is named ``host:pid:start`` (``start``: the process's start time in clock ticks,
from ``/proc``, so a reused pid is not taken for the old process). It is alive when it is this process;
on the same host, when that pid runs with that start time; on another host, when its row in
``feastline_processes`` was refreshed within :data:`STALE_AFTER_SECONDS` (every process refreshes its
row every :data:`HEARTBEAT_SECONDS` while it has an :class:`Intents` open).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Connection, DateTime, Integer, MetaData, String, Table, Text, delete, insert, select
from sqlalchemy import update as sql_update
from sqlalchemy.exc import IntegrityError

from lineage.database import create_db_engine, transaction

log = logging.getLogger("feastline.intents")

HEARTBEAT_SECONDS = 10
STALE_AFTER_SECONDS = 60

_metadata = MetaData()
intents_table = Table(
    "feastline_intents",
    _metadata,
    Column("kind", String(32), primary_key=True),
    Column("key", String(64), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("details", Text, nullable=False),
)
processes_table = Table(
    "feastline_processes",
    _metadata,
    Column("owner", String(200), primary_key=True),
    Column("host", String(200), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("seen_at", DateTime(timezone=True), nullable=False),
)


class IntentInFlight(Exception):
    """An intent with this kind and key is already open (a write with the same key is in flight)."""

    def __init__(self, kind: str, key: str) -> None:
        self.kind, self.key = kind, key
        super().__init__(f"a {kind} with key {key!r} is in flight")


@dataclass(frozen=True)
class Intent:
    kind: str
    key: str
    owner: str
    created_at: datetime
    details: dict[str, Any]


def _start_ticks(pid: int) -> str:
    """The process's start time in clock ticks since boot (field 22 of ``/proc/<pid>/stat``); "0" where
    there is no ``/proc``; "" if the process does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return "" if Path("/proc/self/stat").exists() else "0"
    except OSError:
        return "0"
    return stat.rsplit(")", 1)[1].split()[19]


@cache
def this_process() -> str:
    """This process's owner name, ``host:pid:start``."""
    return f"{socket.gethostname()}:{os.getpid()}:{_start_ticks(os.getpid())}"


def process_alive(pid: int, start: str) -> bool:
    """Whether the process ``pid`` of this host runs and started at ``start`` (as :func:`this_process`
    records it; "0": no start time known, the pid alone)."""
    if start == "0":  # no /proc when it was recorded: the pid alone
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return _start_ticks(pid) == start


class Intents:
    """The intents table and this process's row in the processes table, at a SQLAlchemy URL (the
    lineage database). :meth:`start` begins the heartbeat; :meth:`dispose` ends it and removes the row."""

    def __init__(self, url: str) -> None:
        self.engine = create_db_engine(url)
        _metadata.create_all(self.engine)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- this process ------------------------------------------------------------------------------

    def start(self) -> None:
        """Record this process as alive and keep its row fresh (a daemon thread)."""
        self._beat()
        if self._thread is None:
            self._thread = threading.Thread(target=self._beating, name="feastline-heartbeat", daemon=True)
            self._thread.start()

    def _beat(self) -> None:
        owner = this_process()
        host, pid, _ = owner.rsplit(":", 2)
        now = datetime.now(UTC)

        def work(conn: Connection) -> None:
            updated = conn.execute(
                sql_update(processes_table).where(processes_table.c.owner == owner).values(seen_at=now)
            )
            if updated.rowcount == 0:
                conn.execute(insert(processes_table).values(owner=owner, host=host, pid=int(pid), seen_at=now))

        try:
            transaction(self.engine, work)
        except Exception as exc:  # a heartbeat never fails the process; a stale one only matters to other hosts
            log.warning("could not record this process as alive: %s", exc)

    def _beating(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            self._beat()

    def dispose(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            owner = this_process()
            transaction(
                self.engine, lambda c: c.execute(delete(processes_table).where(processes_table.c.owner == owner))
            )
        except Exception as exc:
            log.warning("could not remove this process's row: %s", exc)
        self.engine.dispose()

    # -- writing intents (inside the caller's transaction) -----------------------------------------

    def add(self, conn: Connection, kind: str, key: str, details: dict[str, Any]) -> None:
        """Open an intent owned by this process.

        Raises:
            IntentInFlight: one with this kind and key is open (its transaction is rolled back).
        """
        try:
            conn.execute(
                insert(intents_table).values(
                    kind=kind,
                    key=key,
                    owner=this_process(),
                    created_at=datetime.now(UTC),
                    details=json.dumps(details, sort_keys=True),
                )
            )
        except IntegrityError:
            raise IntentInFlight(kind, key) from None

    def update(self, conn: Connection, kind: str, key: str, details: dict[str, Any]) -> None:
        """Replace the details of an open intent."""
        match = (intents_table.c.kind == kind) & (intents_table.c.key == key)
        conn.execute(sql_update(intents_table).where(match).values(details=json.dumps(details, sort_keys=True)))

    def done(self, conn: Connection, kind: str, key: str) -> None:
        """Close an intent (in the transaction that commits what it announced)."""
        conn.execute(delete(intents_table).where((intents_table.c.kind == kind) & (intents_table.c.key == key)))

    def close(self, kind: str, key: str) -> None:
        """:meth:`done` in a transaction of its own; never raises (an intent left open is recovered)."""
        try:
            transaction(self.engine, lambda conn: self.done(conn, kind, key))
        except Exception as exc:
            log.warning("could not close the %s intent %s: %s", kind, key, exc)

    # -- reading and taking over -------------------------------------------------------------------

    def all(self, kinds: Iterable[str] | None = None) -> list[Intent]:
        """Every open intent (of ``kinds``), oldest first."""
        query = select(intents_table).order_by(intents_table.c.created_at)
        if kinds is not None:
            query = query.where(intents_table.c.kind.in_(list(kinds)))
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            Intent(
                r["kind"],
                r["key"],
                r["owner"],
                r["created_at"] if r["created_at"].tzinfo else r["created_at"].replace(tzinfo=UTC),
                json.loads(r["details"]),
            )
            for r in rows
        ]

    def alive(self, owner: str) -> bool:
        """Whether the process ``owner`` (``host:pid:start``) still runs (see the module docstring)."""
        if owner == this_process():
            return True
        host, pid, start = owner.rsplit(":", 2)
        if host == socket.gethostname():
            return process_alive(int(pid), start)
        with self.engine.connect() as conn:
            seen = conn.execute(select(processes_table.c.seen_at).where(processes_table.c.owner == owner)).scalar()
        if seen is None:
            return False
        seen = seen if seen.tzinfo else seen.replace(tzinfo=UTC)
        return datetime.now(UTC) - seen < timedelta(seconds=STALE_AFTER_SECONDS)

    def claim(self, intent: Intent) -> bool:
        """Take over ``intent`` from its (dead) owner: True if this process now owns it (False if another
        recovery took it first, or it was closed meanwhile)."""
        match = (
            (intents_table.c.kind == intent.kind)
            & (intents_table.c.key == intent.key)
            & (intents_table.c.owner == intent.owner)
        )
        result = transaction(
            self.engine, lambda conn: conn.execute(sql_update(intents_table).where(match).values(owner=this_process()))
        )
        return bool(result.rowcount == 1)
