"""``GET /lineage/view``: a node's lineage neighbourhood drawn as a self-contained HTML page.

The page is an inline SVG laid out in columns by signed hop distance from the node (upstream on the
left, downstream on the right, edges following the data flow left to right), every node a link to its
own view, and a table of the node's definition hash and attributes. No JavaScript, no external assets.
With ``as_of`` (a version number or an ISO 8601 time with offset, as on ``/lineage/nodes/...``) the page
draws the graph as it was then, and every link on it keeps that ``as_of``.
"""

import json
from collections import deque
from html import escape
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from lineage import NODE_ID_PATTERN, Edge, InvalidNodeId, LineageGraph, Node, NodeNotFound, NodeRef
from service.as_of import AsOf, graph_as_of, keep_as_of
from service.deps import LineageDep
from service.errors import at_field, problem_responses
from service.workers import WorkerRoute

router = APIRouter(prefix="/lineage", tags=["lineage"], responses=problem_responses(404, 422), route_class=WorkerRoute)

BOX_W, BOX_H, COL_GAP, ROW_GAP, MARGIN = 250, 34, 90, 12, 20
MAX_VALUE_CHARS = 4000
KIND_COLOURS = {
    "raw_table": "#e8e0d0",
    "transform": "#f4d9b0",
    "data_source": "#f9efb4",
    "column": "#f1f1f1",
    "entity": "#e0e0e0",
    "feature_view": "#cfe3f7",
    "on_demand_feature_view": "#d8d0f2",
    "feature": "#e3f1df",
    "feature_service": "#bfe4c8",
    "training_set": "#f6cfd6",
    "model": "#f2b6a0",
}


def view_url(node_id: str, as_of: str | None = None) -> str:
    return keep_as_of(f"/lineage/view?node={quote(node_id, safe=':@')}", as_of)


@router.get("/view", response_class=HTMLResponse)
def lineage_view(
    lineage: LineageDep,
    node: str = Query(
        ...,
        description="node id, kind:name",
        examples=["feature_service:delay_model_v1"],
        json_schema_extra={"pattern": NODE_ID_PATTERN},
    ),
    depth: int = Query(
        2, ge=1, le=100, description="hops to draw upstream and downstream, 1 to 100 (as on every lineage route)"
    ),
    as_of: AsOf = None,
) -> HTMLResponse:
    """An HTML page drawing ``node``'s upstream and downstream up to ``depth`` hops, with its attributes,
    now or ``as_of`` a version or time.

    Errors (``application/problem+json``): 404 unknown node (then) or version; 422 malformed node id,
    depth or ``as_of``.
    """
    graph = graph_as_of(lineage, as_of)
    try:
        ref = NodeRef.parse(node)
        up, down = graph.upstream_of(ref, depth=depth), graph.downstream_of(ref, depth=depth)
    except (NodeNotFound, InvalidNodeId) as exc:
        raise at_field(exc, "query.node") from None
    layers = {**_hops(ref, up.edges, upstream=True), **_hops(ref, down.edges, upstream=False)}
    edges = sorted(set(up.edges) | set(down.edges))
    return HTMLResponse(render_page(graph.node(ref), graph, layers, edges, depth, as_of))


def _hops(start: NodeRef, edges: tuple[Edge, ...], *, upstream: bool) -> dict[NodeRef, int]:
    """Signed shortest hop distance from ``start`` along ``edges`` (negative upstream)."""
    step: dict[NodeRef, list[NodeRef]] = {}
    for e in edges:
        a, b = (e.target, e.source) if upstream else (e.source, e.target)
        step.setdefault(a, []).append(b)
    dist, queue = {start: 0}, deque([start])
    while queue:
        here = queue.popleft()
        for there in step.get(here, []):
            if there not in dist:
                dist[there] = dist[here] + 1
                queue.append(there)
    sign = -1 if upstream else 1
    return {r: sign * d for r, d in dist.items()}


