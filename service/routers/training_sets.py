"""``/training-sets``: point-in-time-correct training sets over HTTP, stored and reproducible.

Input: a JSON body (``TrainingSetRequest``) for small sets, or the entity table as Parquet
(``application/vnd.apache.parquet``) or Arrow IPC stream (``application/vnd.apache.arrow.stream``)
with the options as query parameters, for any size. Output: the ``Accept`` header picks JSON,
Parquet or Arrow (default: the request's own format).
"""

from pathlib import Path
from typing import Any

import pandas as pd
from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from service.deps import CatalogDep, LineageDep, SettingsDep, StoreDep
from service.errors import problem_responses
from service.formats import (
    BINARY,
    JSON,
    PARQUET,
    UnsupportedMediaType,
    frame_to_records,
    negotiate,
    parse_json_body,
    read_table,
    write_table,
)
from service.training.entity_rows import entity_frame, entity_frame_from_table
from service.training.offline.errors import TooLargeForJson
from service.training.training_sets import (
    TrainingSetOptions,
    TrainingSetOut,
    TrainingSetRequest,
    create_training_set,
    reproduce,
    resolve,
)
from service.workers import WorkerRoute, workers_of

router = APIRouter(tags=["training sets"], route_class=WorkerRoute)

OPTION_PARAMETERS = ("feature_service", "features", "full_feature_names", "timezone", "allow_created_after_entity")
REPEATABLE = ("features",)  # every other option takes one value: given twice, it is a 422, not "the last wins"


def refuse_unknown_query(request: Request, known: tuple[str, ...], json_body: bool) -> None:
    """422 for a query parameter the route does not read (``?foo=bar``, a typo such as ``?feature=``),
    for a single-valued option given more than once (``?full_feature_names=true&full_feature_names=false``),
    and for options sent as query parameters next to a JSON body (they belong in the body): never
    ignored silently.

    Raises:
        RequestValidationError: one error per parameter, at ``query.<name>``.
    """
    errors = []
    for name in dict.fromkeys(request.query_params.keys()):
        kind = "extra_forbidden"
        if name not in known:
            msg = f"unknown query parameter; this endpoint reads {', '.join(known)}"
        elif json_body:
            msg = "with a JSON body, options go in the body, not in the query"
        elif name not in REPEATABLE and len(values := request.query_params.getlist(name)) > 1:
            kind, msg = "value_error", f"takes one value, given {len(values)} times ({', '.join(map(repr, values))})"
        else:
            continue
        errors.append({"type": kind, "loc": ("query", name), "msg": msg, "input": None})
    if errors:
        raise RequestValidationError(errors)


BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            JSON: {"schema": TrainingSetRequest.model_json_schema()},
            PARQUET: {"schema": {"type": "string", "format": "binary"}},
            "application/vnd.apache.arrow.stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.post(
    "/training-sets",
    status_code=201,
    openapi_extra=BODY_DOC,
    response_model=None,
    responses={201: {"model": TrainingSetOut}, **problem_responses(400, 404, 406, 408, 409, 413, 415, 422, 503)},
)
async def post_training_set(
    request: Request,
    store: StoreDep,
    lineage: LineageDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    feature_service: str | None = Query(None, description="with a Parquet/Arrow body"),
    features: list[str] = Query([], description="with a Parquet/Arrow body: 'view:feature', repeated"),
    full_feature_names: bool = Query(False, description="with a Parquet/Arrow body"),
    timezone: str | None = Query(None, description="with a Parquet/Arrow body: assumed for naive timestamps"),
    allow_created_after_entity: bool = Query(False, description="with a Parquet/Arrow body"),
) -> Response:
    """Build, audit and store a training set: one row per entity row, in input order.

    Each feature comes from the latest feature row with event time ≤ the row's ``event_timestamp``,
    created ≤ it, and no older than the view's TTL; null if none. Other columns pass through unchanged.
    Timestamps in answers are UTC. The JSON answer is ``{"id", "row_count", "columns", "fingerprint",
    "audit", "rows"}``; a binary answer carries the id in ``X-Training-Set-Id``.

    Errors (``application/problem+json``): 400 malformed body; 404 unknown feature service or feature;
    406 ``Accept`` names none of JSON, Parquet, Arrow; 408 the body stopped arriving; 409 leakage audit
    failed (no data); 413 too many rows for JSON, or a body over ``FEASTLINE_MAX_TRAINING_SET_JSON_BYTES``
    (JSON) / ``FEASTLINE_MAX_TRAINING_SET_TABLE_BYTES`` (Parquet, Arrow); 415 unsupported content type;
    422 invalid entity rows (every bad row and field listed), or a query parameter this endpoint does
    not read (or options in the query next to a JSON body); 503 with ``Retry-After``: the workers are
    all busy (nothing done).
    """
    media = request.headers.get("content-type", JSON).split(";")[0].strip() or JSON
    if media not in (JSON, *BINARY):
        raise UnsupportedMediaType(media, (JSON, *BINARY))
    refuse_unknown_query(request, OPTION_PARAMETERS, json_body=media == JSON)
    answer = negotiate(request.headers.get("accept"), default=JSON if media == JSON else PARQUET)
    body = await request.body()
    query_options = {
        "feature_service": feature_service,
        "features": features,
        "full_feature_names": full_feature_names,
        "timezone": timezone,
        "allow_created_after_entity": allow_created_after_entity,
    }

    def build() -> Response:  # on a worker: decoding, validation, the join, storing, encoding the answer
        return _build_training_set(body, media, answer, query_options, store, catalog, lineage, settings)

    return await workers_of(request).work.run(build)


