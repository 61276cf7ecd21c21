"""feastline lineage: node/edge values, the lineage graph and its SQL store (no HTTP here)."""

from lineage.errors import CycleRefused, InvalidNodeId, LineageError, NodeNotFound
from lineage.graph import IMPACTED_KINDS, LineageGraph, Subgraph
from lineage.model import (
    MODEL_NAME_MAX_LENGTH,
    MODEL_NAME_PATTERN,
    NODE_ID_PATTERN,
    Edge,
    Node,
    NodeKind,
    NodeRef,
    Relation,
    definition_hash,
)
from lineage.store import LineageStore

__all__ = [
    "IMPACTED_KINDS",
    "MODEL_NAME_MAX_LENGTH",
    "MODEL_NAME_PATTERN",
    "NODE_ID_PATTERN",
    "CycleRefused",
    "Edge",
    "InvalidNodeId",
    "LineageError",
    "LineageGraph",
    "LineageStore",
    "Node",
    "NodeKind",
    "NodeNotFound",
    "NodeRef",
    "Relation",
    "Subgraph",
    "definition_hash",
]
