"""feastline's point-in-time join, on DuckDB.

The contract, for each entity row and each feature view: the value comes from the feature row with
the greatest event timestamp such that
- ``feature_ts <= entity_ts`` and, when the view has a TTL, ``feature_ts >= entity_ts - ttl``;
- ``created_ts <= entity_ts`` when the source has a created-timestamp column (a row written after
  the moment being modelled never reaches training), unless the caller turns this off explicitly;
- ties on event time go to the greatest ``created_ts`` (a null one ranks below any known one), then to
  the row that comes later in the source (in a directory or glob of files, the later file name first,
  then the greater file row number): the order of :mod:`service.training.offline.order`, shared with
  the materializer and the online stores;
- under the created cut-off, a row whose ``created_ts`` is null (knowledge time unknown) is never
  taken, as under Feast's ``filter_by_created_timestamp``; the audit counts such rows;
- no such row: null.
One output row per input row, in input order; duplicate entity rows are kept; other entity columns
pass through unchanged; on-demand views are computed after the join.

How: a row is *available* from ``avail = max(feature_ts, created_ts)``. Within a key, rank rows by
``(feature_ts, created_ts, file_row)``; the best row among those available at ``t`` is the running
maximum of that rank over rows ordered by ``avail``. One ``ASOF JOIN`` on ``avail <= t`` then finds
it, and the TTL test on the winner decides (it has the greatest ``feature_ts`` of all candidates, so
if it is too old, every candidate is). O(n log n), exact, no range join.
"""

from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
from feast.value_type import ValueType

from service.training.offline import lookup
from service.training.offline.audit import LeakageAudit, LeakageDetected, audit_join
from service.training.offline.errors import FeatureNameCollision, SourceDataMissing
from service.training.offline.keys import entity_key_column, key_domains, source_column_types, source_key_sql
from service.training.offline.order import rank_order
from service.training.offline.prepared import PREPARED, per_file_state
from service.training.offline.views import OnDemandSpec, RetrievalPlan, ViewSpec

ROW_ID = "__row_id"
TS = "event_timestamp"
TS_NS = "__ts_ns"  # all time arithmetic is on int64 nanoseconds since the epoch (UTC): no rounding


@dataclass(frozen=True)
class JoinOptions:
    full_feature_names: bool = False
    created_filter: bool = True  # refuse rows created after the entity timestamp
    # features in their declared type's dtype (``Float32`` as float32 even from a float64 source: the HTTP
    # route's contract); False: as the source holds them (Feast's SDK convention: a Float32 feature of a
    # float64 source is answered as float64, equal to the source's value)
    declared_dtypes: bool = True
    # which engine joins: "duckdb" (this module) or "spark" (service/training/offline/spark_engine.py, the
    # same answer; its session built on ``spark_master`` the first time)
    engine: Literal["duckdb", "spark"] = "duckdb"
    spark_master: str | None = None


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _ranked_sql(v: ViewSpec, created_filter: bool, key_sql: dict[str, str]) -> str:
    """The view's source rows (join keys, features, ``__ts``/``__created`` in ns) with ``__avail`` and
    their ``__rank`` within their key (see the module docstring); ``key_sql`` is each join key's source
    expression in the key's domain (:mod:`.keys`)."""
    partition = f"PARTITION BY {', '.join(_q(k) for k in v.join_keys)}" if v.join_keys else ""  # none: global
    src_cols = ", ".join(
        [*(f"{key_sql[k]} AS {_q(k)}" for k in v.join_keys), *(f"{_q(v.columns[c])} AS {_q(c)}" for c in v.features)]
    )
    created = _q(v.created_field) if v.created_field else _q(v.timestamp_field)
    avail = "greatest(__ts, __created)" if created_filter else "__ts"
    path = v.parquet_glob.replace("'", "''")
    order = rank_order("__ts", "__created", "__file", "__frow")
    known = f"WHERE {created} IS NOT NULL" if created_filter and v.created_field else ""
    return f"""
    WITH src AS (
        SELECT {src_cols}, epoch_ns({_q(v.timestamp_field)}) AS __ts,
               epoch_ns({created}) AS __created, __file, file_row_number AS __frow
        FROM read_parquet('{path}', file_row_number = true, filename = '__file') {known}
    )
    SELECT *, {avail} AS __avail, row_number() OVER ({partition} ORDER BY {order}) AS __rank
    FROM src"""


