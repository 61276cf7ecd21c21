"""``POST /training-sets``: point-in-time-correct training sets over HTTP."""

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from service.deps import LineageDep, SettingsDep, StoreDep
from service.training_sets import TrainingSetOut, TrainingSetRequest, create_training_set, frame_to_records

router = APIRouter(tags=["training sets"])


@router.post("/training-sets", status_code=201, response_model=TrainingSetOut)
async def post_training_set(
    req: TrainingSetRequest, store: StoreDep, lineage: LineageDep, settings: SettingsDep
) -> TrainingSetOut:
    """Build a training set: one row per entity row, in input order, extra columns passed through.

    Each feature is taken point in time: from the latest feature row with event time ≤ the row's
    ``event_timestamp`` (and, with a created column, created ≤ it), no older than the view's TTL;
    null if there is none. Timestamps in the answer are UTC (``Z``).

    Errors (``application/problem+json``): 404 unknown feature service or feature; 422 entity rows
    invalid (every bad row and field listed), malformed request; 400 malformed JSON.
    """
    ts = await run_in_threadpool(create_training_set, store, lineage, req, settings.training_sets_path)
    return TrainingSetOut(
        id=ts.id, row_count=len(ts.frame), columns=list(ts.frame.columns), rows=frame_to_records(ts.frame)
    )
