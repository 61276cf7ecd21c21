"""A validated push's writes: online, offline and the acknowledgement, all or nothing.

All or nothing, in this order: (1) an offline push (or one with an ``Idempotency-Key``) commits a write
intent naming its temporary file, its quarantined rows and its answer; (2) the online write; (3) the
offline rows written to the temporary file and flushed; (4) the intent marked ``renaming``; (5) the
rename into place; (6) one transaction: the quarantined rows, the receipt of the key, the intent
closed. A failure before (5) writes nothing offline and answers which part was written (the online
part is idempotent: the ordered store keeps the newer row, so resending the same push is safe); a
crash before (4) leaves nothing offline (the recovery pass removes the temporary file), a crash after
it is finished by the recovery pass (rename, quarantine, receipt), so every acknowledged push is
readable. With an ``Idempotency-Key``, a push resent after a lost answer is answered from its receipt
and not appended twice (:mod:`service.online.receipts`).
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from feast import FeatureView
from feast.data_source import PushSource

from lineage.database import transaction
from service.intents import Intent, IntentInFlight, Intents
from service.online.quarantine import QuarantineStore
from service.online.reads import OnlineStoreUnavailable
from service.online.receipts import PushInFlight, Receipts
from service.storage import StorageUnavailable, crash_point, replace, storage_fault, temp_path, write_temp
from service.training.offline.client_created import record_client_created

if TYPE_CHECKING:
    from service.online.push import PushGate, PushRequest

INTENT_KIND = "push"
_OFFLINE_LOCK = threading.Lock()


class PushWrite:
    """One push's writes, in the order of the module docstring (online, offline, acknowledgement)."""

    def __init__(
        self,
        gate: PushGate,
        req: PushRequest,
        source: PushSource,
        views: list[FeatureView],
        good: pd.DataFrame,
        records: list[dict[str, Any]],
        answer: dict[str, Any],
        key: str | None,
        body_sha256: str,
        received_at: datetime,
        retry_after: int,
    ) -> None:
        self.gate, self.req, self.good, self.retry_after = gate, req, good, retry_after
        self.source, self.views = source, views
        self.online = req.to in ("online", "online_and_offline") and len(good) > 0
        self.offline = req.to in ("offline", "online_and_offline") and len(good) > 0
        # the offline rows are built (and checked against the file's types) before anything is written
        self.rows = gate.offline_rows(source, views, good) if self.offline else None
        self.push_id = key or uuid.uuid4().hex
        self.details: dict[str, Any] = {
            "key": key,
            "body_sha256": body_sha256,
            "source": req.push_source_name,
            "to": req.to,
            "phase": "pending",
            "received_at": received_at.isoformat(),
            "answer": answer,
            "quarantine": records,
            "target": None,
            "temp": None,
        }
        self.written: dict[str, bool] = {}
        if req.to != "offline":
            self.written["online"] = False
        if req.to != "online":
            self.written["offline"] = False
        if records:
            self.written["quarantine"] = False

    def _fault(self, exc: BaseException, place: str, advice: str | None = None) -> StorageUnavailable | None:
        """The 503 for a storage fault in ``place``, naming what was written; None for another error."""
        fault = storage_fault(exc, place, self.retry_after)
        if fault is None:
            return None
        if advice is None and self.written.get("online") and not self.written.get("offline", True):
            advice = "resend the same push when the fault is cleared (the online write is idempotent)"
        return StorageUnavailable(
            fault.place, fault.reason, fault.retry_after, written=dict(self.written), advice=advice
        )

    def run(self) -> None:
        gate, intents = self.gate, self.gate.intents
        with_intent = self.offline or self.details["key"] is not None
        if with_intent:
            try:
                transaction(intents.engine, lambda c: intents.add(c, INTENT_KIND, self.push_id, self.details))
            except IntentInFlight:
                raise PushInFlight() from None
        try:
            if self.online:
                gate.write_online(self.req, self.views, self.good, self.retry_after)
                self.written["online"] = True
            crash_point("push.online_written")
            if self.rows is not None:
                if self.req.allow_client_created and self.source.batch_source.created_timestamp_column in self.good:
                    # recorded before the rows land: a client-created row is never in the file unrecorded
                    record_client_created(self.rows[0], gate.ledger_rows(self.source, self.views, self.good))
                self._append(*self.rows)
                self.written["offline"] = True
            crash_point("push.offline_written")
        except Exception as exc:
            if with_intent and self.details["phase"] == "pending":
                intents.close(INTENT_KIND, self.push_id)
            pending = "the offline append is completed when the service restarts; do not resend"
            advice = pending if self.details["phase"] == "renaming" else None
            fault = None
            if not isinstance(exc, OnlineStoreUnavailable):
                fault = self._fault(exc, "the push source's offline file", advice)
            if fault is None:
                raise
            raise fault from exc
        if self.req.allow_client_created and len(self.good):
            gate.record_on_lineage(self.req, len(self.good))
        if not with_intent and not self.details["quarantine"]:
            return  # an online push without a key: nothing more to record
        try:
            transaction(intents.engine, lambda c: self._acknowledge(c, with_intent))
        except Exception as exc:
            # the rows are written; an intent left open is finished by the recovery pass at restart
            advice = "the rest is recorded when the service restarts; do not resend"
            fault = self._fault(exc, "the lineage database", advice if with_intent else None)
            if fault is None:
                raise
            raise fault from exc

    def _append(self, path: Path, rows: pa.Table) -> None:
        """Append ``rows`` to the batch file (a folder: a new Parquet file in it), all or nothing: written
        to a temporary file in the same folder, the intent marked ``renaming``, then renamed over (or
        into) the target."""
        gate, intents = self.gate, self.gate.intents
        with _OFFLINE_LOCK:
            if path.is_dir():
                # a new file per push, named to sort after the earlier ones: the engine breaks event-time
                # ties between the files of a directory source by file name
                target, table = path / f"push-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet", rows
            else:
                target = path
                table = pa.concat_tables(_same_schema(pq.read_table(path), rows)) if path.exists() else rows
            tmp = temp_path(target)
            self.details |= {"target": gate.relative(target), "temp": gate.relative(tmp)}
            write_temp(target, lambda fh: pq.write_table(table, fh), tmp)
            crash_point("push.offline_prepared")
            try:
                transaction(
                    intents.engine, lambda c: intents.update(c, INTENT_KIND, self.push_id, self._at("renaming"))
                )
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            self.details["phase"] = "renaming"
            crash_point("push.renaming")
            try:
                replace(tmp, target)
            except BaseException:
                # the intent must say "pending" again before the temporary file goes: recovery renames a
                # "renaming" push's temporary file into place
                transaction(intents.engine, lambda c: intents.update(c, INTENT_KIND, self.push_id, self._at("pending")))
                self.details["phase"] = "pending"
                tmp.unlink(missing_ok=True)
                raise

    def _acknowledge(self, conn: Any, close_intent: bool) -> None:
        acknowledge(conn, self.details, self.gate.quarantine, self.gate.receipts)
        if close_intent:
            self.gate.intents.done(conn, INTENT_KIND, self.push_id)

    def _at(self, phase: str) -> dict[str, Any]:
        return {**self.details, "phase": phase}


