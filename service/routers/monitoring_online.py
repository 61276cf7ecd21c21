"""``/monitoring/online-log`` and ``/monitoring/parity``: what was served online, and whether the
offline point-in-time engine gives the same values (service/monitoring/online_log.py, parity.py)."""

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from service.deps import SettingsDep, StoreDep
from service.errors import problem_responses
from service.formats import PARQUET, acceptable, json_content_type, write_table
from service.monitoring.online_log import logged_services, read_log
from service.monitoring.parity import CAUSES, parity_report
from service.openapi import binary_content
from service.routers.materialize import IsoTime
from service.routers.training_sets import as_records, fitting
from service.training.offline.views import service_references
from service.workers import WorkerRoute

router = APIRouter(tags=["monitoring"], route_class=WorkerRoute)


def _window_problem(start: Any, end: Any, where: str) -> None:
    if end <= start:
        error = {"type": "value_error", "loc": (where, "end"), "msg": f"must be after start ({start})", "input": None}
        raise RequestValidationError([error])


@router.get(
    "/monitoring/online-log",
    operation_id="get_online_log",
    response_model=None,
    responses={
        200: {
            "description": "the logged reads: Parquet (default), an Arrow stream, or JSON "
            '(`{"row_count", "columns", "rows"}`) when asked for and at most FEASTLINE_MAX_JSON_ROWS rows',
            "content": binary_content(PARQUET, "application/vnd.apache.arrow.stream")
            | {"application/json": {"schema": {"type": "object"}}},
        },
        **problem_responses(404, 406),
    },
)
def get_online_log(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    start: AwareDatetime = Query(description="first service-clock time included (ISO 8601 with Z or an offset)"),
    end: AwareDatetime = Query(description="end of the window, excluded; after start"),
    feature_service: str | None = Query(None, min_length=1, description="only this feature service's reads"),
) -> Response:
    """The online reads logged with ``start <= logged_at < end``: one row per served entity.

    Columns: ``request_id``, ``logged_at`` (UTC), ``sequence`` (per request, increasing), ``row``
    (position in the request), ``feature_service``, the entity columns (join keys, request fields), then
    per feature its value as answered, ``<feature>__status`` and ``<feature>__event_timestamp``.
    Parquet by default; ``Accept`` picks JSON or the Arrow stream (JSON only up to
    ``FEASTLINE_MAX_JSON_ROWS`` rows: past it the next acceptable type, or a 406 naming the binary
    types). Logging is sampled per feature service (tag ``feastline.log_sample_rate``) and old hours
    are deleted after ``FEASTLINE_ONLINE_LOG_RETENTION_HOURS``.

    Errors: 404 ``feature_service`` neither in the registry nor in the log; 406 ``Accept`` names no
    type answered; 422 a time without offset, or ``end`` not after ``start``.
    """
    _window_problem(start, end, "query")
    if feature_service is not None and feature_service not in logged_services(settings):
        service_references(store, feature_service)  # 404 when not in the registry either
    choices = acceptable(request.headers.get("accept"), default=PARQUET)
    frame = read_log(settings, start, end, feature_service)
    answer, rows = as_records(fitting(choices, len(frame), settings.max_json_rows), frame)
    if rows is not None:
        return JSONResponse({"row_count": len(frame), "columns": [str(c) for c in frame.columns], "rows": rows})
    return Response(write_table(frame, answer), media_type=answer)


class ParityWindow(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    start: IsoTime = Field(description="first service-clock time replayed")
    end: IsoTime = Field(description="end of the window, excluded; after start")

    @field_validator("end")
    @classmethod
    def _after_start(cls, end: Any, info: ValidationInfo) -> Any:
        start = info.data.get("start")
        if start is not None and end <= start:
            raise ValueError(f"must be after start ({start.isoformat()})")
        return end


class ParityRequest(BaseModel):
    """``POST /monitoring/parity`` body."""

    model_config = ConfigDict(strict=True, extra="forbid")
    feature_service: str = Field(min_length=1, examples=["delay_model_v1"])
    window: ParityWindow
    max_mismatches: int = Field(1000, ge=0, le=100_000, description="most mismatching values listed (all counted)")

    @field_validator("max_mismatches", mode="before")
    @classmethod
    def _integral(cls, value: Any) -> Any:
        """``10.0`` is ``10``: a JSON number without a fraction is an integer (JSON Schema's reading)."""
        return int(value) if isinstance(value, float) and value.is_integer() else value


class ParityFeatureOut(BaseModel):
    name: str
    feature_view: str
    compared: int
    matches: int
    match_rate: float | None
    statuses: dict[str, int] = Field(description="online status -> count")
    offline_nulls: int = 0
    causes: dict[str, int] = Field(default_factory=dict, description=f"cause -> mismatches; causes: {list(CAUSES)}")


class ParityMismatchOut(BaseModel):
    request_id: str
    sequence: int
    row: int
    logged_at: str
    entity: dict[str, Any]
    feature: str
    online_status: str | None
    online_value: Any
    online_event_timestamp: str | None
    offline_value: Any
    offline_event_timestamp: str | None
    cause: str = Field(description=f"one of {list(CAUSES)}")


class ParityOut(BaseModel):
    feature_service: str
    window: dict[str, str]
    requests: int
    rows: int
    match_rate: float | None = Field(description="matching values / compared values, 0-1; null when none")
    features: list[ParityFeatureOut]
    causes: dict[str, int]
    mismatch_count: int
    mismatches: list[ParityMismatchOut]


@router.post(
    "/monitoring/parity",
    operation_id="online_offline_parity",
    dependencies=[Depends(json_content_type)],
    response_model=None,
    responses={200: {"model": ParityOut}, **problem_responses(400, 404, 409, 415, 503)},
)
def online_offline_parity(req: ParityRequest, request: Request, store: StoreDep, settings: SettingsDep) -> JSONResponse:
    """Replay the window's logged online reads of a feature service through the point-in-time engine
    (the training-set path, entity rows = the logged keys at their logged times, in log order) and
    compare value by value.

    Answers the exact-match rate overall and per feature, the online status counts, and the
    mismatching values (up to ``max_mismatches``, all counted) with the online value, the offline
    value, both event times and the most likely cause: ``pushed online but not offline``,
    ``materialization behind the clock``, ``TTL expiry differs``, ``value changed by a later
    backfill``, ``type/precision`` or ``unexplained`` (how each is decided: service/monitoring/parity.py).
    The report sets the ``feastline_parity_*`` gauges of ``/metrics``. An empty window answers 0 rows.

    Errors: 404 unknown feature service; 409 the replay's leakage audit failed; 415 not JSON; 422 a
    time without offset, ``end`` not after ``start``, unknown keys; 503 a source file missing.
    """
    report = parity_report(
        store, settings, req.feature_service, req.window.start, req.window.end, max_listed=req.max_mismatches
    )
    if report["rows"]:
        request.app.state.parity_gauges.record(report)
    return JSONResponse(report)
