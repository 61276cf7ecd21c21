"""``/lineage/...``: nodes, their neighbourhoods, impact and paths, now or as of a version; versions.

Node ids are ``kind:name``, e.g. ``feature_service:delay_model_v1``. Subgraph answers are
``{"nodes": [{"id", "kind", "name", ...}], "edges": [{"source", "target", "relation"}]}``; edges point
downstream along the data flow. ``as_of`` is a version number (``3``) or an ISO 8601 time with offset
(``2024-05-01T12:00:00Z``; encode ``+`` as ``%2B``): the graph as it was then.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from lineage import NODE_ID_PATTERN, InvalidNodeId, NodeNotFound, NodeRef
from lineage.versions import VersionNotFound
from service.as_of import AsOf, graph_as_of
from service.deps import LineageDep
from service.errors import at_field, problem_responses
from service.openapi import ImpactOut, NodeOut, PathOut, SubgraphOut, VersionOut, VersionsOut
from service.workers import WorkerRoute

router = APIRouter(prefix="/lineage", tags=["lineage"], responses=problem_responses(404, 422), route_class=WorkerRoute)
Depth = Query(None, ge=1, le=100, description="hops to follow, 1 to 100 (as on every lineage route); omit for all")
NodeId = Annotated[str, Path(description="kind:name", json_schema_extra={"pattern": NODE_ID_PATTERN})]
QueryNodeId = Query(description="node id, kind:name", json_schema_extra={"pattern": NODE_ID_PATTERN})


def doc(model: Any) -> dict[str, Any]:
    return {"response_model": None, "responses": {200: {"model": model}}}


@router.get("/nodes/{node_id}", **doc(NodeOut))
def get_node(node_id: NodeId, lineage: LineageDep, as_of: AsOf = None) -> dict[str, Any]:
    """One node with its attributes (definition hash, schema, quality, row counts). 404 if unknown."""
    ref = NodeRef.parse(node_id)
    node = lineage.get_node(ref) if as_of is None else graph_as_of(lineage, as_of).node(ref)
    return node.to_dict()


@router.get("/nodes/{node_id}/upstream", **doc(SubgraphOut))
def upstream(node_id: NodeId, lineage: LineageDep, depth: int | None = Depth, as_of: AsOf = None) -> dict[str, Any]:
    """Everything ``node_id`` comes from, up to ``depth`` hops."""
    return graph_as_of(lineage, as_of).upstream_of(NodeRef.parse(node_id), depth=depth).to_dict()


@router.get("/nodes/{node_id}/downstream", **doc(SubgraphOut))
def downstream(node_id: NodeId, lineage: LineageDep, depth: int | None = Depth, as_of: AsOf = None) -> dict[str, Any]:
    """Everything that depends on ``node_id``, up to ``depth`` hops."""
    return graph_as_of(lineage, as_of).downstream_of(NodeRef.parse(node_id), depth=depth).to_dict()


@router.get("/nodes/{node_id}/impact", **doc(ImpactOut))
def impact(node_id: NodeId, lineage: LineageDep, as_of: AsOf = None) -> dict[str, Any]:
    """What breaks or must be retrained if ``node_id`` changes: every feature service, training set and
    model downstream. ``{"node": {...}, "impact": [{...}, ...]}`` (sorted by id)."""
    graph = graph_as_of(lineage, as_of)
    ref = NodeRef.parse(node_id)
    return {"node": graph.node(ref).to_dict(), "impact": [n.to_dict() for n in graph.impact_of(ref)]}


@router.get("/path", **doc(PathOut))
def path(
    lineage: LineageDep,
    source: Annotated[str, QueryNodeId],
    target: Annotated[str, QueryNodeId],
    as_of: AsOf = None,
) -> dict[str, Any]:
    """A shortest path along the data flow between two nodes, whichever is upstream.

    ``{"path": ["kind:name", ...], "direction": ...}``: the path always runs from the upstream node to
    the downstream one; ``direction`` says which way that was: ``"downstream"`` (``target`` is built
    from ``source``: ``path`` starts at ``source``), ``"upstream"`` (``source`` is built from
    ``target``: ``path`` starts at ``target``), ``"same"`` (one node) or ``null`` with ``path: []``
    when neither is reachable from the other. A malformed id is a 422 naming ``query.source`` or
    ``query.target``; an unknown node a 404 naming it.
    """
    refs = {}
    for name, text in (("source", source), ("target", target)):
        try:
            refs[name] = NodeRef.parse(text)
        except InvalidNodeId as exc:
            raise at_field(exc, f"query.{name}") from None
    graph = graph_as_of(lineage, as_of)
    for name, ref in refs.items():
        if ref not in graph:
            raise at_field(NodeNotFound(ref), f"query.{name}")
    path = graph.path_between(refs["source"], refs["target"])
    direction = None
    if path:
        direction = "same" if len(path) == 1 else ("downstream" if path[0] == refs["source"] else "upstream")
    return {"path": [str(ref) for ref in path], "direction": direction}


COUNTS_NOTE = (
    "node_count and edge_count are the whole graph right after the version, including training sets, "
    "models and run attributes recorded between applies; counts and diff compare only the definitions "
    "(registry and pipeline) of this apply with the previous apply's, so the totals can grow while the diff is empty"
)


@router.get("/versions", **doc(VersionsOut))
def versions(lineage: LineageDep) -> dict[str, Any]:
    """Every version recorded by ``feastline apply``, oldest first, with diff counts (no diff), and a
    ``note`` on what the counts cover (``COUNTS_NOTE``)."""
    return {"versions": [v.to_dict(with_diff=False) for v in lineage.list_versions()], "note": COUNTS_NOTE}


@router.get("/versions/{number}", **doc(VersionOut))
def version(number: Annotated[int, Path(ge=1, lt=2**63)], lineage: LineageDep) -> dict[str, Any]:
    """One version with its diff against the previous one: ``{"number", "created_at", "source",
    "node_count", "edge_count", "counts", "diff": {"added_nodes", "removed_nodes", "changed_nodes":
    [{"id", "before", "after"}], "added_edges", "removed_edges"}, "note"}``; ``note`` says what the counts
    cover (the totals include nodes recorded between applies, the diff does not)."""
    try:
        return {**lineage.get_version(number).to_dict(), "note": COUNTS_NOTE}
    except VersionNotFound as exc:
        raise at_field(exc, "path.number") from None
