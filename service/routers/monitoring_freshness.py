"""Monitoring, freshness: ``GET /monitoring/freshness``, each online feature view's age at the service
clock against its objective (``service.monitoring.freshness``)."""

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import Field

from service.clock import service_now
from service.deps import SettingsDep, StoreDep
from service.monitoring.freshness import SLO_TAG, freshness
from service.openapi import Answer
from service.workers import WorkerRoute

router = APIRouter(tags=["monitoring"], route_class=WorkerRoute)


class ViewFreshnessOut(Answer):
    name: str
    newest_event_time: datetime | None = Field(description="newest event time held online, UTC; null: none yet")
    age_seconds: float | None = Field(description="service clock minus newest_event_time, seconds")
    objective_seconds: float | None = Field(description=f"the view's tag {SLO_TAG}, seconds; null: none or bad")
    objective_problem: str | None = Field(description="why the tag's value was refused; null: no problem")
    status: Literal["ok", "late", "unknown"]


class FreshnessOut(Answer):
    now: datetime = Field(description="the service clock the ages are taken at, UTC")
    feature_views: list[ViewFreshnessOut]


@router.get("/monitoring/freshness", response_model=None, responses={200: {"model": FreshnessOut}})
def get_freshness(request: Request, store: StoreDep, settings: SettingsDep) -> dict[str, Any]:
    """Each online feature view, sorted by name: ``{"now", "feature_views": [{"name",
    "newest_event_time", "age_seconds", "objective_seconds", "objective_problem", "status"}]}``.

    ``newest_event_time`` is the newest event time feastline wrote online for the view (materialized
    source rows up to the last materialized end, and pushes this process accepted); ``age_seconds`` the
    service clock minus it (negative when the clock is pinned before the data's end); the objective is
    the view's tag ``feastline.freshness_slo`` (``90s``, ``30m``, ``2h``, ``1d``: a whole number and one
    unit). ``status``: ``ok`` (age ≤ objective), ``late``, or ``unknown`` (no objective, a refused one,
    or nothing online yet). A bad tag value is reported in ``objective_problem``, never an error.
    """
    now = service_now(settings)
    views = freshness(store, settings.repo_path, now, request.app.state.push_gate.newest_pushed)
    return {"now": now.isoformat().replace("+00:00", "Z"), "feature_views": [v.to_dict() for v in views]}