def _frontier_sql(v: ViewSpec, ranked: str) -> str:
    """Per key and ``__avail``, the best rank among the rows available then (a running maximum)."""
    keys = [_q(k) for k in v.join_keys]
    keys_, partition = ("".join(f"{k}, " for k in keys), f"PARTITION BY {', '.join(keys)}") if keys else ("", "")
    return f"""
    SELECT DISTINCT {keys_}__avail,
           max(__rank) OVER ({partition} ORDER BY __avail
                             RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS __best
    FROM {ranked}"""


def _pick_sql(v: ViewSpec, ranked: str, frontier: str) -> str:
    """Per distinct (join keys, ``__ts_ns``) of ``entity``, the view's chosen row and whether it is in TTL."""
    keys = [_q(k) for k in v.join_keys]
    keys_ = "".join(f"{k}, " for k in keys)
    feats = ", ".join(f"r.{_q(f)} AS {_q(f'{v.name}__{f}')}" for f in v.features)
    on_keys = "".join(f"e.{k} = fr.{k} AND " for k in keys)
    on_rank = "".join(f"r.{k} = fr.{k} AND " for k in keys)
    ttl_ns = v.ttl // pd.Timedelta(1, "ns") if v.ttl else None
    ttl = f"CASE WHEN r.__ts >= e.{TS_NS} - {ttl_ns} THEN 1 ELSE 0 END" if ttl_ns else "1"
    return f"""
    SELECT e.*, r.__ts AS __feature_ts, r.__created AS __created_ts, {ttl} AS __in_ttl, {feats}
    FROM (SELECT DISTINCT {keys_}{TS_NS} FROM entity) e
    ASOF LEFT JOIN {frontier} fr ON {on_keys}e.{TS_NS} >= fr.__avail
    LEFT JOIN {ranked} r ON {on_rank}r.__rank = fr.__best"""


def _view_sql(
    v: ViewSpec, created_filter: bool, key_sql: dict[str, str], prepared: tuple[str, str] | None = None
) -> str:
    """SQL giving, per distinct (join keys, event_timestamp) of ``entity``, the view's chosen row: over
    the ``prepared`` (ranked, frontier) tables when given, else computed from the source in the query."""
    if prepared is not None:
        return _pick_sql(v, *prepared)
    ranked = _ranked_sql(v, created_filter, key_sql)
    return f"WITH ranked AS ({ranked}), frontier AS ({_frontier_sql(v, 'ranked')}) {_pick_sql(v, 'ranked', 'frontier')}"


def arrow_to_pandas(table: pa.Table) -> pd.DataFrame:
    """``table`` as pandas, every integer column (up to 32 bits unsigned) as nullable ``Int64``."""
    ints = {pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32()}
    return table.to_pandas(types_mapper=lambda t: pd.Int64Dtype() if t in ints else None)


