"""Materialization: load the latest offline row per entity key into the online store, as background jobs.

Our materializer replaces ``feast materialize`` (same result, a fraction of the time). For each online
feature view it reads the view's batch Parquet file (a push-fed view: its push source's batch source)
with one DuckDB query that keeps, per entity key, the latest row with ``start <= event_ts < end`` (in
the order the training-set engine and the online stores share, :mod:`service.training.offline.order`:
ties on event time go to the greatest ``created``, a null one lowest, then to the later row of the
file; join keys in their declared type's domain, as the engine joins them,
:mod:`service.training.offline.keys`), converts those rows to Feast protos and
writes them with :func:`service.online.writes.write_online` (the provider's ``online_write_batch``:
nanosecond timestamps to feastline's ordered stores, plain ``datetime`` to any other store, e.g.
Feast's own ``sqlite``, which keeps whole seconds and the last write). Then it records ``(start, end)`` in the Feast
registry exactly as ``FeatureStore.materialize`` does, so ``feast materialize-incremental`` continues
where we stopped. File paths are resolved against the repo, never the current directory.

Incremental runs start, per view, at the view's last materialized end minus a ``lookback`` (default one
day), so a row that arrives late (event time before the last run's end, created after it) is still
loaded; the online store is ordered-write, so re-loading an older row never replaces a newer one.

A window may not end after the service clock (:func:`check_end`): a row dated in the future, once in
the ordered online store, would shadow every correct row written later. A view is *skipped*, with its
reason in the result, when it is already materialized past ``end`` (incremental) or its offline file
does not exist yet (nothing to materialize). ``rows_offered`` counts the rows handed to the ordered
write; the store keeps a stored row that is newer, so not every offered row replaces one (the store
does not report which).

The jobs that run it (one row per run in ``materialization_jobs``, so ``GET /jobs/{id}`` survives a
restart) are :mod:`service.materialization.jobs`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
from feast import FeatureStore, FeatureView
from feast.feature_view import DUMMY_ENTITY_ID, DUMMY_ENTITY_VAL
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Int64List
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import NULL_TIMESTAMP_INT_VALUE, python_values_to_proto_values
from feast.utils import make_tzaware
from feast.value_type import ValueType

from service.online.writes import write_online
from service.training.offline.keys import source_column_types, source_key_sql
from service.training.offline.order import latest_first
from service.training.offline.views import ViewSpec, batch_spec

log = logging.getLogger("feastline.materialization")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DEFAULT_LOOKBACK = timedelta(days=1)
WRITE_BATCH_ROWS = 10_000
_NS_MIN, _NS_MAX = -(2**63), 2**63 - 1


# -- errors ------------------------------------------------------------------------------------------


class MaterializationError(Exception):
    """Base class: a materialization that cannot run as asked. ``field`` names the request field at fault."""

    field: str | None = None

    def details(self) -> dict[str, Any]:
        return {}


class UnknownFeatureView(MaterializationError):
    field = "feature_views"

    def __init__(self, names: Sequence[str]):
        self.names = list(names)
        super().__init__(f"feature view(s) {self.names} are not in the registry")

    def details(self) -> dict[str, Any]:
        return {"feature_views": self.names}


class MaterializationRequestInvalid(MaterializationError):
    """A naive or inverted time window, a negative lookback, a view that is not online."""

    def __init__(self, field_name: str, problem: str):
        self.field = field_name
        super().__init__(f"{field_name}: {problem}")


class JobNotFound(MaterializationError):
    field = "id"

    def __init__(self, job_id: str):
        self.job_id = job_id
        super().__init__(f"no materialization job {job_id!r}")

    def details(self) -> dict[str, Any]:
        return {"id": self.job_id}


# -- the materializer --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """Load ``view``'s rows with ``start <= event_ts < end`` (aware UTC). Empty when ``start >= end``.

    ``skip``: why nothing is to be loaded (e.g. already materialized past ``end``), or None.
    """

    view: str
    start: datetime
    end: datetime
    skip: str | None = None


@dataclass(frozen=True)
class ViewResult:
    """One view's run: source rows in the window, and entity rows offered to the online store (one per
    entity key; the ordered store keeps a stored newer row, so an offered row may not replace it).

    ``skipped``: why the view was not materialized (nothing read, nothing recorded), or None.
    """

    view: str
    start: datetime
    end: datetime
    rows_in_window: int
    rows_offered: int
    skipped: str | None = None

    @property
    def rows_written(self) -> int:
        """The former name of :attr:`rows_offered` (rows handed to the ordered write, not rows it kept)."""
        return self.rows_offered

    def to_dict(self) -> dict[str, Any]:
        """``rows_written`` (the JSON name kept for clients) is :attr:`rows_offered`: rows handed to the
        ordered online store, which keeps a stored newer row."""
        out: dict[str, Any] = {
            "rows_in_window": self.rows_in_window,
            "rows_written": self.rows_offered,
            "start": iso(self.start),
            "end": iso(self.end),
        }
        if self.skipped is not None:
            out["skipped"] = self.skipped
        return out


class Observer:
    """Follow a run (a progress bar, a job row). Every hook is a no-op here; override what you need."""

    def view_started(self, window: Window, index: int, total: int) -> None:
        """``window`` is about to be read; it is number ``index`` (from 0) of ``total``."""

    def rows_written(self, window: Window, rows: int) -> None:
        """``rows`` more entity rows of ``window`` were offered to the (ordered) online store."""

    def view_written(self, result: ViewResult) -> None:
        """Every row of the view is written online; its interval is about to be recorded in the registry."""

    def view_finished(self, result: ViewResult) -> None:
        """The view is written and its interval recorded in the registry."""


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def aware_utc(value: datetime, field_name: str) -> datetime:
    """``value`` in UTC. Raises MaterializationRequestInvalid for a naive datetime (we never guess a zone)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise MaterializationRequestInvalid(field_name, f"{value.isoformat()} has no timezone; end it with Z or +HH:MM")
    return value.astimezone(UTC)


