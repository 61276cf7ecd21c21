"""Pushes behind a validation gate: ``POST /push`` (Feast's body), strict or quarantine per push source.

The gate for a push source is built from the schema of every feature view it feeds (join keys are
strings; each feature's Feast dtype; ``event_timestamp`` an ISO 8601 time with an offset) plus, when
the repo's ``schemas.py`` maps the push source in ``PUSH_SCHEMAS``, that pandera schema's checks
(e.g. the physical ranges of a weather reading). The policy is the push source's tag
``feastline.validation``: ``strict`` (default; one bad row -> 422 with the report, nothing written) or
``quarantine`` (valid rows written, rejected rows kept in the quarantine table, readable at
``GET /quarantine/{source}``, and listed in the answer).

Writes go through Feast to the online store (an ordered-write store: an older row never overwrites a
newer one) and, with ``to`` = ``offline`` / ``online_and_offline``, are appended to the push source's
batch Parquet file. An acknowledged push is committed before the answer is sent.
"""

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
import pandera.pandas as pa
import pyarrow.parquet as pq
from feast import FeatureStore, FeatureView, FileSource
from feast.data_source import PushMode, PushSource
from feast.types import Bool, Float32, Float64, Int32, Int64, String
from pandera.errors import SchemaErrors
from pydantic import BaseModel, ConfigDict, Field

from service.online.quarantine import QuarantineStore
from service.online.reads import STORE_ERRORS, OnlineStoreUnavailable
from service.training.entity_rows import timestamp_problem

POLICY_TAG = "feastline.validation"
FUTURE_TOLERANCE = pd.Timedelta(minutes=5)  # clock skew allowed between a producer and the service
_OFFLINE_LOCK = threading.Lock()
# Training sets may name a timezone to assume for naive timestamps; pushes cannot, so that advice is cut.
_TIMEZONE_OPTION = re.compile(r',?\s*or set "timezone" in the request to say which to assume')


class PushRequest(BaseModel):
    """``feast serve``'s ``/push`` body: columns as lists of equal length."""

    model_config = ConfigDict(extra="forbid")
    push_source_name: str
    df: dict[str, list[Any]] = Field(description="column -> values; join keys, event_timestamp, features")
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


