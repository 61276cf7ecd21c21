"""``/lineage/...``: nodes, their neighbourhoods, impact and paths, now or as of a version; versions.

Node ids are ``kind:name``, e.g. ``feature_service:delay_model_v1``. Subgraph answers are
``{"nodes": [{"id", "kind", "name", ...}], "edges": [{"source", "target", "relation"}]}``; edges point
downstream along the data flow. ``as_of`` is a version number (``3``) or an ISO 8601 time with offset
(``2024-05-01T12:00:00Z``; encode ``+`` as ``%2B``): the graph as it was then.
"""

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.exceptions import RequestValidationError

from lineage import LineageGraph, LineageStore, NodeRef
from lineage.versions import VersionNotFound
from service.deps import LineageDep
from service.errors import problem_responses

router = APIRouter(prefix="/lineage", tags=["lineage"], responses=problem_responses(404, 422))
Depth = Query(None, ge=1, le=100, description="hops to follow; omit for all")
AsOf = Annotated[
    str | None,
    Query(description="version number (1, 2, ...) or ISO 8601 time with offset; omit for now", examples=["1"]),
]


def _parse_as_of(text: str | None) -> int | datetime | None:
    """``"3"`` -> 3, ``"2024-05-01T12:00:00Z"`` -> aware datetime; anything else is a 422 naming ``as_of``."""
    if text is None:
        return None
    if text.isascii() and text.isdigit() and 1 <= int(text) < 2**63:
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC)  # out of range near year 1 / 9999 -> OverflowError
    except (ValueError, OverflowError):
        moment = None
    if moment is None or moment.tzinfo is None:
        problem = "expected a version number >= 1 or an ISO 8601 time with an offset (e.g. 2024-05-01T12:00:00Z)"
        error = {"type": "value_error", "loc": ("query", "as_of"), "msg": f"{problem}, got {text!r}", "input": text}
        raise RequestValidationError([error])
    return moment


def _graph(lineage: LineageStore, as_of_text: str | None) -> LineageGraph:
    as_of = _parse_as_of(as_of_text)
    try:
        return lineage.graph_as_of(as_of)
    except VersionNotFound as exc:
        raise HTTPException(404, f"as_of: {exc}") from exc


@router.get("/nodes/{node_id}")
def get_node(node_id: str, lineage: LineageDep, as_of: AsOf = None) -> dict[str, Any]:
    """One node with its attributes (definition hash, schema, quality, row counts). 404 if unknown."""
    ref = NodeRef.parse(node_id)
    node = lineage.get_node(ref) if as_of is None else _graph(lineage, as_of).node(ref)
    return node.to_dict()


@router.get("/nodes/{node_id}/upstream")
def upstream(node_id: str, lineage: LineageDep, depth: int | None = Depth, as_of: AsOf = None) -> dict[str, Any]:
    """Everything ``node_id`` comes from, up to ``depth`` hops."""
    return _graph(lineage, as_of).upstream_of(NodeRef.parse(node_id), depth=depth).to_dict()


@router.get("/nodes/{node_id}/downstream")
def downstream(node_id: str, lineage: LineageDep, depth: int | None = Depth, as_of: AsOf = None) -> dict[str, Any]:
    """Everything that depends on ``node_id``, up to ``depth`` hops."""
    return _graph(lineage, as_of).downstream_of(NodeRef.parse(node_id), depth=depth).to_dict()


@router.get("/nodes/{node_id}/impact")
def impact(node_id: str, lineage: LineageDep, as_of: AsOf = None) -> dict[str, Any]:
    """What breaks or must be retrained if ``node_id`` changes: every feature service, training set and
    model downstream. ``{"node": {...}, "impact": [{...}, ...]}`` (sorted by id)."""
    graph = _graph(lineage, as_of)
    ref = NodeRef.parse(node_id)
    return {"node": graph.node(ref).to_dict(), "impact": [n.to_dict() for n in graph.impact_of(ref)]}


@router.get("/path")
def path(
    lineage: LineageDep,
    source: Annotated[str, Query(description="node id")],
    target: Annotated[str, Query(description="node id")],
    as_of: AsOf = None,
) -> dict[str, list[str]]:
    """A shortest path along the data flow between two nodes, whichever is upstream.

    ``{"path": ["kind:name", ...]}``: from the upstream node to the downstream one; ``[]`` if unconnected.
    """
    refs = _graph(lineage, as_of).path_between(NodeRef.parse(source), NodeRef.parse(target))
    return {"path": [str(ref) for ref in refs]}


@router.get("/versions")
def versions(lineage: LineageDep) -> dict[str, list[dict[str, Any]]]:
    """Every version recorded by ``feastline apply``, oldest first, with diff counts (no diff)."""
    return {"versions": [v.to_dict(with_diff=False) for v in lineage.list_versions()]}


@router.get("/versions/{number}")
def version(number: Annotated[int, Path(ge=1, lt=2**63)], lineage: LineageDep) -> dict[str, Any]:
    """One version with its diff against the previous one: ``{"number", "created_at", "source",
    "node_count", "edge_count", "counts", "diff": {"added_nodes", "removed_nodes", "changed_nodes":
    [{"id", "before", "after"}], "added_edges", "removed_edges"}}``."""
    try:
        return lineage.get_version(number).to_dict()
    except VersionNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
