"""The lineage graph: an in-memory DAG of :class:`~lineage.model.Node` values and their edges.

networkx does the bookkeeping (and ``path_between``); the other queries run on a numpy snapshot of it
(CSR adjacency, see :class:`_Index`). Neither leaves this module: every query returns sorted plain values
(:class:`Subgraph`, ``list[NodeRef]``, ``list[Node]``), and an unknown node raises ``NodeNotFound``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import networkx as nx  # type: ignore[import-untyped]  # no stubs in the venv
import numpy as np
import numpy.typing as npt

from lineage.errors import CycleRefused, NodeNotFound
from lineage.model import Edge, Node, NodeKind, NodeRef, Relation

#: Kinds that consume features; :meth:`LineageGraph.impact_of` reports these.
IMPACTED_KINDS: frozenset[NodeKind] = frozenset({NodeKind.FEATURE_SERVICE, NodeKind.TRAINING_SET, NodeKind.MODEL})

IntArray = npt.NDArray[np.int32]
RankArray = npt.NDArray[np.int8]
BoolArray = npt.NDArray[np.bool_]
ObjectArray = npt.NDArray[np.object_]

#: Relations in the order :class:`Edge` sorts them (by value); the rank of each breaks source/target ties.
_RELATION_RANK: dict[Relation, int] = {relation: i for i, relation in enumerate(sorted(Relation))}


@dataclass(frozen=True)
class Subgraph:
    """The answer to a traversal query: nodes sorted by ref, edges sorted by (source, target, relation).

    ``ref in subgraph`` (or ``node in subgraph``) asks whether that node was reached.
    """

    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]

    @cached_property
    def refs(self) -> frozenset[NodeRef]:
        """The refs of the nodes reached (computed once, on first use)."""
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


class _Index:
    """A read-optimised, array-based snapshot of the networkx graph that the queries run on.

    Node ids are positions in ref order, so ascending ids are sorted refs, and the edges, kept in
    (source id, target id, relation) order, are already sorted as :class:`Edge` sorts. With ``n`` nodes
    and ``m`` edges (one per relation: two relations between the same pair are two edges):

    - ``refs``: list of the ``n`` refs, sorted; ``ids``: ref -> id (its position in ``refs``);
    - ``nodes``: object array, shape ``(n,)``, the :class:`Node` of each id;
    - ``impacted``: bool array, shape ``(n,)``, whether that node's kind is in :data:`IMPACTED_KINDS`;
    - ``succ_ptr``, ``succ``: CSR successors, int32 arrays of shapes ``(n + 1,)`` and ``(m,)``: the
      out-edges of id ``i`` are positions ``succ_ptr[i]:succ_ptr[i + 1]``, ``succ`` holds their target
      ids and ``edges`` (object array, shape ``(m,)``) the :class:`Edge` values themselves, aligned;
    - ``pred_ptr``, ``pred``: CSR predecessors, the same shapes, ``pred`` holding the source id of each
      in-edge, ascending per target;
    - ``sources``, ``relations``: int32 and int8 arrays, shape ``(m,)``, aligned with ``succ``: the
      source id and the relation's rank of each edge (kept to merge added edges in).

    A target (or source) repeats in ``succ`` (or ``pred``) once per relation; the traversals mask it.
    The :class:`Node` and :class:`Edge` values are the ones stored in the graph: shared, never copied.
    """

    def __init__(self, g: nx.DiGraph) -> None:
        self.refs: list[NodeRef] = sorted(g, key=_ref_key)  # same order as NodeRef's own, ~10x faster
        self.ids: dict[NodeRef, int] = {ref: i for i, ref in enumerate(self.refs)}
        n, ids, rank = len(self.refs), self.ids, _RELATION_RANK
        self.nodes: ObjectArray = _objects([g.nodes[ref]["node"] for ref in self.refs])
        self.impacted: BoolArray = np.fromiter((ref.kind in IMPACTED_KINDS for ref in self.refs), bool, n)
        #: edges added to the graph since this index was built; :meth:`with_added` merges them in
        self.added: list[Edge] = []
        sources: list[int] = []
        targets: list[int] = []
        relations: list[int] = []
        edges: list[Edge] = []
        for ref, out in g.succ.items():
            source = ids[ref]
            for target_ref, data in out.items():
                target = ids[target_ref]
                for relation, edge in data["edges"].items():
                    sources.append(source)
                    targets.append(target)
                    relations.append(rank[relation])
                    edges.append(edge)
        self._arrange(
            np.array(sources, dtype=np.int32),
            np.array(targets, dtype=np.int32),
            np.array(relations, dtype=np.int8),
            _objects(edges),
        )

    def _arrange(self, sources: IntArray, targets: IntArray, relations: RankArray, edges: ObjectArray) -> None:
        """Sort the edges, given as aligned ``(m,)`` arrays in any order, into Edge order; build both CSRs."""
        n = len(self.refs)
        order = np.lexsort((relations, targets, sources))  # the last key sorts first
        self.sources: IntArray = sources[order]
        self.relations: RankArray = relations[order]
        self.edges: ObjectArray = edges[order]
        self.succ_ptr: IntArray = _row_pointers(self.sources, n)
        self.succ: IntArray = targets[order]
        by_target = np.argsort(self.succ, kind="stable")  # stable: sources stay ascending per target
        self.pred_ptr: IntArray = _row_pointers(self.succ[by_target], n)
        self.pred: IntArray = self.sources[by_target]

    def with_added(self) -> _Index:
        """A new index: this one with :attr:`added` merged in (numpy work, no Python loop over the graph).

        The node arrays are shared with this index; the edge arrays are new, so a query still running on
        this index is unaffected.
        """
        new = copy.copy(self)
        new.added = []
        ids, added = self.ids, self.added
        new._arrange(
            np.concatenate([self.sources, np.array([ids[e.source] for e in added], dtype=np.int32)]),
            np.concatenate([self.succ, np.array([ids[e.target] for e in added], dtype=np.int32)]),
            np.concatenate([self.relations, np.array([_RELATION_RANK[e.relation] for e in added], dtype=np.int8)]),
            np.concatenate([self.edges, _objects(added)]),
        )
        return new

    def reach(self, start: int, ptr: IntArray, adjacent: IntArray, depth: int | None) -> BoolArray:
        """Breadth-first, one vectorised step per layer: which ids are within ``depth`` hops of ``start``.

        Args:
            start: the id to start from (reached at 0 hops).
            ptr, adjacent: a CSR adjacency, ``(succ_ptr, succ)`` downstream or ``(pred_ptr, pred)`` upstream.
            depth: the most hops to take; None for no limit.

        Returns:
            a bool array of shape ``(n,)``, True at every id reached (``start`` included).
        """
        n = len(self.refs)
        seen = np.zeros(n, dtype=bool)
        seen[start] = True
        slot = np.empty(n, dtype=np.int32)  # scratch for de-duplicating a layer without sorting it
        frontier, hops = np.array([start], dtype=np.int32), 0
        while frontier.size and (depth is None or hops < depth):
            layer = adjacent[_row_positions(ptr, frontier)]
            layer = layer[~seen[layer]]  # new ids, each once per edge into it from the frontier
            position = np.arange(layer.size, dtype=np.int32)
            slot[layer] = position  # one write per id sticks: the copy at that position is kept
            layer = layer[slot[layer] == position]
            seen[layer] = True
            frontier, hops = layer, hops + 1
        return seen

    def subgraph(self, reached: BoolArray) -> Subgraph:
        """The nodes of ``reached`` and every edge among them, both sorted, without sorting anything.

        ``reached`` is a bool array of shape ``(n,)``; its True positions, ascending, are sorted refs,
        and the out-edges of those sources whose target is reached, in CSR order, are sorted edges.
        """
        ids = np.flatnonzero(reached)
        out = _row_positions(self.succ_ptr, ids)
        among = out[reached[self.succ[out]]]
        return Subgraph(tuple(self.nodes[ids].tolist()), tuple(self.edges[among].tolist()))


def _ref_key(ref: NodeRef) -> tuple[str, str]:
    return ref.kind, ref.name


def _objects(values: Sequence[Any]) -> ObjectArray:
    """A 1-d object array holding ``values`` themselves (``np.array`` could unpack sequence-like ones)."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _row_pointers(rows: IntArray, n: int) -> IntArray:
    """CSR row pointers, shape ``(n + 1,)``, for entries whose row ids ``rows`` are sorted ascending."""
    ptr = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=n), out=ptr[1:])
    return ptr


