"""feastline's point-in-time join, on Spark: the same contract as the DuckDB engine, row for row.

:func:`join_views` has the signature and the answer of :func:`service.training.offline.engine.join_views`
(same columns, dtypes, order and values); ``training_sets.compute`` picks it when
``FEASTLINE_OFFLINE_ENGINE=spark`` (``FEASTLINE_SPARK_MASTER``: ``local[*]`` by default, any master in
production). The contract is the engine module's docstring; the order of rows is
:mod:`service.training.offline.order`.

Why this formulation. Spark has no ASOF join, and the obvious substitute, a per-column
``last(value, ignorenulls=true)`` over a window ordered by time, is wrong: it skips a genuinely null
value of the newest row and returns an older row's value instead, mixing rows. So the DuckDB engine's
formulation carries over, with the ASOF join itself done by the window:

1. Each source row is *available* from ``avail = max(event_ts, created_ts)`` (``event_ts`` alone when
   the created cut-off is off); under the cut-off a row with a null ``created`` is dropped. Its rank is
   the struct ``(event_ts, created_ts or -2^63, file, row in file)``: the contract's tie order (created
   null lowest, then the later file, then the later row), compared field by field by ``max``.
2. The entity rows are unioned with the source rows, as rows at time ``entity_ts`` without a rank,
   sorted after the source rows of the same time (``avail <= entity_ts`` is inclusive). A window per
   join key ordered by time keeps the running best: ``max_by(values, rank)``, the values (event and
   created times, features) of the row whose rank is the running ``max(struct(...))``. At an entity
   row that is the best row among all those available then: the row the DuckDB engine's running best
   rank and ASOF join find. (``max_by`` rather than ``max`` of one wide struct: the values' types need
   not be orderable, and ranks are unique, ending in file and row.) A winner's null value stays null.
3. The TTL is tested on the winner: it has the greatest ``event_ts`` of all candidates, so if it is
   too old, every candidate is.
4. One Spark job per view gives every entity row (by an explicit row id) that view's columns; the
   driver puts each answer in input order by the row id and sets them side by side, so duplicate
   entity rows are kept and no join of the entity table is needed.

Times are carried as int64 nanoseconds since the epoch (Spark timestamps hold microseconds): Parquet
nanosecond timestamps are read as longs (``spark.sql.legacy.parquet.nanosAsLong``), coarser ones as
``unix_micros * 1000``. The source row order is explicit: ``_metadata.row_index`` (the row number in
its Parquet file, DuckDB's ``file_row_number``) and the file's path, percent-decoded so files sort as
DuckDB sorts its ``filename`` (the order of the file names, byte-wise). The engine reads exactly the
files ``ViewSpec.parquet_files()`` lists, with ``spark.read.parquet``; they must be readable at the
same paths by the executors (local mode, or a shared file system mounted alike). Unlike the DuckDB
engine, a single-file source is not pinned through a descriptor: a push that replaces the file while a
Spark job reads it may fail that job (run it again; feastline replaces files by rename, never in place).

Key columns are put into their declared type's domain as the DuckDB engine does
(:mod:`service.training.offline.keys`, validated on the same column types); a null key matches nothing.
The answer is converted to the DuckDB engine's Arrow types (read from the source with DuckDB, footers
only, remembered per file state), then to pandas the same way, so the two engines' frames are equal with
``pandas.testing.assert_frame_equal``, dtypes included. The session is created once per process, lazily
and under a lock (:func:`session`), and reused by every join; jobs from several threads share it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pandas as pd
import pyarrow as pa
from feast.value_type import ValueType

from service.training.offline import engine
from service.training.offline.errors import SourceDataMissing
from service.training.offline.keys import entity_key_column, is_integer_type, key_domains, source_key_sql
from service.training.offline.order import NO_CREATED_NS
from service.training.offline.prepared import per_file_state
from service.training.offline.views import ViewSpec

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

ROW_ID = engine.ROW_ID
TS = engine.TS
TS_NS = engine.TS_NS

# Set on the session whatever else it was built with: the engine's arithmetic depends on them.
REQUIRED_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.legacy.parquet.nanosAsLong": "true",  # Parquet TIMESTAMP(NANOS) -> long ns, not an error
    "spark.sql.caseSensitive": "true",  # "X" and "x" are two columns, as in DuckDB's quoted names
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}
# Defaults for a session this module builds (a caller's ``conf`` overrides them).
DEFAULT_CONF: dict[str, str] = {"spark.ui.showConsoleProgress": "false"}

_LOCK = threading.Lock()
_SESSION: SparkSession | None = None


def session(master: str | None = None, conf: Mapping[str, str] | None = None) -> SparkSession:
    """The process's Spark session: built on the first call (``master``, e.g. ``local[*]`` or
    ``spark://host:7077``; None: ``local[*]``, or whatever ``SparkSession.builder`` finds active), then
    the same one for every call (later ``master``/``conf`` are ignored). Thread-safe.

    Raises:
        ImportError: pyspark is not installed (``pip install 'feastline[spark]'``).
    """
    global _SESSION
    with _LOCK:
        if _SESSION is None:
            from pyspark.sql import SparkSession

            builder = SparkSession.builder.appName("feastline")
            if master is not None:
                builder = builder.master(master)
            elif SparkSession.getActiveSession() is None:
                builder = builder.master("local[*]")
            for key, value in {**DEFAULT_CONF, **(conf or {})}.items():
                builder = builder.config(key, value)
            spark = builder.getOrCreate()
            for key, value in REQUIRED_CONF.items():
                spark.conf.set(key, value)
            _SESSION = spark
        return _SESSION


def stop() -> None:
    """Stop the process's session, if one was built (the next :func:`session` builds a new one)."""
    global _SESSION
    with _LOCK:
        if _SESSION is not None:
            _SESSION.stop()
            _SESSION = None