def render_page(
    focus: Node,
    graph: LineageGraph,
    layers: dict[NodeRef, int],
    edges: list[Edge],
    depth: int,
    as_of: str | None = None,
) -> str:
    """The whole HTML document for ``focus``: title, SVG neighbourhood, attribute table; every link
    keeps ``as_of`` (None: the current graph)."""
    title = escape(focus.id)
    when = "" if as_of is None else f" As of <code>{escape(as_of)}</code>."
    node_json = escape(keep_as_of(f"/lineage/nodes/{quote(focus.id, safe=':@')}", as_of))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lineage: {title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }}
h1 {{ font-size: 1.3rem; }} h2 {{ font-size: 1.05rem; margin-top: 1.5rem; }}
svg a text {{ font-size: 12px; }} svg a:hover rect {{ stroke-width: 2.5; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 4px 8px; vertical-align: top;
  text-align: left; }}
pre {{ margin: 0; max-width: 70rem; white-space: pre-wrap; word-break: break-all; }}
</style></head>
<body>
<h1 id="node" data-node-id="{title}">{title}</h1>
<p>kind <code>{escape(str(focus.ref.kind))}</code>, {depth} hop(s) up- and downstream; data flows left to right.{when}
Click a node to open its own view. JSON: <a href="{node_json}">node</a>.</p>
{_svg(focus.ref, graph, layers, edges, as_of)}
<h2>Attributes</h2>
{_attribute_table(focus)}
</body></html>
"""


def _svg(focus: NodeRef, graph: LineageGraph, layers: dict[NodeRef, int], edges: list[Edge], as_of: str | None) -> str:
    columns: dict[int, list[NodeRef]] = {}
    for r, layer in sorted(layers.items(), key=lambda item: (item[1], item[0])):
        columns.setdefault(layer, []).append(r)
    first = min(columns)
    pos: dict[NodeRef, tuple[int, int]] = {}
    for layer, refs in columns.items():
        x = MARGIN + (layer - first) * (BOX_W + COL_GAP)
        for i, r in enumerate(refs):
            pos[r] = (x, MARGIN + i * (BOX_H + ROW_GAP))
    width = MARGIN * 2 + len(columns) * BOX_W + (len(columns) - 1) * COL_GAP
    height = MARGIN * 2 + max(len(refs) for refs in columns.values()) * (BOX_H + ROW_GAP)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="lineage of {escape(str(focus))}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#888"/></marker></defs>',
    ]
    for e in edges:
        if e.source in pos and e.target in pos:
            (x1, y1), (x2, y2) = pos[e.source], pos[e.target]
            parts.append(
                f'<line x1="{x1 + BOX_W}" y1="{y1 + BOX_H // 2}" x2="{x2}" y2="{y2 + BOX_H // 2}" stroke="#999" '
                f'marker-end="url(#arrow)"><title>{escape(str(e.relation))}</title></line>'
            )
    for r, (x, y) in pos.items():
        label = str(r) if len(str(r)) <= 38 else str(r)[:36] + "…"
        colour = KIND_COLOURS.get(str(r.kind), "#eee")
        stroke = ' stroke="#000" stroke-width="3"' if r == focus else ' stroke="#666"'
        parts.append(
            f'<a href="{escape(view_url(str(r), as_of))}" class="node" data-node-id="{escape(str(r))}">'
            f"<title>{escape(str(r))}</title>"
            f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="6" fill="{colour}"{stroke}/>'
            f'<text x="{x + 8}" y="{y + BOX_H // 2 + 4}">{escape(label)}</text></a>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


def _attribute_table(node: Node) -> str:
    rows = [("definition_hash", node.definition_hash)] + sorted(node.attributes.items())
    body = "\n".join(f"<tr><th>{escape(key)}</th><td>{_value(value)}</td></tr>" for key, value in rows)
    return f'<table id="attributes">\n{body}\n</table>'


def _value(value: Any) -> str:
    if value is None:
        return "<em>none</em>"
    if isinstance(value, dict | list):
        text = json.dumps(value, indent=2, sort_keys=True)
        if len(text) > MAX_VALUE_CHARS:
            text = text[:MAX_VALUE_CHARS] + f"\n… ({len(text) - MAX_VALUE_CHARS} more characters)"
        return f"<pre>{escape(text)}</pre>"
    return f"<code>{escape(str(value))}</code>"
