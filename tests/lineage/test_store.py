"""Tests of LineageStore on SQLite and (marked integration) PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lineage import CycleRefused, Edge, LineageStore, Node, NodeKind, NodeNotFound, NodeRef, Relation
from tests.lineage.conftest import CHAIN_REFS, StoreFactory
from tests.lineage.strategies import dags

# The factory fixture is shared across examples on purpose: every example asks it for fresh tables.
ROUND_TRIP = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

VIEW = NodeRef(NodeKind.FEATURE_VIEW, "origin_weather")
FEATURE = NodeRef(NodeKind.FEATURE, "origin_weather.wind_speed")
SERVICE = NodeRef(NodeKind.FEATURE_SERVICE, "delay_v1")


def snapshot(store: LineageStore) -> tuple[list[Node], list[Edge]]:
    graph = store.load_graph()
    return graph.nodes(), graph.edges()


@ROUND_TRIP
@given(dag=dags(rich=True), split=st.integers(min_value=0, max_value=8))
def test_save_then_load_round_trips(
    store_factory: StoreFactory, dag: tuple[list[Node], list[Edge]], split: int
) -> None:
    nodes, edges = dag
    store = store_factory()
    store.save(nodes[:split], [])
    store.save(nodes[split:], edges)
    assert snapshot(store) == (sorted(nodes, key=lambda n: n.ref), sorted(edges))
    for node in nodes:
        assert store.get_node(node.ref) == node


def test_save_upserts_nodes_and_ignores_known_edges(store: LineageStore) -> None:
    edge = Edge(VIEW, FEATURE, Relation.DEFINES)
    store.save([Node(VIEW, "a" * 64, {"owner": "ana"}), Node(FEATURE)], [edge])
    store.save([Node(VIEW, "b" * 64, {"owner": "bo"})], [edge, edge])
    nodes, edges = snapshot(store)
    assert nodes[1] == Node(VIEW, "b" * 64, {"owner": "bo"})
    assert edges == [edge]


def test_cycle_is_refused_and_nothing_is_written(store: LineageStore) -> None:
    store.save([Node(VIEW), Node(FEATURE)], [Edge(VIEW, FEATURE, Relation.DEFINES)])
    before = snapshot(store)
    with pytest.raises(CycleRefused) as info:
        store.save(
            [Node(SERVICE), Node(VIEW, None, {"changed": True})],
            [Edge(FEATURE, SERVICE, Relation.INCLUDES), Edge(SERVICE, VIEW, Relation.DERIVES)],
        )
    assert info.value.edge == Edge(SERVICE, VIEW, Relation.DERIVES)
    assert snapshot(store) == before


def test_edge_to_unknown_node_is_refused(store: LineageStore) -> None:
    with pytest.raises(NodeNotFound) as info:
        store.save([Node(VIEW)], [Edge(VIEW, FEATURE, Relation.DEFINES)])
    assert info.value.ref == FEATURE
    assert snapshot(store) == ([], [])


def test_get_node_and_update_attributes(store: LineageStore) -> None:
    with pytest.raises(NodeNotFound):
        store.get_node(VIEW)
    with pytest.raises(NodeNotFound):
        store.update_attributes(VIEW, owner="x")
    store.save([Node(VIEW, "c" * 64, {"owner": "ana", "tags": ["weather"]})], [])
    updated = store.update_attributes(VIEW, owner="bo", row_count=26115)
    expected = Node(VIEW, "c" * 64, {"owner": "bo", "tags": ["weather"], "row_count": 26115})
    assert updated == expected
    assert store.get_node(VIEW) == expected


def test_update_attributes_of_several_nodes_is_all_or_nothing(store: LineageStore) -> None:
    store.save([Node(VIEW, "c" * 64, {"owner": "ana"}), Node(FEATURE, "d" * 64, {"dtype": "Float64"})], [])
    token = store.change_token()
    with pytest.raises(NodeNotFound):  # one unknown node: none is written
        store.update_attributes_of({VIEW: {"last_drift": {"id": "d-1"}}, SERVICE: {"last_drift": {"id": "d-1"}}})
    assert store.change_token() == token and "last_drift" not in store.get_node(VIEW).attributes
    done = store.update_attributes_of({VIEW: {"last_drift": {"id": "d-2"}}, FEATURE: {"last_drift": {"id": "d-2"}}})
    assert [n.ref for n in done] == [VIEW, FEATURE]
    assert store.get_node(VIEW).attributes == {"owner": "ana", "last_drift": {"id": "d-2"}}
    assert store.get_node(FEATURE).attributes == {"dtype": "Float64", "last_drift": {"id": "d-2"}}
    assert store.change_token() == token + 1  # one transaction
    assert store.update_attributes_of({}) == []


def test_create_all_is_idempotent(store_factory: StoreFactory) -> None:
    first = store_factory()
    first.save([Node(VIEW)], [])
    again = store_factory(first.table_prefix)
    again.create_all()
    assert again.get_node(VIEW) == Node(VIEW)


def test_concurrent_overlapping_writers_lose_and_duplicate_nothing(store_factory: StoreFactory) -> None:
    first = store_factory()
    writers = [first] + [store_factory(first.table_prefix) for _ in range(7)]
    refs = [NodeRef(NodeKind.FEATURE, f"f{i:02d}") for i in range(24)]
    # writer w saves a window of 10 consecutive refs, edges between neighbours, in two batches
    windows = [refs[3 * w : 3 * w + 10] for w in range(8)]
    barrier = threading.Barrier(len(writers))
    errors: list[BaseException] = []

    def write(store: LineageStore, window: list[NodeRef]) -> None:
        try:
            barrier.wait()
            edges = [Edge(a, b, Relation.DERIVES) for a, b in zip(window, window[1:], strict=False)]
            for half in (slice(0, 5), slice(5, 10)):
                store.save([Node(ref, None, {"n": ref.name}) for ref in window[half]], [])
            store.save([], edges)
        except BaseException as exc:  # noqa: BLE001 -- reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=pair) for pair in zip(writers, windows, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    nodes, edges = snapshot(first)
    expected_refs = sorted({ref for window in windows for ref in window})
    expected_edges = sorted({Edge(a, b, Relation.DERIVES) for w in windows for a, b in zip(w, w[1:], strict=False)})
    assert [node.ref for node in nodes] == expected_refs
    assert edges == expected_edges


def test_chain_round_trips_through_store(store: LineageStore) -> None:
    nodes = [Node(ref, None, {"position": i}) for i, ref in enumerate(CHAIN_REFS)]
    edges = [Edge(a, b, Relation.READS) for a, b in zip(CHAIN_REFS, CHAIN_REFS[1:], strict=False)]
    store.save(nodes, edges)
    graph = store.load_graph()
    assert graph.path_between(CHAIN_REFS[0], CHAIN_REFS[-1]) == CHAIN_REFS
    assert [n.ref.kind for n in graph.impact_of(CHAIN_REFS[0])] == [
        NodeKind.FEATURE_SERVICE,
        NodeKind.MODEL,
        NodeKind.TRAINING_SET,
    ]


def test_concurrent_writers_cannot_jointly_close_a_cycle(store_factory: StoreFactory) -> None:
    first = store_factory()
    second = store_factory(first.table_prefix)
    first.save([Node(VIEW), Node(FEATURE)], [])
    halves = [Edge(VIEW, FEATURE, Relation.DEFINES), Edge(FEATURE, VIEW, Relation.DERIVES)]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def write(store: LineageStore, edge: Edge) -> None:
        barrier.wait()
        try:
            store.save([], [edge])
            outcomes.append("saved")
        except CycleRefused:
            outcomes.append("refused")

    threads = [threading.Thread(target=write, args=pair) for pair in zip((first, second), halves, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["refused", "saved"]
    assert len(first.load_graph().edges()) == 1
