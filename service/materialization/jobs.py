"""Materialization jobs: the job table (SQLAlchemy, in the lineage database) and the worker body.

A job is queued by ``POST /materialize`` or ``POST /materialize-incremental`` and run by the router's
single-worker executor with :func:`run_job`, which calls :func:`service.materialization.materializer.materialize`
and records the run view by view (:mod:`service.materialization.runs`). The job row and the run's write
intent are created in one transaction; the job's final state and the intent's end in another. Job state
survives a restart: a job still queued or running when its process stopped reads as failed
("interrupted"), set by the recovery pass (which also settles each view the job left open).
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
    update,
)

from lineage import LineageStore
from lineage.database import create_db_engine, transaction
from service.intents import Intents
from service.materialization.materializer import (
    JobNotFound,
    full_windows,
    incremental_windows,
    iso,
    materialize,
    online_views,
)
from service.materialization.runs import INTENT_KIND as RUN_INTENT
from service.materialization.runs import JOB_INTERRUPTED, RunRecorder
from service.registry import open_feature_store
from service.run_events import openlineage_for

log = logging.getLogger(__name__)


# -- jobs --------------------------------------------------------------------------------------------

QUEUED, RUNNING, COMPLETED, FAILED = "queued", "running", "completed", "failed"
INTERRUPTED = JOB_INTERRUPTED

_metadata = MetaData()
jobs_table = Table(
    "materialization_jobs",
    _metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("status", String(16), nullable=False, index=True),
    Column("request", Text, nullable=False),
    Column("views_total", Integer, nullable=False),
    Column("views_done", Integer, nullable=False),
    Column("rows_written", Integer, nullable=False),
    Column("views", Text, nullable=False),
    Column("error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
)


@dataclass(frozen=True)
class Job:
    """A materialization job as stored. ``request`` holds the resolved arguments (ISO times, view names)."""

    id: str
    kind: str  # "materialize" | "materialize-incremental"
    status: str
    request: dict[str, Any]
    views_total: int
    views_done: int
    rows_written: int
    views: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``GET /jobs/{id}``. ``rows_written`` (progress and per view): entity rows handed to
        the ordered online store, one per entity key; a stored row that is newer is kept, so not each of
        them replaced one (the store does not report which). ``views``: per view, its counts and window,
        and ``skipped`` (the reason) for a view not materialized."""
        return {
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "request": self.request,
            "progress": {
                "views_done": self.views_done,
                "views_total": self.views_total,
                "rows_written": self.rows_written,
            },
            "views": self.views,
            "error": self.error,
            "created_at": iso(self.created_at) if self.created_at else None,
            "started_at": iso(self.started_at) if self.started_at else None,
            "finished_at": iso(self.finished_at) if self.finished_at else None,
        }


class JobStore:
    """Materialization jobs in the ``materialization_jobs`` table at a SQLAlchemy URL (SQLite or PostgreSQL)."""

    def __init__(self, url: str):
        self.engine = create_db_engine(url)
        _metadata.create_all(self.engine)

    def create(self, kind: str, request: dict[str, Any], views_total: int, conn: Connection | None = None) -> Job:
        """A new ``queued`` job (in the caller's transaction ``conn``, or one of its own)."""
        job = Job(uuid.uuid4().hex, kind, QUEUED, request, views_total, 0, 0, {}, None, datetime.now(UTC))
        values = dict(
            id=job.id,
            kind=kind,
            status=QUEUED,
            request=json.dumps(request),
            views_total=views_total,
            views_done=0,
            rows_written=0,
            views="{}",
            created_at=job.created_at,
        )
        if conn is None:
            transaction(self.engine, lambda c: c.execute(insert(jobs_table).values(**values)))
        else:
            conn.execute(insert(jobs_table).values(**values))
        return job

    def get(self, job_id: str) -> Job:
        """Raises: JobNotFound."""
        with self.engine.connect() as conn:
            row = conn.execute(select(jobs_table).where(jobs_table.c.id == job_id)).mappings().first()
        if row is None:
            raise JobNotFound(job_id)
        values = dict(row)
        values["request"], values["views"] = json.loads(values["request"]), json.loads(values["views"])
        for key in ("created_at", "started_at", "finished_at"):  # SQLite drops the offset; we store UTC only
            if values[key] is not None and values[key].tzinfo is None:
                values[key] = values[key].replace(tzinfo=UTC)
        return Job(**values)

    def update(self, job_id: str, conn: Connection | None = None, **values: Any) -> None:
        """Set columns of a job (in the caller's transaction ``conn``, or one of its own)."""
        if "views" in values:
            values["views"] = json.dumps(values["views"])
        statement = update(jobs_table).where(jobs_table.c.id == job_id).values(**values)
        if conn is None:
            transaction(self.engine, lambda c: c.execute(statement))
        else:
            conn.execute(statement)

    def fail(self, job_id: str, error: str, conn: Connection, views: dict[str, dict[str, Any]] | None = None) -> None:
        """Mark a job failed with ``error`` in ``conn``'s transaction, if it is still queued or running;
        ``views`` (results of views finished after all) are added to its per-view progress."""
        row = conn.execute(
            select(jobs_table.c.views, jobs_table.c.rows_written).where(jobs_table.c.id == job_id)
        ).first()
        if row is None:
            return
        done = {**json.loads(row.views), **(views or {})}
        rows = int(row.rows_written) + sum(int(v.get("rows_written", 0)) for v in (views or {}).values())
        result = conn.execute(
            update(jobs_table)
            .where(jobs_table.c.id == job_id, jobs_table.c.status.in_([QUEUED, RUNNING]))
            .values(
                status=FAILED,
                error=error,
                finished_at=datetime.now(UTC),
                views=json.dumps(done),
                views_done=len(done),
                rows_written=rows,
            )
        )
        return bool(result.rowcount)

    def unfinished(self) -> list[str]:
        """The ids of every job queued or running."""
        query = select(jobs_table.c.id).where(jobs_table.c.status.in_([QUEUED, RUNNING]))
        with self.engine.connect() as conn:
            return sorted(conn.execute(query).scalars())

    def dispose(self) -> None:
        self.engine.dispose()


