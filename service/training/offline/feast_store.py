"""feastline's point-in-time engine as a Feast offline store.

Select it in ``feature_store.yaml``::

    offline_store:
      type: service.training.offline.feast_store.FeastlineOfflineStore

Then ``FeatureStore.get_historical_features`` answers with the same engine (and the same contract)
as ``POST /training-sets``: one row per entity row in input order, no row created after the entity
timestamp, the leakage audit run on every answer. Materialization, push-to-offline and everything
else are Feast's DuckDB offline store, unchanged.

Differences from Feast's own stores, on purpose:
- the created-timestamp cut-off is on by default (Feast's ``filter_by_created_timestamp`` flag is False
  by default there); ``allow_created_after_entity: true`` in the store config lifts it, and Feast's
  per-call ``filter_by_created_timestamp=True`` applies it whatever the config says;
- a timezone-naive entity timestamp is refused (``EntityRowsInvalid``), not read as UTC (Feast's
  ``FeatureStore`` itself localizes naive datetime columns to UTC before calling the store, unless
  ``coerce_tz_aware: false``).

Following Feast's SDK conventions (Feast's universal offline-store tests check them), unlike the HTTP route:
- features are answered in the source's dtype: a ``Float32`` feature of a float64 source is float64,
  equal to the source's value (``to_df``/``to_arrow``); lists as the source holds them;
- an integer entity column for a ``String`` join key is taken and compared by its canonical decimal
  spelling (``1001`` matches ``"1001"``, never ``"01001"``; :mod:`service.training.offline.keys`);
- on-demand views are computed by Feast's ``RetrievalJob.to_arrow`` after the join, each listed once,
  answering the outputs that were requested.
"""

import os
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from feast import FeatureView, FileSource, OnDemandFeatureView
from feast.data_source import PushSource
from feast.errors import SavedDatasetLocationAlreadyExists
from feast.infra.offline_stores.duckdb import DuckDBOfflineStore
from feast.infra.offline_stores.file_source import SavedDatasetFileStorage
from feast.infra.offline_stores.offline_store import RetrievalJob, RetrievalMetadata
from feast.infra.offline_stores.offline_utils import infer_event_timestamp_from_entity_df
from feast.infra.registry.base_registry import BaseRegistry
from feast.repo_config import FeastConfigBaseModel, RepoConfig
from feast.utils import compute_non_entity_date_range
from feast.value_type import ValueType
from pydantic import StrictStr

from service.training.entity_rows import typed_column
from service.training.offline.engine import TS, JoinOptions, get_training_frame
from service.training.offline.errors import EntityRowsInvalid, FeatureSelectionInvalid
from service.training.offline.views import RetrievalPlan, batch_spec

TYPE = "service.training.offline.feast_store.FeastlineOfflineStore"
DATASET_PART = "part-0.parquet"  # the one file of a saved dataset persisted to a directory


class FeastlineOfflineStoreConfig(FeastConfigBaseModel):
    """``offline_store`` section of ``feature_store.yaml``; DuckDB settings pass through."""

    type: StrictStr = TYPE
    # The created-timestamp cut-off of the training-set contract: a feature row created after the entity
    # timestamp is not joined. ``true`` joins it anyway (Feast's own default, and the HTTP route's
    # ``allow_created_after_entity``); the leakage audit still reports such rows.
    allow_created_after_entity: bool = False
    staging_location: str | None = None
    staging_location_endpoint_override: str | None = None


