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
naming it), and the batch source's own ``timestamp_field``. The created time (the batch source's
``created_timestamp_column``) is stamped with the service clock, when the service took the push; a
push carrying that column is refused (422 naming it) unless it sets ``allow_client_created``: then its
times are kept, the rows appended offline recorded in the source's ledger
(:mod:`service.training.offline.client_created`, counted by every training set's audit) and the push
counted on the push source's lineage node. Online writes go through the materializer's write path
(:func:`service.online.writes.write_online`, values converted as Feast's ``push`` converts them, event
times kept to the nanosecond: an ordered store never lets an older row overwrite a newer one) and, with
``to`` = ``offline`` / ``online_and_offline``, are appended to the push source's batch Parquet file (a
folder: a new file in it) in the file's own column names (``field_mapping`` reversed) and Arrow types, a
file column the push does not carry null; temp file + rename. An acknowledged push is committed before
the answer is sent.

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

import copy
import hashlib
import heapq
import importlib.util
import logging
import re
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pandera.pandas as pdv
import pyarrow as pa
import pyarrow.parquet as pq
from feast import FeatureStore, FeatureView, FileSource
from feast.data_source import PushSource
from feast.infra.passthrough_provider import PassthroughProvider
from feast.type_map import feast_value_type_to_pa
from feast.value_type import ValueType
from pandera.errors import SchemaErrors
from pydantic import BaseModel, ConfigDict, Field

from lineage import LineageStore, NodeKind, NodeNotFound, NodeRef
from lineage.database import transaction
from service.intents import Intent, IntentInFlight, Intents
from service.online.quarantine import QuarantineStore
from service.online.reads import STORE_ERRORS, OnlineStoreUnavailable
from service.online.receipts import IdempotencyKeyReused, PushInFlight, Receipts, key_digest
from service.online.writes import WriteRow, write_online
from service.storage import StorageUnavailable, crash_point, replace, storage_fault, temp_path, write_temp
from service.training.entity_rows import parse_timestamps
from service.training.offline.client_created import (
    CREATED_NS,
    EVENT_NS,
    PUSH_ID,
    RECEIVED_AT,
    record_client_created,
)
from service.value_types import column_problems, from_json, type_name

