"""``LineageStore.mark_deleted``: a node marked deleted keeps its history, refuses new models, and is
refused while a model depends on it (SQLite and, marked integration, PostgreSQL)."""

from datetime import UTC, datetime

import pytest

from lineage import LineageStore, Node, NodeKind, NodeNotFound, NodeRef
from lineage.errors import NodeDeleted, NodeInUse

SET_A, SET_B = NodeRef(NodeKind.TRAINING_SET, "ts-a"), NodeRef(NodeKind.TRAINING_SET, "ts-b")
MODEL = NodeRef(NodeKind.MODEL, "m@1")
AT = datetime(2024, 5, 1, 12, tzinfo=UTC)


def test_marking_deleted_keeps_the_node_and_its_history(store: LineageStore) -> None:
    store.save([Node(SET_A, None, {"rows": 3}), Node(SET_B, None, {"rows": 4})], [])
    token = store.change_token()
    node = store.mark_deleted(SET_B, AT, refuse_if_used_by=NodeKind.MODEL)
    assert node.attributes == {"rows": 4, "deleted": True, "deleted_at": "2024-05-01T12:00:00Z"}
    assert store.get_node(SET_B) == node
    assert store.graph_as_of(None).node(SET_B) == node  # still in the graph, marked
    assert store.mark_deleted(SET_B, datetime(2025, 1, 1, tzinfo=UTC)) == node  # the first time is kept
    with pytest.raises(NodeDeleted) as refused:
        store.register_model(Node(MODEL, None, {}), SET_B)
    assert refused.value.deleted_at == "2024-05-01T12:00:00Z"
    with pytest.raises(NodeNotFound):
        store.get_node(MODEL)
    history = store.load_graph()  # the state before the mark is in the history
    assert history.node(SET_B).attributes["deleted"] is True and token < store.change_token()


def test_a_node_a_model_was_trained_on_is_not_deleted(store: LineageStore) -> None:
    store.save([Node(SET_A, None, {})], [])
    store.register_model(Node(MODEL, None, {}), SET_A)
    with pytest.raises(NodeInUse) as refused:
        store.mark_deleted(SET_A, AT, refuse_if_used_by=NodeKind.MODEL)
    assert refused.value.dependents == (MODEL,)
    assert "deleted" not in store.get_node(SET_A).attributes
    with pytest.raises(NodeNotFound):
        store.mark_deleted(NodeRef(NodeKind.TRAINING_SET, "nope"), AT)