def _build_training_set(
    body: bytes,
    media: str,
    answer: str,
    query_options: dict[str, Any],
    store: Any,
    catalog: Any,
    lineage: Any,
    settings: Any,
) -> Response:
    """The body of ``POST /training-sets`` after its bytes arrived: the 201 answer in ``answer``'s format."""
    if media in BINARY:
        opts = TrainingSetOptions(**query_options)
        refs, plan = resolve(store, opts)
        entity_df = entity_frame_from_table(read_table(body, media), plan, opts.timezone)
    else:
        opts = parse_json_body(body, TrainingSetRequest)
        refs, plan = resolve(store, opts)
        entity_df = entity_frame(opts.entity_rows, plan, opts.timezone)
    if answer == JSON and len(entity_df) > settings.max_json_rows:
        raise TooLargeForJson(len(entity_df), settings.max_json_rows)
    base = TrainingSetOptions(**opts.model_dump(include=set(TrainingSetOptions.model_fields)))
    ts = create_training_set(store, catalog, lineage, base, entity_df, plan, refs, settings.training_sets_path)
    headers = {
        "Location": f"/training-sets/{ts.record.id}",
        "X-Training-Set-Id": ts.record.id,
        "X-Training-Set-Fingerprint": ts.record.fingerprint,
    }
    if answer == JSON:
        content = {
            "id": ts.record.id,
            "row_count": ts.record.row_count,
            "columns": ts.record.columns,
            "fingerprint": ts.record.fingerprint,
            "audit": ts.record.audit,
            "rows": frame_to_records(ts.frame),
        }
        return JSONResponse(content, status_code=201, headers=headers)
    # Parquet: the stored file itself, so the bytes answered are the bytes kept (and not encoded twice)
    data = Path(ts.record.data_path).read_bytes() if answer == PARQUET else write_table(ts.frame, answer)
    return Response(data, status_code=201, media_type=answer, headers=headers)


@router.get("/training-sets/{ts_id}", responses=problem_responses(404))
def get_training_set(ts_id: str, catalog: CatalogDep) -> dict[str, Any]:
    """Metadata of a stored training set: fingerprint, inputs' hashes, options, leakage audit. 404 if unknown."""
    return catalog.get(ts_id).to_dict()


@router.get("/training-sets/{ts_id}/data", responses=problem_responses(404, 406, 413))
def get_training_set_data(ts_id: str, request: Request, catalog: CatalogDep, settings: SettingsDep) -> Response:
    """The stored rows: Parquet by default; ``Accept: application/json`` or the Arrow stream type also work.

    Errors: 404 unknown training set; 406 ``Accept`` names none of those types, or JSON was asked for
    and the rows hold ±inf; 413 JSON asked for and more than ``FEASTLINE_MAX_JSON_ROWS`` rows (ask for
    Parquet or Arrow).
    """
    record = catalog.get(ts_id)
    answer = negotiate(request.headers.get("accept"), default=PARQUET)
    if answer == JSON and record.row_count > settings.max_json_rows:
        raise TooLargeForJson(record.row_count, settings.max_json_rows, field="header.accept")
    frame = pd.read_parquet(record.data_path)
    if answer == JSON:
        return JSONResponse(
            {
                "id": ts_id,
                "row_count": len(frame),
                "columns": list(frame.columns),
                "rows": frame_to_records(frame),
            }
        )
    return Response(write_table(frame, answer), media_type=answer, headers={"X-Training-Set-Id": ts_id})


@router.post("/training-sets/{ts_id}/reproduce", responses=problem_responses(404))
def reproduce_training_set(ts_id: str, store: StoreDep, catalog: CatalogDep) -> dict[str, Any]:
    """Recompute from the stored entity table with the repo as it is now.

    Answers ``{"id", "identical", "data_identical", "inputs_identical", "fingerprint_then",
    "fingerprint_now", "changed_sources", "changed_views", "differences"}``. ``data_identical``: the
    recomputed rows equal the stored ones; ``inputs_identical``: the fingerprint is unchanged (no
    source file or view definition changed); ``identical``: both. ``changed_sources`` and
    ``changed_views`` name what changed; ``differences`` names the differing columns and rows.
    """
    store.refresh_registry()
    return reproduce(store, catalog.get(ts_id))
