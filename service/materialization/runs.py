"""Recording a materialization run, view by view, so that what it wrote agrees whatever stops it.

A run (a job of ``POST /materialize``, or ``feastline materialize``) holds a write intent (kind
``materialization``, key the job id; :mod:`service.intents`) whose details follow each view through its
phases:

1. ``writing``: committed with the view's OpenLineage START; its rows go to the online store (the
   ordered store: rewriting them is harmless);
2. ``registering``: the rows are written (the counts are kept); the interval goes into Feast's registry;
3. ``done``: one transaction sets the view's ``last_materialization`` on its lineage node, stores its
   COMPLETE event and the job's progress.

A failure gives every view still open its FAIL event. A crash leaves the intent to the recovery pass,
which calls :func:`recover_run`: a view ``registering`` whose interval the registry holds is finished
(lineage, COMPLETE), any other open view gets FAIL, and the job reads ``failed`` (interrupted): the
registry's intervals, the lineage nodes and the events agree.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from feast import FeatureStore
from sqlalchemy import Connection

from lineage import LineageStore, NodeNotFound
from lineage.database import transaction
from lineage.model import NodeKind, NodeRef
from lineage.store import LineageWrite
from service.intents import Intent, Intents
from service.materialization.materializer import (
    Observer,
    ViewResult,
    Window,
    iso,
    last_materialization,
    registered_interval,
)
from service.run_events import MaterializationEvents, OpenLineageEmitter, materialization_run_id
from service.storage import crash_point

log = logging.getLogger("feastline.materialization")

INTENT_KIND = "materialization"
WRITING, REGISTERING, DONE, FAILED = "writing", "registering", "done", "failed"


class RunRecorder(Observer):
    """The observer that records a run (see the module docstring), passing every hook on to ``inner``.

    Args:
        job_id: the job's id (the intent's key; the runIds of its views derive from it).
        jobs: the job table, for a job of the service (None for the CLI: no job row).
    """

    def __init__(
        self,
        store: FeatureStore,
        lineage: LineageStore,
        emitter: OpenLineageEmitter,
        intents: Intents,
        job_id: str,
        jobs: Any = None,
        inner: Observer | None = None,
    ) -> None:
        self.store, self.lineage, self.emitter, self.intents = store, lineage, emitter, intents
        self.job_id, self.jobs, self.inner = job_id, jobs, inner or Observer()
        self.events = MaterializationEvents(store)
        self.details: dict[str, Any] = {"job": job_id, "views": {}}
        self.progress: dict[str, dict[str, Any]] = {}
        self.rows = 0

    def begin(self, conn: Connection) -> None:
        """Open the run's intent (in the caller's transaction: with the job row for a job)."""
        self.intents.add(conn, INTENT_KIND, self.job_id, self.details)

    def _phase(self, view: str, **values: Any) -> None:
        self.details["views"].setdefault(view, {}).update(values)

    def view_started(self, window: Window, index: int, total: int) -> None:
        run_id = materialization_run_id(self.job_id, window.view)
        started = datetime.now(UTC)
        self._phase(window.view, run_id=run_id, start=iso(window.start), end=iso(window.end), phase=WRITING)
        self._phase(window.view, started_at=iso(started))
        event = self.events.start(run_id, window.view, started)

        def work(conn: Connection) -> None:
            self.emitter.store(conn, event)
            self.intents.update(conn, INTENT_KIND, self.job_id, self.details)

        transaction(self.intents.engine, work)
        self.emitter.send(event)
        self.inner.view_started(window, index, total)

    def rows_written(self, window: Window, rows: int) -> None:
        self.inner.rows_written(window, rows)

    def view_written(self, result: ViewResult) -> None:
        self._phase(result.view, phase=REGISTERING, rows_in_window=result.rows_in_window, rows=result.rows_offered)
        transaction(self.intents.engine, lambda conn: self.intents.update(conn, INTENT_KIND, self.job_id, self.details))
        crash_point("materialize.view_written")
        self.inner.view_written(result)

    def view_finished(self, result: ViewResult) -> None:
        crash_point("materialize.view_registered")
        self._phase(result.view, phase=DONE)
        self.progress[result.view] = result.to_dict()
        self.rows += result.rows_offered
        view = self.details["views"][result.view]
        event = self.events.end(
            view["run_id"],
            result.view,
            datetime.fromisoformat(view["started_at"]),
            rows_in_window=result.rows_in_window,
            rows_written=result.rows_offered,
        )
        finished = datetime.now(UTC)

        def work(w: LineageWrite) -> None:
            record_view(w, self.job_id, result, finished)
            self.emitter.store(w.connection, event)
            if self.jobs is not None:
                self.jobs.update(
                    self.job_id,
                    conn=w.connection,
                    views=self.progress,
                    views_done=len(self.progress),
                    rows_written=self.rows,
                )
            self.intents.update(w.connection, INTENT_KIND, self.job_id, self.details)

        self.lineage.write(work)
        self.emitter.send(event)
        self.inner.view_finished(result)

    def views_skipped(self, results: list[ViewResult]) -> None:
        """Record the views :func:`~service.materialization.materializer.materialize` skipped (it tells no
        observer of them), with their reason, in the job's progress."""
        if results:
            self.progress.update({r.view: r.to_dict() for r in results})
            if self.jobs is not None:
                self.jobs.update(self.job_id, views=self.progress, views_done=len(self.progress))

    def finish(self, conn: Connection) -> None:
        """Close the run's intent (in the caller's transaction: with the job's final state)."""
        self.intents.done(conn, INTENT_KIND, self.job_id)

    def fail_open(self, exc: BaseException) -> None:
        """FAIL for every view started and not finished; never raises (a view left open is recovered)."""
        sent: list[dict[str, Any]] = []

        def work(conn: Connection) -> None:
            sent.clear()
            for name, view in self.details["views"].items():
                if view["phase"] in (WRITING, REGISTERING):
                    event = self.events.end(view["run_id"], name, datetime.fromisoformat(view["started_at"]), error=exc)
                    self.emitter.store(conn, event)
                    sent.append(event)
                    view["phase"] = FAILED
            self.intents.update(conn, INTENT_KIND, self.job_id, self.details)

        try:
            transaction(self.intents.engine, work)
        except Exception:
            log.exception("could not record the failure of materialization %s", self.job_id)
            return
        for event in sent:
            self.emitter.send(event)