def check_end(end: datetime, now: datetime, field_name: str = "end") -> datetime:
    """``end`` (aware UTC) if it is not after the service clock ``now``.

    Raises:
        MaterializationRequestInvalid: ``end`` is naive, or later than ``now`` (rows dated after the clock
            would shadow every row written later in the ordered online store).
    """
    end = aware_utc(end, field_name)
    if end > now:
        raise MaterializationRequestInvalid(
            field_name,
            f"{iso(end)} is after the service clock {iso(now)}; a materialization window may not end after it "
            "(the clock is FEASTLINE_NOW when set, else the wall clock)",
        )
    return end


def online_views(store: FeatureStore, names: Sequence[str] | None = None) -> list[FeatureView]:
    """The feature views to materialize: ``names`` in order (duplicates once), or every online view by name.

    Raises:
        UnknownFeatureView: a name is not a feature view of the registry (on-demand views included).
        MaterializationRequestInvalid: a named view is not online, or ``names`` is empty.
    """
    views = {fv.name: fv for fv in store.list_feature_views()}
    if names is None:
        return [views[n] for n in sorted(views) if views[n].online]
    if not names:
        raise MaterializationRequestInvalid("feature_views", "empty list; give null for every online view")
    if unknown := [n for n in dict.fromkeys(names) if n not in views]:
        raise UnknownFeatureView(unknown)
    if offline := [n for n in dict.fromkeys(names) if not views[n].online]:
        raise MaterializationRequestInvalid("feature_views", f"{offline} are not online views")
    return [views[n] for n in dict.fromkeys(names)]


def full_windows(views: Sequence[FeatureView], start: datetime, end: datetime) -> list[Window]:
    """The same ``[start, end)`` for every view. Raises MaterializationRequestInvalid (naive, end <= start)."""
    start, end = aware_utc(start, "start"), aware_utc(end, "end")
    if end <= start:
        raise MaterializationRequestInvalid("end", f"{iso(end)} is not after start {iso(start)}")
    return [Window(fv.name, start, end) for fv in views]


