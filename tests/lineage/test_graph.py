"""Tests of LineageGraph: building rules, and queries checked against slow, obvious references."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lineage import IMPACTED_KINDS, CycleRefused, Edge, LineageGraph, Node, NodeKind, NodeNotFound, NodeRef
from lineage import Relation as R
from tests.lineage.conftest import (
    CHAIN_REFS,
    DIAMOND_BOTTOM,
    DIAMOND_LEFT,
    DIAMOND_RIGHT,
    DIAMOND_TOP,
)
from tests.lineage.strategies import dags

PROPERTY = settings(max_examples=60, deadline=None)
GHOST = NodeRef(NodeKind.MODEL, "ghost")


def graph_of(nodes: list[Node], edges: list[Edge]) -> LineageGraph:
    graph = LineageGraph()
    for node in nodes:
        graph.add_node(node)
    for edge in edges:
        graph.add_edge(edge)
    return graph


def hops(edges: list[Edge], start: NodeRef, downstream: bool) -> dict[NodeRef, int]:
    """Reference: fewest hops from ``start`` to each reachable node, by relaxing every edge until stable."""
    dist = {start: 0}
    changed = True
    while changed:
        changed = False
        for edge in edges:
            a, b = (edge.source, edge.target) if downstream else (edge.target, edge.source)
            if a in dist and dist[a] + 1 < dist.get(b, len(edges) + 1):
                dist[b] = dist[a] + 1
                changed = True
    return dist


# -- named graphs -----------------------------------------------------------------------------------


def test_chain_upstream_and_downstream(chain: LineageGraph) -> None:
    view = CHAIN_REFS[3]
    assert [n.ref for n in chain.upstream_of(view).nodes] == sorted(CHAIN_REFS[:4])
    assert [n.ref for n in chain.downstream_of(view).nodes] == sorted(CHAIN_REFS[3:])
    assert [n.ref for n in chain.downstream_of(view, depth=1).nodes] == sorted(CHAIN_REFS[3:5])
    assert chain.downstream_of(view, depth=0).refs == {view}
    assert len(chain.upstream_of(view).edges) == 3


def test_chain_impact_and_path(chain: LineageGraph) -> None:
    assert [n.ref.kind for n in chain.impact_of(CHAIN_REFS[0])] == [
        NodeKind.FEATURE_SERVICE,
        NodeKind.MODEL,
        NodeKind.TRAINING_SET,
    ]
    assert chain.path_between(CHAIN_REFS[0], CHAIN_REFS[-1]) == CHAIN_REFS
    assert chain.path_between(CHAIN_REFS[-1], CHAIN_REFS[0]) == CHAIN_REFS
    assert chain.impact_of(CHAIN_REFS[-1]) == []


def test_diamond_queries(diamond: LineageGraph) -> None:
    assert diamond.upstream_of(DIAMOND_BOTTOM).refs == {
        DIAMOND_TOP,
        DIAMOND_LEFT,
        DIAMOND_RIGHT,
        DIAMOND_BOTTOM,
    }
    assert len(diamond.downstream_of(DIAMOND_TOP).edges) == 4
    assert len(diamond.path_between(DIAMOND_TOP, DIAMOND_BOTTOM)) == 3
    assert diamond.path_between(DIAMOND_LEFT, DIAMOND_RIGHT) == []
    assert [n.ref for n in diamond.impact_of(DIAMOND_TOP)] == [DIAMOND_LEFT, DIAMOND_RIGHT, DIAMOND_BOTTOM]


def test_diamond_closing_edge_is_refused(diamond: LineageGraph) -> None:
    before = (diamond.nodes(), diamond.edges())
    with pytest.raises(CycleRefused) as info:
        diamond.add_edge(Edge(DIAMOND_BOTTOM, DIAMOND_TOP, R.DERIVES))
    assert info.value.edge == Edge(DIAMOND_BOTTOM, DIAMOND_TOP, R.DERIVES)
    assert info.value.cycle[0] == info.value.cycle[-1] == DIAMOND_BOTTOM
    assert (diamond.nodes(), diamond.edges()) == before


def test_subgraph_to_dict(diamond: LineageGraph) -> None:
    out = diamond.downstream_of(DIAMOND_LEFT).to_dict()
    assert [n["id"] for n in out["nodes"]] == [str(DIAMOND_LEFT), str(DIAMOND_BOTTOM)]
    assert out["edges"] == [{"source": str(DIAMOND_LEFT), "target": str(DIAMOND_BOTTOM), "relation": "trained_on"}]


def test_unknown_nodes_raise_node_not_found(diamond: LineageGraph) -> None:
    calls = [
        lambda: diamond.node(GHOST),
        lambda: diamond.upstream_of(GHOST),
        lambda: diamond.downstream_of(GHOST),
        lambda: diamond.path_between(GHOST, DIAMOND_TOP),
        lambda: diamond.path_between(DIAMOND_TOP, GHOST),
        lambda: diamond.impact_of(GHOST),
        lambda: diamond.add_edge(Edge(DIAMOND_TOP, GHOST, R.INCLUDES)),
    ]
    for call in calls:
        with pytest.raises(NodeNotFound) as info:
            call()
        assert info.value.ref == GHOST


def test_add_node_upserts_and_add_edge_is_idempotent(diamond: LineageGraph) -> None:
    diamond.add_node(Node(DIAMOND_TOP, "f" * 64, {"owner": "someone else"}))
    assert diamond.node(DIAMOND_TOP).attributes == {"owner": "someone else"}
    assert len(diamond) == 4 and DIAMOND_TOP in diamond
    diamond.add_edge(Edge(DIAMOND_TOP, DIAMOND_LEFT, R.INCLUDES))
    assert len(diamond.edges()) == 4
    assert len(diamond.downstream_of(DIAMOND_TOP).edges) == 4


def test_self_loop_and_negative_depth_are_refused(diamond: LineageGraph) -> None:
    with pytest.raises(CycleRefused):
        diamond.add_edge(Edge(DIAMOND_TOP, DIAMOND_TOP, R.DERIVES))
    with pytest.raises(ValueError):
        diamond.downstream_of(DIAMOND_TOP, depth=-1)


# -- properties on random DAGs ----------------------------------------------------------------------


@PROPERTY
@given(dags())
def test_downstream_iff_upstream(dag: tuple[list[Node], list[Edge]]) -> None:
    graph = graph_of(*dag)
    for a in graph.nodes():
        down = graph.downstream_of(a.ref)
        assert down.refs == set(hops(dag[1], a.ref, downstream=True))
        for b in graph.nodes():
            assert (b.ref in down) == (a.ref in graph.upstream_of(b.ref))


@PROPERTY
@given(dags(), st.data())
def test_depth_limits_match_hop_counts(dag: tuple[list[Node], list[Edge]], data: st.DataObject) -> None:
    nodes, edges = dag
    if not nodes:
        return
    graph = graph_of(nodes, edges)
    start = data.draw(st.sampled_from(nodes)).ref
    depth = data.draw(st.integers(min_value=0, max_value=4))
    for downstream, query in ((True, graph.downstream_of), (False, graph.upstream_of)):
        expected = {ref for ref, d in hops(edges, start, downstream).items() if d <= depth}
        sub = query(start, depth=depth)
        assert sub.refs == expected
        assert all(e.source in sub and e.target in sub for e in sub.edges)
        assert list(sub.nodes) == sorted(sub.nodes, key=lambda n: n.ref)


@PROPERTY
@given(dags(), st.data())
def test_cycle_closing_edge_refused_iff_path_exists(dag: tuple[list[Node], list[Edge]], data: st.DataObject) -> None:
    nodes, edges = dag
    if not nodes:
        return
    graph = graph_of(nodes, edges)
    a = data.draw(st.sampled_from(nodes)).ref
    b = data.draw(st.sampled_from(nodes)).ref
    before = (graph.nodes(), graph.edges())
    new = Edge(b, a, R.DERIVES)
    if b in hops(edges, a, downstream=True):  # a ->...-> b exists (or a == b): b -> a closes a cycle
        with pytest.raises(CycleRefused):
            graph.add_edge(new)
        assert (graph.nodes(), graph.edges()) == before
    else:
        graph.add_edge(new)
        assert new in graph.edges()


@PROPERTY
@given(dags(), st.data())
def test_impact_lists_only_consumers_downstream(dag: tuple[list[Node], list[Edge]], data: st.DataObject) -> None:
    nodes, edges = dag
    if not nodes:
        return
    graph = graph_of(nodes, edges)
    start = data.draw(st.sampled_from(nodes)).ref
    impact = [n.ref for n in graph.impact_of(start)]
    assert all(ref.kind in IMPACTED_KINDS for ref in impact)
    reachable = set(hops(edges, start, downstream=True)) - {start}
    assert impact == sorted(ref for ref in reachable if ref.kind in IMPACTED_KINDS)


@PROPERTY
@given(dags(), st.data())
def test_path_between_is_a_real_path(dag: tuple[list[Node], list[Edge]], data: st.DataObject) -> None:
    nodes, edges = dag
    if not nodes:
        return
    graph = graph_of(nodes, edges)
    a = data.draw(st.sampled_from(nodes)).ref
    b = data.draw(st.sampled_from(nodes)).ref
    path = graph.path_between(a, b)
    pairs = {(e.source, e.target) for e in edges}
    if b in hops(edges, a, downstream=True):
        assert path[0] == a and path[-1] == b and len(path) == hops(edges, a, downstream=True)[b] + 1
    elif a in hops(edges, b, downstream=True):
        assert path[0] == b and path[-1] == a
    else:
        assert path == []
    assert all((x, y) in pairs for x, y in zip(path, path[1:], strict=False))


@PROPERTY
@given(dags())
def test_bulk_build_equals_incremental(dag: tuple[list[Node], list[Edge]]) -> None:
    incremental = graph_of(*dag)
    bulk = LineageGraph.of(*dag)
    assert (bulk.nodes(), bulk.edges()) == (incremental.nodes(), incremental.edges())


@PROPERTY
@given(dags(), dags(), st.data())
def test_queries_after_mutation_match_a_fresh_build(
    first: tuple[list[Node], list[Edge]], second: tuple[list[Node], list[Edge]], data: st.DataObject
) -> None:
    """The query index merges new edges, updates replaced nodes in place, or is rebuilt (new nodes)."""
    nodes, edges = first
    graph = LineageGraph.of(nodes, edges)
    for node in nodes:
        graph.downstream_of(node.ref)  # the index exists before every change below
    added = [Edge(e.source, e.target, data.draw(st.sampled_from(list(R)))) for e in edges]
    for edge in added:
        graph.add_edge(edge)  # same pairs, maybe new relations: merged into the index on the next query
    upserted = [Node(n.ref, "0" * 64, {"changed": True}) for n in nodes[:2]]
    for node in upserted:
        graph.add_node(node)
    extra = [n for n in second[0] if n.ref not in graph]
    for node in extra:
        graph.add_node(node)
    fresh = LineageGraph.of([*upserted, *nodes[2:], *extra], [*edges, *added])
    assert (graph.nodes(), graph.edges()) == (fresh.nodes(), fresh.edges())
    for node in fresh.nodes():
        assert graph.upstream_of(node.ref) == fresh.upstream_of(node.ref)
        assert graph.downstream_of(node.ref, depth=1) == fresh.downstream_of(node.ref, depth=1)
        assert graph.impact_of(node.ref) == fresh.impact_of(node.ref)


@PROPERTY
@given(dags())
def test_subgraph_edges_are_exactly_the_edges_among_its_nodes(dag: tuple[list[Node], list[Edge]]) -> None:
    nodes, edges = dag
    graph = LineageGraph.of(nodes, edges)
    for node in nodes:
        for sub in (graph.upstream_of(node.ref), graph.downstream_of(node.ref, depth=1)):
            assert list(sub.edges) == sorted({e for e in edges if e.source in sub.refs and e.target in sub.refs})
