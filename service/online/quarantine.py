"""The push quarantine: rejected pushed rows, kept with their problems (SQLAlchemy; the lineage DB).

Read back at ``GET /quarantine/{source}``. Rows are stored as sent (JSON), with the time received.
"""

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, Connection, DateTime, Integer, MetaData, String, Table, insert, select

from lineage.database import create_db_engine, transaction

metadata = MetaData()
push_quarantine = Table(
    "push_quarantine",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("push_source", String(256), nullable=False, index=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("row", Integer, nullable=False),
    Column("values", JSON, nullable=False),
    Column("problems", JSON, nullable=False),
)


class UnknownQuarantineSource(Exception):
    """``GET /quarantine/{source}`` of a name that is neither a push source nor a pipeline table."""

    field = "path.source"

    def __init__(self, source: str):
        self.source = source
        super().__init__(f"{source!r} is neither a push source nor a pipeline table")

    def details(self) -> dict[str, Any]:
        return {"source": self.source}


class QuarantineStore:
    def __init__(self, url: str):
        self.engine = create_db_engine(url)
        metadata.create_all(self.engine)

    def add(
        self, source: str, received_at: datetime, records: list[dict[str, Any]], conn: Connection | None = None
    ) -> None:
        """Store rejected rows ``[{"row", "values", "problems"}]`` (in the caller's transaction ``conn``,
        or one of its own)."""
        if not records:
            return
        if conn is None:
            transaction(self.engine, lambda c: self.add(source, received_at, records, c))
            return
        conn.execute(
            insert(push_quarantine),
            [
                {
                    "push_source": source,
                    "received_at": received_at,
                    "row": r["row"],
                    "values": r["values"],
                    "problems": r["problems"],
                }
                for r in records
            ],
        )

    def list(self, source: str, limit: int = 1000) -> list[dict[str, Any]]:
        """Newest first: ``{"id", "received_at", "row", "values", "problems"}``."""
        query = (
            select(push_quarantine)
            .where(push_quarantine.c.push_source == source)
            .order_by(push_quarantine.c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        out = []
        for r in rows:
            received = r["received_at"] if r["received_at"].tzinfo else r["received_at"].replace(tzinfo=UTC)
            values, problems = r["values"], r["problems"]
            out.append(
                {
                    "id": r["id"],
                    "received_at": received.isoformat().replace("+00:00", "Z"),
                    "row": r["row"],
                    "values": json.loads(values) if isinstance(values, str) else values,
                    "problems": json.loads(problems) if isinstance(problems, str) else problems,
                }
            )
        return out

    def dispose(self) -> None:
        self.engine.dispose()