def incremental_windows(
    store: FeatureStore,
    views: Sequence[FeatureView],
    end: datetime,
    default_start: datetime = EPOCH,
    lookback: timedelta = DEFAULT_LOOKBACK,
) -> list[Window]:
    """Per view: from (last materialized end in the registry, or ``default_start``) minus ``lookback``, to ``end``.

    The registry is read fresh (not from a cache), so a run queued behind another starts where it ended.
    A view already materialized up to ``end + lookback`` or later gets a window with ``skip`` saying so.
    """
    end, default_start = aware_utc(end, "end"), aware_utc(default_start, "default_start")
    if lookback < timedelta(0):
        raise MaterializationRequestInvalid("lookback_seconds", "must not be negative")
    registered = {fv.name: fv for fv in store.registry.list_feature_views(store.project, allow_cache=False)}
    windows = []
    for fv in views:
        last = registered.get(fv.name, fv).most_recent_end_time
        since = make_tzaware(last).astimezone(UTC) if last else default_start
        if since - lookback < end:
            windows.append(Window(fv.name, since - lookback, end))
        else:
            reason = f"already materialized up to {iso(since)} >= end {iso(end)}"
            if lookback:
                reason += f" + lookback {lookback}"
            windows.append(Window(fv.name, since - lookback, end, skip=reason))
    return windows


def materialize(store: FeatureStore, windows: Sequence[Window], observer: Observer | None = None) -> list[ViewResult]:
    """Load each window's latest row per entity key into the online store and record it in the registry.

    Args:
        store: the Feast store (any current directory; Parquet paths are resolved against its repo).
        windows: from :func:`full_windows` or :func:`incremental_windows`; views run in this order.
        observer: told of each view's start, rows written and end.

    Returns:
        one :class:`ViewResult` per window, in order. A window with ``start >= end`` writes nothing and
        is not recorded in the registry. A window with ``skip``, or whose view's offline file does not
        exist yet ("no offline data at <path>"), is neither read nor recorded: its result has ``skipped``
        set, and the observer is not told of it.
    """
    observer = observer or Observer()
    views = {fv.name: fv for fv in store.list_feature_views()}
    repo = Path(store.repo_path).resolve()
    results = []
    with duckdb.connect() as con:
        for index, window in enumerate(windows):
            fv = views[window.view]
            skip = window.skip or _missing_offline_data(repo, fv)
            if skip is not None:
                log.info("materialization of %s skipped: %s", fv.name, skip)
                results.append(ViewResult(fv.name, window.start, window.end, 0, 0, skipped=skip))
                continue
            observer.view_started(window, index, len(windows))
            in_window, written = 0, 0
            if window.start < window.end:
                table, in_window = _latest_rows(con, repo, fv, window)
                for offset in range(0, table.num_rows, WRITE_BATCH_ROWS):
                    rows = _to_protos(fv, table.slice(offset, WRITE_BATCH_ROWS))
                    write_online(store, fv, rows)
                    written += len(rows)
                    observer.rows_written(window, len(rows))
            result = ViewResult(fv.name, window.start, window.end, in_window, written)
            if window.start < window.end:
                observer.view_written(result)
                store.registry.refresh(store.project)  # another process may have committed since we read it
                store.registry.apply_materialization(fv, store.project, window.start, window.end)
            results.append(result)
            observer.view_finished(result)
    return results


