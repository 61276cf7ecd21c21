"""The part of the stored graph a save has to look at, read inside the save's write transaction.

A save (a training set, a model, a run's nodes) adds a few nodes and edges to a graph that grows with
every training set. Checking it against the whole stored graph made each save cost O(graph): 117 ms of
a 100-row training set's ~300 ms at a few thousand nodes, and growing. What a save needs is smaller:

- the stored nodes it names (to know which are new or changed);
- which of its edges are already stored;
- for the cycle check, the descendants of the targets of its new edges: a new edge ``u -> v`` closes a
  cycle exactly when ``u`` is reachable from ``v``, and every path from ``v`` runs through ``v``'s
  descendants (over the stored edges and the save's own new edges), so that closure decides it, and a
  shortest path inside it is a shortest path in the whole graph.

The closure is walked level by level with indexed selects (``lineage_edges``' primary key leads with
``source``); saving a training set or a model walks almost nothing, as they have no descendants yet.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import networkx as nx  # type: ignore[import-untyped]  # no stubs in the venv
from sqlalchemy import Connection, and_, or_, select

from lineage.errors import CycleRefused, NodeNotFound
from lineage.model import Edge, Node, NodeRef, Relation
from lineage.tables import LineageTables, node_from_row

_CHUNK = 400  # bound parameters per select (SQLite allows 32,766; PostgreSQL 65,535)


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def stored_nodes(conn: Connection, t: LineageTables, refs: Iterable[NodeRef]) -> dict[NodeRef, Node]:
    """The stored current nodes among ``refs``."""
    ids = sorted({str(ref) for ref in refs})
    found: dict[NodeRef, Node] = {}
    for part in _chunks(ids):
        for row in conn.execute(select(t.nodes).where(t.nodes.c.id.in_(part))):
            node = node_from_row(row)
            found[node.ref] = node
    return found


def stored_refs(conn: Connection, t: LineageTables, refs: Iterable[NodeRef]) -> set[NodeRef]:
    """The refs among ``refs`` stored as current nodes (their ids only: no row is decoded)."""
    ids = sorted({str(ref) for ref in refs})
    found: set[NodeRef] = set()
    for part in _chunks(ids):
        found.update(NodeRef.parse(i) for i in conn.scalars(select(t.nodes.c.id).where(t.nodes.c.id.in_(part))))
    return found


def stored_among(conn: Connection, t: LineageTables, edges: Sequence[Edge]) -> set[Edge]:
    """The edges of ``edges`` that are already stored."""
    e = t.edges
    found: set[Edge] = set()
    for i in range(0, len(edges), _CHUNK // 3):
        part = edges[i : i + _CHUNK // 3]
        match = or_(
            *(
                and_(e.c.source == str(x.source), e.c.target == str(x.target), e.c.relation == str(x.relation))
                for x in part
            )
        )
        rows = conn.execute(select(e.c.source, e.c.target, e.c.relation).where(match))
        found.update(Edge(NodeRef.parse(r.source), NodeRef.parse(r.target), Relation(r.relation)) for r in rows)
    return found


def check_edges(
    conn: Connection, t: LineageTables, edges: Sequence[Edge], known: set[NodeRef], stored: set[Edge]
) -> None:
    """Check ``edges`` in order as ``LineageGraph.add_edge`` would on the whole stored graph.

    Args:
        edges: the save's edges, sorted; ``stored``: those already stored; ``known``: the refs saved
            with them or stored.

    Raises:
        NodeNotFound: an edge's source (then target) is not in ``known``.
        CycleRefused: an edge not stored closes a cycle; the cycle ``[source, target, ..., source]``
            follows a shortest path back.
    """
    new_edges = [edge for edge in edges if edge not in stored]
    local: nx.DiGraph = nx.DiGraph()  # the stored edges of the closure; the new ones are replayed below
    e = t.edges
    seen: set[NodeRef] = set()
    frontier = {edge.target for edge in new_edges}
    while frontier:
        seen |= frontier
        reached: set[NodeRef] = set()
        for part in _chunks(sorted(str(ref) for ref in frontier)):
            for row in conn.execute(select(e.c.source, e.c.target).where(e.c.source.in_(part)).distinct()):
                source, target = NodeRef.parse(row.source), NodeRef.parse(row.target)
                local.add_edge(source, target)
                reached.add(target)
        reached |= {edge.target for edge in new_edges if edge.source in frontier}
        frontier = reached - seen
    # Replay the new edges one by one on the closure, as LineageGraph.add_edge would on the whole graph.
    for edge in edges:
        for ref in (edge.source, edge.target):
            if ref not in known:
                raise NodeNotFound(ref)
        if edge in stored or local.has_edge(edge.source, edge.target):
            continue
        if edge.source == edge.target:
            raise CycleRefused(edge, [edge.source, edge.target])
        if edge.target in local and edge.source in local and nx.has_path(local, edge.target, edge.source):
            back = nx.shortest_path(local, edge.target, edge.source)
            raise CycleRefused(edge, [edge.source, *back])
        local.add_edge(edge.source, edge.target)
