"""The push quarantine: rejected pushed rows, kept with their problems (SQLAlchemy; the lineage DB).

Read back at ``GET /quarantine/{source}``. Rows are stored as sent (JSON), with the time received.
"""

import json
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import JSON, Column, Connection, DateTime, Integer, MetaData, String, Table, Text, func, insert, select

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


# The same table with its JSON columns as text, for writes of JSON encoded once (a str is taken as
# json by PostgreSQL, and SQLite keeps JSON as text anyway).
_as_text = Table(
    "push_quarantine",
    MetaData(),
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("push_source", String(256), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("row", Integer, nullable=False),
    Column("values", Text, nullable=False),
    Column("problems", Text, nullable=False),
)


def _json_text(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # an integer beyond 64 bits, a type orjson does not know
        return json.dumps(value)


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
        """Keep ``records`` (``{"row", "values", "problems"}``), in the caller's transaction ``conn`` or
        one of its own. The JSON columns are encoded here, once per record (orjson; ``json`` for what
        orjson refuses, such as an integer beyond 64 bits), and written as text: 400,000 rows in a few
        seconds."""
        if not records:
            return
        if conn is None:
            transaction(self.engine, lambda c: self.add(source, received_at, records, c))
            return
        rows = [
            {
                "push_source": source,
                "received_at": received_at,
                "row": r["row"],
                "values": _json_text(r["values"]),
                "problems": _json_text(r["problems"]),
            }
            for r in records
        ]
        conn.execute(insert(_as_text), rows)

    def count(self, source: str) -> int:
        """How many rejected rows of ``source`` are kept."""
        query = select(func.count()).select_from(push_quarantine).where(push_quarantine.c.push_source == source)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def list(self, source: str, limit: int = 1000, offset: int = 0) -> list[dict[str, Any]]:
        """One page, newest first (the last kept first): ``limit`` rows after skipping ``offset``, each
        ``{"id", "received_at", "row", "values", "problems"}``."""
        query = (
            select(push_quarantine)
            .where(push_quarantine.c.push_source == source)
            .order_by(push_quarantine.c.id.desc())
            .limit(limit)
            .offset(offset)
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