def _missing_offline_data(repo: Path, fv: FeatureView) -> str | None:
    """ "no offline data at <path>" when the view's batch file does not exist yet (e.g. a push source's
    Parquet never built), else None."""
    spec = batch_spec(repo, fv)
    if spec.parquet_files():
        return None
    return f"no offline data at {spec.path}"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _ns(ts: datetime) -> int:
    """Nanoseconds since the epoch, clamped to int64 (DuckDB's range)."""
    return min(max((ts - EPOCH) // timedelta(microseconds=1) * 1000, _NS_MIN), _NS_MAX)


def _latest_rows(con: duckdb.DuckDBPyConnection, repo: Path, fv: FeatureView, window: Window) -> tuple[pa.Table, int]:
    """Per entity key, the latest source row in the window (join keys and features by view name, and the
    ``__event_ns`` / ``__created_ns`` timestamps); and the number of source rows in the window."""
    with batch_spec(repo, fv).pinned() as spec:  # the file as it is now, even if a push replaces it meanwhile
        return _latest_rows_of(con, spec, fv, window)


def _latest_rows_of(
    con: duckdb.DuckDBPyConnection, spec: ViewSpec, fv: FeatureView, window: Window
) -> tuple[pa.Table, int]:
    mapping = {dst: src for src, dst in (fv.batch_source.field_mapping or {}).items()}
    ts = _quote(mapping.get(spec.timestamp_field, spec.timestamp_field))
    created = _quote(mapping.get(spec.created_field, spec.created_field)) if spec.created_field else None
    # each key in its declared type's domain, as the training-set engine joins it (an integer column of a
    # String key by its canonical decimal spelling; a lossy one refused): training and online key alike
    physical = source_column_types(con, spec.parquet_glob) if spec.join_keys else {}
    keys = [
        source_key_sql(spec.name, k, spec.columns[k], physical.get(spec.columns[k], "no such column"), declared)
        for k, declared in ((k, spec.types.get(k, ValueType.UNKNOWN)) for k in spec.join_keys)
    ]
    selected = [f"{sql} AS {_quote(k)}" for k, sql in zip(spec.join_keys, keys, strict=True)]
    selected += [f"{_quote(spec.columns[c])} AS {_quote(c)}" for c in spec.features]
    order = latest_first(ts, created, "__file", "file_row_number")
    # a view without entities: one row, keyed by Feast's dummy key (its value "" as Feast writes it)
    selected += [f"'{DUMMY_ENTITY_VAL}' AS {_quote(k)}" for k, column in spec.store_keys.items() if column is None]
    partition = f"PARTITION BY {', '.join(keys)} " if keys else ""
    query = f"""
        SELECT {", ".join(selected)},
               epoch_ns({ts}) AS __event_ns,
               {f"epoch_ns({created})" if created else "NULL::BIGINT"} AS __created_ns,
               count(*) OVER () AS __rows_in_window
        FROM read_parquet(?, file_row_number = true, filename = '__file')
        WHERE epoch_ns({ts}) >= ? AND epoch_ns({ts}) < ?
        QUALIFY row_number() OVER ({partition}ORDER BY {order}) = 1
            {"".join(f" AND {k} IS NOT NULL" for k in keys)}
    """
    cursor = con.cursor()  # one cursor per query: DuckDB 2 refuses new work while a result is unfinished
    try:
        table = cursor.sql(query, params=[spec.parquet_glob, _ns(window.start), _ns(window.end)]).to_arrow_table()
    finally:
        cursor.close()
    if table.num_rows:
        return table, table.column("__rows_in_window")[0].as_py()
    return table, _count(con, spec.parquet_glob, ts, window)


def _count(con: duckdb.DuckDBPyConnection, path: str, ts: str, window: Window) -> int:
    """Rows in the window when none has a usable entity key (the main query then returns no row to read it from)."""
    query = f"SELECT count(*) FROM read_parquet(?) WHERE epoch_ns({ts}) >= ? AND epoch_ns({ts}) < ?"
    cursor = con.cursor()
    try:
        row = cursor.execute(query, [path, _ns(window.start), _ns(window.end)]).fetchone()
    finally:
        cursor.close()
    return int(row[0]) if row else 0


_PROTO_FIELD = {
    ValueType.DOUBLE: "double_val",
    ValueType.FLOAT: "float_val",
    ValueType.INT64: "int64_val",
    ValueType.INT32: "int32_val",
    ValueType.STRING: "string_val",
    ValueType.BOOL: "bool_val",
}


def _to_protos(
    fv: FeatureView, table: pa.Table
) -> list[tuple[EntityKeyProto, dict[str, Any], datetime, datetime | None]]:
    """Feast write rows ``(entity_key, {feature: ValueProto}, event_ts, created_ts)``, timestamps aware UTC
    ``pd.Timestamp`` (datetimes that keep the nanoseconds, which the ordered stores compare;
    :func:`~service.online.writes.write_online` hands other stores plain datetimes)."""

    def protos(name: str, value_type: Any) -> list[Any]:
        field = _PROTO_FIELD.get(value_type)
        if value_type == ValueType.UNIX_TIMESTAMP:  # Feast's converter turns a null into a sentinel, not null
            return [
                ValueProto() if v is None else ValueProto(unix_timestamp_val=_epoch_seconds(v))
                for v in table.column(name).to_pylist()
            ]
        if value_type == ValueType.UNIX_TIMESTAMP_LIST:  # Feast's converter writes ns from a list<timestamp[ns]>
            return [
                ValueProto()
                if v is None
                else ValueProto(unix_timestamp_list_val=Int64List(val=[_epoch_seconds(t) for t in v]))
                for v in table.column(name).to_pylist()
            ]
        if field is None:
            return python_values_to_proto_values(table.column(name).to_numpy(zero_copy_only=False), value_type)
        # the common scalar types, built directly (Feast's generic converter is ~10x slower); null/NaN -> empty
        return [
            ValueProto() if v is None or (isinstance(v, float) and math.isnan(v)) else ValueProto(**{field: v})
            for v in table.column(name).to_pylist()
        ]

    # a view without entities is keyed by Feast's dummy key (a copy of the view may have lost that column)
    key_types = {c.name: c.dtype.to_value_type() for c in fv.entity_columns} or {DUMMY_ENTITY_ID: ValueType.STRING}
    key_names = list(key_types)
    key_values = [protos(name, value_type) for name, value_type in key_types.items()]
    features = {f.name: protos(f.name, f.dtype.to_value_type()) for f in fv.features}
    events = pd.to_datetime(table.column("__event_ns").to_numpy(zero_copy_only=False), unit="ns", utc=True)
    created_ns = table.column("__created_ns").to_pylist()
    rows = []
    for i in range(table.num_rows):
        key = EntityKeyProto(join_keys=key_names, entity_values=[values[i] for values in key_values])
        created = pd.Timestamp(created_ns[i], unit="ns", tz=UTC) if created_ns[i] is not None else None
        rows.append((key, {name: values[i] for name, values in features.items()}, events[i], created))
    return rows


def _epoch_seconds(ts: datetime | None) -> int:
    """Whole seconds since the epoch, floored, as Feast's ``unix_timestamp_val`` holds them (exact for
    nanosecond times, which a float ``timestamp()`` would round); Feast's null sentinel for None."""
    if ts is None:
        return NULL_TIMESTAMP_INT_VALUE
    if isinstance(ts, pd.Timestamp):
        return int(ts.value // 1_000_000_000)  # a naive one is UTC, as everywhere in Feast
    aware = ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
    return (aware - EPOCH) // timedelta(seconds=1)


def last_materialization(run_id: str, result: ViewResult, finished_at: datetime) -> dict[str, Any]:
    """The ``last_materialization`` attribute a view's lineage node gets: ``{"job_id", "rows_written",
    "start", "end", "finished_at"}``."""
    attrs = {"job_id": run_id, **result.to_dict(), "finished_at": iso(finished_at)}
    del attrs["rows_in_window"]
    return attrs


def registered_interval(store: FeatureStore, view: str, start: datetime, end: datetime) -> bool:
    """Whether the registry (read fresh) holds the materialization interval ``[start, end)`` of ``view``."""
    try:
        fv = store.registry.get_feature_view(view, store.project, allow_cache=False)
    except Exception:
        return False
    return any(
        make_tzaware(s).astimezone(UTC) == start and make_tzaware(e).astimezone(UTC) == end
        for s, e in fv.materialization_intervals
    )
