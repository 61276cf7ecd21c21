"""``LineageStore.register_model``: one name@version names one model, even under concurrent writers
(SQLite and, marked integration, PostgreSQL)."""

from __future__ import annotations

import threading

import pytest

from lineage import Edge, LineageStore, Node, NodeKind, NodeNotFound, NodeRef, Relation
from lineage.errors import ModelVersionConflict
from tests.lineage.conftest import StoreFactory

MODEL = NodeRef(NodeKind.MODEL, "delay_baseline@1")
WRITERS = 8


def training(i: int) -> NodeRef:
    return NodeRef(NodeKind.TRAINING_SET, f"ts-{i}")


def model_on(i: int, **metrics: float) -> Node:
    return Node(MODEL, f"{i:064d}", {"training_set_id": training(i).name, "metrics": metrics})


def trained_on(store: LineageStore, ref: NodeRef) -> list[Edge]:
    return [e for e in store.load_graph().edges() if e.target == ref and e.relation is Relation.TRAINED_ON]


def test_registering_again_on_the_same_training_set_is_a_conflict_and_writes_nothing(store: LineageStore) -> None:
    store.save([Node(training(0)), Node(training(1))], [])
    assert store.register_model(model_on(0, auc=0.5), training(0)) == model_on(0, auc=0.5)
    token = store.change_token()
    with pytest.raises(ModelVersionConflict) as info:
        store.register_model(model_on(0, auc=0.7), training(0))
    assert info.value.ref == MODEL and info.value.registered_on == training(0).name
    assert store.change_token() == token
    assert store.get_node(MODEL) == model_on(0, auc=0.5)
    assert trained_on(store, MODEL) == [Edge(training(0), MODEL, Relation.TRAINED_ON)]


def test_another_training_set_is_a_conflict_and_writes_nothing(store: LineageStore) -> None:
    store.save([Node(training(0)), Node(training(1))], [])
    store.register_model(model_on(0), training(0))
    token = store.change_token()
    with pytest.raises(ModelVersionConflict) as info:
        store.register_model(model_on(1), training(1))
    assert info.value.ref == MODEL and info.value.registered_on == training(0).name
    assert store.change_token() == token
    assert store.get_node(MODEL) == model_on(0)


def test_unknown_training_set_is_refused(store: LineageStore) -> None:
    with pytest.raises(NodeNotFound):
        store.register_model(model_on(0), training(0))
    assert MODEL not in store.load_graph()


def test_concurrent_registrations_of_one_version_make_one_model(store_factory: StoreFactory) -> None:
    first = store_factory()
    first.save([Node(training(i)) for i in range(WRITERS)], [])
    stores = [first] + [store_factory(first.table_prefix) for _ in range(WRITERS - 1)]
    token = first.change_token()
    barrier = threading.Barrier(WRITERS)
    created: list[int] = []
    conflicts: list[ModelVersionConflict] = []
    errors: list[BaseException] = []

    def register(store: LineageStore, i: int) -> None:
        barrier.wait()
        try:
            store.register_model(model_on(i), training(i))
            created.append(i)
        except ModelVersionConflict as exc:
            conflicts.append(exc)
        except BaseException as exc:  # noqa: BLE001 -- reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=register, args=(s, i)) for i, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(created) == 1 and len(conflicts) == WRITERS - 1
    winner = created[0]
    assert {c.registered_on for c in conflicts} == {training(winner).name}
    graph = first.load_graph()
    assert [n for n in graph.nodes() if n.ref.kind is NodeKind.MODEL] == [model_on(winner)]
    assert trained_on(first, MODEL) == [Edge(training(winner), MODEL, Relation.TRAINED_ON)]
    assert first.change_token() == token + 1  # one write committed; the refused ones wrote nothing