def join_views(entity_df: pd.DataFrame, views: tuple[ViewSpec, ...], created_filter: bool = True) -> pd.DataFrame:
    """Point-in-time join of ``entity_df`` with each view (see the module docstring for the rules).

    Args:
        entity_df: join-key columns of every view plus ``event_timestamp`` (datetime64[ns, UTC]).
        views: batch views to join.

    Returns:
        ``len(entity_df)`` rows in input order, with, per view ``v`` and feature ``f``, a column
        ``v__f``, plus ``v____feature_ts`` and ``v____created_ts`` (UTC, null when no row matched).

    Join keys are compared in the domain of their declared type (:mod:`service.training.offline.keys`):
    an integer entity or source column of a ``String`` key by its canonical decimal spelling.

    Raises:
        SourceDataMissing: a view's Parquet file does not exist (a directory or glob: holds no Parquet file).
        SourceKeyTypeMismatch: a view's source key column is of a type its declared type does not hold.
    """
    for v in views:
        if not v.parquet_files():
            raise SourceDataMissing(v.name, str(v.path))
    keys = sorted({k for v in views for k in v.join_keys})
    domains = key_domains(views)
    entity = pd.DataFrame({k: entity_key_column(entity_df[k], domains[k]) for k in keys}, index=entity_df.index)
    entity[TS_NS] = entity_df[TS].astype("datetime64[ns, UTC]").astype("int64")
    entity.insert(0, ROW_ID, range(len(entity)))
    key_sql = [_key_sql(v, domains) for v in views]
    with ExitStack() as stack:
        # each source file read as one version (a push may rename a new file over it meanwhile)
        pinned = [stack.enter_context(v.pinned()) for v in views]
        prepared = [
            stack.enter_context(
                PREPARED.tables(
                    _ranked_sql(v, created_filter, ks),
                    partial(_frontier_sql, v),
                    v.parquet_files(),
                    read_sql=_ranked_sql(p, created_filter, ks),
                    read_files=p.parquet_files(),
                )
            )
            for v, p, ks in zip(views, pinned, key_sql, strict=True)
        ]
        small = [
            lk
            if tables is not None and lookup.usable(lk := PREPARED.lookup(tables, v.join_keys), entity, v.join_keys)
            else None
            for v, tables in zip(views, prepared, strict=True)
        ]
        rest = [i for i, lk in enumerate(small) if lk is None]
        if views and not rest:  # every view looked up: no query (registering the frame alone costs ms)
            table = pa.table({ROW_ID: pa.array(np.arange(len(entity), dtype=np.int64))})
        else:
            table = _join(
                entity,
                tuple(pinned[i] for i in rest),
                created_filter,
                [prepared[i] for i in rest],
                [key_sql[i] for i in rest],
            )
        table = _with_lookups(table, entity, views, small)
    # int64 ns -> timestamp in Arrow (pandas' to_datetime on Int64 with NA loses the NAs on large inputs)
    for v in views:
        for hidden in (f"{v.name}____feature_ts", f"{v.name}____created_ts"):
            i = table.schema.get_field_index(hidden)
            table = table.set_column(i, hidden, table.column(i).cast(pa.timestamp("ns", tz="UTC")))
    result = arrow_to_pandas(table.drop_columns([ROW_ID]))  # rows already in input order (ORDER BY ROW_ID)
    assert len(result) == len(entity_df), "point-in-time join changed the row count"
    result.index = entity_df.index  # in place: set_index and drop would each copy every column
    return result


def _with_lookups(table: pa.Table, entity: pd.DataFrame, views: tuple[ViewSpec, ...], small: list[Any]) -> pa.Table:
    """``table`` (``_join``'s answer for the views whose ``small[i]`` is None) with the columns of the
    other views picked by ``lookup.pick``, in ``_join``'s column order for all ``views``."""
    if all(lk is None for lk in small):
        return table
    columns = {name: table.column(name) for name in table.column_names if name != "__none"}
    for v, lk in zip(views, small, strict=True):
        if lk is None:
            continue
        ttl_ns = v.ttl // pd.Timedelta(1, "ns") if v.ttl else None
        picked = lookup.pick(lk, entity, v.join_keys, ttl_ns)
        columns |= {f"{v.name}__{f}": picked[f] for f in v.features}
        columns[f"{v.name}____feature_ts"] = picked["__feature_ts"]
        columns[f"{v.name}____created_ts"] = picked["__created_ts"]
    order = [ROW_ID] + [
        name
        for v in views
        for name in (*(f"{v.name}__{f}" for f in v.features), f"{v.name}____feature_ts", f"{v.name}____created_ts")
    ]
    return pa.table({name: columns[name] for name in order})


