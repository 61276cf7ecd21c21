"""Graph versions: what each ``feastline apply`` recorded, and how it differs from the apply before.

A :class:`Version` is a fact, not a label: its number, when and by what it was recorded, the size of
the whole graph after it, and the :class:`GraphDiff` of the registry-derived graph against the previous
version (nodes compared by ``definition_hash``). Nothing here touches a database; see
:meth:`lineage.store.LineageStore.record_version`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lineage.errors import LineageError
from lineage.model import Edge, Node, NodeRef, Relation


class VersionNotFound(LineageError):
    """A version number that was never recorded was asked for.

    Attributes:
        number: the version number asked for.
    """

    def __init__(self, number: int) -> None:
        self.number = number
        super().__init__(f"no lineage version {number}")


class NoVersionAtTime(VersionNotFound):
    """A time before the first recorded version (or with none recorded yet) was asked for.

    Attributes:
        at: the time asked for (aware UTC).
        first_number / first_at: the first version's number and time, or None when none is recorded.
    """

    def __init__(self, at: datetime, first_number: int | None, first_at: datetime | None) -> None:
        self.number, self.at, self.first_number, self.first_at = None, at, first_number, first_at  # type: ignore[assignment]
        first = "none is recorded yet" if first_at is None else f"the first is {first_number} at {_z(first_at)}"
        LineageError.__init__(self, f"no lineage version at or before {_z(at)}; {first}")

    def details(self) -> dict[str, Any]:
        return {"first_version": self.first_number, "first_version_at": _z(self.first_at) if self.first_at else None}


def _z(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class HashChange:
    """A node whose definition hash changed between two versions."""

    ref: NodeRef
    before: str | None
    after: str | None

    def to_dict(self) -> dict[str, str | None]:
        """``{"id": "kind:name", "before": hash, "after": hash}``."""
        return {"id": str(self.ref), "before": self.before, "after": self.after}


@dataclass(frozen=True)
class GraphDiff:
    """The difference between two registry-derived graphs; every field sorted."""

    added_nodes: tuple[NodeRef, ...] = ()
    removed_nodes: tuple[NodeRef, ...] = ()
    changed_nodes: tuple[HashChange, ...] = ()
    added_edges: tuple[Edge, ...] = ()
    removed_edges: tuple[Edge, ...] = ()

    @property
    def empty(self) -> bool:
        """Nothing added, removed or changed."""
        return not any(self.counts().values())

    def counts(self) -> dict[str, int]:
        """``{"added_nodes": n, "removed_nodes": n, "changed_nodes": n, "added_edges": n, "removed_edges": n}``."""
        return {
            "added_nodes": len(self.added_nodes),
            "removed_nodes": len(self.removed_nodes),
            "changed_nodes": len(self.changed_nodes),
            "added_edges": len(self.added_edges),
            "removed_edges": len(self.removed_edges),
        }

    def to_dict(self) -> dict[str, list[Any]]:
        """Node ids as ``"kind:name"``, changed nodes as ``HashChange.to_dict()``, edges as ``Edge.to_dict()``."""
        return {
            "added_nodes": [str(ref) for ref in self.added_nodes],
            "removed_nodes": [str(ref) for ref in self.removed_nodes],
            "changed_nodes": [change.to_dict() for change in self.changed_nodes],
            "added_edges": [edge.to_dict() for edge in self.added_edges],
            "removed_edges": [edge.to_dict() for edge in self.removed_edges],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GraphDiff:
        """The inverse of :meth:`to_dict`."""

        def edge(d: Mapping[str, str]) -> Edge:
            return Edge(NodeRef.parse(d["source"]), NodeRef.parse(d["target"]), Relation(d["relation"]))

        return cls(
            added_nodes=tuple(NodeRef.parse(i) for i in data["added_nodes"]),
            removed_nodes=tuple(NodeRef.parse(i) for i in data["removed_nodes"]),
            changed_nodes=tuple(
                HashChange(NodeRef.parse(c["id"]), c["before"], c["after"]) for c in data["changed_nodes"]
            ),
            added_edges=tuple(edge(e) for e in data["added_edges"]),
            removed_edges=tuple(edge(e) for e in data["removed_edges"]),
        )


def diff_graphs(
    before_hashes: Mapping[NodeRef, str | None],
    before_edges: Iterable[Edge],
    after_nodes: Iterable[Node],
    after_edges: Iterable[Edge],
) -> GraphDiff:
    """Compare a previous registry graph (node hashes and edges) with a new one.

    Returns:
        nodes added / removed by ref, changed where the ``definition_hash`` differs (attributes alone do
        not count), and edges added / removed.
    """
    after = {node.ref: node.definition_hash for node in after_nodes}
    old_edges, new_edges = set(before_edges), set(after_edges)
    return GraphDiff(
        added_nodes=tuple(sorted(after.keys() - before_hashes.keys())),
        removed_nodes=tuple(sorted(before_hashes.keys() - after.keys())),
        changed_nodes=tuple(
            HashChange(ref, before_hashes[ref], after[ref])
            for ref in sorted(after.keys() & before_hashes.keys())
            if before_hashes[ref] != after[ref]
        ),
        added_edges=tuple(sorted(new_edges - old_edges)),
        removed_edges=tuple(sorted(old_edges - new_edges)),
    )


@dataclass(frozen=True)
class Version:
    """One recorded version of the graph.

    Attributes:
        number: 1, 2, ... in recording order.
        created_at: when it was recorded (UTC, aware).
        source: what recorded it, e.g. ``"feast apply"``.
        node_count / edge_count: the size of the whole current graph right after it.
        diff: the registry-derived graph against the previous version's.
    """

    number: int
    created_at: datetime
    source: str
    node_count: int
    edge_count: int
    diff: GraphDiff

    def to_dict(self, *, with_diff: bool = True) -> dict[str, Any]:
        """``{"number", "created_at" (ISO 8601), "source", "node_count", "edge_count", "counts"[, "diff"]}``."""
        out: dict[str, Any] = {
            "number": self.number,
            "created_at": self.created_at.isoformat(),
            "source": self.source,
            "node_count": self.node_count,
            "edge_count": self.edge_count,
            "counts": self.diff.counts(),
        }
        if with_diff:
            out["diff"] = self.diff.to_dict()
        return out
