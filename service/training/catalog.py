"""The training-set catalog: one metadata row per stored training set (SQLAlchemy; the lineage DB).

A training set's data and its entity table are Parquet files under the training-sets folder; the
row records how to reproduce it and how to tell whether it still would come out the same:
its fingerprint, sha256 of the entity table, each view's definition hash and each source file's
content hash, the request options, and the leakage audit.

Paths are relative to their root: ``data_path`` and ``entity_path`` to the training-sets folder,
the keys of ``source_hashes`` to the repo (an absolute path only for a source outside the repo), so
a copied or moved repo keeps its sets. Rows written before (absolute paths) are rewritten at start
(:func:`service.recovery.recover`).
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, Connection, DateTime, Integer, MetaData, String, Table, delete, insert, select
from sqlalchemy import update as sql_update
from sqlalchemy.engine import Engine

from lineage.database import create_db_engine, transaction


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
        self._engine: Engine = create_db_engine(url)
        metadata.create_all(self._engine)

    def add(self, record: TrainingSetRecord, conn: Connection | None = None) -> None:
        """Insert ``record`` (in the caller's transaction ``conn``, or one of its own)."""
        if conn is None:
            transaction(self._engine, lambda c: self.add(record, c))
            return
        conn.execute(insert(training_sets).values(**record.__dict__))

    def get(self, ts_id: str) -> TrainingSetRecord:
        """Raises: TrainingSetNotFound."""
        with self._engine.connect() as conn:
            row = conn.execute(select(training_sets).where(training_sets.c.id == ts_id)).mappings().first()
        if row is None:
            raise TrainingSetNotFound(ts_id)
        return _record(dict(row))

    def all(self) -> list[TrainingSetRecord]:
        """Every stored record, by id."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(training_sets).order_by(training_sets.c.id)).mappings().all()
        return [_record(dict(row)) for row in rows]

    def remove(self, conn: Connection, ts_id: str) -> None:
        """Delete the row of ``ts_id`` in the caller's transaction (a set a crash left without its data)."""
        conn.execute(delete(training_sets).where(training_sets.c.id == ts_id))

    def replace(self, conn: Connection, record: TrainingSetRecord) -> None:
        """Rewrite the stored row of ``record.id`` with ``record``, in the caller's transaction."""
        values = {k: v for k, v in record.__dict__.items() if k != "id"}
        conn.execute(sql_update(training_sets).where(training_sets.c.id == record.id).values(**values))

    def dispose(self) -> None:
        self._engine.dispose()


def _record(values: dict[str, Any]) -> TrainingSetRecord:
    for key in ("features", "options", "view_hashes", "source_hashes", "audit", "columns"):
        if isinstance(values[key], str):  # some drivers hand JSON back as text
            values[key] = json.loads(values[key])
    if values["created_at"].tzinfo is None:  # SQLite drops the offset; we only store UTC
        values["created_at"] = values["created_at"].replace(tzinfo=UTC)
    return TrainingSetRecord(**values)