def _aware_stamps(stamps: pd.Series, ts_col: str) -> pd.Series:
    """``stamps`` as datetime64[ns, UTC].

    A tz-aware column is converted. An object column of datetimes in different offsets (or mixing
    naive and aware ones, as Feast's own tests build them) is read as Feast reads it: each aware value
    at its own offset, a naive value as UTC. A column with no offset at all, or holding anything but
    datetimes (strings are not parsed), is refused.
    """
    if isinstance(stamps.dtype, pd.DatetimeTZDtype):
        return stamps.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    if stamps.dtype == object:
        values = stamps.reset_index(drop=True).dropna()
        not_datetimes = [int(i) for i, v in values.items() if not isinstance(v, datetime)]
        if not not_datetimes and any(v.tzinfo is not None and v.utcoffset() is not None for v in values):
            return (
                pd.Series([pd.NaT if pd.isna(v) else pd.Timestamp(v) for v in stamps], index=stamps.index, dtype=object)
                .pipe(lambda s: pd.to_datetime(s, utc=True))
                .astype("datetime64[ns, UTC]")
            )
        if not_datetimes:
            raise EntityRowsInvalid(
                [
                    {"row": i, "field": ts_col, "problem": f"must be a datetime, got {values[i]!r}"}
                    for i in not_datetimes[:100]
                ]
            )
    raise EntityRowsInvalid(
        [
            {
                "row": None,
                "field": ts_col,
                "problem": f"must be timezone-aware (got {stamps.dtype}); "
                "use tz_localize('UTC') or the timezone the times are in",
            }
        ]
    )


def _entity_frame(entity_df: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    ts_col = infer_event_timestamp_from_entity_df(dict(zip(entity_df.columns, entity_df.dtypes, strict=True)))
    stamps = _aware_stamps(entity_df[ts_col], ts_col)
    frame = entity_df.rename(columns={ts_col: TS}) if ts_col != TS else entity_df
    frame = frame.copy()
    frame[TS] = stamps
    return frame.reset_index(drop=True), ts_col


def _integers_for_string_key(col: pd.Series, vtype: ValueType) -> bool:
    """An integer column for a ``String`` key: taken as is on the SDK path (Feast's own tests declare
    ``driver_id`` ``String`` over integer data); the engine compares it by its canonical decimal spelling
    (:mod:`service.training.offline.keys`), so ``1001`` matches ``"1001"``, never ``"01001"``."""
    integers = pd.api.types.is_integer_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype)
    return vtype == ValueType.STRING and integers


class FeastlineRetrievalJob(RetrievalJob):
    def __init__(
        self,
        config: RepoConfig,
        views: list[FeatureView],
        refs: list[str],
        entity_df: pd.DataFrame,
        full_feature_names: bool,
        odfvs: list[OnDemandFeatureView],
        created_filter: bool = True,
    ):
        self._config, self._views, self._refs = config, views, refs
        self._entity_df, self._full, self._odfvs = entity_df, full_feature_names, odfvs
        self._created_filter = created_filter
        self.last_audit: Any = None

    @property
    def full_feature_names(self) -> bool:
        return self._full

    @property
    def on_demand_feature_views(self) -> list[OnDemandFeatureView]:
        return self._odfvs

    def _to_df_internal(self, timeout: int | None = None) -> pd.DataFrame:
        entity, ts_col = _entity_frame(self._entity_df)
        by_name = {v.projection.name_to_use(): v for v in self._views}
        requested = []
        for ref in self._refs:
            view, _, feature = ref.partition(":")
            if view in by_name:
                requested.append((view, feature))
        specs = tuple(batch_spec(Path(str(self._config.repo_path)), v) for v in self._views)
        plan = RetrievalPlan(views=specs, on_demand=(), requested=tuple(requested))
        problems = []
        # as for Parquet bodies: each key column of its declared type, never cast; one exception, as Feast's
        # own stores: an integer column for a String key, compared by its canonical spelling (keys.py)
        for key, vtype in plan.key_types.items():
            if key in entity and not _integers_for_string_key(entity[key], vtype):
                entity[key], found = typed_column(key, entity[key], vtype)
                problems.extend(found)
        if problems:
            raise EntityRowsInvalid(problems)
        result = get_training_frame(
            entity,
            plan,
            JoinOptions(
                full_feature_names=self._full,
                created_filter=self._created_filter,
                declared_dtypes=False,  # Feast's convention: features as the source holds them (see the module)
            ),
        )
        self.last_audit = result.audit
        return result.frame.rename(columns={TS: ts_col}) if ts_col != TS else result.frame

    def _to_arrow_internal(self, timeout: int | None = None) -> pa.Table:
        return pa.Table.from_pandas(self._to_df_internal(timeout), preserve_index=False)

    @property
    def metadata(self) -> RetrievalMetadata:
        ts = self._entity_df[infer_event_timestamp_from_entity_df(dict(self._entity_df.dtypes))]
        keys = [c for c in self._entity_df.columns if c != ts.name]
        return RetrievalMetadata(
            features=self._refs, keys=keys, min_event_timestamp=ts.min(), max_event_timestamp=ts.max()
        )

    def persist(self, storage: Any, allow_overwrite: bool = False, timeout: int | None = None) -> None:
        """Write the answer to a ``SavedDatasetFileStorage`` path (relative to the repo), atomically.

        A path ending in ``.parquet`` (or an existing file) is written as that one file. Any other path is
        a directory dataset, as in Feast's File store: the answer is written as ``<path>/part-0.parquet``
        (the directory is created if missing). A directory that holds other Parquet files is refused, even
        with ``allow_overwrite``: they would be read back as rows of the saved dataset, and deleting files
        feastline did not write is not an overwrite of this answer.

        Raises:
            SavedDatasetLocationAlreadyExists: the path exists and ``allow_overwrite`` is False.
            ValueError: ``storage`` is not file storage, or the directory holds other Parquet files.
        """
        if not isinstance(storage, SavedDatasetFileStorage):
            raise ValueError(f"feastline persists to file storage only (got {type(storage).__name__})")
        path = Path(FileSource.get_uri_for_file_path(Path(str(self._config.repo_path)), storage.file_options.uri))
        if path.exists() and not allow_overwrite:
            raise SavedDatasetLocationAlreadyExists(location=storage.file_options.uri)
        if path.is_dir() or (not path.exists() and path.suffix != ".parquet"):
            target = path / DATASET_PART
            if others := sorted(str(p) for p in path.rglob("*.parquet") if p != target):
                raise ValueError(
                    f"{storage.file_options.uri}: the directory holds other Parquet files ({', '.join(others[:5])}); "
                    "persist to an empty directory or a .parquet path"
                )
            path = target
        _replace_atomically(path, lambda tmp: pq.write_table(self.to_arrow(timeout=timeout), tmp))

    def to_sql(self) -> str:
        raise NotImplementedError(
            "the feastline engine builds its SQL per request; see service/training/offline/engine.py"
        )


