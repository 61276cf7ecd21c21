"""Emitting OpenLineage run events for feastline's runs (training sets, materializations, the data
pipeline); the event *model* they are built from is :mod:`lineage.openlineage`.

Every event is stored in ``openlineage_events`` (lineage database) and, when
``FEASTLINE_OPENLINEAGE_URL`` is set, POSTed to ``<url>/api/v1/lineage`` (Marquez and other consumers).

Delivery never fails the caller: a store or HTTP failure is logged and dropped. Hooks find the emitter
of the app through the lineage store it was attached to (:func:`attach`, :func:`openlineage_for`), so
code that only receives a ``LineageStore`` can emit without new parameters; with nothing attached
they get a no-op emitter.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import traceback
import urllib.request
import uuid
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, create_engine, insert, select

from lineage import LineageStore
from lineage import openlineage as ol
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
    """

    def __init__(self, database_url: str | None, endpoint: str | None = None, timeout: float = HTTP_TIMEOUT_SECONDS):
        self.endpoint = endpoint.rstrip("/") if endpoint else None
        self.timeout = timeout
        self._engine = None
        if database_url:
            sqlite = database_url.startswith("sqlite")
            self._engine = create_engine(database_url, connect_args={"timeout": 30} if sqlite else {})
            _metadata.create_all(self._engine)

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenLineageEmitter:
        return cls(settings.lineage_database_url, settings.openlineage_url)

    def emit(self, event: Mapping[str, Any]) -> None:
        """Store ``event`` and POST it if an endpoint is set. Never raises."""
        body = json.dumps(event, separators=(",", ":"))
        if self._engine is not None:
            try:
                with self._engine.begin() as conn:
                    conn.execute(
                        insert(events_table).values(
                            run_id=event["run"]["runId"],
                            job_namespace=event["job"]["namespace"],
                            job_name=event["job"]["name"],
                            event_type=event["eventType"],
                            event_time=event["eventTime"],
                            event=body,
                            stored_at=datetime.now(UTC),
                        )
                    )
            except Exception:
                log.exception("could not store OpenLineage event for %s", event.get("job"))
        if self.endpoint:
            request = urllib.request.Request(
                f"{self.endpoint}/api/v1/lineage",
                data=body.encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    response.read()
            except Exception as exc:
                log.warning("could not send OpenLineage event to %s: %s", self.endpoint, exc)

    def emit_all(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            self.emit(event)

    def events(self, job: str | None = None, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """Stored events, newest first (by arrival), optionally of one job name; ``limit`` of them after
        skipping ``offset``."""
        if self._engine is None:
            return []
        query = select(events_table.c.event).order_by(events_table.c.id.desc()).limit(limit).offset(offset)
        if job is not None:
            query = query.where(events_table.c.job_name == job)
        with self._engine.connect() as conn:
            return [json.loads(row.event) for row in conn.execute(query)]

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    # -- hooks ---------------------------------------------------------------------------------------

    @contextmanager
    def materializing(self, store: Any, job_id: str, inner: Any) -> Iterator[Any]:
        """An observer for :func:`service.materialization.materializer.materialize` that also emits START and COMPLETE
        per view (delegating every hook to ``inner``); views started but unfinished when the block raises
        get a FAIL event."""
        observer = _MaterializationEvents(self, store, job_id, inner)
        try:
            yield observer
        except Exception as exc:
            observer.fail_open(exc)
            raise


class _MaterializationEvents:
    def __init__(self, emitter: OpenLineageEmitter, store: Any, job_id: str, inner: Any) -> None:
        self.emitter, self.store, self.job_id, self.inner = emitter, store, job_id, inner
        self.open: dict[str, tuple[str, datetime, Any]] = {}

    def _describe(self, view: str) -> tuple[str, str, dict[str, str | None]]:
        fv = self.store.get_feature_view(view)
        columns: dict[str, str | None] = {c.name: str(c.dtype) for c in fv.entity_columns}
        columns |= {f.name: str(f.dtype) for f in fv.features}
        return fv.batch_source.name, f"{self.store.project}_{view}", columns

    def _events(self, view: str, **kw: Any) -> None:
        run_id, started, _ = self.open.pop(view)
        source, table, columns = self._describe(view)
        events = ol.materialization_events(
            run_id, view, source, table, started, datetime.now(UTC), columns=columns, **kw
        )
        self.emitter.emit(events[1])

    def view_started(self, window: Any, index: int, total: int) -> None:
        run_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"feastline:materialize:{self.job_id}:{window.view}"))
        started = datetime.now(UTC)
        self.open[window.view] = (run_id, started, window)
        try:
            source, table, _ = self._describe(window.view)
            self.emitter.emit(ol.materialization_events(run_id, window.view, source, table, started, started)[0])
        except Exception:
            log.exception("could not emit OpenLineage START for %s", window.view)
        self.inner.view_started(window, index, total)

    def rows_written(self, window: Any, rows: int) -> None:
        self.inner.rows_written(window, rows)

    def view_finished(self, result: Any) -> None:
        self.inner.view_finished(result)
        try:
            self._events(result.view, rows_in_window=result.rows_in_window, rows_written=result.rows_written)
        except Exception:
            log.exception("could not emit OpenLineage COMPLETE for %s", result.view)

    def fail_open(self, exc: BaseException) -> None:
        for view in list(self.open):
            try:
                self._events(view, error=exc)
            except Exception:
                log.exception("could not emit OpenLineage FAIL for %s", view)


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

    file = Path(path) if Path(path).is_absolute() else repo / "data" / Path(path).name
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


F = TypeVar("F", bound=Callable[..., Any])


def emits_training_set_events(func: F) -> F:
    """Decorate ``create_training_set``: START before it runs, COMPLETE with the stored set after, or FAIL
    (``errorMessage``) if it raises, then re-raise. Reads ``lineage``, ``plan`` and ``opts`` from its arguments."""
    signature = inspect.signature(func)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs).arguments
        emitter = openlineage_for(bound["lineage"])
        run_id, job = str(uuid.uuid4()), ol.TRAINING_SET_JOB
        try:
            inputs = ol.training_set_inputs(v.definition.batch_source.name for v in bound["plan"].views)
        except Exception:
            inputs = []
        emitter.emit(ol.run_event(ol.START, run_id, job, datetime.now(UTC), inputs))
        try:
            result = func(*args, **kwargs)
        except Exception as exc:
            from service.errors import status_for  # here: service.errors imports the training-set modules

            # a client error (4xx: leakage refused, a name collision) gets its message only; the server's
            # stack trace goes into the event only for a failure of ours
            trace = traceback.format_exc() if status_for(exc) >= 500 else None
            facets = {"errorMessage": ol.error_facet(exc, trace)}
            emitter.emit(ol.run_event(ol.FAIL, run_id, job, datetime.now(UTC), inputs, run_facets=facets))
            raise
        try:
            frame = result.frame
            columns = {str(c): str(t) for c, t in frame.dtypes.items()}
            nulls = {str(c): int(n) for c, n in frame.isna().sum().items()}
            output = ol.training_set_output(result.record.id, columns, len(frame), nulls)
            emitter.emit(ol.run_event(ol.COMPLETE, run_id, job, datetime.now(UTC), inputs, [output]))
        except Exception:
            log.exception("could not emit OpenLineage COMPLETE for a training set")
        return result

    return wrapper  # type: ignore[return-value]
