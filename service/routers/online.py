"""``POST /get-online-features``: drop-in for ``feast serve``."""

from typing import Any, TypeVar

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from service.clock import service_now
from service.deps import SettingsDep, StoreDep
from service.errors import problem_responses
from service.formats import JSON, BodyUnreadable, UnsupportedMediaType
from service.online import OnlineFeaturesRequest, read_online

router = APIRouter(tags=["online"])

M = TypeVar("M", bound=BaseModel)


async def json_body(request: Request, model: type[M]) -> M:
    """The request's JSON body as ``model``, as a FastAPI body parameter would give it, but refusing a
    body that is not declared JSON and locating malformed JSON.

    Raises:
        UnsupportedMediaType: ``Content-Type`` missing or other than ``application/json`` (415, field
            ``header.content-type``); nothing is guessed from the bytes.
        BodyUnreadable: an empty body (400).
        RequestValidationError: malformed JSON (400, the message gives line and column) or a body that
            does not fit ``model`` (422, each problem at its path in the body).
    """
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != JSON:
        raise UnsupportedMediaType(media or "(none)", (JSON,))
    body = await request.body()
    if not body.strip():
        raise BodyUnreadable(JSON, "the request body is empty")
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None


def json_body_doc(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI ``requestBody`` for a route that reads its body with :func:`json_body`."""
    return {"requestBody": {"required": True, "content": {JSON: {"schema": model.model_json_schema()}}}}


@router.post(
    "/get-online-features",
    openapi_extra=json_body_doc(OnlineFeaturesRequest),
    responses=problem_responses(400, 404, 415, 422, 503),
)
async def get_online_features(request: Request, store: StoreDep, settings: SettingsDep) -> Any:
    """Latest materialized values, in ``feast serve``'s request and response JSON, TTL enforced.

    The body is ``OnlineFeaturesRequest`` sent as ``application/json``. Each value has a status:
    ``PRESENT``, ``NULL_VALUE``, ``NOT_FOUND`` or ``OUTSIDE_MAX_AGE`` (older than the view's TTL at
    the service clock — wall time, or ``FEASTLINE_NOW`` when pinned; the value is then withheld as null).

    Errors: 400 malformed JSON (line and column given) or an empty body; 404 unknown feature
    service/feature; 415 a ``content-type`` other than ``application/json`` (or none); 422 a join key or
    request field missing, a key in ``entities`` that is neither a join key of the requested views nor a
    request field of their on-demand views, lists of unequal length, or a value of the wrong type (each
    problem names the key and position); 503 with ``Retry-After`` when the online store cannot be reached.
    """
    req = await json_body(request, OnlineFeaturesRequest)
    now = service_now(settings)
    # Called on the event loop, not in the thread pool: a read is ~0.5 ms of CPU (one indexed SQLite
    # query or one Redis round trip per view), and the thread hand-off under concurrency cost more in
    # tail latency than the read itself (bench/RESULTS.md, online section).
    # orjson: the response is up to (features x entities) cells; the stdlib encoder was a third of a
    # batch-100 request's CPU time. NaN/inf, which strict JSON cannot carry, become null.
    answer = read_online(store, req, now, settings.retry_after_seconds)
    return Response(orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")
