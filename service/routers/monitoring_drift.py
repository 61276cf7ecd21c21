"""Monitoring, drift: training-set profiles and drift reports (``service.monitoring``).

- ``GET /training-sets/{id}/profile``: the profile stored with a training set (the drift baseline);
- ``POST /monitoring/drift``: a drift report of a target against a baseline training set (or the set a
  model was trained on), stored, attached to lineage and emitted to OpenLineage;
- ``GET /monitoring/drift/{id}``: a stored report.
"""

from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict

from service.deps import CatalogDep, LineageDep, SettingsDep, StoreDep
from service.errors import problem_responses
from service.formats import BINARY, JSON, UnsupportedMediaType, parse_json_body, read_table
from service.monitoring.drift import BaselineIn, DriftRequest, ModelBaseline, baseline_profile, public, run_drift
from service.monitoring.profiles import profile_path, read_profile
from service.monitoring.reports import DriftReports
from service.openapi import TIMEZONE, request_body_doc
from service.routers.training_sets import refuse_unknown_query
from service.training.training_sets import TrainingSetOptions, resolve
from service.workers import WorkerRoute, workers_of

router = APIRouter(tags=["monitoring"], route_class=WorkerRoute)


def drift_reports(request: Request) -> DriftReports:
    """The app's drift report store (opened in the lifespan)."""
    reports: DriftReports = request.app.state.drift_reports
    return reports


# -- answers (documentation only: routes answer plain dicts) ------------------------------------------


class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class ColumnProfileOut(_Answer):
    name: str
    role: Literal["join_key", "event_timestamp", "feature", "passthrough"]
    feature: str | None
    dtype: str
    kind: Literal["numeric", "categorical", "timestamp", "other"]
    count: int
    nulls: int
    degenerate: Literal["all_null", "all_equal"] | None


class ProfileOut(_Answer):
    training_set_id: str
    version: int
    row_count: int
    columns: list[ColumnProfileOut]


class FeatureDriftOut(_Answer):
    name: str
    psi: float | None
    js: float | None
    test: Literal["ks", "chi2"] | None
    p_value: float | None
    null_rate_baseline: float | None
    null_rate_target: float | None
    verdict: Literal["ok", "warn", "drift"]


class DriftOut(_Answer):
    id: str
    created_at: str
    verdict: Literal["ok", "warn", "drift"]
    baseline: dict[str, Any]
    target: dict[str, Any]
    features: list[FeatureDriftOut]


# -- profile -----------------------------------------------------------------------------------------


@router.get(
    "/training-sets/{ts_id}/profile",
    response_model=None,
    responses={200: {"model": ProfileOut}, **problem_responses(404, 410)},
)
def get_training_set_profile(ts_id: str, catalog: CatalogDep, store: StoreDep, settings: SettingsDep) -> dict[str, Any]:
    """The profile stored with a training set when it was created: ``{"training_set_id", "version",
    "row_count", "columns": [...]}``, one entry per column with ``name``, ``role`` (``join_key``,
    ``event_timestamp``, ``feature``, ``passthrough``), ``feature`` (``view:feature``), ``dtype``,
    ``kind`` (``numeric``, ``categorical``, ``timestamp``, ``other``), ``count``, ``nulls``, ``degenerate``
    (``all_null``, ``all_equal`` or null) and, by kind: numeric ``min``/``max``/``mean``/``std``,
    ``infinite``, ``quantiles`` (the 11 equal-frequency edges), ``bin_edges`` (inner edges, ties
    collapsed: bins ``(-inf, e1], ..., (ek, +inf)``), ``ties`` and ``counts``; categorical ``distinct``,
    ``categories`` (top 20), ``counts`` and ``other``; timestamp ``min``/``max``.

    A set stored before profiles existed is profiled on first request. Errors: 404 unknown training
    set; 410 the set was deleted and had no stored profile.
    """
    record = catalog.get(ts_id).located(settings.training_sets_path)
    profile = read_profile(profile_path(record.data_path))
    if profile is None:
        record.check_present()
        _, plan = resolve(store, TrainingSetOptions(**record.options))
        profile = baseline_profile(record, plan)
    return {"training_set_id": ts_id, **profile}


# -- drift -------------------------------------------------------------------------------------------

DRIFT_QUERY = ("baseline_training_set_id", "model_name", "model_version", "features", "timezone")
BODY_DOC = request_body_doc(DriftRequest, timezone=TIMEZONE)
# The Parquet / Arrow bodies are described in words only: listed as request content, schemathesis (which
# has no serializer for them) stops at this operation ("Serialization not possible"); see the report.


