"""Stored drift reports (lineage database, SQLAlchemy) and the latest PSI per feature.

``drift_reports`` holds each report whole (JSON, bins and counts included: what the monitoring page
draws); ``drift_latest`` holds, per feature, the PSI and verdict of the newest report that assessed it,
what ``/metrics`` exports. Both are written in one transaction: a report is stored with its latest
values or not at all.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Float, MetaData, String, Table, create_engine, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

metadata = MetaData()
drift_reports = Table(
    "drift_reports",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("baseline_training_set_id", String(64), nullable=False, index=True),
    Column("model", String(512)),
    Column("verdict", String(8), nullable=False),
    Column("report", JSON, nullable=False),
)
drift_latest = Table(
    "drift_latest",
    metadata,
    Column("feature", String(512), primary_key=True),  # the feature's lineage name, "view.feature"
    Column("drift_id", String(64), nullable=False),
    Column("psi", Float, nullable=True),  # null: undefined (a side without values)
    Column("verdict", String(8), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


class DriftReportNotFound(Exception):
    """No stored drift report with this id (404)."""

    field = "path.drift_id"

    def __init__(self, drift_id: str):
        self.drift_id = drift_id
        super().__init__(f"no drift report {drift_id!r}")

    def details(self) -> dict[str, Any]:
        return {"id": self.drift_id}


@dataclass(frozen=True)
class LatestDrift:
    """The newest assessment of one feature: ``feature`` is ``view.feature``."""

    feature: str
    drift_id: str
    psi: float | None
    verdict: str
    created_at: datetime


class DriftReports:
    """Stores and reads drift reports at a SQLAlchemy URL (SQLite or PostgreSQL)."""

    def __init__(self, url: str):
        sqlite = url.startswith("sqlite")
        self._engine: Engine = create_engine(url, future=True, connect_args={"timeout": 30} if sqlite else {})
        metadata.create_all(self._engine)

    def add(self, report: Mapping[str, Any], created_at: datetime) -> None:
        """Store ``report`` (``{"id", "verdict", "baseline": {"training_set_id", "model"}, "features":
        [{"node": "feature:<view>.<feature>" or null, "psi", "verdict", ...}]}``) and make its values
        the latest of its features."""
        latest = [
            {
                "feature": str(f["node"]).removeprefix("feature:"),
                "drift_id": report["id"],
                "psi": f["psi"],
                "verdict": f["verdict"],
                "created_at": created_at,
            }
            for f in report["features"]
            if f.get("node")
        ]
        with self._engine.begin() as conn:
            conn.execute(
                insert(drift_reports).values(
                    id=report["id"],
                    created_at=created_at,
                    baseline_training_set_id=report["baseline"]["training_set_id"],
                    model=report["baseline"].get("model"),
                    verdict=report["verdict"],
                    report=dict(report),
                )
            )
            if latest:  # an upsert: two reports at once on one feature never collide on its key
                upsert = (postgresql.insert if self._engine.dialect.name == "postgresql" else sqlite.insert)(
                    drift_latest
                )
                kept = ("drift_id", "psi", "verdict", "created_at")
                stmt = upsert.on_conflict_do_update(
                    index_elements=[drift_latest.c.feature], set_={k: upsert.excluded[k] for k in kept}
                )
                conn.execute(stmt, latest)

    def get(self, drift_id: str) -> dict[str, Any]:
        """The stored report. Raises: DriftReportNotFound."""
        with self._engine.connect() as conn:
            row = conn.execute(select(drift_reports.c.report).where(drift_reports.c.id == drift_id)).first()
        if row is None:
            raise DriftReportNotFound(drift_id)
        report = row.report
        return dict(json.loads(report) if isinstance(report, str) else report)

    def latest(self) -> list[LatestDrift]:
        """The newest PSI and verdict of every feature ever assessed, sorted by feature."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(drift_latest).order_by(drift_latest.c.feature)).mappings().all()
        return [
            LatestDrift(
                r["feature"],
                r["drift_id"],
                r["psi"],
                r["verdict"],
                r["created_at"] if r["created_at"].tzinfo else r["created_at"].replace(tzinfo=UTC),
            )
            for r in rows
        ]

    def dispose(self) -> None:
        self._engine.dispose()
