"""``POST /get-online-features``: drop-in for ``feast serve``."""

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from service.deps import StoreDep
from service.errors import problem_responses
from service.online import OnlineFeaturesRequest, read_online

router = APIRouter(tags=["online"])


@router.post("/get-online-features", responses=problem_responses(400, 404, 422))
async def get_online_features(req: OnlineFeaturesRequest, store: StoreDep) -> Any:
    """Latest materialized values, in ``feast serve``'s request and response JSON.

    Errors: 404 unknown feature service/feature; 422 a join key or request field missing, lists of
    unequal length, or a value of the wrong type (each problem names the key and position).
    """
    return JSONResponse(await run_in_threadpool(read_online, store, req))
