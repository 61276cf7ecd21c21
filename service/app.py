"""The app factory. Nothing heavy happens at import: ``create_app(settings)`` wires the routers and a
lifespan that opens the Feast store and the lineage database on ``app.state`` and runs the recovery
pass (:mod:`service.recovery`) before the first request.

The event loop only accepts, routes and answers: every blocking step of a request runs on the app's
worker pools (``app.state.workers``, service/workers.py), and every request body is bounded in size
and in time (service/limits.py)."""

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi_offline import FastAPIOffline

from lineage import LineageStore
from service.errors import install_error_handlers, problem_responses, use_problem_media_type
from service.intents import Intents
from service.limits import RequestLimits
from service.materialization.jobs import JobStore
from service.metrics import install_metrics
from service.monitoring.online_install import install_online_monitoring
from service.monitoring.reports import DriftReports
from service.online.push import PushGate
from service.online.quarantine import QuarantineStore
from service.online.receipts import Receipts
from service.recovery import Stores, recover
from service.registry import open_feature_store
from service.routers import (
    health,
    lineage,
    lineage_export,
    lineage_view,
    materialize,
    metrics,
    models,
    monitoring_drift,
    monitoring_freshness,
    monitoring_online,
    monitoring_view,
    online,
    push,
    training_sets,
)
from service.run_events import OpenLineageEmitter, attach
from service.settings import Settings
from service.training.catalog import TrainingSetCatalog
from service.workers import Workers

log = logging.getLogger("feastline")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    workers = Workers(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.workers = workers
        workers.start()
        app.state.feature_store = open_feature_store(settings.repo_path)  # registry read from snapshots
        app.state.lineage = LineageStore(settings.lineage_database_url)
        app.state.openlineage = attach(app.state.lineage, OpenLineageEmitter.from_settings(settings))
        app.state.catalog = TrainingSetCatalog(settings.lineage_database_url)
        app.state.quarantine = QuarantineStore(settings.lineage_database_url)
        app.state.drift_reports = DriftReports(settings.lineage_database_url)
        app.state.intents = Intents(settings.lineage_database_url)
        app.state.intents.start()
        app.state.receipts = Receipts(settings.lineage_database_url)
        app.state.push_gate = PushGate(
            app.state.feature_store,
            app.state.quarantine,
            settings.repo_path,
            app.state.intents,
            app.state.receipts,
            app.state.lineage,
        )
        _recover(app, settings)  # before the first request (uvicorn listens once the lifespan has started)
        app.state.online_log.start(app.state.feature_store)  # background writer of the online log
        # Feast and its dependencies leave a few million long-lived objects; moving them out of the
        # collector's reach keeps full (gen 2) collections from pausing requests for 100+ ms.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            workers.shutdown()
            app.state.online_log.close()  # flushes the queued online log records
            app.state.lineage.dispose()
            app.state.openlineage.dispose()
            app.state.catalog.dispose()
            app.state.quarantine.dispose()
            app.state.drift_reports.dispose()
            app.state.receipts.dispose()
            app.state.intents.dispose()

    # /docs (Swagger UI) and /redoc from assets served here (the pinned fastapi-offline package ships
    # them), never from a CDN: the docs render on a machine without internet
    app = FastAPIOffline(
        title="feastline",
        version="0.1.0",
        description="Feature store service with lineage: point-in-time training sets, online features "
        "(drop-in for feast serve) and a lineage graph from raw data to models.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(RequestLimits, settings=settings)  # inside the metrics middleware: 408/413 are counted
    install_metrics(app)
    install_online_monitoring(app, settings)  # app.state.online_log, parity gauges on app.state.metrics
    for module in (
        health,
        training_sets,
        online,
        push,
        lineage,
        lineage_view,
        lineage_export,
        models,
        materialize,
        metrics,
        monitoring_drift,
        monitoring_online,
        monitoring_freshness,
        monitoring_view,
    ):
        # every route may answer 422 (a parameter) and 503 (overloaded, a store or storage fault)
        app.include_router(module.router, responses=problem_responses(422, 503))

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = use_problem_media_type(
                get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _recover(app: FastAPI, settings: Settings) -> None:
    """The recovery pass over what the app opened; a failure is logged, never stops the start (the
    storage it cannot repair shows in ``/health/ready``)."""
    jobs = JobStore(settings.lineage_database_url)
    state = app.state
    try:
        recover(
            Stores(
                settings,
                state.feature_store,
                state.lineage,
                state.catalog,
                state.openlineage,
                state.intents,
                jobs,
                state.quarantine,
                state.receipts,
            )
        )
    except Exception:
        log.exception("the recovery pass failed; it runs again at the next start")
    finally:
        jobs.dispose()
