"""The training-set catalog: one metadata row per stored training set (SQLAlchemy; the lineage DB).

A training set's data and its entity table are Parquet files under the training-sets folder; the
row records how to reproduce it and how to tell whether it still would come out the same:
its fingerprint, sha256 of the entity table, each view's definition hash and each source file's
content hash, the request options, and the leakage audit.

Paths are relative to their root: ``data_path`` and ``entity_path`` to the training-sets folder,
the keys of ``source_hashes`` to the repo (an absolute path only for a source outside the repo), so
a copied or moved repo keeps its sets. Rows written before (absolute paths) are rewritten at start
(:func:`service.recovery.recover`). A deleted set keeps its row,
with ``deleted_at`` set (its files are gone): the catalog remembers what existed.
"""

import dataclasses
import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import Engine

from lineage.database import create_db_engine, transaction


class TrainingSetNotFound(Exception):
    field = "id"

    def __init__(self, ts_id: str):
        self.ts_id = ts_id
        super().__init__(f"no training set {ts_id!r}")

    def details(self) -> dict[str, Any]:
        return {"id": self.ts_id}


class TrainingSetDeleted(Exception):
    """The training set was deleted: its catalog row and lineage node remain, its data does not (410)."""

    field = "id"

    def __init__(self, ts_id: str, deleted_at: datetime):
        self.ts_id, self.deleted_at = ts_id, deleted_at
        super().__init__(f"training set {ts_id!r} was deleted at {_z(deleted_at)}; its data is gone")

    def details(self) -> dict[str, Any]:
        return {"id": self.ts_id, "deleted_at": _z(self.deleted_at)}


def _z(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


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
    Column("deleted_at", DateTime(timezone=True), nullable=True),
)
JSON_COLUMNS = ("features", "options", "view_hashes", "source_hashes", "audit", "columns")


def stored_file(root: Path, stored: str) -> Path:
    """A catalog path (``data_path``, ``entity_path``) as a file: relative to the training-sets folder
    ``root`` (an absolute path, as rows stored before were, as it is)."""
    path = Path(stored)
    return path if path.is_absolute() else root / path


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
    deleted_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["created_at"] = _z(self.created_at)
        out["deleted_at"] = _z(self.deleted_at) if self.deleted_at else None
        return out

    def located(self, root: Path) -> "TrainingSetRecord":
        """This record with ``data_path`` and ``entity_path`` as files under the training-sets folder
        ``root`` (they are stored relative to it), for a reader in this process; never stored so."""
        return dataclasses.replace(
            self,
            data_path=str(stored_file(root, self.data_path)),
            entity_path=str(stored_file(root, self.entity_path)),
        )

    def check_present(self) -> None:
        """Raises: TrainingSetDeleted, when the set was deleted (its data is gone)."""
        if self.deleted_at is not None:
            raise TrainingSetDeleted(self.id, self.deleted_at)


class TrainingSetCatalog:
    """Stores and reads ``TrainingSetRecord`` rows at a SQLAlchemy URL (SQLite or PostgreSQL)."""

    def __init__(self, url: str):
        self._engine: Engine = create_db_engine(url)
        metadata.create_all(self._engine)
        self._add_deleted_at()

    def _add_deleted_at(self) -> None:
        """A catalog made before deletions existed gets its ``deleted_at`` column (null: not deleted)."""
        if "deleted_at" in {c["name"] for c in inspect(self._engine).get_columns("training_sets")}:
            return
        kind = DateTime(timezone=True).compile(dialect=self._engine.dialect)
        with self._engine.begin() as conn:
            conn.execute(text(f"ALTER TABLE training_sets ADD COLUMN deleted_at {kind}"))

    def add(self, record: TrainingSetRecord, conn: Connection | None = None) -> None:
        """Insert ``record`` (in the caller's transaction ``conn``, or one of its own)."""
        if conn is None:
            transaction(self._engine, lambda c: self.add(record, c))
            return
        conn.execute(insert(training_sets).values(**record.__dict__))

    def get(self, ts_id: str) -> TrainingSetRecord:
        """The record, deleted or not (see ``TrainingSetRecord.check_present``). Raises: TrainingSetNotFound."""
        with self._engine.connect() as conn:
            row = conn.execute(select(training_sets).where(training_sets.c.id == ts_id)).mappings().first()
        if row is None:
            raise TrainingSetNotFound(ts_id)
        return _record(row)

    def all(self) -> list[TrainingSetRecord]:
        """Every stored record, by id."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(training_sets).order_by(training_sets.c.id)).mappings().all()
        return [_record(row) for row in rows]

    def remove(self, conn: Connection, ts_id: str) -> None:
        """Delete the row of ``ts_id`` in the caller's transaction (a set a crash left without its data)."""
        conn.execute(delete(training_sets).where(training_sets.c.id == ts_id))

    def replace(self, conn: Connection, record: TrainingSetRecord) -> None:
        """Rewrite the stored row of ``record.id`` with ``record``, in the caller's transaction."""
        values = {k: v for k, v in record.__dict__.items() if k != "id"}
        conn.execute(update(training_sets).where(training_sets.c.id == record.id).values(**values))

    def list(
        self,
        *,
        feature_service: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        ids: Collection[str] | None = None,
        include_deleted: bool = False,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[int, list[TrainingSetRecord]]:
        """``(total, page)``: the records matching every filter given, newest first (then by id).

        Args:
            feature_service: made from this feature service.
            created_after / created_before: ``created_after <= created_at < created_before`` (aware).
            ids: only these ids (e.g. the sets a model was trained on).
            include_deleted: also deleted sets (default: only the ones whose data is kept).
        """
        t = training_sets
        where = []
        if feature_service is not None:
            where.append(t.c.feature_service == feature_service)
        if created_after is not None:
            where.append(t.c.created_at >= created_after.astimezone(UTC))
        if created_before is not None:
            where.append(t.c.created_at < created_before.astimezone(UTC))
        if ids is not None:
            where.append(t.c.id.in_(sorted(ids)))
        if not include_deleted:
            where.append(t.c.deleted_at.is_(None))
        with self._engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(t).where(*where)).scalar_one()
            page = conn.execute(
                select(t).where(*where).order_by(t.c.created_at.desc(), t.c.id).limit(limit).offset(offset)
            )
            return int(total), [_record(row) for row in page.mappings()]

    def mark_deleted(self, ts_id: str, when: datetime) -> TrainingSetRecord:
        """Set ``deleted_at`` (once: a set deleted earlier keeps its first time). Raises: TrainingSetNotFound."""
        transaction(
            self._engine,
            lambda conn: conn.execute(
                update(training_sets)
                .where(training_sets.c.id == ts_id, training_sets.c.deleted_at.is_(None))
                .values(deleted_at=when)
            ),
        )
        return self.get(ts_id)

    def dispose(self) -> None:
        self._engine.dispose()


def _record(row: Any) -> TrainingSetRecord:
    values = dict(row)
    for key in JSON_COLUMNS:
        if isinstance(values[key], str):  # some drivers hand JSON back as text
            values[key] = json.loads(values[key])
    for key in ("created_at", "deleted_at"):  # SQLite drops the offset; we only store UTC
        if values[key] is not None and values[key].tzinfo is None:
            values[key] = values[key].replace(tzinfo=UTC)
    return TrainingSetRecord(**values)
