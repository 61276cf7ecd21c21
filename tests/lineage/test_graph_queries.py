"""Differential tests of the graph queries: LineageGraph's array index against networkx, on random DAGs.

The reference is the obvious model: a dict of nodes, a set of edges, and a plain networkx ``DiGraph`` of
the pairs, queried with ``nx.descendants`` and ``nx.single_source_shortest_path_length`` (with a cutoff
for ``depth``). Graphs are checked built in one go, and again after every random ``add_node`` /
``add_edge`` (queried in between or not, so both the lazily rebuilt index and the in-place node update
are exercised).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import networkx as nx  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lineage import IMPACTED_KINDS, CycleRefused, Edge, LineageGraph, Node, NodeKind, NodeNotFound, NodeRef, Relation
from lineage.graph import Subgraph

PROPERTY = settings(max_examples=60, deadline=None)
DEPTHS = (None, 0, 1, 2, 3)
NAMES = ["a", "aa", "a.b", "b", "weather", "x:y", "flights.dep", "Z"]
pools = st.lists(st.builds(NodeRef, st.sampled_from(list(NodeKind)), st.sampled_from(NAMES)), unique=True, max_size=16)
relations = st.sampled_from(list(Relation))


@dataclass
class Reference:
    """Slow, obvious answers to every query, from a networkx DiGraph of the (source, target) pairs."""

    nodes: dict[NodeRef, Node] = field(default_factory=dict)
    edges: set[Edge] = field(default_factory=set)
    pairs: nx.DiGraph = field(default_factory=nx.DiGraph)

    def add_node(self, node: Node) -> None:
        self.nodes[node.ref] = node
        self.pairs.add_node(node.ref)

    def add_edge(self, edge: Edge) -> None:
        self.edges.add(edge)
        self.pairs.add_edge(edge.source, edge.target)

    def closes_cycle(self, edge: Edge) -> bool:
        return edge.source == edge.target or nx.has_path(self.pairs, edge.target, edge.source)

    def reached(self, start: NodeRef, depth: int | None, downstream: bool) -> set[NodeRef]:
        g = self.pairs if downstream else self.pairs.reverse(copy=False)
        if depth is None:
            return {start, *nx.descendants(g, start)}
        return set(nx.single_source_shortest_path_length(g, start, cutoff=depth))

    def subgraph(self, reached: set[NodeRef]) -> Subgraph:
        among = sorted(e for e in self.edges if e.source in reached and e.target in reached)
        return Subgraph(tuple(self.nodes[ref] for ref in sorted(reached)), tuple(among))

    def impact(self, start: NodeRef) -> list[Node]:
        below = nx.descendants(self.pairs, start)
        return [self.nodes[ref] for ref in sorted(below) if ref.kind in IMPACTED_KINDS]


def assert_matches(graph: LineageGraph, ref: Reference, starts: list[NodeRef] | None = None) -> None:
    """Every query on ``graph`` (from ``starts``, default every node) equals the reference's answer."""
    assert graph.nodes() == [ref.nodes[r] for r in sorted(ref.nodes)]
    assert graph.edges() == sorted(ref.edges)
    for start in ref.nodes if starts is None else starts:
        for depth in DEPTHS:
            for downstream, query in ((True, graph.downstream_of), (False, graph.upstream_of)):
                got = query(start, depth)
                assert got == ref.subgraph(ref.reached(start, depth, downstream)), (start, depth, downstream)
                assert type(got.nodes) is tuple and type(got.edges) is tuple
                assert all(type(n) is Node for n in got.nodes) and all(type(e) is Edge for e in got.edges)
        impact = graph.impact_of(start)
        assert type(impact) is list and impact == ref.impact(start)