def _row_positions(ptr: IntArray, rows: npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.intp]:
    """The positions of every entry of the CSR ``rows``, row after row in the order given, shape ``(k,)``.

    That is ``concatenate([arange(ptr[r], ptr[r + 1]) for r in rows])``, without a Python loop.
    """
    starts = ptr[rows]
    lengths = ptr[rows + 1] - starts
    ends = np.cumsum(lengths)
    if not rows.size or not ends[-1]:
        return np.empty(0, dtype=np.intp)
    positions: npt.NDArray[np.intp] = np.arange(ends[-1], dtype=np.intp) + np.repeat(starts - (ends - lengths), lengths)
    return positions


class LineageGraph:
    """A directed acyclic graph of lineage nodes; edges point downstream (see ``Relation``).

    Queries run on an index (refs numbered in sorted order, adjacency as numpy CSR arrays) built on the
    first query after a node is added; edges added later are merged into it on the next query (numpy
    work, no Python loop over the graph), and replacing a known node updates it in place. So building a
    graph node by node costs no index work, querying while building stays cheap, and querying a large
    graph walks arrays instead of Python objects and never sorts.
    """

    def __init__(self) -> None:
        self._g: nx.DiGraph = nx.DiGraph()  # edge data: {"edges": {Relation: Edge}}
        self._index_cache: _Index | None = None

    @classmethod
    def of(cls, nodes: Iterable[Node], edges: Iterable[Edge]) -> LineageGraph:
        """Build a graph from nodes and edges in one go (checks acyclicity once, not per edge).

        Also builds the query index, so the first query is as fast as the rest.

        Raises:
            NodeNotFound: an edge names a node not among ``nodes``.
            CycleRefused: the edges contain a cycle (reports one edge on it).
        """
        graph = cls()
        g = graph._g
        for node in nodes:
            g.add_node(node.ref, node=node)
        succ = g.succ
        for edge in edges:
            graph._require(edge.source)
            graph._require(edge.target)
            known = succ[edge.source].get(edge.target)
            if known is None:
                g.add_edge(edge.source, edge.target, edges={edge.relation: edge})
            else:
                known["edges"].setdefault(edge.relation, edge)
        try:
            cycle = nx.find_cycle(g)
        except nx.NetworkXNoCycle:
            graph._index()
            return graph
        source, target = cycle[0]
        edge = Edge(source, target, min(g[source][target]["edges"]))
        raise CycleRefused(edge, [source, *(t for _, t in cycle)])

    # -- building ---------------------------------------------------------------------------------

    def add_node(self, node: Node) -> None:
        """Insert ``node``, or replace the hash and attributes of the node with the same ref."""
        index = self._index_cache
        if index is not None and node.ref in index.ids:
            index.nodes[index.ids[node.ref]] = node
        else:
            self._index_cache = None  # a new ref shifts the ids and sizes: rebuilt on the next query
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
            by_relation = self._g[edge.source][edge.target]["edges"]
            if edge.relation not in by_relation:
                by_relation[edge.relation] = edge
                self._edge_added(edge)
            return
        if edge.source == edge.target:
            raise CycleRefused(edge, [edge.source, edge.target])
        if nx.has_path(self._g, edge.target, edge.source):
            back = nx.shortest_path(self._g, edge.target, edge.source)
            raise CycleRefused(edge, [edge.source, *back])
        self._g.add_edge(edge.source, edge.target, edges={edge.relation: edge})
        self._edge_added(edge)

    # -- lookup -----------------------------------------------------------------------------------

    def node(self, ref: NodeRef) -> Node:
        """The node with this ref. Raises NodeNotFound."""
        self._require(ref)
        node: Node = self._g.nodes[ref]["node"]
        return node

    def nodes(self) -> list[Node]:
        """Every node, sorted by ref."""
        nodes: list[Node] = self._index().nodes.tolist()
        return nodes

    def edges(self) -> list[Edge]:
        """Every edge, sorted by (source, target, relation)."""
        edges: list[Edge] = self._index().edges.tolist()
        return edges

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
        index = self._index()
        return index.subgraph(index.reach(self._start(ref, depth), index.pred_ptr, index.pred, depth))

    def downstream_of(self, ref: NodeRef, depth: int | None = None) -> Subgraph:
        """``ref`` and everything built from it, up to ``depth`` hops (None: all the way).

        Returns:
            a Subgraph of the reached nodes (``ref`` included) and every edge among them.

        Raises:
            NodeNotFound: ``ref`` is not in the graph.
            ValueError: ``depth`` is negative.
        """
        index = self._index()
        return index.subgraph(index.reach(self._start(ref, depth), index.succ_ptr, index.succ, depth))

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
            try:
                return list(nx.bidirectional_shortest_path(self._g, start, end))
            except nx.NetworkXNoPath:
                continue
        return []

    def impact_of(self, ref: NodeRef) -> list[Node]:
        """Feature services, training sets and models strictly downstream of ``ref``, sorted by ref.

        These are what break, or must be retrained, when ``ref`` changes.

        Raises:
            NodeNotFound: ``ref`` is not in the graph.
        """
        index = self._index()
        start = self._start(ref, None)
        reached = index.reach(start, index.succ_ptr, index.succ, None)
        reached[start] = False
        impacted: list[Node] = index.nodes[np.flatnonzero(reached & index.impacted)].tolist()
        return impacted

    # -- internals --------------------------------------------------------------------------------

    def _require(self, ref: NodeRef) -> None:
        if ref not in self:
            raise NodeNotFound(ref)

    def _start(self, ref: NodeRef, depth: int | None) -> int:
        """The id of ``ref``, after checking it exists and ``depth`` is None or >= 0."""
        self._require(ref)
        if depth is not None and depth < 0:
            raise ValueError(f"depth must be >= 0 or None, got {depth}")
        return self._index().ids[ref]

    def _index(self) -> _Index:
        index = self._index_cache
        if index is None:
            index = self._index_cache = _Index(self._g)
        elif index.added:
            index = self._index_cache = index.with_added()  # a new object: concurrent readers may do it too
        return index

    def _edge_added(self, edge: Edge) -> None:
        if self._index_cache is not None:
            self._index_cache.added.append(edge)  # CSR arrays do not grow in place: merged on the next query
