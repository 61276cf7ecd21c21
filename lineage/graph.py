"""The lineage graph: an in-memory DAG of :class:`~lineage.model.Node` values and their edges.

networkx does the bookkeeping but never leaves this module: every query returns sorted plain values
(:class:`Subgraph`, ``list[NodeRef]``, ``list[Node]``), and an unknown node raises ``NodeNotFound``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import networkx as nx  # type: ignore[import-untyped]  # no stubs in the venv

from lineage.errors import CycleRefused, NodeNotFound
from lineage.model import Edge, Node, NodeKind, NodeRef

#: Kinds that consume features; :meth:`LineageGraph.impact_of` reports these.
IMPACTED_KINDS: frozenset[NodeKind] = frozenset({NodeKind.FEATURE_SERVICE, NodeKind.TRAINING_SET, NodeKind.MODEL})


@dataclass(frozen=True)
class Subgraph:
    """The answer to a traversal query: nodes sorted by ref, edges sorted by (source, target, relation).

    ``ref in subgraph`` (or ``node in subgraph``) asks whether that node was reached.
    """

    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]

    @property
    def refs(self) -> frozenset[NodeRef]:
        """The refs of the nodes reached."""
        return frozenset(node.ref for node in self.nodes)

    def __contains__(self, item: object) -> bool:
        ref = item.ref if isinstance(item, Node) else item
        return ref in self.refs

    def to_dict(self) -> dict[str, list[dict[str, Any]]]:
        """``{"nodes": [Node.to_dict(), ...], "edges": [Edge.to_dict(), ...]}``."""
        return {
            "nodes": [node.to_dict() for node in self.nodes],
            "edges": [edge.to_dict() for edge in self.edges],
        }


class LineageGraph:
    """A directed acyclic graph of lineage nodes; edges point downstream (see ``Relation``)."""

    def __init__(self) -> None:
        self._g: nx.DiGraph = nx.DiGraph()

    @classmethod
    def of(cls, nodes: Iterable[Node], edges: Iterable[Edge]) -> LineageGraph:
        """Build a graph from nodes and edges in one go (checks acyclicity once, not per edge).

        Raises:
            NodeNotFound: an edge names a node not among ``nodes``.
            CycleRefused: the edges contain a cycle (reports one edge on it).
        """
        graph = cls()
        for node in nodes:
            graph.add_node(node)
        for edge in edges:
            graph._require(edge.source)
            graph._require(edge.target)
            if graph._g.has_edge(edge.source, edge.target):
                graph._g[edge.source][edge.target]["relations"].add(edge.relation)
            else:
                graph._g.add_edge(edge.source, edge.target, relations={edge.relation})
        try:
            cycle = nx.find_cycle(graph._g)
        except nx.NetworkXNoCycle:
            return graph
        source, target = cycle[0]
        edge = Edge(source, target, min(graph._g[source][target]["relations"]))
        raise CycleRefused(edge, [source, *(t for _, t in cycle)])

    # -- building ---------------------------------------------------------------------------------

    def add_node(self, node: Node) -> None:
        """Insert ``node``, or replace the hash and attributes of the node with the same ref."""
        self._g.add_node(node.ref, node=node)

    def add_edge(self, edge: Edge) -> None:
        """Insert ``edge``; a no-op if the same (source, target, relation) is already present.

        Several relations between the same two nodes are allowed.

        Raises:
            NodeNotFound: ``edge.source`` or ``edge.target`` is not in the graph.
            CycleRefused: ``edge`` would close a cycle (including a self-loop); the graph is unchanged.
        """
        self._require(edge.source)
        self._require(edge.target)
        if self._g.has_edge(edge.source, edge.target):
            self._g[edge.source][edge.target]["relations"].add(edge.relation)
            return
        if edge.source == edge.target:
            raise CycleRefused(edge, [edge.source, edge.target])
        if nx.has_path(self._g, edge.target, edge.source):
            back = nx.shortest_path(self._g, edge.target, edge.source)
            raise CycleRefused(edge, [edge.source, *back])
        self._g.add_edge(edge.source, edge.target, relations={edge.relation})

    # -- lookup -----------------------------------------------------------------------------------

    def node(self, ref: NodeRef) -> Node:
        """The node with this ref. Raises NodeNotFound."""
        self._require(ref)
        node: Node = self._g.nodes[ref]["node"]
        return node

    def nodes(self) -> list[Node]:
        """Every node, sorted by ref."""
        return [self._g.nodes[ref]["node"] for ref in sorted(self._g.nodes)]

    def edges(self) -> list[Edge]:
        """Every edge, sorted by (source, target, relation)."""
        return sorted(self._edges_among(self._g.nodes))

    def __contains__(self, item: object) -> bool:
        ref = item.ref if isinstance(item, Node) else item
        return isinstance(ref, NodeRef) and ref in self._g

    def __len__(self) -> int:
        return int(self._g.number_of_nodes())

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes())

    # -- questions --------------------------------------------------------------------------------

    def upstream_of(self, ref: NodeRef, depth: int | None = None) -> Subgraph:
        """``ref`` and everything it is built from, up to ``depth`` hops (None: all the way).

        Returns:
            a Subgraph of the reached nodes (``ref`` included) and every edge among them.

        Raises:
            NodeNotFound: ``ref`` is not in the graph.
            ValueError: ``depth`` is negative.
        """
        return self._subgraph(self._reach(ref, self._g.predecessors, depth))

    def downstream_of(self, ref: NodeRef, depth: int | None = None) -> Subgraph:
        """``ref`` and everything built from it, up to ``depth`` hops (None: all the way).

        Returns:
            a Subgraph of the reached nodes (``ref`` included) and every edge among them.

        Raises:
            NodeNotFound: ``ref`` is not in the graph.
            ValueError: ``depth`` is negative.
        """
        return self._subgraph(self._reach(ref, self._g.successors, depth))

    def path_between(self, a: NodeRef, b: NodeRef) -> list[NodeRef]:
        """A shortest directed path between ``a`` and ``b``, whichever way the data flows.

        Returns:
            ``[a, ..., b]`` if ``b`` is downstream of ``a``; else ``[b, ..., a]`` if ``a`` is downstream
            of ``b``; ``[a]`` if ``a == b``; ``[]`` if neither is reachable from the other.

        Raises:
            NodeNotFound: ``a`` or ``b`` is not in the graph.
        """
        self._require(a)
        self._require(b)
        for start, end in ((a, b), (b, a)):
            if nx.has_path(self._g, start, end):
                return list(nx.shortest_path(self._g, start, end))
        return []

    def impact_of(self, ref: NodeRef) -> list[Node]:
        """Feature services, training sets and models strictly downstream of ``ref``, sorted by ref.

        These are what break, or must be retrained, when ``ref`` changes.

        Raises:
            NodeNotFound: ``ref`` is not in the graph.
        """
        self._require(ref)
        hit = (r for r in nx.descendants(self._g, ref) if r.kind in IMPACTED_KINDS)
        return [self._g.nodes[r]["node"] for r in sorted(hit)]

    # -- internals --------------------------------------------------------------------------------

    def _require(self, ref: NodeRef) -> None:
        if ref not in self:
            raise NodeNotFound(ref)

    def _reach(self, start: NodeRef, step: Callable[[NodeRef], Iterator[NodeRef]], depth: int | None) -> set[NodeRef]:
        """Breadth-first: the refs within ``depth`` hops of ``start`` following ``step``."""
        self._require(start)
        if depth is not None and depth < 0:
            raise ValueError(f"depth must be >= 0 or None, got {depth}")
        seen, frontier, hops = {start}, [start], 0
        while frontier and (depth is None or hops < depth):
            frontier = list(dict.fromkeys(n for ref in frontier for n in step(ref) if n not in seen))
            seen.update(frontier)
            hops += 1
        return seen

    def _edges_among(self, refs: Iterable[NodeRef]) -> Iterator[Edge]:
        for source, target, relations in self._g.subgraph(refs).edges(data="relations"):
            for relation in relations:
                yield Edge(source, target, relation)

    def _subgraph(self, refs: set[NodeRef]) -> Subgraph:
        nodes = tuple(self._g.nodes[ref]["node"] for ref in sorted(refs))
        return Subgraph(nodes, tuple(sorted(self._edges_among(refs))))
