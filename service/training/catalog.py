"""The training-set catalog: one metadata row per stored training set (SQLAlchemy; the lineage DB).

A training set's data and its entity table are Parquet files under the training-sets folder; the
row records how to reproduce it and how to tell whether it still would come out the same:
its fingerprint, sha256 of the entity table, each view's definition hash and each source file's
content hash, the request options, and the leakage audit.
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Integer, MetaData, String, Table, create_engine, insert, select
from sqlalchemy.engine import Engine


class TrainingSetNotFound(Exception):
    field = "id"

    def __init__(self, ts_id: str):
        self.ts_id = ts_id
        super().__init__(f"no training set {ts_id!r}")

    def details(self) -> dict[str, Any]:
        return {"id": self.ts_id}


metadata = MetaData()
training_sets = Table(
    "training_sets",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("fingerprint", String(64), nullable=False, index=True),
    Column("feature_service", String(256)),
    Column("features", JSON, nullable=False),
    Column("options", JSON, nullable=False),
    Column("entity_sha256", String(64), nullable=False),
    Column("view_hashes", JSON, nullable=False),
    Column("source_hashes", JSON, nullable=False),
    Column("audit", JSON, nullable=False),
    Column("row_count", Integer, nullable=False),
    Column("columns", JSON, nullable=False),
    Column("data_path", String(1024), nullable=False),
    Column("entity_path", String(1024), nullable=False),
)


@dataclass(frozen=True)
class TrainingSetRecord:
    id: str
    created_at: datetime
    fingerprint: str
    feature_service: str | None
    features: list[str]
    options: dict[str, Any]
    entity_sha256: str
    view_hashes: dict[str, str]
    source_hashes: dict[str, str]
    audit: dict[str, Any]
    row_count: int
    columns: list[str]
    data_path: str
    entity_path: str

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["created_at"] = self.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return out


class TrainingSetCatalog:
    """Stores and reads ``TrainingSetRecord`` rows at a SQLAlchemy URL (SQLite or PostgreSQL)."""

    def __init__(self, url: str):
        self._engine: Engine = create_engine(url, future=True)
        metadata.create_all(self._engine)

    def add(self, record: TrainingSetRecord) -> None:
        with self._engine.begin() as conn:
            conn.execute(insert(training_sets).values(**record.__dict__))

    def get(self, ts_id: str) -> TrainingSetRecord:
        """Raises: TrainingSetNotFound."""
        with self._engine.connect() as conn:
            row = conn.execute(select(training_sets).where(training_sets.c.id == ts_id)).mappings().first()
        if row is None:
            raise TrainingSetNotFound(ts_id)
        values = dict(row)
        for key in ("features", "options", "view_hashes", "source_hashes", "audit", "columns"):
            if isinstance(values[key], str):  # some drivers hand JSON back as text
                values[key] = json.loads(values[key])
        if values["created_at"].tzinfo is None:  # SQLite drops the offset; we only store UTC
            values["created_at"] = values["created_at"].replace(tzinfo=UTC)
        return TrainingSetRecord(**values)

    def dispose(self) -> None:
        self._engine.dispose()