log = logging.getLogger(__name__)
POLICY_TAG = "feastline.validation"
CLIENT_CREATED_ATTRIBUTE = "client_created_timestamps"  # on the push source's lineage node
FUTURE_TOLERANCE = pd.Timedelta(minutes=5)  # clock skew allowed between a producer and the service
MAX_LISTED = 100  # rejected rows listed in an answer (all are counted, and all are quarantined)
CLIENT_CREATED_REFUSED = (
    "is stamped by the service (its clock, when it takes the push); send your own created times only with "
    '"allow_client_created": true, which records the push and every training set using its rows as such'
)
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
    allow_client_created: bool = Field(
        False,
        description="take the batch source's created column from the body instead of stamping the service "
        "clock; recorded on the push source's lineage node and in the audit of every training set using these rows",
    )


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
    share the lineage database (``lineage``: where a push with client-created times is counted)."""

    def __init__(
        self,
        store: FeatureStore,
        quarantine: QuarantineStore,
        repo: Path,
        intents: Intents,
        receipts: Receipts,
        lineage: LineageStore | None = None,
    ):
        self.store, self.quarantine, self.lineage = store, quarantine, lineage
        self.intents, self.receipts = intents, receipts
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
    ) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
        """The push as a frame in the views' names (a refused cell null) and every problem found:
        ``{"row", "field", "problem"}``, those not tied to a row first, then by row (column by column
        within a row). Linear in the number of cells: each column is checked as a whole
        (:func:`service.value_types.column_problems`, one vectorised timestamp parse), and only the
        refused values are visited one by one."""
        batch = source.batch_source
        assert batch is not None  # Feast requires one
        df, sent_as = _in_view_names(req, batch.field_mapping or {})
        ts_col, created_col = batch.timestamp_field or "event_timestamp", batch.created_timestamp_column or None
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
        problems: list[dict[str, Any]] = [
            {"row": None, "field": c, "problem": "is not a join key or feature of the views this source feeds"}
            for c in df
            if c not in allowed
        ]
        problems += [
            {"row": None, "field": c, "problem": "is missing"}
            for c in sorted(keys | set(fields) | {ts_col})
            if c not in df
        ]
        if created_col and created_col in df and not req.allow_client_created:
            problems.append({"row": None, "field": sent_as[created_col], "problem": CLIENT_CREATED_REFUSED})
        cells: list[tuple[int, str, str]] = []  # (row, field, problem), column by column
        for key in sorted(keys & set(df)):
            vtype = key_types[key]
            null = f"must be {type_name(vtype)}, got null"
            nulls = [(i, null) for i, v in enumerate(df[key]) if v is None]
            cells += [(i, key, p) for i, p in heapq.merge(column_problems(df[key], vtype), nulls)]
        for name, vtype in fields.items():
            if name in df:
                cells += [(i, name, p) for i, p in column_problems(df[name], vtype)]
        stamps: dict[str, pd.Series] = {}
        latest = pd.Timestamp(now) + FUTURE_TOLERANCE
        for col in stamp_cols:
            if col not in df:
                continue
            parsed, refused = parse_timestamps(df[col], None)
            future = [
                (int(i), f"{df[col][i]!r} is after the service clock ({now.isoformat()}): a value from the future")
                for i in np.flatnonzero((parsed > latest).to_numpy())
            ]
            parsed[parsed > latest] = pd.NaT
            cells += [(i, col, _TIMEZONE_OPTION.sub("", p)) for i, p in heapq.merge(refused, future)]
            stamps[col] = parsed
        frame = _frame(df, stamps, key_types | fields, cells, n)
        if created_col and created_col not in frame:  # knowledge time of a push: when the service took it
            frame[created_col] = pd.Timestamp(now).tz_convert("UTC").as_unit("ns")
        schema = self.schemas.get(req.push_source_name)
        if schema is not None and not any(p["row"] is None for p in problems):
            candidates = frame.drop(index=sorted({i for i, _, _ in cells}))
            found = _schema_problems(schema, candidates)
            problems += [{"row": None, "field": f, "problem": p} for i, f, p in found if i is None]
            cells += [(i, f, p) for i, f, p in found if i is not None]
        cells.sort(key=lambda c: c[0])  # stable: found order (column by column) within a row
        return frame, problems + [{"row": i, "field": f, "problem": p} for i, f, p in cells]

    def push(
        self, req: PushRequest, now: datetime, retry_after: int = 5, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Validate and write; returns ``{"push_source_name", "rows_received", "rows_accepted",
        "rows_quarantined", "quarantined": [{"row", "problems"}], "quarantined_listed", "to", "policy",
        "created_from"}``: ``quarantined`` lists the first ``MAX_LISTED`` rejected rows
        (``quarantined_listed`` of the ``rows_quarantined``), every one of them is kept in the quarantine
        (and ``"replayed": true`` when it is the stored answer of an earlier push with this
        ``idempotency_key``).

        Raises:
            UnknownPushSource: no such push source (404).
            PushRejected: strict policy and a bad row, or a problem not tied to a row (422).
            OnlineStoreUnavailable: ``to`` includes ``online`` and the online store cannot be reached
                (503, ``Retry-After`` = ``retry_after``). Nothing is acknowledged: the offline file is
                not appended to and no row is quarantined, so the client resends the same push, which
                is safe because the store is ordered (rows already written are rewritten or kept).
            IdempotencyKeyInvalid, IdempotencyKeyReused: a malformed key, or one used for another body (422).
            PushInFlight: a push with this key is still being written (409).
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
        by_row: dict[int, list[dict[str, Any]]] = {}
        for p in problems:  # already in row order
            by_row.setdefault(p["row"], []).append(p)
        bad = list(by_row)
        good = frame.drop(index=bad)  # indexed by the request's row numbers (problems name them)
        columns = list(req.df.items())
        records = [{"row": r, "values": {c: v[r] for c, v in columns}, "problems": by_row[r]} for r in bad]
        listed = [{"row": r, "problems": by_row[r]} for r in bad[:MAX_LISTED]]
        answer = {
            "push_source_name": req.push_source_name,
            "policy": policy,
            "to": req.to,
            "rows_received": len(frame),
            "rows_accepted": len(good),
            "rows_quarantined": len(bad),
            "quarantined": listed,
            "quarantined_listed": len(listed),
            "created_from": "client" if req.allow_client_created and self._carries_created(source, req) else "service",
        }
        # the quarantined rows are kept with the wall time: when the push came
        write = _PushWrite(
            self, req, source, views, good, records, answer, key, body_sha256, datetime.now(UTC), retry_after
        )
        write.run()
        if len(good):
            newest = good[source.batch_source.timestamp_field or "event_timestamp"].max().to_pydatetime(warn=False)
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

    @staticmethod
    def _carries_created(source: PushSource, req: PushRequest) -> bool:
        batch = source.batch_source
        created = batch.created_timestamp_column
        return bool(created) and any((batch.field_mapping or {}).get(c, c) == created for c in req.df)

    def _offline_rows(self, source: PushSource, views: list[FeatureView], frame: pd.DataFrame) -> tuple[Path, pa.Table]:
        """The rows to append to the push source's batch file: the file's own column names (the batch
        source's ``field_mapping`` reversed) and Arrow types (an ``Int64`` column holding a null stays
        int64, an integer beyond 2**53 is kept exactly, a ``Float32`` column stays float32); a file column
        the push does not carry is null. ``(path, table)``; a new file takes the declared types.

        Raises:
            PushRejected: a value the file's column type cannot hold (e.g. a nanosecond timestamp in a
                microsecond column; each such row named), a pushed column the file lacks, or a glob
                source path (422).
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
            except _ARROW_ERRORS as exc:
                cannot = f"cannot be stored in the batch file's column {field.name!r} ({field.type})"
                problems += [
                    {"row": i, "field": name, "problem": f"{cannot}: {why}"}
                    for i, why in _failing_rows(frame[name], field.type)
                ] or [{"row": None, "field": name, "problem": f"{cannot}: {exc}"}]
        if problems:
            raise PushRejected(source.name, problems)
        return path, pa.Table.from_arrays(columns, schema=schema)

    def write_online(self, req: PushRequest, views: list[FeatureView], frame: pd.DataFrame, retry_after: int) -> None:
        """The rows to the online store, view by view, through the materializer's write path (values
        converted as Feast's ``push`` converts them). Raises OnlineStoreUnavailable."""
        try:
            for fv in views:
                write_online(self.store, fv, _online_rows(fv, frame))
        except STORE_ERRORS as exc:
            raise OnlineStoreUnavailable(
                f"{type(exc).__name__}: {exc}; the push was not acknowledged, send it again",
                retry_after,
                type(exc).__name__,
            ) from exc

    def _ledger_rows(self, source: PushSource, views: list[FeatureView], frame: pd.DataFrame) -> pa.Table:
        """The client-created rows as the ledger keeps them: join keys in the batch file's names, event
        and created times in int64 ns, the push's id and when it was received."""
        batch = source.batch_source
        to_file = {mapped: column for column, mapped in (batch.field_mapping or {}).items()}
        keys = sorted({c.name for fv in views for c in fv.entity_columns})
        ts_col, created_col = batch.timestamp_field or "event_timestamp", batch.created_timestamp_column
        columns: dict[str, Any] = {to_file.get(k, k): pa.array(frame[k], from_pandas=True) for k in keys}
        columns[EVENT_NS] = pa.array(frame[ts_col].to_numpy(dtype="datetime64[ns]").view("int64"))
        columns[CREATED_NS] = pa.array(frame[created_col].to_numpy(dtype="datetime64[ns]").view("int64"))
        columns[PUSH_ID] = pa.array([uuid.uuid4().hex] * len(frame))
        columns[RECEIVED_AT] = pa.array([datetime.now(UTC)] * len(frame), pa.timestamp("us", tz="UTC"))
        return pa.table(columns)

    def _record_on_lineage(self, req: PushRequest, rows: int) -> None:
        """Count the push on the push source's lineage node: ``client_created_timestamps`` =
        ``{"pushes", "rows", "last_push_at", "last_push_to"}`` (a run-written attribute, kept across applies)."""
        if self.lineage is None:
            return
        ref = NodeRef(NodeKind.DATA_SOURCE, req.push_source_name)
        try:
            before = self.lineage.get_node(ref).attributes.get(CLIENT_CREATED_ATTRIBUTE) or {}
            self.lineage.update_attributes(
                ref,
                **{
                    CLIENT_CREATED_ATTRIBUTE: {
                        "pushes": int(before.get("pushes", 0)) + 1,
                        "rows": int(before.get("rows", 0)) + rows,
                        "last_push_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                        "last_push_to": req.to,
                    }
                },
            )
        except NodeNotFound:
            log.warning("push source %s has no lineage node (repo not applied?): push not recorded", ref)


