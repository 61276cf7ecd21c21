"""``POST /push`` (Feast's body, behind a validation gate) and ``GET /quarantine/{source}``."""

from typing import Any

import pandas as pd
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from service.clock import service_now
from service.deps import SettingsDep, StoreDep
from service.errors import problem_responses
from service.push import PushRequest, UnknownPushSource
from service.quarantine import UnknownQuarantineSource

router = APIRouter(tags=["push"])


@router.post("/push", responses=problem_responses(404, 422, 503))
async def push(req: PushRequest, request: Request, settings: SettingsDep) -> dict[str, Any]:
    """Push rows to a push source (the body of ``feast serve``'s ``/push``), validated first.

    Answers 200 ``{"rows_received", "rows_accepted", "rows_quarantined", "quarantined": [{"row",
    "problems"}], "policy", "to"}``. Accepted rows are written through the ordered online store: one
    older than what the store holds for its entity is accepted but does not replace the newer value.
    A row dated more than 5 minutes after the service clock is refused (a value from the future).
    Errors: 404 unknown push source; 422 strict policy and a bad row
    (every problem listed, nothing written) or a malformed body.
    """
    gate = request.app.state.push_gate
    return await run_in_threadpool(gate.push, req, service_now(settings))


@router.get("/quarantine/{source}", responses=problem_responses(404))
def quarantine(source: str, request: Request, store: StoreDep, settings: SettingsDep) -> dict[str, Any]:
    """Rejected rows of a push source (newest first), or of a pipeline step's output table.

    ``{"source", "kind": "push" | "pipeline", "rows": [...]}``; pipeline rows carry ``quarantine_reason``.
    """
    pipeline_file = settings.data_dir / "quarantine" / f"{source}.parquet"
    if pipeline_file.exists():
        frame = pd.read_parquet(pipeline_file)
        from service.training_sets import frame_to_records

        return {"source": source, "kind": "pipeline", "rows": frame_to_records(frame)}
    try:
        request.app.state.push_gate._source(source)
    except UnknownPushSource:
        raise UnknownQuarantineSource(source) from None
    return {"source": source, "kind": "push", "rows": request.app.state.quarantine.list(source)}
