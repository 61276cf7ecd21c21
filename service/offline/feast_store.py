"""``type: service.offline.feast_store.FeastlineOfflineStore`` still selects the store.

A re-export of :mod:`service.training.offline.feast_store`: the same classes, so a registry or repo
written with either path behaves identically.
"""

from service.training.offline.feast_store import FeastlineOfflineStore, FeastlineOfflineStoreConfig

__all__ = ["FeastlineOfflineStore", "FeastlineOfflineStoreConfig"]