def source_types(v: ViewSpec) -> dict[str, str]:
    """The DuckDB type of each column of ``v``'s source (as ``DESCRIBE`` spells it), read once per state
    of its files."""

    def describe() -> dict[str, str]:
        with duckdb.connect() as con:
            return source_column_types(con, v.parquet_glob)

    return per_file_state(("column_types", v.parquet_glob), v.parquet_files(), describe)


def _key_sql(v: ViewSpec, domains: dict[str, ValueType]) -> dict[str, str]:
    """Each join key's source expression in its domain (:func:`.keys.source_key_sql`); the source's
    column types are read once per state of its files.

    Raises:
        SourceKeyTypeMismatch: a key column's type does not hold the declared key type.
    """
    if not v.join_keys:
        return {}
    physical = source_types(v)
    return {
        k: source_key_sql(v.name, k, v.columns[k], physical.get(v.columns[k], "no such column"), domains[k])
        for k in v.join_keys
    }


def _join(
    entity: pd.DataFrame,
    views: tuple[ViewSpec, ...],
    created_filter: bool,
    prepared: list[tuple[str, str] | None],
    key_sql: list[dict[str, str]],
) -> pa.Table:
    """Run the join of ``entity`` (``__row_id``, keys, ``__ts_ns``) with each view on a connection to the
    prepared sources' database; ``prepared[i]``: view i's (ranked, frontier) tables or None; ``key_sql[i]``:
    its join keys' source expressions."""
    con = PREPARED.cursor()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("entity", entity)
        selects, joins = [], []
        for i, (v, tables) in enumerate(zip(views, prepared, strict=True)):
            alias = f"v{i}"
            feats = [f"{v.name}__{f}" for f in v.features]
            hidden = {"__feature_ts": f"{v.name}____feature_ts", "__created_ts": f"{v.name}____created_ts"}
            cols = [
                *(f"CASE WHEN {alias}.__in_ttl = 1 THEN {alias}.{_q(c)} END AS {_q(c)}" for c in feats),
                *(f"CASE WHEN {alias}.__in_ttl = 1 THEN {alias}.{src} END AS {_q(dst)}" for src, dst in hidden.items()),
            ]
            selects.extend(cols)
            on = " AND ".join(f"{alias}.{_q(k)} IS NOT DISTINCT FROM entity.{_q(k)}" for k in (*v.join_keys, TS_NS))
            joins.append(f"LEFT JOIN ({_view_sql(v, created_filter, key_sql[i], tables)}) {alias} ON {on}")
        sql = (
            f"SELECT entity.{ROW_ID}, {', '.join(selects) or 'NULL AS __none'} "
            f"FROM entity {' '.join(joins)} ORDER BY entity.{ROW_ID}"
        )
        return con.sql(sql).to_arrow_table()
    finally:
        con.close()


def apply_on_demand(joined: pd.DataFrame, entity_df: pd.DataFrame, spec: OnDemandSpec) -> pd.DataFrame:
    """Compute an on-demand view from joined source features (``view__feature`` columns) and the
    request fields in ``entity_df``; returns ``odfv__feature`` columns aligned with ``joined``."""
    inputs = pd.DataFrame(index=joined.index)
    for view, feats in spec.source_features.items():
        for f in feats:
            inputs[f"{view}__{f}"] = joined[f"{view}__{f}"]
    for field in spec.request_fields:
        inputs[field] = entity_df[field]
    out = spec.definition.transform_arrow(pa.Table.from_pandas(inputs, preserve_index=False), False)
    frame = arrow_to_pandas(out)
    return pd.DataFrame({f"{spec.name}__{f}": frame[f].to_numpy() for f in spec.features}, index=joined.index)


