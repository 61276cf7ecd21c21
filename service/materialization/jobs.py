"""Materialization jobs: the job table (SQLAlchemy, in the lineage database) and the worker body.

A job is queued by ``POST /materialize`` or ``POST /materialize-incremental`` and run by the router's
single-worker executor with :func:`run_job`, which calls :func:`service.materialization.materializer.materialize`.
Job state survives a restart: a job still queued or running when the service stopped reads as failed
("interrupted").
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, create_engine, insert, select, update

from lineage import LineageStore
from service.materialization.materializer import (
    JobNotFound,
    Observer,
    ViewResult,
    full_windows,
    incremental_windows,
    iso,
    materialize,
    online_views,
    record_lineage,
)
from service.registry import open_feature_store
from service.run_events import openlineage_for

log = logging.getLogger(__name__)


# -- jobs --------------------------------------------------------------------------------------------

QUEUED, RUNNING, COMPLETED, FAILED = "queued", "running", "completed", "failed"
INTERRUPTED = "interrupted: the service stopped before the job finished"

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
        self._engine = create_engine(url, connect_args={"timeout": 30} if url.startswith("sqlite") else {})
        _metadata.create_all(self._engine)

    def create(self, kind: str, request: dict[str, Any], views_total: int) -> Job:
        job = Job(uuid.uuid4().hex, kind, QUEUED, request, views_total, 0, 0, {}, None, datetime.now(UTC))
        with self._engine.begin() as conn:
            conn.execute(
                insert(jobs_table).values(
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
            )
        return job

    def get(self, job_id: str) -> Job:
        """Raises: JobNotFound."""
        with self._engine.connect() as conn:
            row = conn.execute(select(jobs_table).where(jobs_table.c.id == job_id)).mappings().first()
        if row is None:
            raise JobNotFound(job_id)
        values = dict(row)
        values["request"], values["views"] = json.loads(values["request"]), json.loads(values["views"])
        for key in ("created_at", "started_at", "finished_at"):  # SQLite drops the offset; we store UTC only
            if values[key] is not None and values[key].tzinfo is None:
                values[key] = values[key].replace(tzinfo=UTC)
        return Job(**values)

    def update(self, job_id: str, **values: Any) -> None:
        if "views" in values:
            values["views"] = json.dumps(values["views"])
        with self._engine.begin() as conn:
            conn.execute(update(jobs_table).where(jobs_table.c.id == job_id).values(**values))

    def interrupt_unfinished(self) -> int:
        """Mark every queued or running job failed (call at startup: no job survives its process)."""
        with self._engine.begin() as conn:
            done = conn.execute(
                update(jobs_table)
                .where(jobs_table.c.status.in_([QUEUED, RUNNING]))
                .values(status=FAILED, error=INTERRUPTED, finished_at=datetime.now(UTC))
            )
        return done.rowcount

    def dispose(self) -> None:
        self._engine.dispose()


class _JobProgress(Observer):
    """Writes each finished (or skipped) view into the job row."""

    def __init__(self, jobs: JobStore, job_id: str):
        self.jobs, self.job_id = jobs, job_id
        self.views: dict[str, dict[str, Any]] = {}
        self.rows = 0

    def view_finished(self, result: ViewResult) -> None:
        self.views[result.view] = result.to_dict()
        self.rows += result.rows_written
        self.jobs.update(self.job_id, views=self.views, views_done=len(self.views), rows_written=self.rows)

    def views_skipped(self, results: list[ViewResult]) -> None:
        """Record the views :func:`materialize` skipped (it tells no observer of them), with their reason."""
        if results:
            self.views.update({r.view: r.to_dict() for r in results})
            self.jobs.update(self.job_id, views=self.views, views_done=len(self.views))


def run_job(job_id: str, repo: Path, jobs: JobStore, lineage: LineageStore) -> None:
    """Run a queued job to ``completed`` (lineage recorded) or ``failed`` (``error`` says why). Never raises.

    ``request`` of a ``materialize`` job: ``start``, ``end``, ``feature_views``; of a
    ``materialize-incremental`` job: ``end``, ``lookback_seconds``, ``default_start``, ``feature_views``.
    A fresh ``FeatureStore`` per job: the worker shares no Feast object with request threads. A view
    skipped (already materialized past ``end``, no offline file yet) is listed in ``views`` with
    ``skipped`` (the reason); the job still completes.
    """
    jobs.update(job_id, status=RUNNING, started_at=datetime.now(UTC))
    try:
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
        tracker = _JobProgress(jobs, job_id)
        with openlineage_for(lineage).materializing(store, job_id, tracker) as progress:
            results = materialize(store, windows, progress)  # OpenLineage START / COMPLETE (or FAIL) per view
        tracker.views_skipped([r for r in results if r.skipped is not None])
        finished = datetime.now(UTC)
        record_lineage(lineage, job_id, results, finished)
        jobs.update(job_id, status=COMPLETED, finished_at=finished)
    except Exception as exc:  # a job must end in a state, whatever went wrong
        log.exception("materialization job %s failed", job_id)
        jobs.update(job_id, status=FAILED, error=f"{type(exc).__name__}: {exc}", finished_at=datetime.now(UTC))