def record_view(w: LineageWrite, run_id: str, result: ViewResult, finished_at: datetime) -> None:
    """Set ``last_materialization`` on the view's lineage node (in ``w``'s transaction); a view without a
    node (the repo not applied through feastline) is left out, with a warning."""
    try:
        w.update_attributes(
            NodeRef(NodeKind.FEATURE_VIEW, result.view),
            last_materialization=last_materialization(run_id, result, finished_at),
        )
    except NodeNotFound:
        log.warning("no lineage node for %s; run `feastline apply` to record lineage", result.view)


INTERRUPTED = "interrupted: the process stopped before the run finished (recorded at the next start)"
"""The error of the FAIL event of a run its process never ended."""
JOB_INTERRUPTED = "interrupted: the service stopped before the job finished"
"""The ``error`` of a job its process never ended."""


def recover_run(
    intent: Intent,
    store: FeatureStore | None,
    lineage: LineageStore,
    emitter: OpenLineageEmitter,
    intents: Intents,
    jobs: Any,
) -> dict[str, int]:
    """Finish or fail what a crashed run left open (``intent``, claimed by this process): per view, see
    the module docstring; the job (if any) reads ``failed``; the intent is closed, all in one
    transaction. ``store`` reads the registry (None: no registry, every open view fails).

    Returns:
        ``{"views_finished", "views_failed"}``.
    """
    views: dict[str, dict[str, Any]] = intent.details.get("views", {})
    events_of = MaterializationEvents(store) if store is not None else None
    finished: dict[str, ViewResult] = {}
    for name, view in views.items():
        if view.get("phase") != REGISTERING or store is None:
            continue
        start, end = datetime.fromisoformat(view["start"]), datetime.fromisoformat(view["end"])
        if registered_interval(store, name, start, end):
            finished[name] = ViewResult(name, start, end, int(view.get("rows_in_window", 0)), int(view.get("rows", 0)))
    sent: list[dict[str, Any]] = []
    counts = {"views_finished": 0, "views_failed": 0}
    now = datetime.now(UTC)

    def work(w: LineageWrite) -> None:
        sent.clear()
        counts.update(views_finished=0, views_failed=0)
        progress: dict[str, dict[str, Any]] = {}  # the views finished here (the job row has the others)
        for name, view in views.items():
            if view.get("phase") not in (WRITING, REGISTERING):
                continue
            result = finished.get(name)
            event = None
            if result is not None:
                record_view(w, intent.key, result, now)
                progress[name] = result.to_dict()
                if events_of is not None:
                    event = events_of.end(
                        view["run_id"],
                        name,
                        datetime.fromisoformat(view["started_at"]),
                        rows_in_window=result.rows_in_window,
                        rows_written=result.rows_offered,
                    )
                    emitter.store(w.connection, event)
                counts["views_finished"] += 1
            else:
                event = emitter.fail_open_run(w.connection, view["run_id"], INTERRUPTED)
                counts["views_failed"] += 1
            if event is not None:
                sent.append(event)
        if jobs is not None:  # a run of the CLI has no job row: nothing to update
            jobs.fail(intent.key, JOB_INTERRUPTED, conn=w.connection, views=progress)
        intents.done(w.connection, INTENT_KIND, intent.key)

    lineage.write(work)
    for event in sent:
        emitter.send(event)
    return counts