def _q(name: str) -> str:
    """A Spark SQL identifier: ``name`` in backquotes."""
    return "`" + name.replace("`", "``") + "`"


def _ns(column: str, spark_type: Any) -> str:
    """SQL of a source timestamp column as int64 ns since the epoch: a long already is (Parquet
    nanoseconds, read as long); a Spark timestamp (microseconds) is ``unix_micros * 1000``."""
    from pyspark.sql.types import LongType, TimestampNTZType

    if isinstance(spark_type, LongType):
        return _q(column)
    if isinstance(spark_type, TimestampNTZType):  # naive: UTC, as everywhere in Feast
        return f"unix_micros(CAST({_q(column)} AS TIMESTAMP)) * 1000"
    return f"unix_micros({_q(column)}) * 1000"


def _duckdb_types(v: ViewSpec) -> dict[str, pa.DataType]:
    """The Arrow type of each feature as the DuckDB engine answers it (``v__f`` -> type), from the
    source's footers, once per state of its files."""

    def read() -> dict[str, pa.DataType]:
        def dq(name: str) -> str:  # a DuckDB identifier
            return '"' + name.replace('"', '""') + '"'

        cols = ", ".join(f"{dq(v.columns[f])} AS {dq(f'{v.name}__{f}')}" for f in v.features)
        path = v.parquet_glob.replace("'", "''")
        with duckdb.connect() as con:
            con.execute("SET TimeZone = 'UTC'")
            schema = con.sql(f"SELECT {cols} FROM read_parquet('{path}') LIMIT 0").to_arrow_table().schema
        return {field.name: field.type for field in schema}

    if not v.features:
        return {}
    return per_file_state(("spark_arrow_types", v.parquet_glob, v.name, tuple(v.features)), v.parquet_files(), read)


def _key_sql(v: ViewSpec, domains: dict[str, ValueType], physical: dict[str, str]) -> dict[str, str]:
    """Each join key's source expression in its domain (:mod:`.keys`: an integer column of a ``String``
    key by its canonical decimal spelling, which ``CAST(... AS STRING)`` gives in Spark as in DuckDB).

    Raises:
        SourceKeyTypeMismatch: a key column's type does not hold the declared key type.
    """
    out = {}
    for k in v.join_keys:
        column = v.columns[k]
        kind = physical.get(column, "no such column")
        source_key_sql(v.name, k, column, kind, domains[k])  # validates (raises) exactly as DuckDB's engine
        as_text = domains[k] == ValueType.STRING and is_integer_type(kind)
        out[k] = f"CAST({_q(column)} AS STRING)" if as_text else _q(column)
    return out