def _repo_push_schemas(repo: Path) -> dict[str, pa.DataFrameSchema]:
    """``PUSH_SCHEMAS`` from the repo's ``schemas.py`` (ignored by ``feast apply``), or {}."""
    path = repo / "schemas.py"
    if not path.exists():
        return {}
    spec = importlib.util.spec_from_file_location(f"feastline_repo_schemas_{abs(hash(path))}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(getattr(module, "PUSH_SCHEMAS", {}))


def _type_problem(value: Any, dtype: Any) -> str | None:
    if value is None:
        return None
    if dtype in (Float64, Float32):
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        return None if ok else f"must be a finite number, got {value!r}"
    if dtype in (Int64, Int32):
        ok = isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63
        return None if ok else f"must be an integer, got {value!r}"
    if dtype == String:
        return None if isinstance(value, str) else f"must be a string, got {value!r}"
    if dtype == Bool:
        return None if isinstance(value, bool) else f"must be true or false, got {value!r}"
    return None


class PushGate:
    """Validates and writes pushes for one feature store."""

    def __init__(self, store: FeatureStore, quarantine: QuarantineStore, repo: Path):
        self.store, self.quarantine = store, quarantine
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

    def _problems(self, req: PushRequest, views: list[FeatureView], now: datetime) -> tuple[pd.DataFrame, list[dict]]:
        df = req.df
        problems: list[dict[str, Any]] = []
        lengths = {k: len(v) for k, v in df.items()}
        if len(set(lengths.values())) > 1:
            raise PushRejected(
                req.push_source_name, [{"row": None, "field": "df", "problem": f"columns differ in length: {lengths}"}]
            )
        n = next(iter(lengths.values()), 0)
        if n == 0:
            raise PushRejected(req.push_source_name, [{"row": None, "field": "df", "problem": "no rows"}])
        keys = {c.name for fv in views for c in fv.entity_columns}
        fields = {f.name: f.dtype for fv in views for f in fv.features}
        allowed = keys | set(fields) | {"event_timestamp", "created"}
        problems += [
            {"row": None, "field": c, "problem": "is not a join key or feature of the views this source feeds"}
            for c in df
            if c not in allowed
        ]
        problems += [
            {"row": None, "field": c, "problem": "is missing"}
            for c in sorted(keys | {"event_timestamp"})
            if c not in df
        ]
        for key in keys & set(df):
            problems += [
                {"row": i, "field": key, "problem": f"must be a string, got {v!r}"}
                for i, v in enumerate(df[key])
                if not isinstance(v, str)
            ]
        for name, dtype in fields.items():
            problems += [
                {"row": i, "field": name, "problem": p}
                for i, v in enumerate(df.get(name, [None] * n))
                if (p := _type_problem(v, dtype))
            ]
        stamps: dict[str, list[Any]] = {}
        for col in ("event_timestamp", "created"):
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
        frame = pd.DataFrame({c: pd.Series(v, dtype="object") for c, v in df.items() if c not in stamps})
        for col, parsed in stamps.items():
            frame[col] = pd.to_datetime(pd.Series(parsed, dtype="object"), utc=True).astype("datetime64[ns, UTC]")
        if "created" not in frame:
            frame["created"] = pd.Timestamp(now).tz_convert("UTC").as_unit("ns")
        bad_cells = {(p["field"], p["row"]) for p in problems}
        for name, dtype in fields.items():
            if name in frame and dtype in (Float64, Float32):  # a bad cell's row is dropped before pandera
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

    def push(self, req: PushRequest, now: datetime, retry_after: int = 5) -> dict[str, Any]:
        """Validate and write; returns ``{"push_source_name", "rows_received", "rows_accepted",
        "rows_quarantined", "quarantined": [{"row", "problems"}], "to", "policy"}``.

        Raises:
            UnknownPushSource: no such push source (404).
            PushRejected: strict policy and a bad row, or a problem not tied to a row (422).
            OnlineStoreUnavailable: ``to`` includes ``online`` and the online store cannot be reached
                (503, ``Retry-After`` = ``retry_after``). Nothing is acknowledged: the offline file is
                not appended to and no row is quarantined, so the client resends the same push, which
                is safe because the store is ordered (rows already written are rewritten or kept).
        """
        source, views = self._source(req.push_source_name)
        policy = (source.tags or {}).get(POLICY_TAG, "strict")
        frame, problems = self._problems(req, views, now)
        if any(p["row"] is None for p in problems) or (problems and policy != "quarantine"):
            raise PushRejected(req.push_source_name, problems)
        bad = sorted({p["row"] for p in problems})
        good = frame.drop(index=bad).reset_index(drop=True)
        if len(good):
            self._write(req, source, good, retry_after)
            newest = good["event_timestamp"].max().to_pydatetime()
            for fv in views:
                self.newest_pushed[fv.name] = max(newest, self.newest_pushed.get(fv.name, newest))
        quarantined = []
        if bad:
            by_row = {r: [p for p in problems if p["row"] == r] for r in bad}
            records = [{"row": r, "values": {c: req.df[c][r] for c in req.df}, "problems": by_row[r]} for r in bad]
            self.quarantine.add(req.push_source_name, datetime.now(UTC), records)  # wall time: when it came
            quarantined = [{"row": r["row"], "problems": r["problems"]} for r in records]
        return {
            "push_source_name": req.push_source_name,
            "policy": policy,
            "to": req.to,
            "rows_received": len(frame),
            "rows_accepted": len(good),
            "rows_quarantined": len(bad),
            "quarantined": quarantined,
        }

    def _write(self, req: PushRequest, source: PushSource, frame: pd.DataFrame, retry_after: int) -> None:
        """Online first, then offline: an online outage leaves the offline file untouched."""
        if req.to in ("online", "online_and_offline"):
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
        if req.to in ("offline", "online_and_offline"):
            batch = source.batch_source
            assert isinstance(batch, FileSource)
            path = Path(FileSource.get_uri_for_file_path(self.store.repo_path, batch.path))
            if path.is_dir():  # a directory source: each push adds one file (written aside, renamed in)
                _add_file(path, frame)
                return
            with _OFFLINE_LOCK:  # read-append-replace; the rename is atomic
                existing = pd.read_parquet(path) if path.exists() else frame.iloc[0:0]
                combined = pd.concat([existing, frame[list(existing.columns) or frame.columns]], ignore_index=True)
                tmp = path.with_suffix(".tmp.parquet")
                combined.to_parquet(tmp, index=False)
                tmp.replace(path)


def _add_file(directory: Path, frame: pd.DataFrame) -> Path:
    """Write ``frame`` as a new Parquet file of a directory source, atomically: written under a name the
    source does not read (``.*.tmp``), then renamed to ``push-<UTC ns>-<random>.parquet``, which sorts
    after the earlier pushes (the engine breaks event-time ties between files by file name). Columns in
    the order of an existing file of the directory, when there is one."""
    existing = sorted(directory.rglob("*.parquet"))
    columns = list(pq.read_schema(existing[0]).names) if existing else list(frame.columns)
    name = f"push-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
    tmp = directory / f".{name}.tmp"
    frame[[c for c in columns if c in frame.columns]].to_parquet(tmp, index=False)
    return tmp.replace(directory / name)