@router.post(
    "/monitoring/drift",
    status_code=201,
    openapi_extra=BODY_DOC,
    response_model=None,
    responses={201: {"model": DriftOut}, **problem_responses(400, 404, 409, 410, 413, 415, 422, 503)},
)
async def post_drift(
    request: Request,
    store: StoreDep,
    lineage: LineageDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    baseline_training_set_id: str | None = Query(None, min_length=1, description="with a Parquet/Arrow body"),
    model_name: str | None = Query(None, min_length=1, description="with a Parquet/Arrow body, with model_version"),
    model_version: str | None = Query(None, min_length=1, description="with a Parquet/Arrow body, with model_name"),
    features: list[str] = Query([], description="with a Parquet/Arrow body: columns to assess, repeated"),
    timezone: str | None = Query(None, description="with a Parquet/Arrow body", json_schema_extra=TIMEZONE),
) -> Response:
    """Drift of a target against a baseline training set: stored, answered with its id.

    JSON body: ``{"baseline": {"training_set_id"} | {"model": {"name", "version"}}, "target":
    {"training_set_id"} | {"window": {"start", "end"}} | {"entity_rows": [...]}, "features": [...],
    "timezone"}``. A model resolves, through lineage, to the training set it was registered on; a
    window's entity rows are the online log's requests in it (``start <= logged_at < end``); entity
    rows (JSON, or the whole body as Parquet / an Arrow stream with the baseline as query parameters
    ``baseline_training_set_id`` or ``model_name`` + ``model_version``) are joined point in time with the
    baseline's features and options, as ``POST /training-sets`` would join them.

    Answer (201): ``{"id", "created_at", "verdict", "baseline", "target", "features": [{"name",
    "psi", "js", "test", "statistic", "p_value", "null_rate_baseline", "null_rate_target", "verdict",
    "thresholds": {"warn", "drift", "source"}, "kind", "feature", "node", "values_baseline",
    "values_target"}]}``. PSI on the baseline's stored bins (ε = 1e-6), Jensen-Shannon distance
    (base 2) on the same bins, KS (numeric, on the baseline's stored rows) or chi-square (categorical)
    p-values. Verdict per feature from PSI: ``drift`` at or above the drift threshold, ``warn`` at or
    above the warn threshold, else ``ok`` (defaults 0.1 / 0.2; tags
    ``feastline.psi_warn`` / ``feastline.psi_drift`` on the feature or its view override them); a side without
    values: PSI null, verdict ``ok`` if both sides have none, else ``drift``. The report's verdict is the
    worst.

    Errors: 400 malformed body; 404 unknown training set, model or report; 409 a threshold tag in the
    repo is not a number (or warn > drift), or a window target while the online feature log is not part
    of this build; 410 a deleted training set; 413 a body over its limit; 415
    unsupported content type; 422 invalid body (not exactly one baseline or target, a window whose
    start is not before its end, a feature the baseline does not hold or that is neither numeric nor
    categorical, invalid entity rows, an empty window, a target lacking a column); 503 the workers are
    all busy (``Retry-After``).
    """
    media = request.headers.get("content-type", JSON).split(";")[0].strip() or JSON
    if media not in (JSON, *BINARY):
        raise UnsupportedMediaType(media, (JSON, *BINARY))
    refuse_unknown_query(request, DRIFT_QUERY, json_body=media == JSON)
    body = await request.body()
    reports = drift_reports(request)

    def work() -> Response:
        if media == JSON:
            parsed: Any = parse_json_body(body, DriftRequest)
        else:
            baseline = _query_baseline(baseline_training_set_id, model_name, model_version)
            parsed = (baseline, read_table(body, media), features or None, timezone)
        report = run_drift(parsed, store, catalog, lineage, reports, settings)
        return JSONResponse(public(report), status_code=201, headers={"Location": f"/monitoring/drift/{report['id']}"})

    return await workers_of(request).work.run(work)


def _query_baseline(training_set_id: str | None, name: str | None, version: str | None) -> BaselineIn:
    """The baseline named by query parameters. Raises: RequestValidationError (422) unless exactly one
    of ``baseline_training_set_id`` and ``model_name`` + ``model_version`` is given."""
    model = (name, version) != (None, None)
    if (training_set_id is None) == (not model) or (model and (name is None or version is None)):
        msg = "give baseline_training_set_id, or model_name and model_version"
        loc = ("query", "baseline_training_set_id")
        raise RequestValidationError([{"type": "value_error", "loc": loc, "msg": msg, "input": None}])
    if model:
        return BaselineIn(model=ModelBaseline(name=str(name), version=str(version)))
    return BaselineIn(training_set_id=training_set_id)


@router.get(
    "/monitoring/drift/{drift_id}",
    response_model=None,
    responses={200: {"model": DriftOut}, **problem_responses(404)},
)
def get_drift(drift_id: str, request: Request) -> dict[str, Any]:
    """A stored drift report, as ``POST /monitoring/drift`` answered it. Errors: 404 unknown id."""
    return public(drift_reports(request).get(drift_id))
