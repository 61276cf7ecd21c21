"""Map domain errors to HTTP statuses and render every error as ``application/problem+json`` (RFC 9457).

One table, ``PROBLEM_STATUS``, says which status each domain error gets; routes raise domain errors
and never build error responses by hand. Every problem body has ``type``, ``title``, ``status``,
``detail`` and, where known, ``field`` plus structured details (``problems``: one item per bad row
or field, each naming ``row`` and ``field``). A route that knows which request field a domain error is
about (``path.job_id``, ``query.as_of``) names it with :func:`at_field`.
"""

import logging
import uuid
from http import HTTPStatus
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lineage import CycleRefused, InvalidNodeId, NodeNotFound
from lineage.errors import ModelVersionConflict, NodeDeleted, NodeInUse
from lineage.versions import VersionNotFound
from service.formats import BodyUnreadable, NotAcceptable, UnsupportedMediaType
from service.limits import RequestBodyTimeout, RequestBodyTooLarge
from service.materialization.materializer import JobNotFound, MaterializationRequestInvalid, UnknownFeatureView
from service.monitoring.errors import MONITORING_PROBLEM_STATUS
from service.online.push import PushRejected, UnknownPushSource
from service.online.quarantine import UnknownQuarantineSource
from service.online.reads import (
    OnlineBatchTooLarge,
    OnlineRequestInvalid,
    OnlineStoreUnavailable,
    OnlineValueNotRepresentable,
)
from service.online.receipts import IdempotencyKeyInvalid, IdempotencyKeyReused, PushInFlight
from service.storage import StorageUnavailable, storage_fault
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
    409: "leakage audit failed / cycle refused / in use (a training set a model was trained on) / "
    "a push with this Idempotency-Key in flight",
    410: "deleted: the training set's record and lineage are kept, its data is not",
    413: "a request body or online batch over its limit",
    415: "unsupported content type",
    422: "invalid request or entity rows (every problem listed)",
    500: "a bug of feastline (the body names an error id to find in the server log)",
    503: "data not built / store unavailable / overloaded (with Retry-After) / "
    "storage fault (disk full, read-only, missing file)",
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
    StorageUnavailable: 503,
    IdempotencyKeyInvalid: 422,
    IdempotencyKeyReused: 422,
    PushInFlight: 409,
    RequestBodyTooLarge: 413,
    RequestBodyTimeout: 408,
    OnlineBatchTooLarge: 413,
    Overloaded: 503,
    **MONITORING_PROBLEM_STATUS,
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


def _roots(request: Request) -> list[tuple[str, str]]:
    """(absolute folder, what it is called in a problem body), most specific first: paths in bodies
    are said relative to them, never absolute."""
    settings = getattr(request.app.state, "settings", None)
    if settings is None:
        return []
    roots = [(str(settings.training_sets_path), ""), (str(settings.repo_path), "")]
    return sorted(roots, key=lambda r: -len(r[0]))


def _scrub(value: Any, roots: list[tuple[str, str]]) -> Any:
    """``value`` (a problem body) with every absolute path under a known root made relative to it."""
    if isinstance(value, str):
        for root, name in roots:
            value = value.replace(root + "/", name).replace(root, name or ".")
        return value
    if isinstance(value, dict):
        return {k: _scrub(v, roots) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v, roots) for v in value]
    return value


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    headers = dict(getattr(exc, "headers", None) or {})  # e.g. Connection: close of a 408
    if isinstance(exc, OnlineStoreUnavailable | Overloaded):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, OnlineStoreUnavailable):
        metrics = getattr(request.app.state, "metrics", None)
        if metrics is not None:
            metrics.store_errors.labels(exc.reason_type).inc()
    elif getattr(exc, "retry_after", None):  # a fault that may clear by itself (disk full, a push in flight)
        headers["Retry-After"] = str(exc.retry_after)  # type: ignore[attr-defined]
    field = getattr(exc, "field", None)  # every domain error carries its field (or a route named it: at_field)
    if field is None and isinstance(exc, NodeNotFound | InvalidNodeId):
        field = "node_id"
    roots = _roots(request)
    raw = {"field": field, **(exc.details() if hasattr(exc, "details") else {})}
    message = getattr(exc, "problem_detail", None) or str(exc)
    status, title = status_for(exc), _slug(type(exc))

    def answer() -> JSONResponse:
        extra, detail = _scrub(raw, roots), _scrub(message, roots)
        return problem(status, title, detail, headers=headers or None, **extra)

    if len(raw.get("problems") or ()) > BIG_PROBLEM:  # every bad row listed: scrubbed and encoded off the event loop
        return await run_in_threadpool(answer)
    return answer()


BIG_PROBLEM = 200
"""Problems in one answer beyond which it is encoded on a thread, not on the event loop."""


def _place_of(request: Request, exc: BaseException) -> str:
    """What storage ``exc`` is about, in words: the training-sets directory, the repo's data
    directory, the lineage database, ..."""
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        return "the lineage database"
    if isinstance(exc, duckdb.Error):
        return "a source file of the repo"
    settings = getattr(request.app.state, "settings", None)
    filename = getattr(exc, "filename", None)
    if settings is not None and filename:
        path = Path(str(filename)).resolve()
        for folder, place in (
            (settings.training_sets_path, "the training-sets directory (FEASTLINE_TRAINING_SETS_DIR)"),
            (settings.data_dir, "the repo's data directory"),
            (settings.repo_path, "the repo"),
        ):
            if path.is_relative_to(folder):
                return place
    return "a file of the service"


async def _storage_error(request: Request, exc: Exception) -> JSONResponse:
    """OS, database and DuckDB errors: a storage fault is a 503 saying what is wrong (no path, no SQL);
    anything else is a bug (500)."""
    settings = getattr(request.app.state, "settings", None)
    retry_after = settings.retry_after_seconds if settings is not None else 5
    fault = storage_fault(exc, _place_of(request, exc), retry_after)
    if fault is None:
        return _internal_error(exc)
    log.warning("storage fault: %s (%s: %s)", fault, type(exc).__name__, exc)
    return await _domain_error(request, fault)


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


def _internal_error(exc: BaseException, headers: dict[str, str] | None = None) -> JSONResponse:
    """A 500 problem for a bug: the body names an error id and the server log has the details (the
    exception's text may hold SQL or paths, so it never goes into the body)."""
    error_id = uuid.uuid4().hex[:12]
    log.error("unhandled error %s", error_id, exc_info=exc)
    detail = f"internal error {error_id}: a bug of feastline; the server log has the details under this id"
    return problem(500, "internal-error", detail, headers=headers, error_id=error_id)


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    """The last resort (an error raised outside the routes, e.g. in a middleware): Starlette re-raises
    after this answer and the server then closes the connection, so the answer says so."""
    return _internal_error(exc, headers={"Connection": "close"})


class InternalErrors:
    """ASGI middleware: an exception no handler took becomes a 500 problem answered here, so the
    connection stays usable (Starlette's own last-resort handler re-raises after answering, and the
    server then drops the keep-alive connection without ``Connection: close``: the client's next
    request on it fails). An error after the answer has started cannot be answered: it propagates
    and the server closes the connection, the only way to tell the client the answer is incomplete."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception as exc:
            if started:
                raise
            await _internal_error(exc)(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    for exc_type in PROBLEM_STATUS:
        app.add_exception_handler(exc_type, _domain_error)
    for exc_type in (OSError, sqlalchemy.exc.DBAPIError, duckdb.IOException):
        app.add_exception_handler(exc_type, _storage_error)
    app.add_exception_handler(RequestValidationError, _request_invalid)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
    app.add_middleware(InternalErrors)
