"""``GET /monitoring/view``: a drift report drawn as a self-contained HTML page (inline SVG, no
JavaScript, no external assets), with the latest parity reports and the freshness of every online
view (rendering: service/monitoring/page.py)."""

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from service.clock import service_now
from service.deps import SettingsDep, StoreDep
from service.errors import at_field, problem_responses
from service.monitoring.freshness import freshness
from service.monitoring.page import render_page
from service.monitoring.reports import DriftReportNotFound
from service.routers.monitoring_drift import drift_reports
from service.workers import WorkerRoute

router = APIRouter(tags=["monitoring"], route_class=WorkerRoute)


@router.get(
    "/monitoring/view",
    response_class=HTMLResponse,
    responses={
        200: {
            "description": "the page: HTML with inline SVG and CSS, no script, no external asset",
            "content": {"text/html": {"schema": {"type": "string"}}},
        },
        **problem_responses(404),
    },
)
def monitoring_view(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    drift: str = Query(
        ..., min_length=1, description="id of a stored drift report", examples=["drift-0123456789abcdef"]
    ),
) -> HTMLResponse:
    """The drift report ``drift`` as an HTML page: its table; a PSI chart (one bar per feature against
    its warn and drift thresholds, in its verdict's colour); per feature, the baseline's and the
    target's shares of values on the baseline's bins (one SVG histogram per feature, both sides as bars
    on one axis, bins labelled by their edges or categories); the latest parity report of each feature
    service this process computed (``POST /monitoring/parity``); and the freshness of every online
    feature view at the service clock (as ``GET /monitoring/freshness``).

    Errors (``application/problem+json``): 404 no stored drift report ``drift`` (field
    ``query.drift``); 422 an empty ``drift``; 503 the workers are all busy (``Retry-After``).
    """
    try:
        report = drift_reports(request).get(drift)
    except DriftReportNotFound as exc:
        raise at_field(exc, "query.drift") from None
    now = service_now(settings)
    views = freshness(store, settings.repo_path, now, request.app.state.push_gate.newest_pushed)
    fresh = {"now": now.isoformat().replace("+00:00", "Z"), "feature_views": [v.to_dict() for v in views]}
    return HTMLResponse(render_page(report, request.app.state.parity_gauges.latest(), fresh))
