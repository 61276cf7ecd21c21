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

The writes, all or nothing, are :mod:`service.online.push_write`'s.
"""

import copy
import hashlib
import heapq
import importlib.util
import logging
import re
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
from service.intents import Intents
from service.online.push_write import PushWrite
from service.online.quarantine import QuarantineStore
from service.online.reads import STORE_ERRORS, OnlineStoreUnavailable
from service.online.receipts import IdempotencyKeyReused, Receipts, key_digest
from service.online.writes import WriteRow, write_online
from service.training.entity_rows import parse_timestamps
from service.training.offline.client_created import (
    CREATED_NS,
    EVENT_NS,
    PUSH_ID,
    RECEIVED_AT,
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
        write = PushWrite(
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

    def offline_rows(self, source: PushSource, views: list[FeatureView], frame: pd.DataFrame) -> tuple[Path, pa.Table]:
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

    def ledger_rows(self, source: PushSource, views: list[FeatureView], frame: pd.DataFrame) -> pa.Table:
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

    def record_on_lineage(self, req: PushRequest, rows: int) -> None:
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