def _in_view_names(req: PushRequest, mapping: dict[str, str]) -> tuple[dict[str, list[Any]], dict[str, str]]:
    """The pushed columns in the views' names, and for each the name it was sent as. Columns may come
    in the batch file's own names, as Feast's push takes them (its ``field_mapping`` renames them), or
    in the views' names; both mean the same column, so both at once is a 422.

    Raises:
        PushRejected: a column sent under both names.
    """
    df: dict[str, list[Any]] = {}
    sent_as: dict[str, str] = {}
    for column, values in req.df.items():
        name = mapping.get(column, column)
        if name in df:
            raise PushRejected(
                req.push_source_name,
                [{"row": None, "field": column, "problem": f"is the batch file's name of {name!r}, also sent"}],
            )
        df[name], sent_as[name] = values, column
    return df, sent_as


_AS_SENT = frozenset({ValueType.INT32, ValueType.INT64, ValueType.STRING, ValueType.BOOL})  # from_json: unchanged


def _frame(
    df: dict[str, list[Any]],
    stamps: dict[str, pd.Series],
    declared: dict[str, ValueType],
    cells: list[tuple[int, str, str]],
    n: int,
) -> pd.DataFrame:
    """The pushed columns as a frame of ``n`` rows: a refused cell null; ``Float32``/``Float64``
    columns float64 (null: NaN), timestamps ``datetime64[ns, UTC]``, other declared columns the Python
    values Feast takes (:func:`service.value_types.from_json`), in object columns."""
    refused: dict[str, list[int]] = {}
    for i, field, _ in cells:
        refused.setdefault(field, []).append(i)
    columns: dict[str, pd.Series] = {}
    for c, sent in df.items():
        if c in stamps:
            columns[c] = stamps[c]
            continue
        values = sent
        if c in refused:
            values = list(sent)
            for i in refused[c]:
                values[i] = None
        vtype = declared.get(c)
        if vtype in (ValueType.DOUBLE, ValueType.FLOAT):  # NaN for null: pandera's checks skip it
            columns[c] = pd.Series(values, dtype="float64")
        elif vtype is None or vtype in _AS_SENT:
            columns[c] = pd.Series(values, dtype="object")
        else:
            columns[c] = pd.Series([from_json(x, vtype) for x in values], dtype="object")
    return pd.DataFrame(columns, index=pd.RangeIndex(n))


