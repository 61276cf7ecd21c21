"""``POST /get-online-features``: drop-in for ``feast serve``."""

from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from service.clock import service_now
from service.deps import SettingsDep, StoreDep
from service.errors import problem_responses
from service.formats import json_body
from service.online.reads import OnlineFeaturesRequest, read_online
from service.openapi import OnlineFeaturesOut, request_body_doc

router = APIRouter(tags=["online"])


@router.post(
    "/get-online-features",
    openapi_extra=request_body_doc(OnlineFeaturesRequest),
    response_model=None,
    responses={200: {"model": OnlineFeaturesOut}, **problem_responses(400, 404, 406, 415, 422, 503)},
)
async def get_online_features(request: Request, store: StoreDep, settings: SettingsDep) -> Any:
    """Latest materialized values, in ``feast serve``'s request and response JSON, TTL enforced.

    The body is ``OnlineFeaturesRequest`` sent as ``application/json``. Each value has a status:
    ``PRESENT``, ``NULL_VALUE``, ``NOT_FOUND`` or ``OUTSIDE_MAX_AGE`` (older than the view's TTL at
    the service clock — wall time, or ``FEASTLINE_NOW`` when pinned; the value is then withheld as null).

    Errors: 400 malformed JSON (line and column given) or an empty body; 404 unknown feature
    service/feature; 406 an on-demand value is ±inf, which JSON cannot carry (names the feature and
    rows); 415 a ``content-type`` other than ``application/json`` (or none); 422 a join key or
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
