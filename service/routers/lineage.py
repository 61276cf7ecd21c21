"""``/lineage/nodes/...``: nodes and their upstream / downstream neighbourhoods.

Node ids are ``kind:name``, e.g. ``feature_service:delay_model_v1``. Answers are
``{"nodes": [{"id", "kind", "name", ...}], "edges": [{"source", "target", "relation"}]}``; edges point
downstream along the data flow.
"""

from typing import Any

from fastapi import APIRouter, Query

from lineage import NodeRef
from service.deps import LineageDep
from service.errors import problem_responses

router = APIRouter(prefix="/lineage", tags=["lineage"], responses=problem_responses(404, 422))
Depth = Query(None, ge=1, le=100, description="hops to follow; omit for all")


@router.get("/nodes/{node_id}")
def get_node(node_id: str, lineage: LineageDep) -> dict[str, Any]:
    """One node with its attributes (definition hash, schema, quality, row counts). 404 if unknown."""
    return lineage.get_node(NodeRef.parse(node_id)).to_dict()


@router.get("/nodes/{node_id}/upstream")
def upstream(node_id: str, lineage: LineageDep, depth: int | None = Depth) -> dict[str, Any]:
    """Everything ``node_id`` comes from, up to ``depth`` hops."""
    return lineage.load_graph().upstream_of(NodeRef.parse(node_id), depth=depth).to_dict()


@router.get("/nodes/{node_id}/downstream")
def downstream(node_id: str, lineage: LineageDep, depth: int | None = Depth) -> dict[str, Any]:
    """Everything that depends on ``node_id``, up to ``depth`` hops."""
    return lineage.load_graph().downstream_of(NodeRef.parse(node_id), depth=depth).to_dict()
