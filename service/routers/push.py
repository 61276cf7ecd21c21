"""``POST /push`` (Feast's body, behind a validation gate) and ``GET /quarantine/{source}``."""

from typing import Any
from urllib.parse import urlencode

import pandas as pd
from fastapi import APIRouter, Header, Query, Request, Response

from service.clock import service_now
from service.deps import SettingsDep, StoreDep
from service.errors import problem_responses
from service.formats import frame_to_records, json_bytes, parse_json_body
from service.online.push import PushRequest, UnknownPushSource
from service.online.quarantine import UnknownQuarantineSource
from service.online.receipts import MAX_KEY_LENGTH
from service.openapi import PushOut, QuarantineOut, request_body_doc
from service.workers import WorkerRoute, json_answer, workers_of

router = APIRouter(tags=["push"], route_class=WorkerRoute)


@router.post(
    "/push",
    openapi_extra=request_body_doc(PushRequest),
    response_model=None,
    responses={200: {"model": PushOut}, **problem_responses(400, 404, 408, 409, 413, 415, 422, 503)},
)
async def push(
    request: Request,
    settings: SettingsDep,
    idempotency_key: str | None = Header(
        None,
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        pattern=r"^[ -~]+$",
        description="makes resending safe: a push resent with the same key and body is answered from its "
        "first answer and written once; the same key with another body is a 422",
    ),
) -> Response:
    """Push rows to a push source (the body of ``feast serve``'s ``/push``, as ``application/json``),
    validated first.

    Answers 200 ``{"rows_received", "rows_accepted", "rows_quarantined", "quarantined": [{"row",
    "problems"}] (the first 100), "quarantined_listed", "policy", "to", "created_from": "service" |
    "client"}``. Accepted rows are written through the ordered online store: one
    older than what the store holds for its entity is accepted but does not replace the newer value.
    A row dated more than 5 minutes after the service clock is refused (a value from the future).
    Errors: 400 malformed JSON (line and column given) or an empty body; 404 unknown push source;
    415 a ``content-type`` other than ``application/json`` (or none); 422 strict policy and a bad row
    (every problem listed, in row order, nothing written), a problem not tied to a row (a missing or
    unknown column, the created column without ``allow_client_created``) whatever the policy, or a
    body that is not Feast's; 503 with ``Retry-After`` when
    ``to`` includes ``online`` and the online store cannot be reached (nothing acknowledged: the
    offline file is not appended to and no row quarantined; resending the same push is safe), or the
    workers are all busy (nothing done); 503 when the offline append fails on the storage (disk full,
    read-only: ``written`` names the parts written, e.g. ``{"online": true, "offline": false}``;
    resending the same push is safe); 409 while a push with the same ``Idempotency-Key`` is still being
    written; 408 the body stopped arriving; 413 a body over ``FEASTLINE_MAX_PUSH_BODY_BYTES``.
    """
    body = await json_bytes(request)
    gate = request.app.state.push_gate
    now = service_now(settings)

    def push() -> Response:  # on a worker: parsing, validation, the writes, encoding the answer
        req = parse_json_body(body, PushRequest)
        return json_answer(gate.push(req, now, settings.retry_after_seconds, idempotency_key))

    return await workers_of(request).work.run(push)


@router.get(
    "/quarantine/{source}",
    response_model=None,
    responses={200: {"model": QuarantineOut}, **problem_responses(404, 422)},
)
def quarantine(
    source: str,
    request: Request,
    response: Response,
    store: StoreDep,
    settings: SettingsDep,
    limit: int = Query(1000, ge=1, le=10_000, description="rows per page"),
    offset: int = Query(0, ge=0, description="rows to skip, for the next pages"),
) -> dict[str, Any]:
    """Rejected rows of a push source (newest first), or of a pipeline step's output table (file order), one page.

    ``{"source", "kind": "push" | "pipeline", "total", "limit", "offset", "next_offset", "rows": [...]}``:
    ``total`` counts every kept row, ``next_offset`` is the ``offset`` of the next page (null on the
    last); when more rows follow, a ``Link`` header with ``rel="next"`` gives its URL. Push rows are
    ``{"id", "received_at", "row", "values", "problems"}``; pipeline rows carry ``quarantine_reason``.
    Errors: 404 neither a push source nor a pipeline table; 422 ``limit`` outside 1-10,000 or a negative ``offset``.
    """
    pipeline_file = settings.data_dir / "quarantine" / f"{source}.parquet"
    if pipeline_file.exists():
        frame = pd.read_parquet(pipeline_file)
        kind, total, rows = "pipeline", len(frame), frame_to_records(frame.iloc[offset : offset + limit])
    else:
        try:
            request.app.state.push_gate._source(source)
        except UnknownPushSource:
            raise UnknownQuarantineSource(source) from None
        kept = request.app.state.quarantine
        kind, total, rows = "push", kept.count(source), kept.list(source, limit=limit, offset=offset)
    next_offset = offset + limit if offset + limit < total else None
    if next_offset is not None:
        response.headers["Link"] = (
            f'<{request.url.path}?{urlencode({"limit": limit, "offset": next_offset})}>; rel="next"'
        )
    return {
        "source": source,
        "kind": kind,
        "total": total,
        "limit": limit,
        "offset": offset,
        "next_offset": next_offset,
        "rows": rows,
    }
