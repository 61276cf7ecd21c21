"""``POST /get-online-features``: drop-in for ``feast serve``."""

from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from service.clock import service_now
from service.deps import SettingsDep, StoreDep
from service.errors import problem_responses
from service.formats import json_bytes, parse_json_body
from service.online.reads import OnlineFeaturesRequest, OnlineStoreUnavailable, read_online
from service.openapi import OnlineFeaturesOut, request_body_doc
from service.workers import WorkerRoute, workers_of

router = APIRouter(tags=["online"], route_class=WorkerRoute)


@router.post(
    "/get-online-features",
    openapi_extra=request_body_doc(OnlineFeaturesRequest),
    response_model=None,
    responses={
        200: {
            "model": OnlineFeaturesOut,
            "headers": {"X-Request-Id": {"schema": {"type": "string"}, "description": "this read's id (online log)"}},
        },
        **problem_responses(400, 404, 406, 408, 413, 415, 422, 503),
    },
)
async def get_online_features(request: Request, store: StoreDep, settings: SettingsDep) -> Any:
    """Latest materialized values, in ``feast serve``'s request and response JSON, TTL enforced.

    The body is ``OnlineFeaturesRequest`` sent as ``application/json``. Each value has a status:
    ``PRESENT``, ``NULL_VALUE``, ``NOT_FOUND`` or ``OUTSIDE_MAX_AGE`` (older than the view's TTL at
    the service clock — wall time, or ``FEASTLINE_NOW`` when pinned; the value is then withheld as null).
    The answer's ``X-Request-Id`` header names the read; a read of a feature service is logged (request
    id, clock time, sequence, keys, values, statuses) at its ``feastline.log_sample_rate``, off the
    request path (``GET /monitoring/online-log``; service/monitoring/online_log.py).

    Errors: 400 malformed JSON (line and column given) or an empty body; 404 unknown feature
    service/feature; 406 an on-demand value is ±inf, which JSON cannot carry (names the feature and
    rows); 408 the body stopped arriving; 413 a body over ``FEASTLINE_MAX_ONLINE_BODY_BYTES``
    or more entities than ``FEASTLINE_MAX_ONLINE_ENTITIES``; 415 a ``content-type`` other than
    ``application/json`` (or none); 422 a join key or request field missing, a key in ``entities`` that
    is neither a join key of the requested views nor a request field of their on-demand views, lists of
    unequal length, or a value of the wrong type (each problem names the key and position); 503 with
    ``Retry-After`` when the online store cannot be reached or does not answer within
    ``FEASTLINE_STORE_TIMEOUT_SECONDS``, or the online workers are all busy.
    """
    body = await json_bytes(request)
    now = service_now(settings)

    def answer() -> Response:
        # on an online worker: parsing, the store read (one indexed SQLite query or one Redis round trip
        # per view) and encoding. orjson: the answer is up to (features x entities) cells; the stdlib
        # encoder was a third of a batch-100 request's CPU time. NaN/inf (not JSON) become null.
        req = parse_json_body(body, OnlineFeaturesRequest)
        result = read_online(store, req, now, settings.retry_after_seconds, settings.max_online_entities)
        encoded = orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY)
        request_id = online_log.offer(store, req.feature_service, req.entities, result, now)  # queued, never waits
        return Response(encoded, media_type="application/json", headers={"X-Request-Id": request_id})

    workers = workers_of(request)
    online_log = request.app.state.online_log

    def timed_out() -> OnlineStoreUnavailable:
        reason = f"no answer within {workers.store_timeout:g} s (FEASTLINE_STORE_TIMEOUT_SECONDS)"
        return OnlineStoreUnavailable(reason, settings.retry_after_seconds, "Timeout")

    return await workers.online.run(answer, timeout=workers.store_timeout, timed_out=timed_out)
