"""``type: service.online_stores.redis.OrderedRedisOnlineStore``: a re-export of
:mod:`service.online.stores.redis`, the same classes (the path from before the capability packages)."""

from service.online.stores.redis import OrderedRedisOnlineStore, OrderedRedisOnlineStoreConfig

__all__ = ["OrderedRedisOnlineStore", "OrderedRedisOnlineStoreConfig"]
