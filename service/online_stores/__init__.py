"""Old home of the ordered online stores, kept for the ``type:`` paths users write in ``feature_store.yaml``.

The code lives in :mod:`service.online.stores`; ``service.online_stores.sqlite.OrderedSqliteOnlineStore``
and ``service.online_stores.redis.OrderedRedisOnlineStore`` keep working. New repos should write the new paths.
"""

from service.online.stores import newest_per_entity, order_key

__all__ = ["newest_per_entity", "order_key"]
