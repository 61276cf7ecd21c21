"""``GET /metrics``: Prometheus text format (see ``service.metrics``)."""

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from service.clock import service_now
from service.deps import SettingsDep, StoreDep
from service.monitoring.freshness import freshness
from service.workers import WorkerRoute

router = APIRouter(tags=["operations"], route_class=WorkerRoute)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}, "description": "Prometheus text"}
    },
)
def metrics(request: Request, store: StoreDep, settings: SettingsDep) -> Response:
    """Prometheus text format. Freshness per online view = service clock minus the newest event time
    the online store holds for it (newest materialized source row, or newest pushed row), seconds.
    Negative in a replay pinned before the data's end: the store holds values newer than the clock.
    The view's objective (tag ``feastline.freshness_slo``) in seconds beside it (``service.monitoring.freshness``).
    Drift per feature: the PSI and verdict of its newest drift report (``service.metrics``)."""
    views = freshness(store, settings.repo_path, service_now(settings), request.app.state.push_gate.newest_pushed)
    ages = {v.name: v.age_seconds for v in views if v.age_seconds is not None}
    objectives = {v.name: v.objective_seconds for v in views if v.objective_seconds is not None}
    drift = request.app.state.drift_reports.latest()
    return request.app.state.metrics.render(ages, objectives=objectives, drift=drift)
