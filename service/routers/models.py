"""``/models``: register a trained model as the lineage node ``model:<name>@<version>``.

A model is trained on one stored training set: registering it adds a ``trained_on`` edge from
``training_set:<id>``, so ``GET /lineage/nodes/{id}/impact`` of any source or view it depends on lists
it. Answers are lineage nodes, ``{"id", "kind", "name", "definition_hash", "attributes"}``, with
attributes ``name``, ``version``, ``metrics``, ``training_set_id`` and ``registered_at`` (UTC).
"""

import math
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema

from lineage import MODEL_NAME_MAX_LENGTH, MODEL_NAME_PATTERN, Node, NodeKind, NodeRef, definition_hash
from service.deps import CatalogDep, LineageDep
from service.errors import at_field, problem_responses
from service.formats import json_content_type
from service.openapi import NodeOut
from service.training.catalog import TrainingSetDeleted, TrainingSetNotFound
from service.workers import WorkerRoute

router = APIRouter(prefix="/models", tags=["models"], responses=problem_responses(404, 422), route_class=WorkerRoute)


def _metric(value: Any) -> int | float:
    """A JSON number kept as given (an integer stays an integer); booleans, strings and non-finite refused."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be finite")
    return value


Metric = Annotated[int | float, PlainValidator(_metric), WithJsonSchema({"type": "number"})]


class ModelIn(BaseModel):
    """A trained model: its name and version, the training set it was fitted on and its metrics."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(
        min_length=1, max_length=MODEL_NAME_MAX_LENGTH, pattern=MODEL_NAME_PATTERN, examples=["delay_baseline"]
    )
    version: str = Field(min_length=1, max_length=MODEL_NAME_MAX_LENGTH, pattern=MODEL_NAME_PATTERN, examples=["1"])
    training_set_id: str = Field(min_length=1, max_length=64, examples=["ts-0123456789abcdef"])
    metrics: dict[str, Metric] = Field(
        default_factory=dict,
        description="numbers kept as given: an integer stays an integer (0 is 0, not 0.0)",
        examples=[{"roc_auc": 0.71, "n_rows": 2}],
    )


def model_ref(name: str, version: str) -> NodeRef:
    return NodeRef(NodeKind.MODEL, f"{name}@{version}")


@router.post(
    "",
    status_code=201,
    dependencies=[Depends(json_content_type)],
    response_model=None,
    responses={201: {"model": NodeOut}, **problem_responses(400, 404, 409, 410, 415, 422)},
)
def register_model(model: ModelIn, lineage: LineageDep, catalog: CatalogDep) -> dict[str, Any]:
    """Add ``model:<name>@<version>`` with a ``trained_on`` edge; a name@version is registered once.

    Errors: 400 malformed JSON; 404 unknown training set; 410 the training set was deleted; 409 this
    name@version is already registered (on any training set, with any metrics: the answer names the
    existing registration's training set); 415 a body not sent as ``application/json``; 422 invalid
    body (unknown keys, non-numeric or non-finite metrics, names outside ``[A-Za-z0-9_.+-]``).
    """
    try:
        catalog.get(model.training_set_id).check_present()
    except (TrainingSetNotFound, TrainingSetDeleted) as exc:  # 404 / 410, naming the body field
        raise at_field(exc, "training_set_id") from None
    attributes = {
        **model.model_dump(),
        "registered_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    spec = {"name": model.name, "version": model.version, "training_set_id": model.training_set_id}
    node = Node(model_ref(model.name, model.version), definition_hash(spec), attributes)
    training_set = NodeRef(NodeKind.TRAINING_SET, model.training_set_id)
    return lineage.register_model(node, training_set).to_dict()  # checked and saved atomically: 409 or one model


@router.get("", response_model=None, responses={200: {"model": list[NodeOut]}})
def list_models(lineage: LineageDep) -> list[dict[str, Any]]:
    """Every registered model, sorted by id."""
    return [node.to_dict() for node in lineage.load_graph().nodes() if node.ref.kind is NodeKind.MODEL]


NamePart = Annotated[str, PathParam(json_schema_extra={"pattern": MODEL_NAME_PATTERN})]  # others: 404, never registered


@router.get("/{name}/{version}", response_model=None, responses={200: {"model": NodeOut}})
def get_model(name: NamePart, version: NamePart, lineage: LineageDep) -> dict[str, Any]:
    """One model by name and version. 404 if not registered."""
    return lineage.get_node(model_ref(name, version)).to_dict()
