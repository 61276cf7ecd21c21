"""What the OpenAPI document (``/openapi.json``, ``/docs``) says beyond what FastAPI derives: the shapes
of the answers, and the request rules a pydantic model does not carry into JSON Schema.

**Answers.** Routes build their answers as plain dicts (or raw bytes) for speed; these models only document them:
each route names its model in ``responses={200: {"model": ...}}`` and sets ``response_model=None``, so
nothing is re-validated or filtered on the way out. Every model allows extra keys (an answer may grow a
field without breaking a client); the keys listed are always present, with the types given. The
schemathesis run in ``tests/test_openapi_conformance.py`` checks real answers against them.

:func:`binary_content` is the OpenAPI ``content`` of an answer in bytes (Parquet, Arrow IPC stream).

**Requests.** :func:`request_body_doc` documents a JSON body by its model, with the rules that routes
check in code stated in the schema too (a feature reference is ``view:feature``, ``feature_service`` and
``features`` are exclusive, an entity table is not empty), so a request valid per the document is one
the route takes. Rules that depend on the registry (which join keys a feature service needs), on the
system (an IANA timezone name) or on two fields at once (``end`` after ``start``) cannot be JSON Schema;
the descriptions state them.
"""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.formats import standalone_schema


def binary_content(*media_types: str, description: str = "") -> dict[str, Any]:
    """OpenAPI ``content`` for answers that are bytes (Parquet, Arrow IPC stream)."""
    schema = {"type": "string", "format": "binary"}
    return {m: {"schema": schema, **({"description": description} if description else {})} for m in media_types}


TIMEZONE = {"type": "string", "minLength": 1, "description": "an IANA timezone name, e.g. America/New_York"}
FEATURE_REFERENCE = {"type": "string", "pattern": "^[^:]+:.+$", "description": "'view:feature'"}
FEATURE_LIST = {"type": "array", "items": FEATURE_REFERENCE, "uniqueItems": True}
FEATURE_SELECTION = {
    "description": "either a feature service or a non-empty list of 'view:feature' references, not both",
    "anyOf": [
        {
            "required": ["feature_service"],
            "properties": {"feature_service": {"type": "string", "minLength": 1}, "features": {"maxItems": 0}},
        },
        {
            "required": ["features"],
            "properties": {"feature_service": {"type": "null"}, "features": {"minItems": 1}},
        },
    ],
}


