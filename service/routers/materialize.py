"""``/materialize``, ``/materialize-incremental`` and ``/jobs/{id}``: materialization as background jobs.

A POST validates the request (unknown view 404; naive, inverted or malformed times, or an ``end`` after
the service clock 422), stores a
``queued`` job and answers ``202`` with ``Location: /jobs/{id}``; one worker thread runs the jobs in
order (:func:`service.materialization.jobs.run_job`). The worker and the job table are opened by this
router's own lifespan, which FastAPI nests inside the app's (so ``app.state.settings``,
``app.state.lineage`` and ``app.state.intents`` exist, and the app's recovery pass has already marked
jobs whose process stopped failed, "interrupted"); at shutdown the running job is finished and the
jobs still queued are marked the same.
"""

from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationInfo,
    field_validator,
)
from starlette.concurrency import run_in_threadpool

from service.clock import service_now
from service.deps import LineageDep, SettingsDep, StoreDep
from service.errors import at_field, problem_responses
from service.formats import json_content_type
from service.materialization.jobs import JobStore, interrupt, queue_job, run_job
from service.materialization.materializer import (
    DEFAULT_LOOKBACK,
    EPOCH,
    JobNotFound,
    MaterializationRequestInvalid,
    UnknownFeatureView,
    check_end,
    iso,
    online_views,
)
from service.openapi import JobOut
from service.workers import WorkerRoute


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    jobs = JobStore(app.state.settings.lineage_database_url)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="materialize")
    app.state.materialization_jobs, app.state.materialization_executor = jobs, executor
    app.state.materialization_queued = queued = set()
    try:
        yield
    finally:
        await run_in_threadpool(executor.shutdown, wait=True, cancel_futures=True)
        mine = sorted(queued & set(jobs.unfinished()))  # the queued jobs just cancelled
        await run_in_threadpool(interrupt, jobs, app.state.intents, mine)
        jobs.dispose()


router = APIRouter(tags=["materialization"], lifespan=_lifespan, route_class=WorkerRoute)
QUEUED_DOC = {
    "model": JobOut,
    "description": "queued: the job, also at Location",
    "headers": {"Location": {"schema": {"type": "string"}, "description": "/jobs/{id}"}},
    "links": {"GetJob": {"operationId": "get_job", "parameters": {"job_id": "$response.body#/id"}}},
}
JOB_ERRORS = problem_responses(400, 404, 415, 422)


async def get_jobs(request: Request) -> JobStore:
    return request.app.state.materialization_jobs


JobsDep = Annotated[JobStore, Depends(get_jobs)]


