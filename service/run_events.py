"""Emitting OpenLineage run events for feastline's runs (training sets, materializations, the data
pipeline); the event *model* they are built from is :mod:`lineage.openlineage`.

Every event is stored in ``openlineage_events`` (lineage database) and, when
``FEASTLINE_OPENLINEAGE_URL`` is set, POSTed to ``<url>/api/v1/lineage`` (Marquez and other consumers).

A run's START is committed before its work starts (with the write intent that names the run, see
:mod:`service.intents`), its COMPLETE in the transaction that commits what the run wrote, so a run
has its end event exactly when its results are stored; a run cut short by a crash gets its FAIL from
the recovery pass (:meth:`OpenLineageEmitter.fail_open_run`). Sending to the endpoint happens after
the commit and never fails the caller (a failure is logged and dropped). Code that only receives a
``LineageStore`` finds the app's emitter through it (:func:`attach`, :func:`openlineage_for`); with
nothing attached it gets a no-op emitter.
"""

from __future__ import annotations

import json
import logging
import traceback
import urllib.request
import uuid
import weakref
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Connection, DateTime, Engine, Integer, MetaData, String, Table, Text, insert, select

from lineage import LineageStore
from lineage import openlineage as ol
from lineage.database import create_db_engine, transaction
from service.settings import Settings

log = logging.getLogger("feastline.openlineage")
HTTP_TIMEOUT_SECONDS = 2.0

_metadata = MetaData()
events_table = Table(
    "openlineage_events",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(36), nullable=False, index=True),
    Column("job_namespace", Text, nullable=False),
    Column("job_name", Text, nullable=False, index=True),
    Column("event_type", String(16), nullable=False),
    Column("event_time", Text, nullable=False),
    Column("event", Text, nullable=False),
    Column("stored_at", DateTime(timezone=True), nullable=False),
)


