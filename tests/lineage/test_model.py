"""Tests of the lineage values: refs, nodes, edges, definition hashes."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lineage import (
    Edge,
    InvalidNodeId,
    LineageError,
    Node,
    NodeKind,
    NodeRef,
    Relation,
    definition_hash,
)
from tests.lineage.strategies import attributes, json_values, refs


@given(refs)
def test_ref_parse_inverts_str(ref: NodeRef) -> None:
    assert NodeRef.parse(str(ref)) == ref


def test_ref_str_is_kind_colon_name() -> None:
    assert str(NodeRef(NodeKind.RAW_TABLE, "nycflights13.weather")) == "raw_table:nycflights13.weather"
    assert str(NodeRef(NodeKind.FEATURE, "origin_weather.wind_speed")) == "feature:origin_weather.wind_speed"


def test_parse_splits_on_first_colon() -> None:
    assert NodeRef.parse("feature:view:x") == NodeRef(NodeKind.FEATURE, "view:x")


@pytest.mark.parametrize("text", ["", "feature", "feature:", "tabel:x", ":x", "feature:a\nb"])
def test_parse_rejects_bad_ids(text: str) -> None:
    with pytest.raises(InvalidNodeId) as info:
        NodeRef.parse(text)
    assert info.value.text == text
    assert isinstance(info.value, ValueError) and isinstance(info.value, LineageError)


def test_ref_constructor_validates_and_coerces_kind() -> None:
    assert NodeRef("model", "m").kind is NodeKind.MODEL  # type: ignore[arg-type]
    with pytest.raises(InvalidNodeId):
        NodeRef("nope", "m")  # type: ignore[arg-type]


@given(attributes)
def test_node_to_dict_has_http_shape_and_is_json(attrs: dict[str, object]) -> None:
    node = Node(NodeRef(NodeKind.FEATURE_VIEW, "origin_weather"), "ab" * 32, attrs)
    out = node.to_dict()
    assert out == {
        "id": "feature_view:origin_weather",
        "kind": "feature_view",
        "name": "origin_weather",
        "definition_hash": "ab" * 32,
        "attributes": json.loads(json.dumps(attrs)),
    }
    json.dumps(out)


def test_node_is_immutable_and_hashable() -> None:
    source = {"tags": {"team": "delays"}}
    node = Node(NodeRef(NodeKind.MODEL, "m"), None, source)
    source["tags"]["team"] = "changed"
    assert node.attributes["tags"] == {"team": "delays"}
    with pytest.raises(TypeError):
        node.attributes["x"] = 1  # type: ignore[index]
    assert hash(node) == hash(Node(NodeRef(NodeKind.MODEL, "m"), None, {"tags": {"team": "delays"}}))


def test_node_rejects_non_json_attributes() -> None:
    with pytest.raises(TypeError):
        Node(NodeRef(NodeKind.MODEL, "m"), None, {"when": object()})


def test_edge_to_dict() -> None:
    edge = Edge(NodeRef(NodeKind.DATA_SOURCE, "s"), NodeRef(NodeKind.FEATURE_VIEW, "v"), Relation.READS)
    assert edge.to_dict() == {"source": "data_source:s", "target": "feature_view:v", "relation": "reads"}


@given(st.dictionaries(st.text(max_size=5), json_values, max_size=5))
def test_definition_hash_ignores_key_order(spec: dict[str, object]) -> None:
    reordered = dict(reversed(list(spec.items())))
    assert definition_hash(spec) == definition_hash(reordered)
    assert len(definition_hash(spec)) == 64


def test_definition_hash_changes_with_definition() -> None:
    assert definition_hash({"ttl": 3600}) != definition_hash({"ttl": 7200})