MIN_NS = f"({NO_CREATED_NS + 1}L - 1L)"  # -2^63: "created unknown" ranks lowest (order.py)
MAX_NS = f"{2**63 - 1}L"  # a null event time ranks highest, as DuckDB orders NULLs last


def _literal_path(path: Path) -> str:
    """``path`` as Spark's reader takes it literally: Hadoop globs every path it is given, so the glob
    characters of a file name (``{}[]*?`` and the escape ``\\``) are escaped."""
    return re.sub(r"([\\{}\[\]*?])", r"\\\1", str(path))


def _source(spark: SparkSession, v: ViewSpec, created_filter: bool, keys: dict[str, str]) -> DataFrame:
    """The view's source rows: join keys (in their domain), features as ``v__f``, ``__ts``/``__created``
    (ns), ``__file`` (the file's path, decoded) and ``__frow`` (row in the file), then ``__avail``; rows
    never available (null avail; a null created under the cut-off; a null key) left out."""
    raw = spark.read.parquet(*(_literal_path(p) for p in v.parquet_files()))
    types = {f.name: f.dataType for f in raw.schema.fields}
    ts = _ns(v.timestamp_field, types[v.timestamp_field])
    created = _ns(v.created_field, types[v.created_field]) if v.created_field else ts
    src = raw.selectExpr(
        *(f"{sql} AS {_q(k)}" for k, sql in keys.items()),
        *(f"{_q(v.columns[f])} AS {_q(f'{v.name}__{f}')}" for f in v.features),
        f"{ts} AS __ts",
        f"{created} AS __created",
        "url_decode(replace(_metadata.file_path, '+', '%2B')) AS __file",  # url_decode reads '+' as a space
        "_metadata.row_index AS __frow",
    )
    avail = "greatest(__ts, __created)" if created_filter else "__ts"  # greatest skips nulls, as DuckDB's
    conditions = [f"{_q(k)} IS NOT NULL" for k in v.join_keys]  # a null key matches nothing
    if created_filter and v.created_field:
        conditions.append("__created IS NOT NULL")
    src = src.selectExpr("*", f"{avail} AS __avail")
    return src.where(" AND ".join([*conditions, "__avail IS NOT NULL"]))


def _view(v: ViewSpec, src: DataFrame, entity: DataFrame) -> DataFrame:
    """Per entity row (``__row_id``): the view's chosen row's features (``v__f``) and
    ``v____feature_ts``/``v____created_ts`` (ns), null when there is none or it is out of TTL.

    The source rows (at ``__avail``) and the entity rows (at ``__ts_ns``, after the source rows of the
    same time) form one series per join key; over it, the running ``max_by(values, rank)`` is the
    values of the row whose ``rank`` struct is the running ``max(struct(...))`` (ranks are unique: they
    end in file and row), so the values' types need not be orderable (maps, nested types). An entity
    row with a null key falls in a series without source rows (those are left out): null.
    """
    keys = [_q(k) for k in v.join_keys]
    rank = (
        f"named_struct('ts', coalesce(__ts, {MAX_NS}), 'created', coalesce(__created, {MIN_NS}), "
        "'file', __file, 'frow', __frow)"
    )
    feats = [_q(f"{v.name}__{f}") for f in v.features]
    values = ", ".join(["'ts', __ts", "'created', __created", *(f"'f{i}', {f}" for i, f in enumerate(feats))])
    rows = src.selectExpr(
        *keys, "__avail AS __time", "0 AS __kind", f"{rank} AS __rank", f"named_struct({values}) AS __vals"
    )
    asked = entity.selectExpr(*keys, f"{TS_NS} AS __time", "1 AS __kind", ROW_ID)
    partition = f"PARTITION BY {', '.join(keys)} " if keys else ""  # no keys: one global series
    window = (
        f"max_by(__vals, __rank) OVER ({partition}ORDER BY __time, __kind "  # equal times: source rows first
        "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS __best"
    )
    best = rows.unionByName(asked, allowMissingColumns=True).selectExpr(ROW_ID, "__kind", "__time", window)
    ttl_ns = v.ttl // pd.Timedelta(1, "ns") if v.ttl else None
    in_ttl = f"coalesce(__best.ts >= __time - {ttl_ns}L, FALSE)" if ttl_ns else "TRUE"
    return best.where("__kind = 1").selectExpr(
        ROW_ID,
        *(f"CASE WHEN {in_ttl} THEN __best.f{i} END AS {f}" for i, f in enumerate(feats)),
        f"CASE WHEN {in_ttl} THEN __best.ts END AS {_q(f'{v.name}____feature_ts')}",
        f"CASE WHEN {in_ttl} THEN __best.created END AS {_q(f'{v.name}____created_ts')}",
    )


