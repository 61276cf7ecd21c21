"""Online stores that never let an older row overwrite a newer one.

Feast's stock stores write whatever arrives last: a late push with an older event timestamp replaces
a fresher value, and within one write batch the last row wins whatever its timestamp. The stores here
subclass Feast's and keep its on-disk layout, so they read data Feast wrote and Feast reads theirs;
only the write path changes. The ordering rule, for one entity key of one feature view, is the one the
training-set engine and the materializer use (:mod:`service.training.offline.order`):

* the row with the greater ``event_ts`` wins, compared in full: nanoseconds where the write carries
  them (the materializer and pushes write ``pd.Timestamp`` through :mod:`service.online.writes`;
  Feast's own ``push`` would carry microseconds);
* on equal ``event_ts`` the greater ``created_ts`` wins (a missing ``created_ts`` counts as the smallest);
* on a full tie the later write wins, so re-writing the same row is idempotent.

Every store applies the rule twice: once inside the batch (:func:`newest_per_entity`) and once against
what is stored, as a single atomic compare-and-write in the database, so concurrent writers cannot
interleave a read and a write.

Select one in ``feature_store.yaml``::

    online_store:
      type: service.online.stores.sqlite.OrderedSqliteOnlineStore
      path: data/online.db

    online_store:
      type: service.online.stores.redis.OrderedRedisOnlineStore
      connection_string: "127.0.0.1:6379"
"""

from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

from service.training.offline.order import order_key

__all__ = ["newest_per_entity", "order_key"]

Row = TypeVar("Row", bound=tuple[Any, ...])


def newest_per_entity(rows: Sequence[Row], entity_id: Callable[[Row], Hashable]) -> list[Row]:
    """Keep, per entity, only the row with the greatest :func:`order_key`.

    Args:
        rows: Feast write rows ``(entity_key, {feature: value}, event_ts, created_ts)``.
        entity_id: maps a row to a hashable identity of its entity key (e.g. the serialized key).

    Returns:
        One row per entity, in order of each entity's first appearance. On a full tie the later row of
        ``rows`` is kept, matching "the later write wins" against the store.
    """
    newest: dict[Hashable, Row] = {}
    for row in rows:
        ident = entity_id(row)
        kept = newest.get(ident)
        if kept is None or order_key(row[2], row[3]) >= order_key(kept[2], kept[3]):
            newest[ident] = row
    return list(newest.values())
