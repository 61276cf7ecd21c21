"""Pushes behind a validation gate: ``POST /push`` (Feast's body), strict or quarantine per push source.

The gate for a push source is built from the schema of every feature view it feeds (each join key
and feature a JSON value of its declared Feast type, see :mod:`service.value_types`;
the timestamp columns ISO 8601 times with an offset) plus, when
the repo's ``schemas.py`` maps the push source in ``PUSH_SCHEMAS``, that pandera schema's checks
(e.g. the physical ranges of a weather reading). The policy is the push source's tag
``feastline.validation``: ``strict`` (default; one bad row -> 422 with the report, nothing written) or
``quarantine`` (valid rows written, rejected rows kept in the quarantine table, readable at
``GET /quarantine/{source}``, and listed in the answer).

The body uses the view's names, as Feast's ``push``: join keys, every feature (one left out is a 422
naming it), and the batch source's own ``timestamp_field`` and ``created_timestamp_column`` (a push
without the created column is stamped with the service clock: when the service took it). Writes go
through Feast to the online store (an ordered-write store: an older row never overwrites a newer one)
and, with ``to`` = ``offline`` / ``online_and_offline``, are appended to the push source's batch Parquet
file (a folder: a new file in it) in the file's own column names (``field_mapping`` reversed) and Arrow
types, a file column the push does not carry null; temp file + rename. An acknowledged push is
committed before the answer is sent.

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

import hashlib
import importlib.util
import math
import re
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pandera.pandas as pdv
import pyarrow as pa
import pyarrow.parquet as pq
from feast import FeatureStore, FeatureView, FileSource
from feast.data_source import PushMode, PushSource
from feast.type_map import feast_value_type_to_pa
from feast.value_type import ValueType
from pandera.errors import SchemaErrors
from pydantic import BaseModel, ConfigDict, Field

from lineage.database import transaction
from service.intents import Intent, IntentInFlight, Intents
from service.online.quarantine import QuarantineStore
from service.online.reads import STORE_ERRORS, OnlineStoreUnavailable
from service.online.receipts import IdempotencyKeyReused, PushInFlight, Receipts, key_digest
from service.storage import StorageUnavailable, crash_point, replace, storage_fault, temp_path, write_temp
from service.training.entity_rows import timestamp_problem
from service.value_types import from_json, json_problem, type_name

POLICY_TAG = "feastline.validation"
FUTURE_TOLERANCE = pd.Timedelta(minutes=5)  # clock skew allowed between a producer and the service
_OFFLINE_LOCK = threading.Lock()
# Training sets may name a timezone to assume for naive timestamps; pushes cannot, so that advice is cut.
_TIMEZONE_OPTION = re.compile(r',?\s*or set "timezone" in the request to say which to assume')


class PushRequest(BaseModel):
    """``feast serve``'s ``/push`` body: columns as lists of equal length."""

    model_config = ConfigDict(extra="forbid")
    push_source_name: str
    df: dict[str, list[Any]] = Field(description="column -> values: join keys, the source's timestamp column, features")
    allow_registry_cache: bool = True
    to: Literal["online", "offline", "online_and_offline"] = "online"


class UnknownPushSource(Exception):
    field = "push_source_name"

    def __init__(self, name: str):
        self.name = name
        super().__init__(f"push source {name!r} is not in the registry")

    def details(self) -> dict[str, Any]:
        return {"push_source_name": self.name}


class PushRejected(Exception):
    """Strict policy: the push has invalid rows; nothing was written. ``problems``: row, field, problem."""

    field = "df"

    def __init__(self, source: str, problems: list[dict[str, Any]]):
        self.source, self.problems = source, problems
        rows = sorted({p["row"] for p in problems if p["row"] is not None})
        where = f" in rows {rows[:20]}{' ...' if len(rows) > 20 else ''}" if rows else ""
        first = problems[0]
        at = first["field"] if first["row"] is None else f"{first['field']} (row {first['row']})"
        super().__init__(
            f"push to {source!r} rejected, nothing written: {len(problems)} problem(s){where}; "
            f"first: {at}: {first['problem']}"
        )

    def details(self) -> dict[str, Any]:
        return {"push_source_name": self.source, "problems": self.problems[:100], "problem_count": len(self.problems)}