def join_views(
    entity_df: pd.DataFrame, views: tuple[ViewSpec, ...], created_filter: bool = True, master: str | None = None
) -> pd.DataFrame:
    """Point-in-time join of ``entity_df`` with each view, on Spark: the answer of
    :func:`service.training.offline.engine.join_views` (see it for the shapes), computed by
    :func:`session` (built on ``master`` if there is none yet).

    Args:
        entity_df: join-key columns of every view plus ``event_timestamp`` (datetime64[ns, UTC]).
        views: batch views to join.
        created_filter: refuse rows created after the entity timestamp (the default).

    Returns:
        ``len(entity_df)`` rows in input order, indexed like ``entity_df``: per view ``v`` and feature
        ``f`` a column ``v__f``, plus ``v____feature_ts`` and ``v____created_ts`` (UTC, null when no row
        matched), in the DuckDB engine's dtypes.

    Raises:
        SourceDataMissing: a view's Parquet file does not exist (a directory or glob: holds no Parquet file).
        SourceKeyTypeMismatch: a view's source key column is of a type its declared type does not hold.
        ImportError: pyspark is not installed.
    """
    if not views:  # nothing to join: the DuckDB engine's (trivial) answer
        return engine.join_views(entity_df, views, created_filter)
    for v in views:
        if not v.parquet_files():
            raise SourceDataMissing(v.name, str(v.path))
    domains = key_domains(views)
    key_sql = [_key_sql(v, domains, engine.source_types(v)) for v in views]
    keys = sorted({k for v in views for k in v.join_keys})
    entity = pa.table(
        {
            ROW_ID: pa.array(range(len(entity_df)), pa.int64()),
            **{k: pa.array(entity_key_column(entity_df[k], domains[k]), from_pandas=True) for k in keys},
            TS_NS: pa.array(entity_df[TS].astype("datetime64[ns, UTC]").astype("int64").to_numpy()),
        }
    )
    spark = session(master)
    frame = spark.createDataFrame(entity)
    columns: dict[str, pa.ChunkedArray] = {}
    for v, ks in zip(views, key_sql, strict=True):  # one job per view, no join: rows meet by row id here
        part = _view(v, _source(spark, v, created_filter, ks), frame).toArrow()
        assert part.num_rows == len(entity_df), "point-in-time join changed the row count"
        part = part.sort_by(ROW_ID)
        columns |= {name: part.column(name) for name in part.column_names if name != ROW_ID}
    table = pa.table(columns)
    assert table.num_rows == len(entity_df), "point-in-time join changed the row count"
    table = _as_duckdb_types(table, views)
    result = engine.arrow_to_pandas(table)
    result.index = entity_df.index
    return result


def _as_duckdb_types(table: pa.Table, views: tuple[ViewSpec, ...]) -> pa.Table:
    """Spark's answer in the DuckDB engine's Arrow types: hidden times as ``timestamp[ns, UTC]``, each
    feature as DuckDB reads it from the source (a nanosecond timestamp Spark read as a long made a
    timestamp again; unsigned and other widened integers narrowed back)."""
    targets: dict[str, pa.DataType] = {}
    for v in views:
        targets |= _duckdb_types(v)
        targets[f"{v.name}____feature_ts"] = pa.timestamp("ns", tz="UTC")
        targets[f"{v.name}____created_ts"] = pa.timestamp("ns", tz="UTC")
    for i, name in enumerate(table.column_names):
        target, col = targets.get(name), table.column(i)
        if target is None or col.type == target:
            continue
        if pa.types.is_integer(col.type) and pa.types.is_timestamp(target):  # ns as long
            col = col.cast(pa.timestamp("ns", tz=target.tz))
        table = table.set_column(i, name, col.cast(target))
    return table
