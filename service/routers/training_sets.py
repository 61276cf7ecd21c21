"""``/training-sets``: point-in-time-correct training sets over HTTP, stored and reproducible.

Input: a JSON body (``TrainingSetRequest``) for small sets, or the entity table as Parquet
(``application/vnd.apache.parquet``) or Arrow IPC stream (``application/vnd.apache.arrow.stream``)
with the options as query parameters, for any size. Output: the ``Accept`` header picks JSON,
Parquet or Arrow (default: the request's own format).
"""

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pandas as pd
from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import AwareDatetime

from lineage import NodeKind
from service.deps import CatalogDep, LineageDep, SettingsDep, StoreDep
from service.errors import problem_responses
from service.formats import (
    ARROW_STREAM,
    BINARY,
    JSON,
    PARQUET,
    NotAcceptable,
    UnsupportedMediaType,
    acceptable,
    frame_to_records,
    json_answer,
    parse_json_body,
    read_table,
    write_table,
)
from service.openapi import (
    FEATURE_LIST,
    TIMEZONE,
    ReproduceOut,
    TrainingSetDataOut,
    TrainingSetJsonOut,
    TrainingSetRecordOut,
    binary_content,
    request_body_doc,
)
from service.training.catalog import stored_file
from service.training.entity_rows import entity_frame, entity_frame_from_table
from service.training.offline.errors import TooLargeForJson
from service.training.training_sets import (
    TrainingSetOptions,
    TrainingSetRequest,
    create_training_set,
    delete_training_set,
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


BODY_DOC = request_body_doc(TrainingSetRequest, entity_rows={"minItems": 1}, timezone=TIMEZONE)
BODY_DOC["requestBody"]["content"].update(binary_content(*BINARY))
ID_HEADERS = {
    "X-Training-Set-Id": {"schema": {"type": "string"}, "description": "the new training set's id"},
    "X-Training-Set-Fingerprint": {"schema": {"type": "string"}},
    "Location": {"schema": {"type": "string"}, "description": "/training-sets/{id}"},
}
LINKS = {  # what a client (and schemathesis' stateful phase) can do with the id of a new training set
    name: {"operationId": operation, "parameters": {"ts_id": "$response.header.X-Training-Set-Id"}}
    for name, operation in (
        ("GetTrainingSet", "get_training_set"),
        ("GetTrainingSetData", "get_training_set_data"),
        ("ReproduceTrainingSet", "reproduce_training_set"),
    )
}
CREATED_DOC = {
    "model": TrainingSetJsonOut,
    "description": "created: JSON (with a JSON body, or Accept: application/json), Parquet or an Arrow stream",
    "content": binary_content(*BINARY),
    "headers": ID_HEADERS,
    "links": LINKS,
}


@router.post(
    "/training-sets",
    status_code=201,
    openapi_extra=BODY_DOC,
    response_model=None,
    responses={201: CREATED_DOC, **problem_responses(400, 404, 406, 408, 409, 413, 415, 422, 503)},
)
async def post_training_set(
    request: Request,
    store: StoreDep,
    lineage: LineageDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    feature_service: str | None = Query(None, description="with a Parquet/Arrow body", min_length=1),
    features: list[str] = Query(
        [], description="with a Parquet/Arrow body: 'view:feature', repeated", json_schema_extra=FEATURE_LIST
    ),
    full_feature_names: bool = Query(False, description="with a Parquet/Arrow body"),
    timezone: str | None = Query(
        None, description="with a Parquet/Arrow body: assumed for naive timestamps", json_schema_extra=TIMEZONE
    ),
    allow_created_after_entity: bool = Query(False, description="with a Parquet/Arrow body"),
) -> Response:
    """Build, audit and store a training set: one row per entity row, in input order.

    Each feature comes from the latest feature row with event time ≤ the row's ``event_timestamp``,
    created ≤ it, and no older than the view's TTL; null if none. Other columns pass through unchanged.
    Timestamps in answers are UTC. The JSON answer is ``{"id", "row_count", "columns", "fingerprint",
    "audit", "rows"}``; a binary answer carries the id in ``X-Training-Set-Id``.

    ``Accept`` is followed in its order of preference (no ``Accept``: the request's own format first,
    then any): JSON first on a set too large for JSON (more than ``FEASTLINE_MAX_JSON_ROWS`` rows) or
    holding ±inf answers the next acceptable type, e.g. Parquet for ``application/json,
    application/vnd.apache.parquet;q=0.5``.

    Errors (``application/problem+json``): 400 malformed body; 404 unknown feature service or feature;
    406 ``Accept`` names none of JSON, Parquet, Arrow, or only JSON and JSON cannot carry the set (the
    problem names the binary types); 408 the body stopped arriving; 409 leakage audit failed (no data);
    413 a body over ``FEASTLINE_MAX_TRAINING_SET_JSON_BYTES`` (JSON) / ``FEASTLINE_MAX_TRAINING_SET_TABLE_BYTES``
    (Parquet, Arrow); 415 unsupported content type; 422 invalid entity rows (every bad row and field
    listed), or a query parameter this endpoint does not read (or options in the query next to a JSON
    body); 503 with ``Retry-After``: the workers are all busy (nothing done).
    """
    media = request.headers.get("content-type", JSON).split(";")[0].strip() or JSON
    if media not in (JSON, *BINARY):
        raise UnsupportedMediaType(media, (JSON, *BINARY))
    refuse_unknown_query(request, OPTION_PARAMETERS, json_body=media == JSON)
    choices = acceptable(request.headers.get("accept"), default=JSON if media == JSON else PARQUET)
    body = await request.body()
    query_options = {
        "feature_service": feature_service,
        "features": features,
        "full_feature_names": full_feature_names,
        "timezone": timezone,
        "allow_created_after_entity": allow_created_after_entity,
    }

    intents = request.app.state.intents

    def build() -> Response:  # on a worker: decoding, validation, the join, storing, encoding the answer
        return _build_training_set(body, media, choices, query_options, store, catalog, lineage, intents, settings)

    return await workers_of(request).work.run(build)


def _build_training_set(
    body: bytes,
    media: str,
    choices: list[str],
    query_options: dict[str, Any],
    store: Any,
    catalog: Any,
    lineage: Any,
    intents: Any,
    settings: Any,
) -> Response:
    """The body of ``POST /training-sets`` after its bytes arrived: the 201 answer in the first of the
    acceptable ``choices`` that can carry it."""
    if media in BINARY:
        opts = TrainingSetOptions(**query_options)
        refs, plan = resolve(store, opts)
        entity_df = entity_frame_from_table(read_table(body, media), plan, opts.timezone)
    else:
        opts = parse_json_body(body, TrainingSetRequest)
        refs, plan = resolve(store, opts)
        entity_df = entity_frame(opts.entity_rows, plan, opts.timezone)
    choices = fitting(choices, len(entity_df), settings.max_json_rows)
    base = TrainingSetOptions(**opts.model_dump(include=set(TrainingSetOptions.model_fields)))
    ts = create_training_set(
        store, catalog, lineage, intents, base, entity_df, plan, refs, settings.training_sets_path, settings
    )
    headers = {
        "Location": f"/training-sets/{ts.record.id}",
        "X-Training-Set-Id": ts.record.id,
        "X-Training-Set-Fingerprint": ts.record.fingerprint,
    }
    answer, rows = as_records(choices, ts.frame)
    if rows is not None:
        content = {
            "id": ts.record.id,
            "row_count": ts.record.row_count,
            "columns": ts.record.columns,
            "fingerprint": ts.record.fingerprint,
            "audit": ts.record.audit,
            "rows": rows,
        }
        return json_answer(content, status_code=201, headers=headers)
    # Parquet: the stored file itself, so the bytes answered are the bytes kept (and not encoded twice)
    if answer == PARQUET:
        data = stored_file(settings.training_sets_path, ts.record.data_path).read_bytes()
    else:
        data = write_table(ts.frame, answer)
    return Response(data, status_code=201, media_type=answer, headers=headers)


LIST_PARAMETERS = ("feature_service", "model", "created_after", "created_before", "include_deleted", "limit", "offset")


@router.get("/training-sets", responses=problem_responses(422))
def list_training_sets(
    request: Request,
    response: Response,
    catalog: CatalogDep,
    lineage: LineageDep,
    feature_service: str | None = Query(None, description="made from this feature service"),
    model: str | None = Query(
        None, description="trained on by this model: 'name@version', or 'name' for every version", examples=["m@1"]
    ),
    created_after: AwareDatetime | None = Query(None, description="created at or after (ISO 8601 with offset)"),
    created_before: AwareDatetime | None = Query(None, description="created before (ISO 8601 with offset)"),
    include_deleted: bool = Query(False, description="also deleted sets (their record is kept, their data is not)"),
    limit: int = Query(100, ge=1, le=1000, description="sets per page"),
    offset: int = Query(0, ge=0, description="sets to skip, for the next pages"),
) -> dict[str, Any]:
    """Stored training sets, newest first, one page: ``{"total", "limit", "offset", "next_offset",
    "training_sets": [<metadata as GET /training-sets/{id}>]}``, with a ``Link: rel="next"`` header
    while more follow. Filters combine (all must hold). Errors: 422 a malformed filter (a time without
    offset), ``limit`` outside 1-1,000, a query parameter this endpoint does not read.
    """
    refuse_unknown_query(request, LIST_PARAMETERS, json_body=False)
    ids = None
    if model is not None:
        graph = lineage.current_graph()
        ids = {
            str(node.attributes.get("training_set_id"))
            for node in graph.nodes()
            if node.ref.kind is NodeKind.MODEL and (node.ref.name == model or node.ref.name.split("@", 1)[0] == model)
        }
    total, page = catalog.list(
        feature_service=feature_service,
        created_after=created_after,
        created_before=created_before,
        ids=ids,
        include_deleted=include_deleted,
        limit=limit,
        offset=offset,
    )
    next_offset = offset + limit if offset + limit < total else None
    if next_offset is not None:
        params = [(k, v) for k, v in request.query_params.multi_items() if k not in ("limit", "offset")]
        response.headers["Link"] = (
            f'<{request.url.path}?{urlencode([*params, ("limit", limit), ("offset", next_offset)])}>; rel="next"'
        )
    return {
        "total": total,
        "limit": limit,
        "offset": offset,
        "next_offset": next_offset,
        "training_sets": [r.to_dict() for r in page],
    }


@router.get(
    "/training-sets/{ts_id}",
    operation_id="get_training_set",
    response_model=None,
    responses={200: {"model": TrainingSetRecordOut}, **problem_responses(404)},
)
def get_training_set(ts_id: str, catalog: CatalogDep) -> dict[str, Any]:
    """Metadata of a stored training set: fingerprint, inputs' hashes, options, leakage audit; a deleted
    set's too (``deleted_at`` set). 404 if unknown."""
    return catalog.get(ts_id).to_dict()


@router.delete("/training-sets/{ts_id}", responses=problem_responses(404, 409, 410))
def delete_training_set_route(
    ts_id: str, catalog: CatalogDep, lineage: LineageDep, settings: SettingsDep
) -> dict[str, Any]:
    """Delete a training set: its Parquet files (data and entity table) are removed; its catalog row
    and lineage node are kept, marked ``deleted_at``, so its history stays readable (``as_of`` a time
    before the deletion shows it as it was) and ``GET /training-sets/{id}`` still describes it.

    Answers the record (``deleted_at`` set) and ``files_removed``. Errors: 404 unknown; 409 a
    registered model was trained on it (``used_by`` names the models); 410 deleted already.
    """
    return delete_training_set(catalog, lineage, ts_id, datetime.now(UTC), settings.training_sets_path)


@router.get(
    "/training-sets/{ts_id}/data",
    operation_id="get_training_set_data",
    response_model=None,
    responses={
        200: {
            "model": TrainingSetDataOut,
            "description": "the rows: Parquet (default), an Arrow stream, or JSON",
            "content": binary_content(PARQUET, ARROW_STREAM),
            "headers": {"X-Training-Set-Id": ID_HEADERS["X-Training-Set-Id"]},
        },
        **problem_responses(404, 406, 410, 413),
    },
)
def get_training_set_data(ts_id: str, request: Request, catalog: CatalogDep, settings: SettingsDep) -> Response:
    """The stored rows: Parquet by default; ``Accept: application/json`` or the Arrow stream type also work.

    ``Accept`` is followed in its order of preference: JSON asked for first, on a set too large for
    JSON (more than ``FEASTLINE_MAX_JSON_ROWS`` rows) or holding ±inf, answers the next acceptable
    type (``application/json, application/vnd.apache.parquet;q=0.5``: Parquet). Errors: 404 unknown
    training set; 406 ``Accept`` names none of those types, or only JSON and JSON cannot carry the set
    (the problem names the binary types to ask for); 410 the set was deleted.
    """
    record = catalog.get(ts_id)
    record.check_present()
    choices = fitting(
        acceptable(request.headers.get("accept"), default=PARQUET), record.row_count, settings.max_json_rows
    )
    frame = pd.read_parquet(stored_file(settings.training_sets_path, record.data_path))
    answer, rows = as_records(choices, frame)
    if rows is not None:
        return json_answer({"id": ts_id, "row_count": len(frame), "columns": list(frame.columns), "rows": rows})
    return Response(write_table(frame, answer), media_type=answer, headers={"X-Training-Set-Id": ts_id})


def fitting(choices: list[str], rows: int, max_json_rows: int) -> list[str]:
    """``choices`` without JSON when ``rows`` is more than a JSON answer may carry.

    Raises:
        TooLargeForJson: JSON was the only acceptable type (406, naming the binary types).
    """
    if rows <= max_json_rows or JSON not in choices:
        return choices
    rest = [c for c in choices if c != JSON]
    if not rest:
        raise TooLargeForJson(rows, max_json_rows, field="header.accept", supported=BINARY)
    return rest


def as_records(choices: list[str], frame: pd.DataFrame) -> tuple[str, list[dict[str, Any]] | None]:
    """The answer's type and, for JSON, the rows; JSON first in ``choices`` but unable to carry the
    rows (±inf) gives the next acceptable type.

    Raises:
        NotAcceptable: JSON was the only acceptable type and cannot carry the rows (406).
    """
    if choices[0] != JSON:
        return choices[0], None
    try:
        return JSON, frame_to_records(frame)
    except NotAcceptable:
        if len(choices) == 1:
            raise
        return choices[1], None


@router.post(
    "/training-sets/{ts_id}/reproduce",
    operation_id="reproduce_training_set",
    response_model=None,
    responses={200: {"model": ReproduceOut}, **problem_responses(404, 410, 503)},
)
def reproduce_training_set(ts_id: str, store: StoreDep, catalog: CatalogDep, settings: SettingsDep) -> dict[str, Any]:
    """Recompute from the stored entity table with the repo as it is now.

    Answers ``{"id", "identical", "data_identical", "inputs_identical", "fingerprint_then",
    "fingerprint_now", "changed_sources", "changed_views", "differences"}``. ``data_identical``: the
    recomputed rows equal the stored ones; ``inputs_identical``: the fingerprint is unchanged (no
    source file or view definition changed); ``identical``: both. ``changed_sources`` and
    ``changed_views`` name what changed; ``differences`` names the differing columns and rows.
    """
    record = catalog.get(ts_id)
    record.check_present()
    return reproduce(store, record, settings.training_sets_path, settings)