def _schema_problems(schema: pdv.DataFrameSchema, frame: pd.DataFrame) -> list[tuple[int | None, str, str]]:
    """The repo's pandera checks on ``frame``: ``(row or None, field, problem)`` per failure case.

    The schema's ``unique`` columns are checked here with ``DataFrame.duplicated`` (pandera's own
    report of duplicates reshapes its failure cases row by row, quadratic in the duplicates), with
    pandera's ``report_duplicates`` and its wording; every other check runs in pandera, lazily.
    """
    found: list[tuple[int | None, str, str]] = []
    unique = [schema.unique] if isinstance(schema.unique, str) else list(schema.unique or [])
    if unique and set(unique) <= set(frame.columns):
        keep = {"exclude_first": "first", "exclude_last": "last"}.get(schema.report_duplicates, False)
        twice = frame.index[frame.duplicated(subset=unique, keep=keep)]
        for row in twice:  # one case per row and column, as pandera reports them
            for c in unique:
                found.append((int(row), c, f"fails multiple_fields_uniqueness (value {frame.at[row, c]})"))
        schema = copy.copy(schema)
        schema.unique = None
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors as err:
        for case in err.failure_cases.itertuples():
            if case.check == "column_in_dataframe":  # pandera names the schema; the column is the case
                found.append((None, str(case.failure_case), "is missing"))
                continue
            row = None if pd.isna(case.index) else int(case.index)
            found.append((row, str(case.column), f"fails {case.check} (value {case.failure_case})"))
    return found


