"""``/lineage/export/...`` (the graph as node-link JSON, GraphML or SVG) and ``/lineage/openlineage/events``.

``node`` (a node id, ``kind:name``) narrows an export to that node's neighbourhood: ``depth`` hops
(omit for all) ``upstream``, ``downstream`` or ``both``; without it the whole graph is exported.
An unknown node is a 404.
"""

from enum import StrEnum
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from lineage import LineageGraph, NodeRef, Subgraph
from lineage.export import graphml, node_link, svg
from service.errors import problem_responses

router = APIRouter(tags=["lineage"], responses=problem_responses(404, 422))


class Direction(StrEnum):
    UPSTREAM = "upstream"
    DOWNSTREAM = "downstream"
    BOTH = "both"


NodeQ = Query(
    None, description="node id 'kind:name'; omit for the whole graph", examples=["feature_view:origin_weather"]
)
DepthQ = Query(None, ge=0, le=100, description="hops to follow from node; omit for all")
DirectionQ = Query(Direction.BOTH, description="which way to follow edges from node")


def _select(request: Request, node: str | None, depth: int | None, direction: Direction) -> LineageGraph | Subgraph:
    graph: LineageGraph = request.app.state.lineage.load_graph()
    if node is None:
        return graph
    ref = NodeRef.parse(node)
    if direction is Direction.UPSTREAM:
        return graph.upstream_of(ref, depth)
    if direction is Direction.DOWNSTREAM:
        return graph.downstream_of(ref, depth)
    up, down = graph.upstream_of(ref, depth), graph.downstream_of(ref, depth)
    nodes = {n.ref: n for n in (*up.nodes, *down.nodes)}
    return Subgraph(tuple(nodes[r] for r in sorted(nodes)), tuple(sorted({*up.edges, *down.edges})))


@router.get("/lineage/export/node-link")
def export_node_link(
    request: Request, node: str | None = NodeQ, depth: int | None = DepthQ, direction: Direction = DirectionQ
) -> dict[str, Any]:
    """``networkx.node_link_data``-shaped JSON (multigraph; edge key = relation); read it back with
    ``networkx.node_link_graph(data, edges="edges")``."""
    return node_link(_select(request, node, depth, direction))


@router.get(
    "/lineage/export/graphml", response_class=Response, responses={200: {"content": {"application/graphml+xml": {}}}}
)
def export_graphml(
    request: Request, node: str | None = NodeQ, depth: int | None = DepthQ, direction: Direction = DirectionQ
) -> Response:
    """GraphML; node data ``kind``, ``name``, ``definition_hash``, ``attributes`` (JSON); edge data ``relation``."""
    return Response(graphml(_select(request, node, depth, direction)), media_type="application/graphml+xml")


@router.get("/lineage/export/svg", response_class=Response, responses={200: {"content": {"image/svg+xml": {}}}})
def export_svg(
    request: Request, node: str | None = NodeQ, depth: int | None = DepthQ, direction: Direction = DirectionQ
) -> Response:
    """A picture; each node links to ``/lineage/nodes/{id}``."""
    picture = svg(_select(request, node, depth, direction), href="/lineage/nodes/{id}", title=node or "lineage")
    return Response(picture, media_type="image/svg+xml")


@router.get("/lineage/openlineage/events")
def openlineage_events(
    request: Request,
    job: str | None = Query(None, description="only this job name, e.g. 'training_set'"),
    limit: int = Query(100, ge=1, le=10_000),
) -> list[dict[str, Any]]:
    """OpenLineage RunEvents emitted by this service (and ``feastline build-data``), newest first."""
    return request.app.state.openlineage.events(job=job, limit=limit)
