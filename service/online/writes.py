"""The one write path into the online store, shared by the materializer and pushes.

Rows are Feast's write rows ``(entity_key, {feature: ValueProto}, event_ts, created_ts)`` with the
timestamps as aware UTC ``pd.Timestamp`` (nanoseconds kept). What reaches the store depends on it:

- feastline's ordered stores (:class:`~service.online.stores.sqlite.OrderedSqliteOnlineStore`,
  :class:`~service.online.stores.redis.OrderedRedisOnlineStore`) take the rows as they are and compare
  the full nanosecond times (:mod:`service.training.offline.order`): an older row never overwrites a
  newer one, inside the batch or against what is stored.
- any other store (Feast's own ``sqlite``, ``redis``, ...) gets Feast's ``online_write_batch`` contract:
  plain Python ``datetime`` (microseconds; Feast's SQLite adapter rejects ``pd.Timestamp``). Inside one
  batch only the newest row per entity key is handed over (full nanosecond order, as above); across
  batches such a store keeps whatever was written last, at its own precision (Feast's ``sqlite`` keeps
  whole seconds), so a later write of an older row replaces a newer one there.
"""

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import pandas as pd
from feast import FeatureStore, FeatureView
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto

from service.online.stores import newest_per_entity
from service.online.stores.redis import OrderedRedisOnlineStore
from service.online.stores.sqlite import OrderedSqliteOnlineStore

WriteRow = tuple[EntityKeyProto, dict[str, ValueProto], datetime, datetime | None]
ORDERED_STORES = (OrderedSqliteOnlineStore, OrderedRedisOnlineStore)


def is_ordered(online_store: Any) -> bool:
    """Whether ``online_store`` is one of feastline's ordered stores (nanosecond compare-and-write)."""
    return isinstance(online_store, ORDERED_STORES)


def write_online(
    store: FeatureStore, fv: FeatureView, rows: Sequence[WriteRow], progress: Callable[[int], Any] | None = None
) -> None:
    """Write ``rows`` for ``fv`` through the provider's ``online_write_batch`` (see the module docstring).

    Args:
        store: the Feast store whose provider and online store are written to.
        fv: the feature view the rows belong to.
        rows: Feast write rows; timestamps aware UTC (``pd.Timestamp`` keeps nanoseconds; naive = UTC).
        progress: passed to the store (called with the number of rows handled).

    Raises:
        whatever the store raises (connection errors: the caller maps them to a 503).
    """
    provider = store._get_provider()
    data = list(rows)
    if not is_ordered(provider.online_store):
        newest = newest_per_entity(data, lambda row: row[0].SerializeToString(deterministic=True))
        data = [
            (key, values, _plain(event), None if created is None else _plain(created))
            for key, values, event, created in newest
        ]
    provider.online_write_batch(store.config, fv, data, progress)


def _plain(ts: datetime) -> datetime:
    """A plain ``datetime`` (microseconds: the nanoseconds are dropped, toward the past)."""
    return ts.to_pydatetime(warn=False) if isinstance(ts, pd.Timestamp) else ts
