"""Push receipts: the answer of every push sent with an ``Idempotency-Key`` (SQLAlchemy; the lineage DB).

A push resent with the same key and the same body gets the stored answer again and writes nothing
(a second offline append would duplicate its rows); the same key with another body is refused. The
receipt commits in the transaction that acknowledges the push (with its quarantined rows), so a key
has a receipt exactly when its push was acknowledged.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Connection, DateTime, MetaData, String, Table, Text, insert, select

from lineage.database import create_db_engine

MAX_KEY_LENGTH = 255

metadata = MetaData()
push_receipts = Table(
    "push_receipts",
    metadata,
    Column("key_sha256", String(64), primary_key=True),
    Column("push_source", String(256), nullable=False),
    Column("body_sha256", String(64), nullable=False),
    Column("answer", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


class IdempotencyKeyInvalid(Exception):
    field = "header.idempotency-key"

    def __init__(self, problem: str) -> None:
        super().__init__(f"Idempotency-Key: {problem}")


class IdempotencyKeyReused(Exception):
    """The key was used before for a push with another body (a client bug: nothing is written)."""

    field = "header.idempotency-key"

    def __init__(self) -> None:
        super().__init__(
            "Idempotency-Key was already used for a push with a different body; use a new key for a new push"
        )


class PushInFlight(Exception):
    """A push with this key is still being written (its first attempt has not answered yet)."""

    field = "header.idempotency-key"
    retry_after = 1

    def __init__(self) -> None:
        super().__init__("a push with this Idempotency-Key is still in flight; retry when it has answered")


def key_digest(key: str) -> str:
    """sha256 of an ``Idempotency-Key`` (stored instead of the key: any length, any characters).

    Raises:
        IdempotencyKeyInvalid: empty, longer than :data:`MAX_KEY_LENGTH`, or not printable ASCII.
    """
    if not key or len(key) > MAX_KEY_LENGTH or not all(" " <= c <= "~" for c in key):
        raise IdempotencyKeyInvalid(f"must be 1 to {MAX_KEY_LENGTH} printable ASCII characters")
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Receipt:
    body_sha256: str
    answer: dict[str, Any]


class Receipts:
    def __init__(self, url: str) -> None:
        self.engine = create_db_engine(url)
        metadata.create_all(self.engine)

    def get(self, key_sha256: str) -> Receipt | None:
        query = select(push_receipts).where(push_receipts.c.key_sha256 == key_sha256)
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else Receipt(row["body_sha256"], json.loads(row["answer"]))

    def add(self, conn: Connection, key_sha256: str, source: str, body_sha256: str, answer: dict[str, Any]) -> None:
        """Store the answer of an acknowledged push, in the transaction that acknowledges it."""
        if conn.execute(select(push_receipts.c.key_sha256).where(push_receipts.c.key_sha256 == key_sha256)).first():
            return  # recorded already (a recovery finishing a push whose receipt did commit)
        conn.execute(
            insert(push_receipts).values(
                key_sha256=key_sha256,
                push_source=source,
                body_sha256=body_sha256,
                answer=json.dumps(answer, sort_keys=True),
                created_at=datetime.now(UTC),
            )
        )

    def dispose(self) -> None:
        self.engine.dispose()
