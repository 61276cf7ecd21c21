"""``type: service.online_stores.sqlite.OrderedSqliteOnlineStore``: a re-export of
:mod:`service.online.stores.sqlite`, the same classes (the path from before the capability packages)."""

from service.online.stores.sqlite import OrderedSqliteOnlineStore, OrderedSqliteOnlineStoreConfig

__all__ = ["OrderedSqliteOnlineStore", "OrderedSqliteOnlineStoreConfig"]