def _replace_atomically(path: Path, write: Callable[[str], None]) -> None:
    """Write through a temporary file in ``path``'s folder, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def append_to_parquet(path: Path, table: pa.Table) -> None:
    """Append ``table`` after the rows of the Parquet file ``path``, keeping the file's schema and dtypes.

    The new rows are cast to the file's schema (same column names in the same order; a cast that
    would lose data, e.g. text into a timestamp, fails). A directory of Parquet files gets a new
    part file. Temp file + rename: a failed append leaves the data unchanged.

    Raises:
        ValueError: the columns differ from the file's, or a column cannot be cast to its dtype.
    """
    if path.is_dir():
        schema = pq.ParquetDataset(path).schema
        target = path / f"part-{pd.Timestamp.now(tz='UTC').value}.parquet"
    else:
        schema, target = pq.read_schema(path), path
    if table.column_names != schema.names:
        raise ValueError(f"columns {table.column_names} do not match the batch source columns {schema.names}")
    try:
        new = table.cast(schema.remove_metadata()).replace_schema_metadata(schema.metadata)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ValueError(f"rows do not fit the batch source schema {schema}: {exc}") from exc
    if target is path:
        new = pa.concat_tables([pq.read_table(path, schema=schema), new])
    _replace_atomically(target, lambda tmp: pq.write_table(new, tmp))


def _non_entity_rows(config: RepoConfig, views: list[FeatureView], start: datetime, end: datetime) -> pd.DataFrame:
    """Feast's non-entity mode (as its BigQuery/Postgres stores define it): every distinct join-key
    tuple seen in any view's source with ``start <= event time <= end``, with ``event_timestamp = end``."""
    specs = [batch_spec(Path(str(config.repo_path)), v) for v in views]
    keys = list(dict.fromkeys(k for s in specs for k in s.join_keys))
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        selects = []
        for s in specs:
            cols = ", ".join(f'"{s.columns[k]}" AS "{k}"' if k in s.join_keys else f'NULL AS "{k}"' for k in keys)
            path = str(s.path / "*.parquet" if s.path.is_dir() else s.path).replace("'", "''")
            selects.append(
                f"SELECT DISTINCT {cols or '1 AS __one'} FROM read_parquet('{path}') "
                f'WHERE CAST("{s.timestamp_field}" AS TIMESTAMPTZ) BETWEEN $start AND $end'
            )
        rows = con.execute(" UNION ".join(selects), {"start": start, "end": end}).df()
    finally:
        con.close()
    rows = rows[keys].sort_values(keys).reset_index(drop=True) if keys else rows.iloc[:1, 0:0]
    rows[TS] = pd.Timestamp(end).tz_convert("UTC")
    return rows