@st.composite
def dags(draw: st.DrawFn) -> tuple[list[Node], list[Edge]]:
    """Nodes in a hidden topological order; edges only forward, some pairs with several relations."""
    refs = draw(pools)
    nodes = [Node(r, None, {"rows": i}) for i, r in enumerate(refs)]
    pairs = [(i, j) for i in range(len(refs)) for j in range(i + 1, len(refs))]
    chosen = draw(st.lists(st.sampled_from(pairs), max_size=40)) if pairs else []  # repeats: more relations
    return nodes, [Edge(refs[i], refs[j], draw(relations)) for i, j in chosen]


@PROPERTY
@given(dags())
def test_bulk_built_graph_matches_networkx(dag: tuple[list[Node], list[Edge]]) -> None:
    nodes, edges = dag
    ref = Reference()
    for node in nodes:
        ref.add_node(node)
    for edge in edges:
        ref.add_edge(edge)
    assert_matches(LineageGraph.of(nodes, edges), ref)


Step = tuple[str, int, int, Relation, bool]  # ("node" | "edge", i, j, relation, query afterwards)


@PROPERTY
@given(dags(), pools, st.data())
def test_incrementally_changed_graph_matches_networkx(
    dag: tuple[list[Node], list[Edge]], more: list[NodeRef], data: st.DataObject
) -> None:
    """Random add_node (new ref or upsert) and add_edge (new, new relation, duplicate, cycle-closing,
    or naming an absent node) on a queried graph; the queries match the reference after each step."""
    nodes, edges = dag
    ref = Reference()
    for node in nodes:
        ref.add_node(node)
    for edge in edges:
        ref.add_edge(edge)
    if data.draw(st.booleans(), label="built in one go"):
        graph = LineageGraph.of(nodes, edges)
    else:
        graph = LineageGraph()
        for node in nodes:
            graph.add_node(node)
        for edge in edges:
            graph.add_edge(edge)
    assert_matches(graph, ref)
    pool = list(dict.fromkeys([*(n.ref for n in nodes), *more]))
    if not pool:
        return
    index = st.integers(min_value=0, max_value=len(pool) - 1)
    steps: list[Step] = data.draw(
        st.lists(
            st.tuples(st.sampled_from(["node", "edge", "edge"]), index, index, relations, st.booleans()), max_size=12
        )
    )
    for version, (op, i, j, relation, query) in enumerate(steps):
        if op == "node":
            node = Node(pool[i], f"{version:064x}", {"version": version})
            graph.add_node(node)
            ref.add_node(node)
        else:
            edge = Edge(pool[i], pool[j], relation)
            missing = next((r for r in (edge.source, edge.target) if r not in ref.nodes), None)
            if missing is not None:
                with pytest.raises(NodeNotFound) as not_found:
                    graph.add_edge(edge)
                assert not_found.value.ref == missing
            elif edge not in ref.edges and ref.closes_cycle(edge):
                with pytest.raises(CycleRefused):
                    graph.add_edge(edge)
            else:
                graph.add_edge(edge)
                ref.add_edge(edge)
        if query:
            assert_matches(graph, ref, starts=[r for r in pool[:4] if r in ref.nodes])
    assert_matches(graph, ref)


@settings(max_examples=15, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_large_layered_dag_matches_networkx(seed: int) -> None:
    """Hundreds of nodes in layers with shared parents: wide frontiers, many duplicate neighbours."""
    rng = random.Random(seed)
    kinds = list(NodeKind)
    layers = [
        [NodeRef(rng.choice(kinds), f"n{layer}.{i:03d}") for i in range(rng.randint(5, 60))] for layer in range(8)
    ]
    nodes = [Node(r, None, {}) for layer in layers for r in layer]
    edges = [
        Edge(rng.choice(upper), r, rng.choice(list(Relation)))
        for k, layer in enumerate(layers[1:], start=1)
        for r in layer
        for upper in rng.sample(layers[:k], min(k, 3))
        for _ in range(rng.randint(1, 4))
    ]
    ref = Reference()
    for node in nodes:
        ref.add_node(node)
    for edge in edges:
        ref.add_edge(edge)
    graph = LineageGraph.of(nodes, edges)
    assert_matches(graph, ref, starts=rng.sample([n.ref for n in nodes], 12))
