"""``/lineage/export/...`` (the graph as node-link JSON, GraphML or SVG) and ``/lineage/openlineage/events``.

``node`` (a node id, ``kind:name``) narrows an export to that node's neighbourhood: ``depth`` hops
(omit for all) ``upstream``, ``downstream`` or ``both``; without it the whole graph is exported.
``as_of`` (a version number or an ISO 8601 time with offset) exports the graph as it was then, as on
``/lineage/nodes/...``. An unknown node (now, or then) or version, or a time before the first version, is
a 404; a malformed one a 422. ``depth`` is 1 to 100, as on ``/lineage/nodes/...``.
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from lineage import NODE_ID_PATTERN, InvalidNodeId, LineageGraph, NodeNotFound, NodeRef, Subgraph
from lineage.export import graphml, node_link, svg
from service.as_of import AsOf, graph_as_of, keep_as_of
from service.deps import LineageDep
from service.errors import at_field, problem_responses
from service.openapi import NodeLinkOut, RunEventOut
from service.workers import WorkerRoute, offload

router = APIRouter(tags=["lineage"], responses=problem_responses(404, 422), route_class=WorkerRoute)


class Direction(StrEnum):
    UPSTREAM = "upstream"
    DOWNSTREAM = "downstream"
    BOTH = "both"


NodeQ = Query(
    None,
    description="node id 'kind:name'; omit for the whole graph",
    examples=["feature_view:origin_weather"],
    json_schema_extra={"pattern": NODE_ID_PATTERN},
)
DepthQ = Query(
    None, ge=1, le=100, description="hops to follow from node, 1 to 100 (as on every lineage route); omit for all"
)
DirectionQ = Query(Direction.BOTH, description="which way to follow edges from node")


@dataclass(frozen=True)
class Selection:
    """What an export draws: the (sub)graph, and the ``node`` and ``as_of`` it was selected with."""

    graph: LineageGraph | Subgraph
    node: str | None
    as_of: str | None


def select(
    lineage: LineageDep,
    node: str | None = NodeQ,
    depth: int | None = DepthQ,
    direction: Direction = DirectionQ,
    as_of: AsOf = None,
) -> Selection:
    """The export routes' shared query parameters, as one dependency."""
    graph = graph_as_of(lineage, as_of)
    if node is None:
        return Selection(graph, node, as_of)
    try:
        ref = NodeRef.parse(node)
        if direction is Direction.UPSTREAM:
            return Selection(graph.upstream_of(ref, depth), node, as_of)
        if direction is Direction.DOWNSTREAM:
            return Selection(graph.downstream_of(ref, depth), node, as_of)
        up, down = graph.upstream_of(ref, depth), graph.downstream_of(ref, depth)
    except (NodeNotFound, InvalidNodeId) as exc:
        raise at_field(exc, "query.node") from None
    nodes = {n.ref: n for n in (*up.nodes, *down.nodes)}
    both = Subgraph(tuple(nodes[r] for r in sorted(nodes)), tuple(sorted({*up.edges, *down.edges})))
    return Selection(both, node, as_of)


SelectionDep = Annotated[Selection, Depends(offload(select))]  # graph queries: on a worker, not the loop


@router.get("/lineage/export/node-link", response_model=None, responses={200: {"model": NodeLinkOut}})
def export_node_link(selection: SelectionDep) -> dict[str, Any]:
    """``networkx.node_link_data``-shaped JSON (multigraph; edge key = relation); read it back with
    ``networkx.node_link_graph(data, edges="edges")``."""
    return node_link(selection.graph)


@router.get(
    "/lineage/export/graphml", response_class=Response, responses={200: {"content": {"application/graphml+xml": {}}}}
)
def export_graphml(selection: SelectionDep) -> Response:
    """GraphML; node data ``kind``, ``name``, ``definition_hash``, ``attributes`` (JSON); edge data ``relation``."""
    return Response(graphml(selection.graph), media_type="application/graphml+xml")


@router.get("/lineage/export/svg", response_class=Response, responses={200: {"content": {"image/svg+xml": {}}}})
def export_svg(selection: SelectionDep) -> Response:
    """A picture; each node links to ``/lineage/nodes/{id}`` (with the same ``as_of``)."""
    href = keep_as_of("/lineage/nodes/{id}", selection.as_of)
    picture = svg(selection.graph, href=href, title=selection.node or "lineage")
    return Response(picture, media_type="image/svg+xml")


@router.get(
    "/lineage/openlineage/events",
    response_model=None,
    responses={
        200: {
            "model": list[RunEventOut],
            "headers": {
                "X-More-Events": {"schema": {"type": "string", "enum": ["true", "false"]}},
                "Link": {"schema": {"type": "string"}, "description": '<next page URL>; rel="next"'},
            },
        }
    },
)
def openlineage_events(
    request: Request,
    response: Response,
    job: str | None = Query(
        None,
        description="only this exact job name (no prefix or pattern match): 'pipeline' (a whole pipeline run), "
        "'pipeline.<step>', 'materialize.<view>', 'training_set'",
    ),
    limit: int = Query(100, ge=1, le=10_000, description="events per page"),
    offset: int = Query(0, ge=0, le=1_000_000, description="events to skip (newest first), for the next pages"),
) -> list[dict[str, Any]]:
    """OpenLineage RunEvents emitted by this service (and ``feastline build-data``), newest first, one page.

    The body is the page (a list). When more events follow it, the answer has a ``Link`` header with
    ``rel="next"`` (the URL of the next page) and ``X-More-Events: true``; on the last page
    ``X-More-Events: false`` and no ``Link``.
    """
    found = request.app.state.openlineage.events(job=job, limit=limit + 1, offset=offset)  # one extra: more?
    page, more = found[:limit], len(found) > limit
    response.headers["X-More-Events"] = "true" if more else "false"
    if more:
        params = {**({"job": job} if job is not None else {}), "limit": limit, "offset": offset + limit}
        response.headers["Link"] = f'<{request.url.path}?{urlencode(params)}>; rel="next"'
    return page
