"""The lineage tables (SQLAlchemy Core) and how nodes, edges and versions are laid out in their rows.

The schema is created and migrated by Alembic (:mod:`lineage.migrations`); these definitions mirror the
newest revision. Names are optionally prefixed so tests can isolate themselves in one database::

    lineage_nodes(id PK "kind:name", kind, name, definition_hash, attributes JSON, updated_at, registry,
                  run_keys JSON)
    lineage_edges(source, target, relation, registry; PK (source, target, relation))   -- the current graph
    lineage_changes(seq PK, at)                 -- one row per committed write; max(seq) is the change token
    lineage_node_history(id, definition_hash, attributes, from_seq, to_seq)   -- valid for from <= s < to
    lineage_edge_history(source, target, relation, from_seq, to_seq)
    lineage_versions(number PK, seq, created_at, source, node_count, edge_count, diff JSON)

``registry`` marks what the last apply recorded; ``run_keys`` lists the node's attribute keys written by
runs (:meth:`lineage.store.LineageStore.update_attributes`) rather than by the apply.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Boolean, Column, DateTime, ForeignKey, Integer, MetaData, Row, String, Table, Text

from lineage import migrations
from lineage.model import Edge, Node, NodeKind, NodeRef, Relation
from lineage.versions import GraphDiff, Version


@dataclass(frozen=True)
class LineageTables:
    """The tables of one prefix (``"t1_"`` -> ``t1_lineage_nodes``), all in ``metadata``."""

    metadata: MetaData
    nodes: Table
    edges: Table
    changes: Table
    node_history: Table
    edge_history: Table
    versions: Table

    @classmethod
    def named(cls, prefix: str = "") -> LineageTables:
        metadata = MetaData()
        nodes = Table(
            f"{prefix}lineage_nodes",
            metadata,
            Column("id", Text, primary_key=True),
            Column("kind", Text, nullable=False),
            Column("name", Text, nullable=False),
            Column("definition_hash", Text, nullable=True),
            Column("attributes", Text, nullable=False),
            Column("updated_at", DateTime(timezone=True), nullable=False),
            Column("registry", Boolean, nullable=False),
            Column("run_keys", Text, nullable=False, server_default="[]"),
        )
        nodes_id = f"{nodes.name}.id"
        edges = Table(
            f"{prefix}lineage_edges",
            metadata,
            Column("source", Text, ForeignKey(nodes_id), primary_key=True),
            Column("target", Text, ForeignKey(nodes_id), primary_key=True),
            Column("relation", Text, primary_key=True),
            Column("registry", Boolean, nullable=False),
        )
        changes = Table(
            f"{prefix}lineage_changes",
            metadata,
            Column("seq", Integer, primary_key=True, autoincrement=False),
            Column("at", DateTime(timezone=True), nullable=False),
        )
        node_history = Table(
            f"{prefix}lineage_node_history",
            metadata,
            Column("id", Text, nullable=False),
            Column("definition_hash", Text),
            Column("attributes", Text, nullable=False),
            Column("from_seq", Integer, nullable=False),
            Column("to_seq", Integer),
        )
        edge_history = Table(
            f"{prefix}lineage_edge_history",
            metadata,
            Column("source", Text, nullable=False),
            Column("target", Text, nullable=False),
            Column("relation", Text, nullable=False),
            Column("from_seq", Integer, nullable=False),
            Column("to_seq", Integer),
        )
        versions = Table(
            f"{prefix}lineage_versions",
            metadata,
            Column("number", Integer, primary_key=True, autoincrement=False),
            Column("seq", Integer, nullable=False),
            Column("created_at", DateTime(timezone=True), nullable=False),
            Column("source", Text, nullable=False),
            Column("node_count", Integer, nullable=False),
            Column("edge_count", Integer, nullable=False),
            Column("diff", Text, nullable=False),
        )
        Table(migrations.version_table(prefix), metadata, Column("version_num", String(32), primary_key=True))
        return cls(metadata, nodes, edges, changes, node_history, edge_history, versions)


def dump(attributes: Mapping[str, Any]) -> str:
    """Attributes as stored: JSON with sorted keys; NaN and infinities refused (ValueError)."""
    return json.dumps(dict(attributes), sort_keys=True, allow_nan=False)


def node_row(node: Node, now: datetime, registry: bool, run_keys: Iterable[str] = ()) -> dict[str, Any]:
    return {
        "id": str(node.ref),
        "kind": str(node.ref.kind),
        "name": node.ref.name,
        "definition_hash": node.definition_hash,
        "attributes": dump(node.attributes),
        "updated_at": now,
        "registry": registry,
        "run_keys": json.dumps(sorted(set(run_keys))),
    }


def node_from_row(row: Row[Any]) -> Node:
    return Node(NodeRef(NodeKind(row.kind), row.name), row.definition_hash, json.loads(row.attributes))


def run_keys_from_row(row: Any) -> list[str]:
    """The ``run_keys`` of a row of ``lineage_nodes`` (any select including that column)."""
    return list(json.loads(row.run_keys))


def edge_key(edge: Edge) -> dict[str, str]:
    return {"source": str(edge.source), "target": str(edge.target), "relation": str(edge.relation)}


def edge_from_row(row: Row[Any]) -> Edge:
    return Edge(NodeRef.parse(row.source), NodeRef.parse(row.target), Relation(row.relation))


def version_from_row(row: Row[Any]) -> Version:
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    diff = GraphDiff.from_dict(json.loads(row.diff))
    return Version(row.number, created, row.source, row.node_count, row.edge_count, diff)