def _declared(col: pd.Series, vtype: ValueType) -> pd.Series:
    """A feature column in its declared type's dtype where the source held a wider one: ``Float32``
    as float32 (the source Parquet may hold float64), ``Array(Float32)`` as float32 arrays (Parquet
    and Arrow ``list<float>``), ``Int32`` as Int32; others as joined."""
    if vtype == ValueType.FLOAT and col.dtype != "float32":
        return col.astype("float32")
    if vtype == ValueType.FLOAT_LIST and col.dtype == object:
        lists = (list, tuple, np.ndarray)
        return col.map(lambda v: np.asarray(v, dtype=np.float32) if isinstance(v, lists) else v)
    if vtype == ValueType.INT32 and pd.api.types.is_integer_dtype(col.dtype) and col.dtype != "Int32":
        return col.astype("Int32")
    return col


@dataclass(frozen=True)
class TrainingFrame:
    """A joined training frame and the leakage audit recomputed on it."""

    frame: pd.DataFrame
    audit: LeakageAudit


def get_training_frame(entity_df: pd.DataFrame, plan: RetrievalPlan, options: JoinOptions) -> TrainingFrame:
    """The training frame: every ``entity_df`` column (unchanged, in order) then the requested features,
    with its leakage audit.

    Feature columns are named ``feature`` or, with ``full_feature_names``, ``view__feature``, each in
    its declared type's dtype (``Float32`` features float32 even when the source holds float64,
    ``Array(Float32)`` features float32 arrays), or with ``declared_dtypes=False`` in the source's dtype
    (integers as nullable Int64).

    ``options.engine`` picks the join: DuckDB (:func:`join_views`) or Spark
    (:func:`service.training.offline.spark_engine.join_views`); the audit, on-demand views and dtypes
    that follow are the same code for both.

    Raises:
        FeatureNameCollision: two requested features share a name and full names were not asked for.
        LeakageDetected: the audit found a row violating the contract (no data is returned).
        SourceDataMissing: see ``join_views``.
    """
    names = [f"{v}__{f}" if options.full_feature_names else f for v, f in plan.requested]
    if len(set(plan.requested)) < len(plan.requested):
        twice = sorted(f"{v}:{f}" for (v, f), n in Counter(plan.requested).items() if n > 1)
        raise FeatureNameCollision(twice, "are requested more than once", "list each feature once")
    if clashes := sorted(n for n, k in Counter(names).items() if k > 1):
        raise FeatureNameCollision(clashes)
    if clashes := sorted(set(names) & set(entity_df.columns)):
        hint = (
            "rename the entity column(s)"
            if options.full_feature_names
            else "rename the entity column(s) or ask for full_feature_names=true"
        )
        raise FeatureNameCollision(clashes, "are also columns of the entity rows", hint)
    if options.engine == "spark":
        from service.training.offline import spark_engine  # pyspark is optional: imported when chosen

        joined = spark_engine.join_views(entity_df, plan.views, options.created_filter, options.spark_master)
    else:
        joined = join_views(entity_df, plan.views, options.created_filter)
    keys = entity_df[sorted({k for v in plan.views for k in v.join_keys})]
    audit = audit_join(entity_df[TS], joined, plan.views, options.created_filter, keys)
    if not audit.passed:
        raise LeakageDetected(audit)
    for spec in plan.on_demand:
        joined = pd.concat([joined, apply_on_demand(joined, entity_df, spec)], axis=1)
    features = pd.DataFrame(
        {
            name: _declared(joined[f"{v}__{f}"], plan.feature_type(v, f))
            if options.declared_dtypes
            else joined[f"{v}__{f}"]
            for name, (v, f) in zip(names, plan.requested, strict=True)
        },
        index=entity_df.index,
    )
    return TrainingFrame(pd.concat([entity_df, features], axis=1), audit)