def _iso_text(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 string with Z or an offset, e.g. 2013-12-31T00:00:00Z")
    return value


def _in_range(value: datetime) -> datetime:
    """Event times are int64 nanoseconds downstream (DuckDB, pandas): 1677-09-22 .. 2262-04-11."""
    if not MIN_TIME <= value <= MAX_TIME:
        raise ValueError(f"must be between {MIN_TIME.date()} and {MAX_TIME.date()}")
    return value


MIN_TIME = datetime(1677, 9, 22, tzinfo=UTC)
MAX_TIME = datetime(2262, 4, 11, tzinfo=UTC)
IsoTime = Annotated[AwareDatetime, Strict(False), BeforeValidator(_iso_text), AfterValidator(_in_range)]
"""A JSON string, ISO 8601 with Z or an offset (a naive time is refused, not guessed); no epoch numbers."""


def _integral(value: Any) -> Any:
    """``86400.0`` -> ``86400``: a JSON number without a fraction is an integer (JSON Schema's reading)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


WholeSeconds = Annotated[int, BeforeValidator(_integral)]


class MaterializeRequest(BaseModel):
    """Load every entity's latest row with ``start <= event_ts < end``. Times need Z or an offset."""

    model_config = ConfigDict(strict=True, extra="forbid")
    start: IsoTime = Field(description=f"from {MIN_TIME.date()} on")
    end: IsoTime = Field(description="after start, and not after the service clock (FEASTLINE_NOW when set)")
    feature_views: list[str] | None = Field(
        None,
        description="online feature views (default: every online feature view); not empty",
        json_schema_extra={"minItems": 1},
    )

    @field_validator("end")
    @classmethod
    def _after_start(cls, end: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("start")
        if start is not None and end <= start:
            raise ValueError(f"must be after start ({start.isoformat()})")
        return end


class MaterializeIncrementalRequest(BaseModel):
    """Per view, from its last materialized end minus ``lookback_seconds`` (default one day) to ``end``."""

    model_config = ConfigDict(strict=True, extra="forbid")
    end: IsoTime | None = Field(
        None, description=f"default and latest: the service clock (FEASTLINE_NOW when set); from {MIN_TIME.date()} on"
    )
    lookback_seconds: WholeSeconds | None = Field(
        None, ge=0, le=100 * 365 * 86400, description=f"default {int(DEFAULT_LOOKBACK.total_seconds())}"
    )
    feature_views: list[str] | None = Field(
        None,
        description="online feature views (default: every online feature view); not empty",
        json_schema_extra={"minItems": 1},
    )
    default_start: IsoTime | None = Field(
        None, description=f"for a never-materialized view; default 1970; {MIN_TIME.date()} to {MAX_TIME.date()}"
    )


def _submit(
    request: Request, kind: str, args: dict[str, Any], views: list[str] | None, store: Any, jobs: JobStore, lineage: Any
) -> JSONResponse:
    try:
        count = len(online_views(store, views))
    except UnknownFeatureView as exc:  # named by the position of the first unknown name in the request
        raise at_field(exc, f"feature_views.{(views or []).index(exc.names[0])}") from None
    except MaterializationRequestInvalid as exc:
        error = {"type": "value_error", "loc": ("body", exc.field), "msg": str(exc), "input": views}
        raise RequestValidationError([error]) from exc
    state = request.app.state
    job = queue_job(jobs, state.intents, kind, {**args, "feature_views": views}, count)
    state.materialization_queued.add(job.id)
    state.materialization_executor.submit(run_job, job.id, state.settings.repo_path, jobs, lineage, state.intents)
    return JSONResponse(job.to_dict(), status_code=202, headers={"Location": f"/jobs/{job.id}"})


@router.post(
    "/materialize",
    status_code=202,
    dependencies=[Depends(json_content_type)],
    response_model=None,
    responses={202: QUEUED_DOC, **JOB_ERRORS},
)
def post_materialize(
    req: MaterializeRequest,
    request: Request,
    store: StoreDep,
    jobs: JobsDep,
    lineage: LineageDep,
    settings: SettingsDep,
) -> JSONResponse:
    """Queue a materialization of ``[start, end)``; ``202`` with the job and ``Location: /jobs/{id}``.

    Errors: 400 malformed JSON; 404 unknown feature view; 415 not ``application/json``; 422 naive timestamp,
    ``end <= start``, ``end`` after the service clock, a view that is not online.
    """
    args = {"start": iso(req.start), "end": iso(check_end(req.end, service_now(settings)))}
    return _submit(request, "materialize", args, req.feature_views, store, jobs, lineage)


@router.post(
    "/materialize-incremental",
    status_code=202,
    dependencies=[Depends(json_content_type)],
    response_model=None,
    responses={202: QUEUED_DOC, **JOB_ERRORS},
)
def post_materialize_incremental(
    req: MaterializeIncrementalRequest,
    request: Request,
    store: StoreDep,
    jobs: JobsDep,
    lineage: LineageDep,
    settings: SettingsDep,
) -> JSONResponse:
    """Queue an incremental materialization; ``202`` with the job and ``Location: /jobs/{id}``.

    The window of each view is decided when the job runs (after any job queued before it):
    ``[last end - lookback, end)``, so late rows (created after the last run, event time before its
    end) are loaded too; a view already materialized past ``end`` is listed in the job's ``views`` with
    ``skipped`` (the reason). Errors: 400 malformed JSON; 404 unknown feature view; 415 not JSON; 422
    naive timestamp, negative lookback, ``end`` after the service clock.
    """
    lookback = req.lookback_seconds if req.lookback_seconds is not None else int(DEFAULT_LOOKBACK.total_seconds())
    now = service_now(settings)
    args = {
        "end": iso(check_end(req.end, now) if req.end is not None else now),
        "lookback_seconds": lookback,
        "default_start": iso(req.default_start or EPOCH),
    }
    return _submit(request, "materialize-incremental", args, req.feature_views, store, jobs, lineage)


@router.get(
    "/jobs/{job_id}",
    operation_id="get_job",
    response_model=None,
    responses={200: {"model": JobOut}, **problem_responses(404)},
)
def get_job(job_id: str, jobs: JobsDep) -> dict[str, Any]:
    """A job: ``status`` (queued, running, completed, failed), ``progress``, per-view counts, ``error``."""
    try:
        return jobs.get(job_id).to_dict()
    except JobNotFound as exc:
        raise at_field(exc, "path.job_id") from None