class OpenLineageEmitter:
    """Stores and (optionally) sends OpenLineage events.

    Args:
        database_url: SQLAlchemy URL of the lineage database (the table is created if missing).
        endpoint: base URL of an OpenLineage HTTP consumer; events go to ``<endpoint>/api/v1/lineage``.

    A run's events can be stored in the caller's transaction (:meth:`store`, with the rows the run
    wrote: a training set's catalog row, a view's ``last_materialization``) and sent once it commits
    (:meth:`send`); :meth:`emit` does both on its own.
    """

    def __init__(self, database_url: str | None, endpoint: str | None = None, timeout: float = HTTP_TIMEOUT_SECONDS):
        self.endpoint = endpoint.rstrip("/") if endpoint else None
        self.timeout = timeout
        self.engine: Engine | None = None
        if database_url:
            self.engine = create_db_engine(database_url)
            _metadata.create_all(self.engine)

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenLineageEmitter:
        return cls(settings.lineage_database_url, settings.openlineage_url)

    def store(self, conn: Connection, event: Mapping[str, Any]) -> None:
        """Insert ``event`` in the caller's open transaction on the lineage database (nothing for an
        emitter without a database)."""
        if self.engine is None:
            return
        conn.execute(
            insert(events_table).values(
                run_id=event["run"]["runId"],
                job_namespace=event["job"]["namespace"],
                job_name=event["job"]["name"],
                event_type=event["eventType"],
                event_time=event["eventTime"],
                event=json.dumps(event, separators=(",", ":")),
                stored_at=datetime.now(UTC),
            )
        )

    def send(self, event: Mapping[str, Any]) -> None:
        """POST ``event`` to the endpoint, if one is set (after it was stored). Never raises."""
        if not self.endpoint:
            return
        request = urllib.request.Request(
            f"{self.endpoint}/api/v1/lineage",
            data=json.dumps(event, separators=(",", ":")).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except Exception as exc:
            log.warning("could not send OpenLineage event to %s: %s", self.endpoint, exc)

    def emit(self, event: Mapping[str, Any]) -> None:
        """Store ``event`` (its own transaction) and POST it if an endpoint is set. Never raises."""
        if self.engine is not None:
            try:
                transaction(self.engine, lambda conn: self.store(conn, event))
            except Exception:
                log.exception("could not store OpenLineage event for %s", event.get("job"))
        self.send(event)

    def emit_all(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            self.emit(event)

    def events(self, job: str | None = None, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """Stored events, newest first (by arrival), optionally of one job name; ``limit`` of them after
        skipping ``offset``."""
        if self.engine is None:
            return []
        query = select(events_table.c.event).order_by(events_table.c.id.desc()).limit(limit).offset(offset)
        if job is not None:
            query = query.where(events_table.c.job_name == job)
        with self.engine.connect() as conn:
            return [json.loads(row.event) for row in conn.execute(query)]

    def open_runs(self) -> list[str]:
        """The run ids with a START event and no terminal one (COMPLETE, FAIL or ABORT) stored."""
        if self.engine is None:
            return []
        ended = select(events_table.c.run_id).where(events_table.c.event_type.in_(TERMINAL))
        query = (
            select(events_table.c.run_id)
            .where(events_table.c.event_type == ol.START, events_table.c.run_id.not_in(ended))
            .distinct()
        )
        with self.engine.connect() as conn:
            return sorted(conn.execute(query).scalars())

    def fail_open_run(self, conn: Connection, run_id: str, reason: str) -> dict[str, Any] | None:
        """In the caller's transaction: store a FAIL event (``errorMessage`` = ``reason``) for ``run_id``
        if it still has no terminal event; the same job and inputs as its START. Returns the event
        stored (to :meth:`send` after the commit), or None."""
        rows = conn.execute(
            select(events_table.c.event_type, events_table.c.event).where(events_table.c.run_id == run_id)
        )
        events = {row.event_type: json.loads(row.event) for row in rows}
        if ol.START not in events or any(t in events for t in TERMINAL):
            return None
        start = events[ol.START]
        facets = {"errorMessage": ol.error_facet(RunInterrupted(reason))}
        event = ol.run_event(
            ol.FAIL,
            run_id,
            start["job"]["name"],
            datetime.now(UTC),
            start.get("inputs", []),
            run_facets=facets,
            namespace=start["job"]["namespace"],
        )
        self.store(conn, event)
        return event

    def dispose(self) -> None:
        if self.engine is not None:
            self.engine.dispose()


TERMINAL = (ol.COMPLETE, ol.FAIL, "ABORT")


class RunInterrupted(Exception):
    """The error of a FAIL event the recovery pass writes for a run its process never ended."""


# -- the events of feastline's runs --------------------------------------------------------------------


class TrainingSetRun:
    """The OpenLineage events of one training-set run (job ``training_set``): START, then COMPLETE with
    the stored set as output, or FAIL (``errorMessage``; the stack trace only for a failure of ours)."""

    def __init__(self, plan: Any) -> None:
        self.run_id, self.job = str(uuid.uuid4()), ol.TRAINING_SET_JOB
        try:
            self.inputs = ol.training_set_inputs(v.definition.batch_source.name for v in plan.views)
        except Exception:
            self.inputs = []

    def start(self) -> dict[str, Any]:
        return ol.run_event(ol.START, self.run_id, self.job, datetime.now(UTC), self.inputs)

    def complete(self, training_set_id: str, frame: Any) -> dict[str, Any]:
        columns = {str(c): str(t) for c, t in frame.dtypes.items()}
        nulls = {str(c): int(n) for c, n in frame.isna().sum().items()}
        output = ol.training_set_output(training_set_id, columns, len(frame), nulls)
        return ol.run_event(ol.COMPLETE, self.run_id, self.job, datetime.now(UTC), self.inputs, [output])

    def fail(self, exc: BaseException) -> dict[str, Any]:
        """A failure of ours (5xx) puts its stack trace into the event; a client error (4xx: leakage
        refused, a name collision) its message only."""
        from service.errors import status_for  # here: service.errors imports the training-set modules

        server_fault = not isinstance(exc, Exception) or status_for(exc) >= 500
        trace = "".join(traceback.format_exception(exc)) if server_fault else None
        facets = {"errorMessage": ol.error_facet(exc, trace)}
        return ol.run_event(ol.FAIL, self.run_id, self.job, datetime.now(UTC), self.inputs, run_facets=facets)


def materialization_run_id(job_id: str, view: str) -> str:
    """The runId of one view's materialization in job ``job_id`` (a UUID5: the same on every call)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"feastline:materialize:{job_id}:{view}"))


class MaterializationEvents:
    """The OpenLineage events of a view's materialization (job ``materialize.<view>``), described from
    the Feast store: input ``data_source:<source>``, output ``online_store:<project>_<view>``."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def _describe(self, view: str) -> tuple[str, str, dict[str, str | None]]:
        fv = self.store.get_feature_view(view)
        columns: dict[str, str | None] = {c.name: str(c.dtype) for c in fv.entity_columns}
        columns |= {f.name: str(f.dtype) for f in fv.features}
        return fv.batch_source.name, f"{self.store.project}_{view}", columns

    def start(self, run_id: str, view: str, started: datetime) -> dict[str, Any]:
        source, table, _ = self._describe(view)
        return ol.materialization_events(run_id, view, source, table, started, started)[0]

    def end(self, run_id: str, view: str, started: datetime, **kw: Any) -> dict[str, Any]:
        """COMPLETE (``rows_in_window``, ``rows_written``) or FAIL (``error``)."""
        source, table, columns = self._describe(view)
        return ol.materialization_events(
            run_id, view, source, table, started, datetime.now(UTC), columns=columns, **kw
        )[1]


class _NoEmitter(OpenLineageEmitter):
    def __init__(self) -> None:
        super().__init__(None, None)


_ATTACHED: weakref.WeakKeyDictionary[LineageStore, OpenLineageEmitter] = weakref.WeakKeyDictionary()


def attach(lineage: LineageStore, emitter: OpenLineageEmitter) -> OpenLineageEmitter:
    """Make ``emitter`` the one hooks find for ``lineage`` (the app does this in its lifespan)."""
    _ATTACHED[lineage] = emitter
    return emitter


def openlineage_for(lineage: LineageStore) -> OpenLineageEmitter:
    """The emitter attached to ``lineage``, or a no-op one."""
    return _ATTACHED.get(lineage) or _NoEmitter()


def emit_pipeline_run(settings: Settings, record: Mapping[str, Any]) -> None:
    """Emit START + COMPLETE per step of a pipeline run record into ``settings``' lineage database (and
    endpoint); null counts come from the output Parquet files' statistics where readable."""
    emitter = OpenLineageEmitter.from_settings(settings)
    try:
        nulls = {s["step"]: parquet_null_counts(settings.repo_path, s["output"]["path"]) for s in record["steps"]}
        emitter.emit_all(ol.pipeline_run_events(record, {k: v for k, v in nulls.items() if v is not None}))
    finally:
        emitter.dispose()


def parquet_null_counts(repo: Path, path: str) -> dict[str, int] | None:
    """Nulls per column from a Parquet file's row-group statistics; None if unreadable or incomplete."""
    import pyarrow.parquet as pq

    file = Path(path) if Path(path).is_absolute() else repo / path  # relative: to the repo
    try:
        meta = pq.ParquetFile(file).metadata
        counts: dict[str, int] = {}
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for c in range(group.num_columns):
                col = group.column(c)
                stats = col.statistics
                if stats is None or not stats.has_null_count:
                    return None
                name = col.path_in_schema
                counts[name] = counts.get(name, 0) + int(stats.null_count)
        return counts
    except Exception:
        return None