def queue_job(jobs: JobStore, intents: Intents, kind: str, request: dict[str, Any], views_total: int) -> Job:
    """A ``queued`` job and its run's write intent, in one transaction (so a job whose process dies is
    recovered: see :func:`service.materialization.runs.recover_run`)."""
    made: list[Job] = []

    def work(conn: Connection) -> None:
        made.clear()
        job = jobs.create(kind, request, views_total, conn)
        intents.add(conn, RUN_INTENT, job.id, {"job": job.id, "views": {}})
        made.append(job)

    transaction(jobs.engine, work)
    return made[0]


def run_job(job_id: str, repo: Path, jobs: JobStore, lineage: LineageStore, intents: Intents) -> None:
    """Run a queued job to ``completed`` (lineage recorded) or ``failed`` (``error`` says why). Never raises.

    ``request`` of a ``materialize`` job: ``start``, ``end``, ``feature_views``; of a
    ``materialize-incremental`` job: ``end``, ``lookback_seconds``, ``default_start``, ``feature_views``.
    A fresh ``FeatureStore`` per job: the worker shares no Feast object with request threads. A view
    skipped (already materialized past ``end``, no offline file yet) is listed in ``views`` with
    ``skipped`` (the reason); the job still completes. Each view is recorded as it finishes
    (:class:`~service.materialization.runs.RunRecorder`: lineage, OpenLineage COMPLETE, progress).
    """
    recorder: RunRecorder | None = None
    try:
        jobs.update(job_id, status=RUNNING, started_at=datetime.now(UTC))
        job = jobs.get(job_id)
        req = job.request
        store = open_feature_store(repo)  # its interval commits replace the registry file atomically
        views = online_views(store, req["feature_views"])
        end = datetime.fromisoformat(req["end"])
        if job.kind == "materialize":
            windows = full_windows(views, datetime.fromisoformat(req["start"]), end)
        else:
            lookback = timedelta(seconds=req["lookback_seconds"])
            windows = incremental_windows(store, views, end, datetime.fromisoformat(req["default_start"]), lookback)
        jobs.update(job_id, views_total=len(windows))
        recorder = RunRecorder(store, lineage, openlineage_for(lineage), intents, job_id, jobs)
        results = materialize(store, windows, recorder)
        recorder.views_skipped([r for r in results if r.skipped is not None])
        finished = datetime.now(UTC)

        def complete(conn: Connection) -> None:
            jobs.update(job_id, conn=conn, status=COMPLETED, finished_at=finished)
            intents.done(conn, RUN_INTENT, job_id)

        transaction(jobs.engine, complete)
    except Exception as exc:  # a job must end in a state, whatever went wrong
        log.exception("materialization job %s failed", job_id)
        if recorder is not None:
            recorder.fail_open(exc)

        error = f"{type(exc).__name__}: {exc}"

        def failed(conn: Connection) -> None:
            jobs.update(job_id, conn=conn, status=FAILED, error=error, finished_at=datetime.now(UTC))
            intents.done(conn, RUN_INTENT, job_id)

        try:
            transaction(jobs.engine, failed)
        except Exception:  # the intent stays open: the recovery pass marks the job failed
            log.exception("could not record the failure of materialization job %s", job_id)


def interrupt(jobs: JobStore, intents: Intents, job_ids: list[str]) -> None:
    """Mark jobs this process queued and will not run (cancelled at shutdown) failed, and close their intents."""
    for job_id in job_ids:

        def work(conn: Connection, job_id: str = job_id) -> None:
            jobs.fail(job_id, INTERRUPTED, conn)
            intents.done(conn, RUN_INTENT, job_id)

        try:
            transaction(jobs.engine, work)
        except Exception:
            log.exception("could not mark materialization job %s interrupted", job_id)
