"""Domain errors of the lineage package.

Every error derives from :class:`LineageError` and carries the offending value as a structured field,
so the HTTP layer can map the type to a status and render the fields without parsing messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lineage.model import Edge, NodeRef


class LineageError(Exception):
    """Base class of every error raised by ``lineage``."""


class NodeNotFound(LineageError):
    """A node was asked for (or referenced by an edge) that the graph or store does not hold.

    Attributes:
        ref: the missing node's reference.
    """

    def __init__(self, ref: NodeRef) -> None:
        self.ref = ref
        super().__init__(f"no lineage node {str(ref)!r}")


class CycleRefused(LineageError):
    """Adding an edge would close a cycle; lineage must stay a DAG, so the edge was refused.

    Attributes:
        edge: the refused edge.
        cycle: the nodes of the cycle it would close, starting and ending at ``edge.source``
            (``[source, target, ..., source]``).
    """

    def __init__(self, edge: Edge, cycle: Sequence[NodeRef] = ()) -> None:
        self.edge = edge
        self.cycle = tuple(cycle)
        shown = " -> ".join(str(ref) for ref in self.cycle) or f"{edge.source} -> {edge.target}"
        super().__init__(f"edge {edge.source} -{edge.relation}-> {edge.target} would close a cycle: {shown}")


class InvalidNodeId(LineageError, ValueError):
    """A node id (``"kind:name"``) could not be parsed.

    Attributes:
        text: the text that was given.
        reason: why it was rejected, e.g. ``"unknown kind 'tabel'"``.
    """

    def __init__(self, text: str, reason: str) -> None:
        self.text = text
        self.reason = reason
        super().__init__(f"invalid node id {text!r}: {reason}")


class ModelVersionConflict(LineageError):
    """``name@version`` is already registered (a version names one model, registered once)."""

    field = "version"

    def __init__(self, ref: NodeRef, registered_on: str, requested: str, registered_at: str | None = None) -> None:
        self.ref, self.registered_on = ref, registered_on
        where = f"on training set {registered_on!r}" + (f", not {requested!r}" if requested != registered_on else "")
        when = f" (registered_at {registered_at})" if registered_at else ""
        super().__init__(
            f"{ref} is already registered {where}{when}; a name@version is registered once: "
            "register a new version instead"
        )

    def details(self) -> dict[str, str]:
        return {"model": str(self.ref), "registered_on": self.registered_on}


class NodeInUse(LineageError):
    """A node cannot be deleted while ``dependents`` (e.g. models trained on a training set) depend on it."""

    field = "id"

    def __init__(self, ref: NodeRef, dependents: Sequence[NodeRef]) -> None:
        self.ref, self.dependents = ref, tuple(dependents)
        names = ", ".join(str(d) for d in self.dependents)
        super().__init__(f"{ref} is in use by {names}; it cannot be deleted while they depend on it")

    def details(self) -> dict[str, list[str] | str]:
        return {"node": str(self.ref), "used_by": [str(d) for d in self.dependents]}


class NodeDeleted(LineageError):
    """The node is marked deleted (``attributes["deleted_at"]``): nothing new may depend on it."""

    field = "training_set_id"

    def __init__(self, ref: NodeRef, deleted_at: str) -> None:
        self.ref, self.deleted_at = ref, deleted_at
        super().__init__(f"{ref} was deleted at {deleted_at}")

    def details(self) -> dict[str, str]:
        return {"node": str(self.ref), "deleted_at": self.deleted_at}
