"""``LineageStore.save`` reads only the neighbourhood a save touches (lineage/neighbourhood.py); it must
decide exactly as the whole graph would. Reference: an in-memory ``LineageGraph`` fed the same saves
node by node and edge by edge (``add_node`` / ``add_edge``, which check against the whole graph)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lineage import CycleRefused, Edge, LineageGraph, LineageStore, Node, NodeKind, NodeNotFound, NodeRef, Relation
from tests.lineage.conftest import StoreFactory

REFS = [NodeRef(NodeKind.FEATURE, f"v.f{i}") for i in range(7)]
RELATIONS = [Relation.DERIVES, Relation.INCLUDES]

saves = st.lists(
    st.tuples(
        st.lists(st.sampled_from(REFS), max_size=3),  # nodes saved
        st.lists(st.tuples(st.sampled_from(REFS), st.sampled_from(REFS), st.sampled_from(RELATIONS)), max_size=4),
    ),
    min_size=1,
    max_size=8,
)


def rebuilt(nodes: dict[NodeRef, Node], edges: list[Edge]) -> LineageGraph:
    graph = LineageGraph()
    for node in nodes.values():
        graph.add_node(node)
    for edge in edges:
        graph.add_edge(edge)
    return graph


def reference_save(
    accepted: tuple[dict[NodeRef, Node], list[Edge]], nodes: list[Node], edges: list[Edge]
) -> tuple[tuple[dict[NodeRef, Node], list[Edge]], object]:
    """The whole-graph answer: the accepted nodes and edges with the save applied, or unchanged and the error."""
    trial = rebuilt(*accepted)
    try:
        for node in {n.ref: n for n in nodes}.values():
            trial.add_node(node)
        for edge in sorted(set(edges)):
            trial.add_edge(edge)
    except CycleRefused as err:
        return accepted, ("cycle", err.edge, err.cycle)
    except NodeNotFound as err:
        return accepted, ("missing", err.ref)
    return ({n.ref: n for n in trial.nodes()}, trial.edges()), None


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=saves)
def test_save_decides_as_the_whole_graph(store_factory: StoreFactory, plan: list) -> None:
    store = store_factory()
    try:
        check_saves(store, plan)
    finally:  # every example has its own tables: free them now, not at the fixture's teardown
        store.drop_all()
        store.dispose()


def check_saves(store: LineageStore, plan: list) -> None:
    accepted: tuple[dict[NodeRef, Node], list[Edge]] = ({}, [])
    for refs, raw_edges in plan:
        nodes = [Node(ref) for ref in refs]
        edges = [Edge(s, t, r) for s, t, r in raw_edges]
        accepted, expected = reference_save(accepted, nodes, edges)
        try:
            store.save(nodes, edges)
            outcome = None
        except CycleRefused as err:
            outcome = ("cycle", err.edge, err.cycle)
        except NodeNotFound as err:
            outcome = ("missing", err.ref)
        if expected and expected[0] == "cycle" and outcome and outcome[0] == "cycle":
            # The same edge is refused; the cycle reported is a shortest one back (ties may differ).
            assert outcome[1] == expected[1]
            assert len(outcome[2]) == len(expected[2])
            assert outcome[2][0] == outcome[2][-1] == expected[1].source
        else:
            assert outcome == expected
        stored, graph = store.load_graph(), rebuilt(*accepted)
        assert (stored.nodes(), stored.edges()) == (graph.nodes(), graph.edges())
