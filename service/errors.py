"""Map domain errors to HTTP statuses and render every error as ``application/problem+json`` (RFC 9457).

One table, ``PROBLEM_STATUS``, says which status each domain error gets; routes raise domain errors
and never build error responses by hand. Every problem body has ``type``, ``title``, ``status``,
``detail`` and, where known, ``field`` plus structured details (``problems``: one item per bad row
or field, each naming ``row`` and ``field``). A route that knows which request field a domain error is
about (``path.job_id``, ``query.as_of``) names it with :func:`at_field`.
"""

import logging
from http import HTTPStatus
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from lineage import CycleRefused, InvalidNodeId, NodeNotFound
from lineage.errors import ModelVersionConflict, NodeDeleted, NodeInUse
from lineage.versions import VersionNotFound
from service.formats import BodyUnreadable, NotAcceptable, UnsupportedMediaType
from service.limits import RequestBodyTimeout, RequestBodyTooLarge
from service.materialization.materializer import JobNotFound, MaterializationRequestInvalid, UnknownFeatureView
from service.online.push import PushRejected, UnknownPushSource
from service.online.quarantine import UnknownQuarantineSource
from service.online.reads import (
    OnlineBatchTooLarge,
    OnlineRequestInvalid,
    OnlineStoreUnavailable,
    OnlineValueNotRepresentable,
)
from service.training.catalog import TrainingSetDeleted, TrainingSetNotFound
from service.training.offline.audit import LeakageDetected
from service.training.offline.errors import (
    EntityRowsInvalid,
    FeatureNameCollision,
    FeatureReferenceInvalid,
    FeatureSelectionInvalid,
    SourceDataMissing,
    SourceKeyTypeMismatch,
    TooLargeForJson,
    UnknownFeature,
    UnknownFeatureService,
)
from service.workers import Overloaded

log = logging.getLogger("feastline")


class Problem(BaseModel):
    """An error, as every endpoint answers it: ``application/problem+json`` (RFC 9457)."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    detail: str
    field: str | None = None
    problems: list[dict[str, Any]] | None = Field(None, description="one item per bad row/field: row, field, problem")


ERROR_DESCRIPTIONS = {
    400: "malformed body",
    404: "unknown feature service, feature, view, node, version, job, training set or quarantine source",
    406: "none of the accepted types can be produced (or JSON cannot carry the data)",
    408: "the request body stopped arriving (FEASTLINE_BODY_TIMEOUT_SECONDS)",
    409: "leakage audit failed / cycle refused / in use (a training set a model was trained on)",
    410: "deleted: the training set's record and lineage are kept, its data is not",
    413: "a request body or online batch over its limit",
    415: "unsupported content type",
    422: "invalid request or entity rows (every problem listed)",
    503: "data not built / store unavailable / overloaded (with Retry-After)",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for a route: each status documented as a ``Problem``."""
    return {s: {"model": Problem, "description": ERROR_DESCRIPTIONS.get(s, "error")} for s in statuses}


def use_problem_media_type(schema: dict[str, Any]) -> dict[str, Any]:
    """Rewrite error responses in an OpenAPI document to ``application/problem+json`` only: every error is
    a problem, whatever the route answers on success (HTML, GraphML, Parquet)."""
    for path in schema.get("paths", {}).values():
        for op in path.values():
            for status, response in op.get("responses", {}).items():
                if status[0] in "45":
                    response["content"] = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    return schema


PROBLEM_JSON = "application/problem+json"

PROBLEM_STATUS: dict[type[Exception], int] = {
    UnknownFeatureService: 404,
    UnknownFeature: 404,
    NodeNotFound: 404,
    FeatureReferenceInvalid: 422,
    FeatureSelectionInvalid: 422,
    FeatureNameCollision: 422,
    EntityRowsInvalid: 422,
    OnlineRequestInvalid: 422,
    InvalidNodeId: 422,
    TrainingSetNotFound: 404,
    TrainingSetDeleted: 410,
    NodeDeleted: 410,
    NodeInUse: 409,
    BodyUnreadable: 400,
    TooLargeForJson: 406,
    UnsupportedMediaType: 415,
    NotAcceptable: 406,
    OnlineValueNotRepresentable: 406,
    CycleRefused: 409,
    LeakageDetected: 409,
    SourceDataMissing: 503,
    SourceKeyTypeMismatch: 409,
    OnlineStoreUnavailable: 503,
    UnknownPushSource: 404,
    UnknownQuarantineSource: 404,
    UnknownFeatureView: 404,
    JobNotFound: 404,
    VersionNotFound: 404,
    ModelVersionConflict: 409,
    MaterializationRequestInvalid: 422,
    PushRejected: 422,
    RequestBodyTooLarge: 413,
    RequestBodyTimeout: 408,
    OnlineBatchTooLarge: 413,
    Overloaded: 503,
}


def _slug(exc_type: type) -> str:
    name = exc_type.__name__
    return "".join(f"-{c.lower()}" if c.isupper() else c for c in name).lstrip("-")


def problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body = {
        "type": f"https://feastline.dev/problems/{title}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(jsonable_encoder(body), status_code=status, media_type=PROBLEM_JSON, headers=headers)


def status_for(exc: Exception) -> int:
    for cls in type(exc).__mro__:
        if cls in PROBLEM_STATUS:
            return PROBLEM_STATUS[cls]
    return 500


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    headers = dict(getattr(exc, "headers", None) or {})  # e.g. Connection: close of a 408
    if isinstance(exc, OnlineStoreUnavailable | Overloaded):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, OnlineStoreUnavailable):
        metrics = getattr(request.app.state, "metrics", None)
        if metrics is not None:
            metrics.store_errors.labels(exc.reason_type).inc()
    field = getattr(exc, "field", None)  # every domain error carries its field (or a route named it: at_field)
    if field is None and isinstance(exc, NodeNotFound | InvalidNodeId):
        field = "node_id"
    extra = {"field": field, **(exc.details() if hasattr(exc, "details") else {})}
    detail = getattr(exc, "problem_detail", None) or str(exc)
    args = (status_for(exc), _slug(type(exc)), detail, headers or None)
    if len(extra.get("problems") or ()) > BIG_PROBLEM:  # every bad row listed: encoded off the event loop
        return await run_in_threadpool(lambda: problem(*args, **extra))
    return problem(*args, **extra)


BIG_PROBLEM = 200
"""Problems in one answer beyond which it is encoded on a thread, not on the event loop."""


E = TypeVar("E", bound=Exception)
_LOCATIONS = ("path", "query", "header")


def at_field(exc: E, field: str) -> E:
    """``exc`` naming the request field it is about: for a route, which knows where a value came from
    when the domain error does not (``raise at_field(exc, "path.job_id")``).

    Args:
        field: named as request validation names fields: ``path.job_id``, ``query.as_of``,
            ``header.content-type``, a body field by its path in the body (``feature_views.2``).

    Returns:
        ``exc``, rendered with that ``field`` and a ``detail`` led by the parameter's name
        (``as_of: no lineage version 99``); its status and type stay those of its class.
    """
    location, _, name = field.partition(".")
    exc.field = field  # type: ignore[attr-defined]
    exc.problem_detail = f"{name if location in _LOCATIONS and name else field}: {exc}"  # type: ignore[attr-defined]
    return exc


def _row_of(loc: tuple[Any, ...]) -> int | None:
    """``("body", "entity_rows", 3, "origin")`` -> 3: the row a validation error is about."""
    for i, part in enumerate(loc[:-1]):
        if part in ("entity_rows", "rows") and isinstance(loc[i + 1], int):
            return loc[i + 1]
    return None


def _json_position(body: Any, loc: tuple[Any, ...]) -> str:
    """`` at line L column C`` of the character offset FastAPI reports for invalid JSON ("" when unknown)."""
    pos = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
    if pos is None or not isinstance(body, str | bytes):
        return ""
    doc = body.decode(errors="replace") if isinstance(body, bytes) else body
    return f" at line {doc.count(chr(10), 0, pos) + 1} column {pos - doc.rfind(chr(10), 0, pos)}"


async def _request_invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
    if len(exc.errors()) > BIG_PROBLEM:  # e.g. one error per bad entity row: built off the event loop
        return await run_in_threadpool(_request_invalid_answer, exc)
    return _request_invalid_answer(exc)


def _request_invalid_answer(exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if invalid := [e for e in errors if e.get("type") == "json_invalid"]:
        e = invalid[0]
        return problem(
            400,
            "malformed-json",
            f"request body is not valid JSON: {e.get('ctx', {}).get('error') or e.get('msg')}"
            f"{_json_position(exc.body, e['loc'])}",
            field="body",
            problems=[{"field": "body", "row": None, "problem": str(e.get("ctx", {}).get("error", e.get("msg")))}],
        )
    problems = [
        {
            "field": ".".join(str(p) for p in e["loc"] if p != "body") or "body",
            "row": _row_of(tuple(e["loc"])),
            "problem": e["msg"],
        }
        for e in errors
    ]
    first = problems[0]
    return problem(
        422,
        "request-invalid",
        f"{len(problems)} problem(s); first: {first['field']}: {first['problem']}",
        field=first["field"],
        problems=problems,
    )


_ROUTING_FIELDS = {404: "path", 405: "method"}


def allowed_methods(request: Request) -> list[str]:
    """Every method some route takes at the request's path (Starlette's own 405 names only the first
    route matching the path, so ``GET`` and ``POST /models`` would advertise one of them)."""
    routes = request.app.router.routes
    return [m for m in METHODS if any(r.matches({**request.scope, "method": m})[0] is Match.FULL for r in routes)]


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Errors the framework raises itself (no route for the path, a method the route does not take):
    routes raise domain errors, never ``HTTPException``. A 405 lists in ``Allow`` every method the path
    takes."""
    try:
        title = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "-")
    except ValueError:
        title = "http-error"
    field = _ROUTING_FIELDS.get(exc.status_code)
    headers = dict(exc.headers) if exc.headers else None
    if exc.status_code == 405 and (methods := allowed_methods(request)):
        headers = {**(headers or {}), "Allow": ", ".join(methods)}
    return problem(exc.status_code, title, str(exc.detail), headers=headers, field=field)


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return problem(500, "internal-error", f"{type(exc).__name__}: {exc}")


def install_error_handlers(app: FastAPI) -> None:
    for exc_type in PROBLEM_STATUS:
        app.add_exception_handler(exc_type, _domain_error)
    app.add_exception_handler(RequestValidationError, _request_invalid)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