def request_body_doc(model: type[BaseModel], **refine: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI ``requestBody`` (``application/json``) of a route that reads ``model``: its JSON Schema
    with ``refine`` merged in per property (``timezone=TIMEZONE``; for an optional property, into its
    non-null type), and ``FEATURE_SELECTION`` when the model has both ``feature_service`` and ``features``."""
    schema = standalone_schema(model)
    for name, extra in refine.items():
        prop = schema["properties"][name]
        if "anyOf" in prop:  # Optional[X]: the rule is X's; null stays allowed
            prop["anyOf"] = [b if b.get("type") == "null" else {**b, **extra} for b in prop["anyOf"]]
        else:
            schema["properties"][name] = {**prop, **extra}
    if {"feature_service", "features"} <= set(schema["properties"]):
        schema["properties"]["features"] = {**schema["properties"]["features"], **FEATURE_LIST}
        rule = FEATURE_SELECTION["description"]
        schema = {**schema, **FEATURE_SELECTION, "description": f"{schema.get('description', '').strip()} ({rule})"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


class Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


# --- health ---------------------------------------------------------------------------------------------


class HealthOut(Answer):
    status: Literal["ok"]
    project: str
    repo: str
    feature_views: int
    feature_services: list[str]
    lineage_nodes: int


class OnlineStoreState(Answer):
    type: str
    reachable: bool | None = Field(description="null: no probe for this store type")
    latency_ms: float | None
    error: str | None
    error_type: str | None


class ReadyOut(Answer):
    status: Literal["ready"]
    online_store: OnlineStoreState
    storage: dict[str, Literal["writable"]] = Field(
        description="each folder the service writes (training_sets_dir, data_dir): writable"
    )


# --- training sets --------------------------------------------------------------------------------------


class TrainingSetJsonOut(Answer):
    """A new training set answered as JSON: its id, fingerprint and audit, and the rows."""

    id: str
    row_count: int
    columns: list[str]
    fingerprint: str
    audit: dict[str, Any] = Field(description="the leakage audit: rows, passed, per-view counts and violations")
    rows: list[dict[str, Any]] = Field(description="one object per entity row, in input order")


class TrainingSetRecordOut(Answer):
    """A stored training set's catalog row (no data): ``GET /training-sets/{id}``."""

    id: str
    created_at: str = Field(description="ISO 8601 UTC")
    fingerprint: str
    feature_service: str | None
    features: list[str] = Field(description="'view:feature' references joined")
    options: dict[str, Any]
    entity_sha256: str
    view_hashes: dict[str, str]
    source_hashes: dict[str, str]
    audit: dict[str, Any]
    row_count: int
    columns: list[str]


class TrainingSetDataOut(Answer):
    """A stored training set's rows as JSON: ``GET /training-sets/{id}/data`` with ``Accept: application/json``."""

    id: str
    row_count: int
    columns: list[str]
    rows: list[dict[str, Any]]


class ReproduceOut(Answer):
    id: str
    identical: bool
    data_identical: bool
    inputs_identical: bool
    fingerprint_then: str
    fingerprint_now: str
    changed_sources: list[Any]
    changed_views: list[Any]
    differences: dict[str, Any] = Field(
        description='{"columns", "rows", "rows_differing"} or, shape changed, "row_count"'
    )


# --- online, push, quarantine ---------------------------------------------------------------------------

ValueStatus = Literal["PRESENT", "NULL_VALUE", "NOT_FOUND", "OUTSIDE_MAX_AGE"]


class OnlineMetadata(Answer):
    feature_names: list[str]


class OnlineResult(Answer):
    values: list[Any]
    statuses: list[ValueStatus]
    event_timestamps: list[str]


class OnlineFeaturesOut(Answer):
    """``feast serve``'s answer: one ``results`` item per feature name (join keys first), one value per entity."""

    metadata: OnlineMetadata
    results: list[OnlineResult]


class QuarantinedRow(Answer):
    row: int
    problems: list[dict[str, Any]]


class PushOut(Answer):
    push_source_name: str
    policy: Literal["strict", "quarantine"]
    to: Literal["online", "offline", "online_and_offline"]
    rows_received: int
    rows_accepted: int
    rows_quarantined: int
    quarantined: list[QuarantinedRow]


class QuarantineOut(Answer):
    source: str
    kind: Literal["push", "pipeline"]
    total: int
    limit: int
    offset: int
    next_offset: int | None
    rows: list[dict[str, Any]]


# --- lineage --------------------------------------------------------------------------------------------

NodeKindName = Literal[
    "raw_table",
    "transform",
    "data_source",
    "entity",
    "feature_view",
    "on_demand_feature_view",
    "feature",
    "feature_service",
    "training_set",
    "model",
    "column",
]
RelationName = Literal["reads", "writes", "keys", "defines", "derives", "includes", "trained_on"]


class NodeOut(Answer):
    """A lineage node (a model is one too: ``model:<name>@<version>``)."""

    id: str = Field(description="kind:name")
    kind: NodeKindName
    name: str
    definition_hash: str | None
    attributes: dict[str, Any]


class EdgeOut(Answer):
    source: str
    target: str
    relation: RelationName


class SubgraphOut(Answer):
    nodes: list[NodeOut]
    edges: list[EdgeOut]


class ImpactOut(Answer):
    node: NodeOut
    impact: list[NodeOut]


class PathOut(Answer):
    path: list[str]
    direction: Literal["downstream", "upstream", "same"] | None


class VersionSummary(Answer):
    number: int
    created_at: str
    source: str
    node_count: int
    edge_count: int
    counts: dict[str, int]


class VersionsOut(Answer):
    versions: list[VersionSummary]
    note: str


class HashChangeOut(Answer):
    id: str
    before: str | None
    after: str | None


class GraphDiffOut(Answer):
    added_nodes: list[str]
    removed_nodes: list[str]
    changed_nodes: list[HashChangeOut]
    added_edges: list[EdgeOut]
    removed_edges: list[EdgeOut]


class VersionOut(VersionSummary):
    diff: GraphDiffOut
    note: str


class NodeLinkOut(Answer):
    """``networkx.node_link_data`` of a multigraph (edges under ``edges``)."""

    directed: bool
    multigraph: bool
    graph: dict[str, Any]
    nodes: list[dict[str, Any]]
    edges: list[dict[str, Any]]


class RunEventOut(Answer):
    """An OpenLineage 2-0-2 RunEvent."""

    eventType: Literal["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]
    eventTime: str
    producer: str
    schemaURL: str
    run: dict[str, Any]
    job: dict[str, Any]


# --- materialization ------------------------------------------------------------------------------------


class JobProgress(Answer):
    views_done: int
    views_total: int
    rows_written: int


class JobOut(Answer):
    id: str
    kind: Literal["materialize", "materialize-incremental"]
    status: Literal["queued", "running", "completed", "failed"]
    request: dict[str, Any]
    progress: JobProgress
    views: dict[str, Any] = Field(description="per view: counts and window, or skipped (the reason)")
    error: str | None
    created_at: str | None
    started_at: str | None
    finished_at: str | None