def acknowledge(conn: Any, details: dict[str, Any], quarantine: QuarantineStore, receipts: Receipts) -> None:
    """In ``conn``'s transaction: a push's quarantined rows and the receipt of its key (``details`` as its
    intent holds them): what makes a push acknowledged."""
    received_at = datetime.fromisoformat(details["received_at"])
    quarantine.add(details["source"], received_at, details["quarantine"], conn)
    if details.get("key"):
        receipts.add(conn, details["key"], details["source"], details["body_sha256"], details["answer"])


def recover_push(intent: Intent, repo: Path, quarantine: QuarantineStore, receipts: Receipts, intents: Intents) -> str:
    """Finish or undo a push a crash cut short (``intent``, claimed by this process): ``"finished"`` for
    one marked ``renaming`` (its temporary file renamed into place if it still exists, then its
    quarantined rows and receipt stored: it is acknowledged), ``"undone"`` for one still ``pending``
    (its temporary file removed: nothing of it is offline, and it was never acknowledged)."""
    details = intent.details

    def file(stored: str | None) -> Path | None:
        if not stored:
            return None
        path = Path(stored)
        return path if path.is_absolute() else repo / path

    tmp, target = file(details.get("temp")), file(details.get("target"))
    finishing = details.get("phase") == "renaming"
    if finishing and tmp is not None and target is not None and tmp.exists():
        replace(tmp, target)
    elif tmp is not None:
        tmp.unlink(missing_ok=True)

    def work(conn: Any) -> None:
        if finishing:
            acknowledge(conn, details, quarantine, receipts)
        intents.done(conn, INTENT_KIND, intent.key)

    transaction(intents.engine, work)
    return "finished" if finishing else "undone"


def _same_schema(existing: pa.Table, rows: pa.Table) -> list[pa.Table]:
    """Both tables in the schema of ``rows``, which differs from the file's only where a column of the
    file is all null (type ``null``) and now takes its declared type (a null column casts to any type)."""
    if existing.schema.equals(rows.schema):
        return [existing, rows]
    typed = pa.schema([r if pa.types.is_null(e.type) else e for e, r in zip(existing.schema, rows.schema, strict=True)])
    return [existing.cast(typed), rows.cast(typed)]
