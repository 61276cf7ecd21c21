"""``POST /push`` (Feast's body, behind a validation gate) and ``GET /quarantine/{source}``."""

from typing import Any

import pandas as pd
from fastapi import APIRouter, Request, Response

from service.clock import service_now
from service.deps import SettingsDep, StoreDep
from service.errors import problem_responses
from service.formats import frame_to_records, json_body_doc, json_bytes, parse_json_body
from service.online.push import PushRequest, UnknownPushSource
from service.online.quarantine import UnknownQuarantineSource
from service.workers import WorkerRoute, json_answer, workers_of

router = APIRouter(tags=["push"], route_class=WorkerRoute)


@router.post(
    "/push",
    openapi_extra=json_body_doc(PushRequest),
    response_model=dict[str, Any],
    responses=problem_responses(400, 404, 408, 413, 415, 422, 503),
)
async def push(request: Request, settings: SettingsDep) -> Response:
    """Push rows to a push source (the body of ``feast serve``'s ``/push``, as ``application/json``),
    validated first.

    Answers 200 ``{"rows_received", "rows_accepted", "rows_quarantined", "quarantined": [{"row",
    "problems"}], "policy", "to"}``. Accepted rows are written through the ordered online store: one
    older than what the store holds for its entity is accepted but does not replace the newer value.
    A row dated more than 5 minutes after the service clock is refused (a value from the future).
    Errors: 400 malformed JSON (line and column given) or an empty body; 404 unknown push source;
    415 a ``content-type`` other than ``application/json`` (or none); 422 strict policy and a bad row
    (every problem listed, in row order, nothing written), a problem not tied to a row (a missing or
    unknown column) whatever the policy, or a body that is not Feast's; 503 with ``Retry-After`` when
    ``to`` includes ``online`` and the online store cannot be reached (nothing acknowledged: the
    offline file is not appended to and no row quarantined; resending the same push is safe), or the
    workers are all busy (nothing done); 408 the body stopped arriving; 413 a body over
    ``FEASTLINE_MAX_PUSH_BODY_BYTES``.
    """
    body = await json_bytes(request)
    gate = request.app.state.push_gate
    now = service_now(settings)

    def push() -> Response:  # on a worker: parsing, validation, the writes, encoding the answer
        return json_answer(gate.push(parse_json_body(body, PushRequest), now, settings.retry_after_seconds))

    return await workers_of(request).work.run(push)


@router.get("/quarantine/{source}", responses=problem_responses(404))
def quarantine(source: str, request: Request, store: StoreDep, settings: SettingsDep) -> dict[str, Any]:
    """Rejected rows of a push source (newest first), or of a pipeline step's output table.

    ``{"source", "kind": "push" | "pipeline", "rows": [...]}``; pipeline rows carry ``quarantine_reason``.
    """
    pipeline_file = settings.data_dir / "quarantine" / f"{source}.parquet"
    if pipeline_file.exists():
        frame = pd.read_parquet(pipeline_file)
        return {"source": source, "kind": "pipeline", "rows": frame_to_records(frame)}
    try:
        request.app.state.push_gate._source(source)
    except UnknownPushSource:
        raise UnknownQuarantineSource(source) from None
    return {"source": source, "kind": "push", "rows": request.app.state.quarantine.list(source)}