class FeastlineOfflineStore(DuckDBOfflineStore):
    """Feast's DuckDB offline store with feastline's point-in-time join for historical retrieval."""

    supports_filter_by_created_timestamp = True

    @staticmethod
    def get_historical_features(
        config: RepoConfig,
        feature_views: list[FeatureView],
        feature_refs: list[str],
        entity_df: pd.DataFrame | str,
        registry: BaseRegistry,
        project: str,
        full_feature_names: bool = False,
        filter_by_created_timestamp: bool = False,
        **kwargs: Any,
    ) -> RetrievalJob:
        """Feast's ``get_historical_features`` on feastline's engine.

        ``entity_df=None`` is Feast's non-entity mode: ``start_date``/``end_date`` (kwargs, Feast's
        defaults: end = now, start = end - the largest TTL or 30 days) select the entities (see
        ``_non_entity_rows``); each gets one row, its features as of ``end_date``.
        The created cut-off applies when ``filter_by_created_timestamp`` is True or the store config
        leaves ``allow_created_after_entity`` False (the default).
        """
        if entity_df is None:
            start, end = compute_non_entity_date_range(
                feature_views, start_date=kwargs.get("start_date"), end_date=kwargs.get("end_date")
            )
            entity_df = _non_entity_rows(config, feature_views, start, end)
        if not isinstance(entity_df, pd.DataFrame):
            raise FeatureSelectionInvalid("entity_df must be a pandas DataFrame (SQL entity queries are not supported)")
        # each on-demand view once (Feast's own resolution: deduplicated by view, ``view@vN`` pins honoured);
        # Feast's RetrievalJob.to_arrow appends the requested outputs of each listed view
        odfvs = OnDemandFeatureView.get_requested_odfvs(feature_refs, project, registry)
        # the cut-off applies unless the config lifts it; Feast's per-call flag always applies it
        created_filter = filter_by_created_timestamp or not config.offline_store.allow_created_after_entity
        return FeastlineRetrievalJob(
            config, feature_views, feature_refs, entity_df, full_feature_names, odfvs, created_filter
        )

    @staticmethod
    def offline_write_batch(
        config: RepoConfig,
        feature_view: FeatureView,
        table: pa.Table,
        progress: Callable[[int], Any] | None,
    ) -> None:
        """``write_to_offline_store`` / ``push(to=OFFLINE)``: append ``table`` (columns named as the view
        sees them, field mapping applied by Feast) to the view's Parquet batch source with
        ``append_to_parquet`` (the file keeps its column names, schema and dtypes; all or nothing).

        Raises:
            ValueError: not a file source, other columns than the file's, or a value of another dtype.
        """
        source = feature_view.batch_source
        if isinstance(source, PushSource):
            source = source.batch_source
        if not isinstance(source, FileSource):
            raise ValueError(f"{feature_view.name}: feastline writes to file (Parquet) batch sources only")
        # Feast's provider renamed the columns by the source's field_mapping; the file holds the originals
        original = {dst: src for src, dst in (feature_view.batch_source.field_mapping or {}).items()}
        table = table.rename_columns([original.get(c, c) for c in table.column_names])
        append_to_parquet(Path(FileSource.get_uri_for_file_path(Path(str(config.repo_path)), source.path)), table)
        if progress:
            progress(table.num_rows)
