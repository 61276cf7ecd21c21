"""feastline's point-in-time engine as a Feast offline store.

Select it in ``feature_store.yaml``::

    offline_store:
      type: service.training.offline.feast_store.FeastlineOfflineStore

Then ``FeatureStore.get_historical_features`` answers with the same engine (and the same contract)
as ``POST /training-sets``: one row per entity row in input order, no row created after the entity
timestamp, the leakage audit run on every answer. Materialization, push-to-offline and everything
else are Feast's DuckDB offline store, unchanged.

Differences from Feast's own stores, on purpose:
- the created-timestamp filter is always on (Feast's ``filter_by_created_timestamp`` flag, False
  by default there, cannot turn it off here); over HTTP it can be turned off explicitly;
- a timezone-naive entity timestamp is refused (``EntityRowsInvalid``), not read as UTC.
"""

from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
from feast import FeatureView, OnDemandFeatureView
from feast.infra.offline_stores.duckdb import DuckDBOfflineStore
from feast.infra.offline_stores.offline_store import RetrievalJob, RetrievalMetadata
from feast.infra.offline_stores.offline_utils import infer_event_timestamp_from_entity_df
from feast.infra.registry.base_registry import BaseRegistry
from feast.repo_config import FeastConfigBaseModel, RepoConfig
from pydantic import StrictStr

from service.training.offline.engine import TS, JoinOptions, get_training_frame
from service.training.offline.errors import EntityRowsInvalid, FeatureSelectionInvalid
from service.training.offline.views import RetrievalPlan, batch_spec

TYPE = "service.training.offline.feast_store.FeastlineOfflineStore"


class FeastlineOfflineStoreConfig(FeastConfigBaseModel):
    """``offline_store`` section of ``feature_store.yaml``; DuckDB settings pass through."""

    type: StrictStr = TYPE
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


class FeastlineRetrievalJob(RetrievalJob):
    def __init__(
        self,
        config: RepoConfig,
        views: list[FeatureView],
        refs: list[str],
        entity_df: pd.DataFrame,
        full_feature_names: bool,
        odfvs: list[OnDemandFeatureView],
    ):
        self._config, self._views, self._refs = config, views, refs
        self._entity_df, self._full, self._odfvs = entity_df, full_feature_names, odfvs
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
        result = get_training_frame(entity, plan, JoinOptions(full_feature_names=self._full))
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
        raise NotImplementedError("persist training sets through POST /training-sets (stored with a fingerprint)")

    def to_sql(self) -> str:
        raise NotImplementedError(
            "the feastline engine builds its SQL per request; see service/training/offline/engine.py"
        )


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
    ) -> RetrievalJob:
        if not isinstance(entity_df, pd.DataFrame):
            raise FeatureSelectionInvalid("entity_df must be a pandas DataFrame (SQL entity queries are not supported)")
        odfvs = [
            registry.get_on_demand_feature_view(ref.split(":")[0], project)
            for ref in dict.fromkeys(
                r for r in feature_refs if r.split(":")[0] not in {v.projection.name_to_use() for v in feature_views}
            )
        ]
        return FeastlineRetrievalJob(config, feature_views, feature_refs, entity_df, full_feature_names, odfvs)
