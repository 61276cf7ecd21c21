"""Online/offline parity: training/serving skew measured on values, not only on distributions.

The logged online reads of a feature service in a window (:mod:`service.monitoring.online_log`) are
replayed through the point-in-time engine, the training-set path (``get_training_frame``: the same
join, TTL, created-timestamp cut-off and leakage audit as ``POST /training-sets``), with one entity
row per served entity: its logged join keys and request fields, ``event_timestamp`` = the service
clock time it was served at. Rows are replayed in log order (time, then sequence number, then
position in the request), so requests served at one pinned instant keep their order in the report.
Each feature's online value is compared with the offline one, both in the JSON form
``/get-online-features`` answers (``Float32`` at float32 precision, ``UnixTimestamp`` as epoch
seconds, ``Bytes`` as base64): equal values match, and so do two missing values (``NOT_FOUND``,
``OUTSIDE_MAX_AGE`` or ``NULL_VALUE`` online against a null offline).

**Causes.** Each mismatching value gets the most likely cause, decided from the online answer (its
value, status and event timestamp, whole seconds as answered), the offline replay (its value and the
event time of the row it took) and the view's source rows for that entity, in this order:

1. ``type/precision``: both sides have a value, they differ, but they are equal as float32, within a
   relative 1e-6, or spelled alike (``1`` and ``"1"``): a representation difference, not data.
2. ``pushed online but not offline``: online answered a value from a row (event time ``t``) that no
   row of the offline source holds at ``t`` with that value, and the view is fed by a push source: a
   push with ``to: online`` reached the online store only. (Not push-fed: the row was rewritten
   offline after it was served: cause 5.)
3. ``materialization behind the clock``: the offline replay took a row newer than the one served
   online (or online had no row at all, ``NOT_FOUND``, while offline has one): the online store had
   not yet been given the newer row when the request was served.
4. ``TTL expiry differs``: the row served online exists offline, but one side treats it as expired:
   online ``OUTSIDE_MAX_AGE`` against an offline value, or an online value against an offline null.
5. ``value changed by a later backfill``: the row served online exists offline only as written after
   the request (its created timestamp is after the serving time, or unknown), or the offline replay
   took another row at the same event time: the offline data was changed after serving.
6. ``unexplained``: none of the above (an on-demand value whose inputs all match, for instance).

An on-demand feature's mismatch takes the cause of the first mismatching batch feature of the same
row, else ``type/precision`` when close, else ``unexplained``.

**Limit.** Offline, a push is stamped with the service clock as its created time, and a pinned clock
(``FEASTLINE_NOW``) does not move: a push ``to: online_and_offline`` made at the pinned instant is
visible to the replay of every request logged at that instant, also those served before the push
(the sequence orders requests, the offline store keeps no sequence). With a wall clock this does not
arise. The latest report per feature service sets the ``/metrics`` gauges (:class:`ParityGauges`).
"""

import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from feast import FeatureStore
from feast.data_source import PushSource
from feast.value_type import ValueType
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from service.monitoring.online_log import (
    EVENT_TS_SUFFIX,
    STATUS_SUFFIX,
    feature_columns,
    pandas_types,
    read_log_table,
)
from service.settings import Settings
from service.training.entity_rows import entity_frame_from_table
from service.training.offline.engine import JoinOptions, get_training_frame, join_views
from service.training.offline.views import RetrievalPlan, ViewSpec, plan_retrieval, service_references
from service.value_types import from_json_column, is_missing, to_json_column

TYPE_PRECISION = "type/precision"
PUSHED_ONLINE_ONLY = "pushed online but not offline"
MATERIALIZATION_BEHIND = "materialization behind the clock"
TTL_DIFFERS = "TTL expiry differs"
LATER_BACKFILL = "value changed by a later backfill"
UNEXPLAINED = "unexplained"
CAUSES = (TYPE_PRECISION, PUSHED_ONLINE_ONLY, MATERIALIZATION_BEHIND, TTL_DIFFERS, LATER_BACKFILL, UNEXPLAINED)
TS = "event_timestamp"
_AS_LOGGED = (ValueType.STRING, ValueType.INT32, ValueType.INT64)  # entity columns the log holds typed


