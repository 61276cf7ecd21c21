"""``GET /metrics``: Prometheus text format (see ``service.metrics``)."""

from datetime import UTC, datetime
from pathlib import Path

import duckdb
from fastapi import APIRouter, Request, Response
from feast import FeatureView
from prometheus_client import CONTENT_TYPE_LATEST

from service.clock import service_now
from service.deps import SettingsDep, StoreDep
from service.training.offline.views import batch_spec
from service.workers import WorkerRoute

router = APIRouter(tags=["operations"], route_class=WorkerRoute)


def _newest_materialized(repo: Path, fv: FeatureView) -> datetime | None:
    """Newest event time in the view's source among the intervals materialized so far (DuckDB, cached
    by file modification time)."""
    if not fv.materialization_intervals:
        return None
    end = max(e if e.tzinfo else e.replace(tzinfo=UTC) for _, e in fv.materialization_intervals)
    spec = batch_spec(repo, fv)
    if not spec.path.exists():
        return None
    key = (str(spec.path), spec.path.stat().st_mtime_ns, end)
    if key not in _NEWEST:
        ts = '"' + spec.timestamp_field.replace('"', '""') + '"'
        path = str(spec.path).replace("'", "''")
        with duckdb.connect() as con:
            row = con.execute(
                f"SELECT max(epoch_ns({ts})) FROM read_parquet('{path}') WHERE {ts} < ?", [end]
            ).fetchone()
        _NEWEST[key] = datetime.fromtimestamp(row[0] / 1e9, tz=UTC) if row and row[0] is not None else None
    return _NEWEST[key]


_NEWEST: dict[tuple[str, int, datetime], datetime | None] = {}


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
    Negative in a replay pinned before the data's end: the store holds values newer than the clock."""
    now = service_now(settings)
    pushed = request.app.state.push_gate.newest_pushed
    freshness: dict[str, float] = {}
    for fv in store.list_feature_views():
        if not fv.online:
            continue
        try:
            materialized = _newest_materialized(settings.repo_path, fv)
        except (duckdb.Error, OSError, ValueError, OverflowError):  # a scrape must never fail on one view
            materialized = None
        newest = [t for t in (materialized, pushed.get(fv.name)) if t is not None]
        if newest:
            freshness[fv.name] = (now - max(newest)).total_seconds()
    return request.app.state.metrics.render(freshness)
