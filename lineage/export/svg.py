"""A picture of a lineage (sub)graph as SVG, laid out without graphviz.

Layout: layers left to right by longest path (a node sits one column right of its furthest-right
parent, taken in topological order); within a column nodes are ordered by the mean row of their
parents (one barycentre pass), then by id. Nodes are rounded rectangles coloured by kind, labelled
with their id; edges are arrows from the right side of the source to the left side of the target,
labelled with their relation.
"""

from __future__ import annotations

from collections import defaultdict
from urllib.parse import quote
from xml.sax.saxutils import escape, quoteattr

from lineage.export.formats import Graphish, _parts
from lineage.model import NodeKind, NodeRef

KIND_COLORS: dict[NodeKind, str] = {
    NodeKind.RAW_TABLE: "#d9d9d9",
    NodeKind.TRANSFORM: "#fde0a6",
    NodeKind.DATA_SOURCE: "#c6dbef",
    NodeKind.ENTITY: "#e5d8bd",
    NodeKind.FEATURE_VIEW: "#9ecae1",
    NodeKind.ON_DEMAND_FEATURE_VIEW: "#bcbddc",
    NodeKind.FEATURE: "#c7e9c0",
    NodeKind.FEATURE_SERVICE: "#a1d99b",
    NodeKind.TRAINING_SET: "#fdae6b",
    NodeKind.MODEL: "#fc9272",
}
CHAR_W, NODE_H, PAD_X, GAP_X, GAP_Y, MARGIN = 7.0, 28.0, 10.0, 90.0, 18.0, 20.0


def layers(refs: list[NodeRef], edges: list[tuple[NodeRef, NodeRef]]) -> list[list[NodeRef]]:
    """Columns of ``refs``: column ``k`` holds the nodes whose longest path from a root has ``k`` edges.

    ``edges`` must form a DAG over ``refs`` (a lineage graph always does); each column is ordered by the
    mean position of the node's parents in earlier columns, then by ref.
    """
    parents: dict[NodeRef, list[NodeRef]] = defaultdict(list)
    children: dict[NodeRef, list[NodeRef]] = defaultdict(list)
    for source, target in set(edges):
        parents[target].append(source)
        children[source].append(target)
    indegree = {ref: len(parents[ref]) for ref in refs}
    ready, depth = sorted(ref for ref in refs if indegree[ref] == 0), dict.fromkeys(refs, 0)
    while ready:  # Kahn's algorithm: a node's depth is final when its last parent is taken
        ref = ready.pop()
        for child in children[ref]:
            depth[child] = max(depth[child], depth[ref] + 1)
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    columns: list[list[NodeRef]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    row: dict[NodeRef, float] = {}
    for k, column in enumerate(columns):
        members = [ref for ref in refs if depth[ref] == k]

        def barycentre(ref: NodeRef) -> float:
            placed = [row[p] for p in parents[ref] if p in row]
            return sum(placed) / len(placed) if placed else 0.0

        column.extend(sorted(members, key=lambda r: (barycentre(r), r)))
        row.update((ref, float(i)) for i, ref in enumerate(column))
    return columns


def svg(graph: Graphish, href: str | None = None, title: str = "lineage") -> str:
    """An SVG document (``str``) drawing ``graph``.

    Args:
        graph: a LineageGraph or Subgraph.
        href: a link template, e.g. ``"/lineage/nodes/{id}"``; ``{id}`` is replaced by the URL-quoted node
            id and each node is wrapped in ``<a href="...">``. None: no links.
        title: the document's ``<title>``.
    """
    nodes, edges = _parts(graph)
    refs = [node.ref for node in nodes]
    columns = layers(refs, [(e.source, e.target) for e in edges])
    width = {ref: len(str(ref)) * CHAR_W + 2 * PAD_X for ref in refs}
    col_w = [max((width[r] for r in column), default=0.0) for column in columns]
    pos: dict[NodeRef, tuple[float, float]] = {}
    x = MARGIN
    for column, w in zip(columns, col_w, strict=True):
        for i, ref in enumerate(column):
            pos[ref] = (x, MARGIN + i * (NODE_H + GAP_Y))
        x += w + GAP_X
    total_w = max(x - GAP_X + MARGIN, 2 * MARGIN)
    total_h = max((len(c) for c in columns), default=0) * (NODE_H + GAP_Y) - GAP_Y + 2 * MARGIN
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total_w:.0f}" height="{max(total_h, 2 * MARGIN):.0f}" '
        f'font-family="sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>',
    ]
    for edge in edges:
        (sx, sy), (tx, ty) = pos[edge.source], pos[edge.target]
        x1, y1, x2, y2 = sx + width[edge.source], sy + NODE_H / 2, tx, ty + NODE_H / 2
        out.append(
            f'<g class="edge"><line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="#555" '
            f'marker-end="url(#arrow)"/><text x="{(x1 + x2) / 2:.1f}" y="{(y1 + y2) / 2 - 3:.1f}" '
            f'text-anchor="middle" font-size="10" fill="#555">{escape(str(edge.relation))}</text></g>'
        )
    for node in nodes:
        (nx_, ny), w = pos[node.ref], width[node.ref]
        shape = (
            f'<g class="node" data-kind="{node.ref.kind}"><rect x="{nx_:.1f}" y="{ny:.1f}" width="{w:.1f}" '
            f'height="{NODE_H:.0f}" rx="8" ry="8" fill="{KIND_COLORS.get(node.ref.kind, "#eeeeee")}" stroke="#333"/>'
            f'<text x="{nx_ + PAD_X:.1f}" y="{ny + NODE_H / 2 + 4:.1f}">{escape(node.id)}</text></g>'
        )
        if href is not None:
            shape = f"<a href={quoteattr(href.replace('{id}', quote(node.id, safe=':')))}>{shape}</a>"
        out.append(shape)
    out.append("</svg>")
    return "\n".join(out)
