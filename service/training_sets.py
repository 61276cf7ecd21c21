"""Create training sets: resolve features, validate entity rows, point-in-time join, store, record lineage.

A training set is stored as ``<training_sets_dir>/<id>.parquet`` and recorded as the lineage node
``training_set:<id>`` with ``trained_on`` edges from every feature used (and the feature service).
"""

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from feast import FeatureStore
from pydantic import BaseModel, Field

from lineage import LineageStore
from lineage.builders import training_set_graph
from service.entity_rows import entity_frame
from service.offline.engine import JoinOptions, get_training_frame
from service.offline.errors import FeatureReferenceInvalid
from service.offline.views import plan_retrieval, service_references


class TrainingSetRequest(BaseModel):
    """``POST /training-sets`` body."""

    feature_service: str | None = Field(None, examples=["delay_model_v1"])
    features: list[str] = Field(default_factory=list, description="'view:feature' references")
    entity_rows: list[dict[str, Any]] = Field(
        description="one object per training example: join keys, event_timestamp (ISO 8601 with Z or "
        "an offset), request fields, and any other columns (labels), passed through unchanged",
        examples=[
            [
                {
                    "origin": "EWR",
                    "carrier": "UA",
                    "event_timestamp": "2013-05-01T13:00:00Z",
                    "label_delayed": 1,
                }
            ]
        ],
    )
    full_feature_names: bool = False
    timezone: str | None = Field(
        None, description="IANA timezone assumed for naive timestamps (else refused)"
    )


class TrainingSetOut(BaseModel):
    id: str
    row_count: int
    columns: list[str]
    rows: list[dict[str, Any]]


@dataclass(frozen=True)
class TrainingSet:
    id: str
    frame: pd.DataFrame
    features: list[str]
    feature_service: str | None
    path: Path


def requested_references(store: FeatureStore, req: TrainingSetRequest) -> list[str]:
    if req.feature_service and req.features:
        raise FeatureReferenceInvalid("give feature_service or features, not both")
    if req.feature_service:
        return service_references(store, req.feature_service)
    if not req.features:
        raise FeatureReferenceInvalid("give feature_service or a non-empty features list")
    return list(req.features)


def create_training_set(
    store: FeatureStore, lineage: LineageStore, req: TrainingSetRequest, out_dir: Path
) -> TrainingSet:
    """Build, store and record a training set.

    Raises:
        UnknownFeatureService, UnknownFeature, FeatureReferenceInvalid: bad feature selection.
        EntityRowsInvalid: entity rows fail validation (every problem listed; nothing computed).
    """
    refs = requested_references(store, req)
    plan = plan_retrieval(store, refs)
    entity_df = entity_frame(req.entity_rows, plan, req.timezone)
    frame = get_training_frame(entity_df, plan, JoinOptions(full_feature_names=req.full_feature_names))
    ts_id = f"ts-{uuid.uuid4().hex[:16]}"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{ts_id}.parquet"
    frame.to_parquet(path, index=False)
    attributes = {
        "created_at": datetime.now(UTC).isoformat(),
        "feature_service": req.feature_service,
        "features": refs,
        "row_count": len(frame),
        "columns": list(frame.columns),
        "path": str(path),
    }
    lineage.save(*training_set_graph(ts_id, refs, req.feature_service, attributes))
    return TrainingSet(ts_id, frame, refs, req.feature_service, path)


def frame_to_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready rows: timestamps as ISO 8601 UTC with ``Z``, missing values as null."""
    return json.loads(frame.to_json(orient="records", date_format="iso", date_unit="s"))