# -- value forms -----------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A value as plain Python (numpy scalars and arrays unwrapped, missing as None)."""
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if is_missing(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def _epoch_seconds(value: Any) -> Any:
    if isinstance(value, list | tuple | np.ndarray):
        return [_epoch_seconds(v) for v in value]
    if is_missing(value):
        return None
    return int(pd.Timestamp(value).value // 1_000_000_000)


def offline_json(column: pd.Series, vtype: ValueType) -> list[Any]:
    """An offline (training-frame) column in the JSON form ``/get-online-features`` answers it in."""
    values = column.tolist()
    if vtype in (ValueType.UNIX_TIMESTAMP, ValueType.UNIX_TIMESTAMP_LIST):
        return [_epoch_seconds(v) for v in values]
    return [_plain(v) for v in to_json_column(values, vtype)]


def logged_json(column: pd.Series | None, n: int) -> list[Any]:
    """A logged column (read back from Parquet) as plain JSON values, missing as None."""
    if column is None:
        return [None] * n
    if column.dtype == object:
        return [_plain(v) for v in column.tolist()]
    return [_plain(v) for v in column.astype(object).where(column.notna(), None).tolist()]


def equal_values(online: list[Any], offline: list[Any]) -> np.ndarray:
    """Per row, whether the two JSON values are equal (missing equals only missing; lists item by item)."""
    a = np.empty(len(online), dtype=object)
    b = np.empty(len(offline), dtype=object)
    a[:], b[:] = online, offline
    if any(isinstance(v, list) for v in online) or any(isinstance(v, list) for v in offline):
        return np.array([x == y for x, y in zip(online, offline, strict=True)], dtype=bool)
    missing_a = np.array([v is None for v in online], dtype=bool)
    missing_b = np.array([v is None for v in offline], dtype=bool)
    same = np.asarray(a == b, dtype=bool)
    equal: np.ndarray = (same & ~missing_a & ~missing_b) | (missing_a & missing_b)
    return equal


_FLOATS = {ValueType.FLOAT: np.float32, ValueType.DOUBLE: np.float64}
_INTEGERS = (ValueType.INT32, ValueType.INT64)


def equal_columns(online: pd.Series, offline: pd.Series, vtype: ValueType) -> np.ndarray:
    """Per row, whether the logged value equals the offline one in the JSON form both are answered
    in (:func:`equal_values` of :func:`logged_json` and :func:`offline_json`), on whole columns where
    the type allows: floats at their declared width (equal float32s are equal shortest spellings),
    integers and booleans exactly, strings as text, ``UnixTimestamp`` as floored epoch seconds;
    any other type (lists, bytes) or an unexpected column dtype value by value."""
    missing_a = online.isna().to_numpy(dtype=bool)
    missing_b = offline.isna().to_numpy(dtype=bool)
    try:
        if vtype in _FLOATS:
            width = _FLOATS[vtype]
            a = online.to_numpy(dtype=np.float64, na_value=np.nan).astype(width)
            b = offline.to_numpy(dtype=np.float64, na_value=np.nan).astype(width)
        elif vtype in _INTEGERS:
            a = online.astype("Int64").fillna(0).to_numpy(dtype=np.int64)
            b = offline.astype("Int64").fillna(0).to_numpy(dtype=np.int64)
        elif vtype == ValueType.BOOL:
            a = online.astype("boolean").fillna(False).to_numpy(dtype=bool)
            b = offline.astype("boolean").fillna(False).to_numpy(dtype=bool)
        elif vtype == ValueType.STRING and online.dtype == object and offline.dtype == object:
            a, b = online.to_numpy(dtype=object), offline.to_numpy(dtype=object)
        elif vtype == ValueType.UNIX_TIMESTAMP:
            a = online.astype("Int64").fillna(0).to_numpy(dtype=np.int64)
            nanos = pd.to_datetime(offline, utc=True).to_numpy(dtype="datetime64[ns]").astype(np.int64)
            b = np.where(missing_b, 0, nanos) // 1_000_000_000
        else:
            raise TypeError(vtype)
        same = np.asarray(a == b, dtype=bool)
    except (TypeError, ValueError, OverflowError):
        return equal_values(logged_json(online, len(online)), offline_json(offline, vtype))
    equal: np.ndarray = (same & ~missing_a & ~missing_b) | (missing_a & missing_b)
    return equal


def close_values(x: Any, y: Any) -> bool:
    """Different values that are one value in another representation (cause ``type/precision``)."""
    if x is None or y is None:
        return False
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(a == b or close_values(a, b) for a, b in zip(x, y, strict=True))
    numbers = (int, float)
    if isinstance(x, numbers) and isinstance(y, numbers) and not isinstance(x, bool) and not isinstance(y, bool):
        fx, fy = float(x), float(y)
        if not (math.isfinite(fx) and math.isfinite(fy)):
            return False
        return bool(np.float32(fx) == np.float32(fy)) or math.isclose(fx, fy, rel_tol=1e-6, abs_tol=0.0)
    return str(x) == str(y)


# -- causes ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One mismatching value, with what decides its cause."""

    online_value: Any
    online_status: str | None
    online_ts: pd.Timestamp | None  # whole seconds, as answered
    offline_value: Any
    offline_ts: pd.Timestamp | None  # the event time of the row the replay took
    logged_at: pd.Timestamp


def decide_cause(
    cell: Cell, same_time: list[tuple[Any, pd.Timestamp | None]], has_created: bool, push_fed: bool
) -> str:
    """The most likely cause of one mismatch (see the module docstring for the rules, in order).

    Args:
        same_time: the view's source rows for this entity whose event time, floored to the second, is
            ``cell.online_ts``: (value in JSON form, created timestamp or None).
        has_created: the source has a created-timestamp column.
        push_fed: the view is fed by a push source.
    """
    if close_values(cell.online_value, cell.offline_value):
        return TYPE_PRECISION
    if cell.online_ts is None:  # online had no row for the entity
        return MATERIALIZATION_BEHIND if cell.offline_value is not None else UNEXPLAINED
    served = cell.online_status in ("PRESENT", "NULL_VALUE")
    holding = [created for value, created in same_time if not served or value == cell.online_value]
    if not holding:  # the row served online is not offline (with that value)
        return PUSHED_ONLINE_ONLY if push_fed else LATER_BACKFILL
    if cell.offline_ts is not None and cell.offline_ts.floor("s") > cell.online_ts:
        return MATERIALIZATION_BEHIND
    if has_created and not any(c is not None and c <= cell.logged_at for c in holding):
        return LATER_BACKFILL  # offline learned of the served row only after the request
    if cell.online_status == "OUTSIDE_MAX_AGE" or (served and cell.offline_value is None):
        return TTL_DIFFERS
    if cell.offline_ts is not None and cell.offline_ts.floor("s") == cell.online_ts:
        return LATER_BACKFILL  # another row at the same event time won offline: rewritten after serving
    return UNEXPLAINED


def _source_rows(spec: ViewSpec, features: list[str], keys: set[tuple[str, ...]]) -> pd.DataFrame:
    """The view's source rows for the given entities (keys as text, in ``spec.join_keys`` order):
    the join keys, ``__ts``, ``__created`` and the features, in the engine's names."""
    files = spec.parquet_files()
    wanted = {spec.columns[k]: k for k in spec.join_keys} | {spec.columns[f]: f for f in features}
    wanted[spec.timestamp_field] = "__ts"
    if spec.created_field:
        wanted[spec.created_field] = "__created"
    frames = [pq.read_table(f, columns=list(wanted)).to_pandas() for f in files]
    rows = pd.concat(frames, ignore_index=True).rename(columns=wanted) if frames else pd.DataFrame(columns=list(wanted))
    if spec.join_keys:
        text = rows[list(spec.join_keys)].astype(str).agg("\x1f".join, axis=1)
        rows = rows[text.isin({"\x1f".join(k) for k in keys})]
    rows["__ts"] = pd.to_datetime(rows["__ts"], utc=True)
    if "__created" in rows:
        rows["__created"] = pd.to_datetime(rows["__created"], utc=True)
    return rows


# -- the report ------------------------------------------------------------------------------------


def _entity_table(logged: pd.DataFrame, plan: RetrievalPlan) -> pd.DataFrame:
    """The replay's entity rows: logged join keys and request fields, at their declared types, and
    ``event_timestamp`` = the time each was served; validated as a Parquet entity table is."""
    table: dict[str, Any] = {}
    for name, vtype in (plan.key_types | plan.request_types).items():
        col = logged[name] if name in logged else pd.Series([None] * len(logged), dtype=object)
        if vtype in _AS_LOGGED:
            table[name] = col
        else:
            values = from_json_column([_plain(v) for v in col.tolist()], vtype)
            table[name] = pd.Series(values, dtype="datetime64[ns, UTC]" if vtype == ValueType.UNIX_TIMESTAMP else None)
    table[TS] = logged["logged_at"].astype("datetime64[ns, UTC]")
    return entity_frame_from_table(pd.DataFrame(table), plan)


def _view_of(plan: RetrievalPlan, view: str) -> ViewSpec | None:
    return next((v for v in plan.views if v.name == view), None)


def parity_report(
    store: FeatureStore,
    settings: Settings,
    feature_service: str,
    start: datetime,
    end: datetime,
    max_listed: int = 1000,
) -> dict[str, Any]:
    """Replay the window's logged reads of ``feature_service`` offline and compare value by value.

    Args:
        start, end: timezone-aware, ``start < end``; the reads served in ``[start, end)``.
        max_listed: most mismatches listed (all are counted).

    Returns:
        ``{"feature_service", "window": {"start", "end"}, "requests", "rows", "match_rate",
        "features": [{"name", "feature_view", "compared", "matches", "match_rate",
        "statuses": {status: count}, "offline_nulls", "causes": {cause: count}}, ...],
        "causes": {cause: count}, "mismatch_count", "mismatches": [{"request_id", "sequence", "row",
        "logged_at", "entity": {...}, "feature", "online_status", "online_value",
        "online_event_timestamp", "offline_value", "offline_event_timestamp", "cause"}, ...]}``;
        rates in [0, 1], None when nothing was compared; mismatches in log order.

    Raises:
        UnknownFeatureService: not in the registry.
        LeakageDetected, SourceDataMissing, SourceKeyTypeMismatch: from the point-in-time engine.
    """
    refs = service_references(store, feature_service)
    plan = plan_retrieval(store, refs, feature_service)
    # every row's event timestamps are needed only where a value mismatches: read the rest first
    lean = read_log_table(settings, start, end, feature_service, without_suffix=EVENT_TS_SUFFIX)
    return _parity(plan, settings, feature_service, start, end, max_listed, lean)


_IDS = ["request_id", "logged_at", "sequence", "row"]  # which rows a log table holds, in its order


def _parity(
    plan: RetrievalPlan,
    settings: Settings,
    feature_service: str,
    start: datetime,
    end: datetime,
    max_listed: int,
    table: pa.Table | None,
    whole: bool = False,
) -> dict[str, Any]:
    """:func:`parity_report` of the log rows in ``table`` (every column if ``whole``, else without the
    event timestamps: those are read for the mismatching rows when there are any)."""
    columns = feature_columns(plan)
    full = columns != [f for _, f in plan.requested]
    n = table.num_rows if table is not None else 0
    report: dict[str, Any] = {
        "feature_service": feature_service,
        "window": {"start": _iso(start), "end": _iso(end)},
        "requests": int(pc.count_distinct(table.column("request_id")).as_py()) if table is not None and n else 0,
        "rows": n,
    }
    if n == 0:
        features: list[dict[str, Any]] = [
            {"name": c, "feature_view": v, "compared": 0, "matches": 0, "match_rate": None, "statuses": {}}
            for c, (v, _) in zip(columns, plan.requested, strict=True)
        ]
        return report | {"match_rate": None, "features": features, "causes": {}, "mismatch_count": 0, "mismatches": []}
    assert table is not None
    # in pandas, every row: what the replay and the comparison need (statuses are counted in Arrow);
    # the other columns (request ids, event timestamps) only for the mismatching rows, below
    held = set(table.column_names)
    bulk = [c for c in ("logged_at", *plan.key_types, *plan.request_types, *columns) if c in held]
    logged = table.select(list(dict.fromkeys(bulk))).to_pandas(types_mapper=pandas_types)
    entity_df = _entity_table(logged, plan)
    frame = get_training_frame(entity_df, plan, JoinOptions(full_feature_names=full)).frame
    batch_views = {v.name for v in plan.views}
    per_feature: list[dict[str, Any]] = []
    mismatched: dict[str, np.ndarray] = {}
    online_values: dict[str, dict[int, Any]] = {}  # JSON values of the mismatching cells only
    offline_values: dict[str, dict[int, Any]] = {}
    for col, (view, feature) in zip(columns, plan.requested, strict=True):
        vtype = plan.feature_type(view, feature)
        online, offline = logged.get(col), frame[col]
        status = table.column(col + STATUS_SUFFIX) if col + STATUS_SUFFIX in held else pa.nulls(n, pa.string())
        compared = pc.is_valid(status).to_numpy(zero_copy_only=False)  # a feature logged for these rows
        same = equal_columns(online, offline, vtype) if online is not None else np.zeros(n, dtype=bool)
        mismatched[col] = np.flatnonzero(compared & ~same)
        rows = mismatched[col]
        online_values[col], offline_values[col] = {}, {}
        if len(rows):
            online_json = logged_json(online.iloc[rows] if online is not None else None, len(rows))
            online_values[col] = dict(zip(rows.tolist(), online_json, strict=True))
            offline_values[col] = dict(zip(rows.tolist(), offline_json(offline.iloc[rows], vtype), strict=True))
        per_feature.append(
            {
                "name": col,
                "feature_view": view,
                "compared": int(compared.sum()),
                "matches": int((compared & same).sum()),
                "match_rate": float((compared & same).sum() / compared.sum()) if compared.any() else None,
                "statuses": _status_counts(status),
                "offline_nulls": int(offline.isna().sum()),
            }
        )
    rows_listed = np.unique(np.concatenate([np.zeros(0, dtype=np.int64), *mismatched.values()]))
    if len(rows_listed) and not whole:  # the event timestamps, from the same rows read again in full
        again = read_log_table(settings, start, end, feature_service)
        if again is None or not again.select(_IDS).equals(table.select(_IDS)):  # the log changed meanwhile
            return _parity(plan, settings, feature_service, start, end, max_listed, again, whole=True)
        table = again
    detail = table.take(pa.array(rows_listed, pa.int64())).to_pandas(types_mapper=pandas_types)
    detail.index = pd.Index(rows_listed)  # the mismatching rows, every column, by row number
    causes, offline_ts = _causes(
        plan, detail, entity_df, columns, mismatched, online_values, offline_values, batch_views
    )
    total_compared = sum(f["compared"] for f in per_feature)
    for f in per_feature:
        f["causes"] = dict(sorted(_count(causes.get(f["name"], {}).values()).items()))
    order = {c: i for i, c in enumerate(columns)}
    cells = sorted(((int(r), col) for col, rows in mismatched.items() for r in rows), key=lambda x: (x[0], order[x[1]]))
    keys = [k for k in (*plan.join_keys, *plan.request_fields) if k in held]
    listed = []
    for r, col in cells[:max_listed]:
        row = detail.loc[r]
        stamp = row.get(col + EVENT_TS_SUFFIX)
        taken = offline_ts.get((col, r))
        listed.append(
            {
                "request_id": row["request_id"],
                "sequence": int(row["sequence"]),
                "row": int(row["row"]),
                "logged_at": _iso(row["logged_at"]),
                "entity": {k: _plain(row[k]) for k in keys},
                "feature": col,
                "online_status": row.get(col + STATUS_SUFFIX),
                "online_value": online_values[col][r],
                "online_event_timestamp": None if stamp is None or pd.isna(stamp) else _iso(stamp),
                "offline_value": offline_values[col][r],
                "offline_event_timestamp": None if taken is None else _iso(taken),
                "cause": causes[col][r],
            }
        )
    mismatch_count = len(cells)
    return report | {
        "match_rate": (total_compared - mismatch_count) / total_compared if total_compared else None,
        "features": per_feature,
        "causes": dict(sorted(_count(c for by_row in causes.values() for c in by_row.values()).items())),
        "mismatch_count": mismatch_count,
        "mismatches": listed,
    }


def _status_counts(status: pa.ChunkedArray | pa.Array) -> dict[str, int]:
    """Rows per logged status (missing ones left out), by status."""
    counts = pc.value_counts(status)
    found = zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True)
    return dict(sorted((str(k), int(v)) for k, v in found if k is not None))


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return counts


def _causes(
    plan: RetrievalPlan,
    detail: pd.DataFrame,
    entity_df: pd.DataFrame,
    columns: list[str],
    mismatched: dict[str, np.ndarray],
    online_values: dict[str, dict[int, Any]],
    offline_values: dict[str, dict[int, Any]],
    batch_views: set[str],
) -> tuple[dict[str, dict[int, str]], dict[tuple[str, int], pd.Timestamp]]:
    """(column -> row -> cause, for every mismatching cell; (column, row) -> event time of the row the
    offline replay took, for the mismatching cells of batch views). Batch views first, then on-demand."""
    causes: dict[str, dict[int, str]] = {c: {} for c in columns}
    offline_ts: dict[tuple[str, int], pd.Timestamp] = {}
    by_view: dict[str, list[tuple[str, str]]] = {}
    for col, (view, feature) in zip(columns, plan.requested, strict=True):
        if view in batch_views and len(mismatched[col]):
            by_view.setdefault(view, []).append((col, feature))
    for view, cols in by_view.items():
        spec = _view_of(plan, view)
        assert spec is not None
        rows = sorted({int(r) for col, _ in cols for r in mismatched[col]})
        replay = join_views(entity_df.iloc[rows].reset_index(drop=True), (spec,))
        taken = dict(zip(rows, replay[f"{spec.name}____feature_ts"].tolist(), strict=True))
        keys = {tuple(str(entity_df.iloc[r][k]) for k in spec.join_keys) for r in rows}
        source = _source_rows(spec, [f for _, f in cols], keys)
        key_text = source[list(spec.join_keys)].astype(str).agg("\x1f".join, axis=1) if spec.join_keys else None
        seconds = source["__ts"].dt.floor("s")
        push_fed = isinstance(spec.definition.stream_source, PushSource)
        for col, feature in cols:
            vtype = spec.types.get(feature, ValueType.UNKNOWN)
            source_json = offline_json(source[feature], vtype) if len(source) else []
            for r in mismatched[col]:
                r = int(r)
                entry = detail.loc[r]
                stamp = entry.get(col + EVENT_TS_SUFFIX)
                online_ts = None if stamp is None or pd.isna(stamp) else pd.Timestamp(stamp).floor("s")
                t_off = taken.get(r)
                t_off = None if t_off is None or pd.isna(t_off) else pd.Timestamp(t_off)
                if t_off is not None:
                    offline_ts[(col, r)] = t_off
                same_time: list[tuple[Any, pd.Timestamp | None]] = []
                if online_ts is not None and len(source):
                    mask = seconds == online_ts
                    if key_text is not None:
                        mask &= key_text == "\x1f".join(str(entity_df.iloc[r][k]) for k in spec.join_keys)
                    for i in np.flatnonzero(mask.to_numpy()):
                        created = source["__created"].iloc[i] if "__created" in source else None
                        same_time.append((source_json[i], None if created is None or pd.isna(created) else created))
                cell = Cell(
                    online_values[col][r],
                    entry.get(col + STATUS_SUFFIX),
                    online_ts,
                    offline_values[col][r],
                    t_off,
                    pd.Timestamp(entry["logged_at"]),
                )
                causes[col][r] = decide_cause(cell, same_time, spec.created_field is not None, push_fed)
    for col, (view, _) in zip(columns, plan.requested, strict=True):
        if view in batch_views:
            continue
        for r in mismatched[col]:
            r = int(r)
            inherited = next((causes[c][r] for c in columns if c in causes and r in causes[c] and c != col), None)
            if inherited is None:
                inherited = (
                    TYPE_PRECISION if close_values(online_values[col][r], offline_values[col][r]) else UNEXPLAINED
                )
            causes[col][r] = inherited
    return causes, offline_ts


def _iso(ts: Any) -> str:
    stamp = pd.Timestamp(ts)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return str(stamp.isoformat()).replace("+00:00", "Z")


# -- gauges ----------------------------------------------------------------------------------------


class ParityGauges(Collector):
    """``feastline_parity_match_rate{feature_service, feature}`` (the latest report's exact-match rate
    per feature, 0-1), ``feastline_parity_rows{feature_service}`` (rows it compared) and
    ``feastline_parity_mismatches{feature_service, cause}``; computed at scrape time from the latest
    report per feature service (none before the first report)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[str, dict[str, Any]] = {}

    def record(self, report: dict[str, Any]) -> None:
        with self._lock:
            self._latest[report["feature_service"]] = report

    def latest(self) -> list[dict[str, Any]]:
        """The latest report per feature service this process computed, sorted by feature service
        (what the monitoring page's parity tables show; empty before the first report)."""
        with self._lock:
            return [self._latest[name] for name in sorted(self._latest)]

    def collect(self) -> Iterator[Metric]:
        rate = GaugeMetricFamily(
            "feastline_parity_match_rate",
            "online/offline exact-match rate of the latest parity report, 0-1",
            labels=["feature_service", "feature"],
        )
        rows = GaugeMetricFamily(
            "feastline_parity_rows", "rows compared by the latest parity report", labels=["feature_service"]
        )
        mismatches = GaugeMetricFamily(
            "feastline_parity_mismatches",
            "mismatching values of the latest parity report by cause",
            labels=["feature_service", "cause"],
        )
        with self._lock:
            latest = dict(self._latest)
        for service, report in sorted(latest.items()):
            rows.add_metric([service], report["rows"])
            for f in report["features"]:
                if f["match_rate"] is not None:
                    rate.add_metric([service, f["name"]], f["match_rate"])
            for cause in CAUSES:
                mismatches.add_metric([service, cause], report["causes"].get(cause, 0))
        yield rate
        yield rows
        yield mismatches