def _online_rows(fv: FeatureView, frame: pd.DataFrame) -> list[WriteRow]:
    """Feast write rows of ``frame`` (the view's names: join keys, features, the batch source's timestamp
    columns) for ``fv``, in frame order: values converted by Feast's own push conversion, the event and
    created times the frame's nanosecond ``pd.Timestamp`` (Feast's ``push`` cuts them to microseconds,
    so a push 100 ns older than the stored row would overwrite it)."""
    frame = frame.reset_index(drop=True)
    batch = fv.batch_source
    assert batch is not None  # a push-fed view: its push source's batch source
    stamps = [c for c in (batch.timestamp_field or "event_timestamp", batch.created_timestamp_column) if c]
    events = list(frame[stamps[0]])
    created = [None if pd.isna(c) else c for c in frame[stamps[1]]] if len(stamps) > 1 else [None] * len(frame)
    # Feast's conversion reads the times too (as microsecond datetimes); they are replaced by the full ones
    coarse = frame.assign(**{c: frame[c].dt.floor("us") for c in stamps})
    rows = PassthroughProvider._prep_rows_to_write_for_ingestion(fv, coarse)
    return [(key, values, events[i], created[i]) for i, (key, values, _, _) in enumerate(rows)]


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


_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError)


def _failing_rows(values: pd.Series, to: pa.DataType) -> list[tuple[int, str]]:
    """``(row, why)`` for each value that alone cannot be stored as ``to`` by :func:`_arrow_column` (e.g.
    a timestamp with nanoseconds for a ``timestamp[us]`` column); rows are the request's (``values``' index)."""
    failing = []
    for i in range(len(values)):
        try:
            _arrow_column(values.iloc[i : i + 1], to)
        except _ARROW_ERRORS as exc:
            failing.append((int(values.index[i]), str(exc)))
    return failing


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
        self.source, self.views = source, views
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
                gate.write_online(self.req, self.views, self.good, self.retry_after)
                self.written["online"] = True
            crash_point("push.online_written")
            if self.rows is not None:
                if self.req.allow_client_created and self.source.batch_source.created_timestamp_column in self.good:
                    # recorded before the rows land: a client-created row is never in the file unrecorded
                    record_client_created(self.rows[0], gate._ledger_rows(self.source, self.views, self.good))
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
            gate._record_on_lineage(self.req, len(self.good))
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