def _repo_push_schemas(repo: Path) -> dict[str, pdv.DataFrameSchema]:
    """``PUSH_SCHEMAS`` from the repo's ``schemas.py`` (ignored by ``feast apply``), or {}."""
    path = repo / "schemas.py"
    if not path.exists():
        return {}
    spec = importlib.util.spec_from_file_location(f"feastline_repo_schemas_{abs(hash(path))}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(getattr(module, "PUSH_SCHEMAS", {}))


INTENT_KIND = "push"


class PushGate:
    """Validates and writes pushes for one feature store; ``quarantine``, ``receipts`` and ``intents``
    share the lineage database."""

    def __init__(
        self, store: FeatureStore, quarantine: QuarantineStore, repo: Path, intents: Intents, receipts: Receipts
    ):
        self.store, self.quarantine, self.intents, self.receipts = store, quarantine, intents, receipts
        self.repo = Path(repo).resolve()
        self.schemas = _repo_push_schemas(repo)
        self.newest_pushed: dict[str, datetime] = {}  # view -> newest event time pushed (for freshness)

    def _source(self, name: str) -> tuple[PushSource, list[FeatureView]]:
        try:
            source = self.store.get_data_source(name)
        except Exception:
            raise UnknownPushSource(name) from None
        if not isinstance(source, PushSource):
            raise UnknownPushSource(name)
        views = [
            fv
            for fv in self.store.list_feature_views()
            if isinstance(fv.stream_source, PushSource) and fv.stream_source.name == name
        ]
        return source, views

    def _problems(
        self, req: PushRequest, source: PushSource, views: list[FeatureView], now: datetime
    ) -> tuple[pd.DataFrame, list[dict]]:
        batch = source.batch_source
        assert batch is not None  # Feast requires one
        # Columns may come in the batch file's own names, as Feast's push takes them (its field_mapping
        # renames them), or in the views' names; both mean the same column, so both at once is a 422.
        mapping = batch.field_mapping or {}
        df: dict[str, list[Any]] = {}
        for column, values in req.df.items():
            name = mapping.get(column, column)
            if name in df:
                raise PushRejected(
                    req.push_source_name,
                    [{"row": None, "field": column, "problem": f"is the batch file's name of {name!r}, also sent"}],
                )
            df[name] = values
        ts_col, created_col = batch.timestamp_field or "event_timestamp", batch.created_timestamp_column or None
        problems: list[dict[str, Any]] = []
        lengths = {k: len(v) for k, v in df.items()}
        if len(set(lengths.values())) > 1:
            raise PushRejected(
                req.push_source_name, [{"row": None, "field": "df", "problem": f"columns differ in length: {lengths}"}]
            )
        n = next(iter(lengths.values()), 0)
        if n == 0:
            raise PushRejected(req.push_source_name, [{"row": None, "field": "df", "problem": "no rows"}])
        key_types = {c.name: c.dtype.to_value_type() for fv in views for c in fv.entity_columns}
        keys = set(key_types)
        fields = {f.name: f.dtype.to_value_type() for fv in views for f in fv.features}
        stamp_cols = [ts_col, *([created_col] if created_col else [])]
        allowed = keys | set(fields) | set(stamp_cols)
        problems += [
            {"row": None, "field": c, "problem": "is not a join key or feature of the views this source feeds"}
            for c in df
            if c not in allowed
        ]
        problems += [
            {"row": None, "field": c, "problem": "is missing"}
            for c in sorted(keys | set(fields) | {ts_col})
            if c not in df
        ]
        for key in sorted(keys & set(df)):
            vtype = key_types[key]
            problems += [
                {"row": i, "field": key, "problem": p}
                for i, v in enumerate(df[key])
                if (p := f"must be {type_name(vtype)}, got null" if v is None else json_problem(v, vtype))
            ]
        for name, vtype in fields.items():
            problems += [
                {"row": i, "field": name, "problem": p}
                for i, v in enumerate(df.get(name, []))
                if (p := json_problem(v, vtype))
            ]
        stamps: dict[str, list[Any]] = {}
        for col in stamp_cols:
            if col not in df:
                continue
            parsed = []
            for i, v in enumerate(df[col]):
                ts, p = timestamp_problem(v, None)
                if p is None and ts is not None and ts > pd.Timestamp(now) + FUTURE_TOLERANCE:
                    ts, p = None, f"{v!r} is after the service clock ({now.isoformat()}): a value from the future"
                if p:
                    problems.append({"row": i, "field": col, "problem": _TIMEZONE_OPTION.sub("", p)})
                parsed.append(ts)
            stamps[col] = parsed
        declared = key_types | fields
        bad_cells = {(p["field"], p["row"]) for p in problems}
        frame = pd.DataFrame(
            {
                c: pd.Series(
                    [
                        None if (c, i) in bad_cells else from_json(x, declared[c]) if c in declared else x
                        for i, x in enumerate(v)
                    ],
                    dtype="object",
                )
                for c, v in df.items()
                if c not in stamps
            }
        )
        for col, parsed in stamps.items():
            frame[col] = pd.to_datetime(pd.Series(parsed, dtype="object"), utc=True).astype("datetime64[ns, UTC]")
        if created_col and created_col not in frame:  # knowledge time of a push: when the service took it
            frame[created_col] = pd.Timestamp(now).tz_convert("UTC").as_unit("ns")
        for name, dtype in fields.items():
            if name in frame and dtype in (
                ValueType.DOUBLE,
                ValueType.FLOAT,
            ):  # a bad cell's row is dropped before pandera
                frame[name] = pd.Series(
                    [math.nan if v is None or (name, i) in bad_cells else float(v) for i, v in enumerate(df[name])],
                    dtype="float64",
                )
        schema = self.schemas.get(req.push_source_name)
        bad_rows = {p["row"] for p in problems if p["row"] is not None}
        if schema is not None and not any(p["row"] is None for p in problems):
            candidates = frame.drop(index=sorted(bad_rows))
            try:
                schema.validate(candidates, lazy=True)
            except SchemaErrors as err:
                for case in err.failure_cases.itertuples():
                    if case.check == "column_in_dataframe":  # pandera names the schema; the column is the case
                        problems.append({"row": None, "field": str(case.failure_case), "problem": "is missing"})
                        continue
                    row = None if pd.isna(case.index) else int(case.index)
                    problems.append(
                        {"row": row, "field": case.column, "problem": f"fails {case.check} (value {case.failure_case})"}
                    )
        # problems not tied to a row first, then by row; found order (column by column) within a row
        return frame, sorted(problems, key=lambda p: (p["row"] is not None, p["row"] or 0))

    def push(
        self, req: PushRequest, now: datetime, retry_after: int = 5, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Validate and write; returns ``{"push_source_name", "rows_received", "rows_accepted",
        "rows_quarantined", "quarantined": [{"row", "problems"}], "to", "policy"}`` (and ``"replayed":
        true`` when it is the stored answer of an earlier push with this ``idempotency_key``).

        Raises:
            UnknownPushSource: no such push source (404).
            PushRejected: strict policy and a bad row, or a problem not tied to a row (422).
            IdempotencyKeyInvalid, IdempotencyKeyReused: a malformed key, or one used for another body (422).
            PushInFlight: a push with this key is still being written (409).
            OnlineStoreUnavailable: ``to`` includes ``online`` and the online store cannot be reached
                (503, ``Retry-After`` = ``retry_after``). Nothing is acknowledged: the offline file is
                not appended to and no row is quarantined, so the client resends the same push, which
                is safe because the store is ordered (rows already written are rewritten or kept).
            StorageUnavailable: the offline append (or the acknowledgement) failed on the storage (503,
                ``written`` says which parts were written; ``Retry-After`` when it can clear by itself).
        """
        key = key_digest(idempotency_key) if idempotency_key is not None else None
        body_sha256 = hashlib.sha256(req.model_dump_json().encode()).hexdigest()
        if key is not None and (receipt := self.receipts.get(key)) is not None:
            if receipt.body_sha256 != body_sha256:
                raise IdempotencyKeyReused()
            return {**receipt.answer, "replayed": True}
        source, views = self._source(req.push_source_name)
        policy = (source.tags or {}).get(POLICY_TAG, "strict")
        frame, problems = self._problems(req, source, views, now)
        if any(p["row"] is None for p in problems) or (problems and policy != "quarantine"):
            raise PushRejected(req.push_source_name, problems)
        bad = sorted({p["row"] for p in problems})
        good = frame.drop(index=bad).reset_index(drop=True)
        by_row = {r: [p for p in problems if p["row"] == r] for r in bad}
        records = [{"row": r, "values": {c: req.df[c][r] for c in req.df}, "problems": by_row[r]} for r in bad]
        answer = {
            "push_source_name": req.push_source_name,
            "policy": policy,
            "to": req.to,
            "rows_received": len(frame),
            "rows_accepted": len(good),
            "rows_quarantined": len(bad),
            "quarantined": [{"row": r["row"], "problems": r["problems"]} for r in records],
        }
        write = _PushWrite(
            self, req, source, views, good, records, answer, key, body_sha256, datetime.now(UTC), retry_after
        )
        write.run()
        if len(good):
            newest = good[source.batch_source.timestamp_field or "event_timestamp"].max().to_pydatetime()
            for fv in views:
                self.newest_pushed[fv.name] = max(newest, self.newest_pushed.get(fv.name, newest))
        return answer

    def resolve(self, stored: str) -> Path:
        """A path kept in a push intent (relative to the repo, or absolute outside it) as a file."""
        path = Path(stored)
        return path if path.is_absolute() else self.repo / path

    def relative(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(self.repo).as_posix()
        except ValueError:
            return str(path)

    def _offline_rows(self, source: PushSource, views: list[FeatureView], frame: pd.DataFrame) -> tuple[Path, pa.Table]:
        """The rows to append to the push source's batch file: the file's own column names (the batch
        source's ``field_mapping`` reversed) and Arrow types (an ``Int64`` column holding a null stays
        int64, an integer beyond 2**53 is kept exactly, a ``Float32`` column stays float32); a file column
        the push does not carry is null. ``(path, table)``; a new file takes the declared types.

        Raises:
            PushRejected: a value the file's column type cannot hold (e.g. a nanosecond timestamp in a
                microsecond column), a pushed column the file lacks, or a glob source path (422).
        """
        batch = source.batch_source
        assert isinstance(batch, FileSource)
        if any(ch in batch.path for ch in "*?["):
            problem = f"the batch source path {batch.path!r} is a glob: offline pushes need a file or a folder"
            raise PushRejected(source.name, [{"row": None, "field": "to", "problem": problem}])
        path = Path(FileSource.get_uri_for_file_path(self.store.repo_path, batch.path))
        to_file = {mapped: column for column, mapped in (batch.field_mapping or {}).items()}
        declared = _declared_schema(views, batch, to_file)
        schema = _file_schema(path) or declared
        if any(pa.types.is_null(f.type) and f.name in declared.names for f in schema):
            # an all-null column (a file written empty by pandas) takes the declared type; the pandas
            # metadata that described it as "empty" is dropped with it
            schema = pa.schema(
                [declared.field(f.name) if pa.types.is_null(f.type) and f.name in declared.names else f for f in schema]
            )
        problems: list[dict[str, Any]] = [
            {"row": None, "field": c, "problem": f"the batch file {path.name} has no column {to_file.get(c, c)!r}"}
            for c in frame
            if to_file.get(c, c) not in schema.names
        ]
        columns = []
        by_file_name = {to_file.get(c, c): c for c in frame}
        for field in schema:
            name = by_file_name.get(field.name)
            if name is None:
                columns.append(pa.nulls(len(frame), field.type))
                continue
            try:
                columns.append(_arrow_column(frame[name], field.type))
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError) as exc:
                problem = f"cannot be stored in the batch file's column {field.name!r} ({field.type}): {exc}"
                problems.append({"row": None, "field": name, "problem": problem})
        if problems:
            raise PushRejected(source.name, problems)
        return path, pa.Table.from_arrays(columns, schema=schema)

    def write_online(self, req: PushRequest, frame: pd.DataFrame, retry_after: int) -> None:
        """Feast's push to the online store (Feast reads the frame in the view's names: join keys,
        features, timestamp columns). Raises OnlineStoreUnavailable."""
        try:
            self.store.push(
                req.push_source_name, frame, allow_registry_cache=req.allow_registry_cache, to=PushMode.ONLINE
            )
        except STORE_ERRORS as exc:
            raise OnlineStoreUnavailable(
                f"{type(exc).__name__}: {exc}; the push was not acknowledged, send it again",
                retry_after,
                type(exc).__name__,
            ) from exc


class _PushWrite:
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
        self.online = req.to in ("online", "online_and_offline") and len(good) > 0
        self.offline = req.to in ("offline", "online_and_offline") and len(good) > 0
        # the offline rows are built (and checked against the file's types) before anything is written
        self.rows = gate._offline_rows(source, views, good) if self.offline else None
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
                gate.write_online(self.req, self.good, self.retry_after)
                self.written["online"] = True
            crash_point("push.online_written")
            if self.rows is not None:
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


def _file_schema(path: Path) -> pa.Schema | None:
    """The Arrow schema of the batch file (of the first Parquet file of a folder), or None if none yet."""
    if path.is_dir():
        parts = sorted(path.glob("*.parquet"))
        return pq.read_schema(parts[0]) if parts else None
    return pq.read_schema(path) if path.exists() else None


def _declared_schema(views: list[FeatureView], batch: FileSource, to_file: dict[str, str]) -> pa.Schema:
    """A new batch file's schema: join keys and features at their declared Feast types, timestamps ns UTC."""
    fields: dict[str, pa.DataType] = {}
    for fv in views:
        for f in [*fv.entity_columns, *fv.features]:
            fields.setdefault(to_file.get(f.name, f.name), feast_value_type_to_pa(f.dtype.to_value_type()))
    for col in (batch.timestamp_field, batch.created_timestamp_column):
        if col:
            fields[to_file.get(col, col)] = pa.timestamp("ns", tz="UTC")
    return pa.schema(list(fields.items()))


def _arrow_column(values: pd.Series, to: pa.DataType) -> pa.Array:
    """``values`` (a frame column: Python values or None, float NaN = missing) as an Arrow array of
    type ``to``, without going through float64 for integers; a timestamp cast that would lose digits raises."""
    if pa.types.is_timestamp(to):
        return pa.Array.from_pandas(pd.to_datetime(values, utc=True).astype("datetime64[ns, UTC]")).cast(to)
    return pa.array(values, type=to, from_pandas=True)


def _same_schema(existing: pa.Table, rows: pa.Table) -> list[pa.Table]:
    """Both tables in the schema of ``rows``, which differs from the file's only where a column of the
    file is all null (type ``null``) and now takes its declared type (a null column casts to any type)."""
    if existing.schema.equals(rows.schema):
        return [existing, rows]
    typed = pa.schema([r if pa.types.is_null(e.type) else e for e, r in zip(existing.schema, rows.schema, strict=True)])
    return [existing.cast(typed), rows.cast(typed)]
