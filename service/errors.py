"""Map domain errors to HTTP statuses and render every error as ``application/problem+json`` (RFC 9457).

One table, ``PROBLEM_STATUS``, says which status each domain error gets; routes raise domain errors
and never build error responses by hand. Every problem body has ``type``, ``title``, ``status``,
``detail`` and, where known, ``field`` plus structured details (``problems``: one item per bad row
or field, each naming ``row`` and ``field``).
"""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from lineage import CycleRefused, InvalidNodeId, NodeNotFound
from lineage.errors import ModelVersionConflict
from lineage.versions import VersionNotFound
from service.catalog import TrainingSetNotFound
from service.formats import BodyUnreadable
from service.materialization import JobNotFound, MaterializationRequestInvalid, UnknownFeatureView
from service.offline.audit import LeakageDetected
from service.offline.errors import (
    EntityRowsInvalid,
    FeatureNameCollision,
    FeatureReferenceInvalid,
    FeatureSelectionInvalid,
    SourceDataMissing,
    TooLargeForJson,
    UnknownFeature,
    UnknownFeatureService,
)
from service.online import OnlineRequestInvalid, OnlineStoreUnavailable
from service.push import PushRejected, UnknownPushSource

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
    404: "unknown feature service, feature, node or training set",
    409: "leakage audit failed / cycle refused",
    413: "too large for JSON",
    415: "unsupported content type",
    422: "invalid request or entity rows (every problem listed)",
    503: "data not built / store unavailable",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for a route: each status documented as a ``Problem``."""
    return {s: {"model": Problem, "description": ERROR_DESCRIPTIONS.get(s, "error")} for s in statuses}


def use_problem_media_type(schema: dict[str, Any]) -> dict[str, Any]:
    """Rewrite error responses in an OpenAPI document to ``application/problem+json``."""
    for path in schema.get("paths", {}).values():
        for op in path.values():
            for status, response in op.get("responses", {}).items():
                content = response.get("content", {})
                if status[0] in "45" and "application/json" in content:
                    content[PROBLEM_JSON] = {"schema": {"$ref": "#/components/schemas/Problem"}}
                    del content["application/json"]
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
    BodyUnreadable: 400,
    TooLargeForJson: 413,
    CycleRefused: 409,
    LeakageDetected: 409,
    SourceDataMissing: 503,
    OnlineStoreUnavailable: 503,
    UnknownPushSource: 404,
    UnknownFeatureView: 404,
    JobNotFound: 404,
    VersionNotFound: 404,
    ModelVersionConflict: 409,
    MaterializationRequestInvalid: 422,
    PushRejected: 422,
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
    extra: dict[str, Any] = {}
    headers = None
    if isinstance(exc, OnlineStoreUnavailable):
        headers = {"Retry-After": str(exc.retry_after)}
        metrics = getattr(request.app.state, "metrics", None)
        if metrics is not None:
            metrics.store_errors.labels(exc.reason_type).inc()
    if hasattr(exc, "details"):  # every domain error carries its field and structured details
        extra = {"field": getattr(exc, "field", None), **exc.details()}
    elif isinstance(exc, NodeNotFound | InvalidNodeId):
        extra = {"field": "node_id"}
    return problem(status_for(exc), _slug(type(exc)), str(exc), headers=headers, **extra)


def _row_of(loc: tuple[Any, ...]) -> int | None:
    """``("body", "entity_rows", 3, "origin")`` -> 3: the row a validation error is about."""
    for i, part in enumerate(loc[:-1]):
        if part in ("entity_rows", "rows") and isinstance(loc[i + 1], int):
            return loc[i + 1]
    return None


async def _request_invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        e = errors[0]
        return problem(
            400,
            "malformed-json",
            f"request body is not valid JSON: {e.get('msg')}",
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


async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    return problem(exc.status_code, "http-error", str(exc.detail))


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return problem(500, "internal-error", f"{type(exc).__name__}: {exc}")


def install_error_handlers(app: FastAPI) -> None:
    for exc_type in PROBLEM_STATUS:
        app.add_exception_handler(exc_type, _domain_error)
    app.add_exception_handler(RequestValidationError, _request_invalid)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
