"""The sorted numeric columns of baseline training sets, kept in a bounded LRU between drift reports.

A drift report's KS test needs the baseline's stored rows of each numeric feature, without missing
values and sorted (:func:`service.monitoring.distances.ks_test`). A stored training set never changes
(its Parquet file is written once, under its id), so reading and sorting it again for every report
against the same baseline is wasted work: :func:`sorted_columns` keeps the arrays, keyed by the file
(path, size, modification time: a file replaced under the same name is read again) and column name,
and evicts the least recently used arrays beyond ``MAX_BYTES`` in all. The arrays are read-only and
shared between callers.
"""

import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd

MAX_BYTES = 256 * 2**20  # ~10 baselines of 250,000 rows x 12 numeric features

_Key = tuple[str, int, int, str]  # (path, size, mtime_ns, column)


class SortedColumnCache:
    """A bounded (by bytes) LRU of sorted float64 columns of Parquet files; thread-safe."""

    def __init__(self, max_bytes: int = MAX_BYTES):
        self.max_bytes = max_bytes
        self._arrays: OrderedDict[_Key, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, path: str | Path, columns: list[str]) -> dict[str, np.ndarray]:
        """``column -> sorted values`` (float64, missing values left out, read-only) of ``columns`` of the
        Parquet file at ``path``; the columns not cached yet are read in one ``read_parquet``.

        Raises:
            OSError, pyarrow errors: the file cannot be read; KeyError-like pyarrow errors: a column
                is not in it.
        """
        path = Path(path)
        stat = path.stat()
        keys = {c: (str(path), stat.st_size, stat.st_mtime_ns, c) for c in columns}
        out: dict[str, np.ndarray] = {}
        with self._lock:
            for c, key in keys.items():
                if key in self._arrays:
                    self._arrays.move_to_end(key)
                    out[c] = self._arrays[key]
        missing = [c for c in columns if c not in out]
        if missing:
            frame = pd.read_parquet(path, columns=missing)
            for c in missing:
                values = np.sort(frame[c].dropna().to_numpy(dtype=np.float64))
                values.flags.writeable = False
                out[c] = values
            with self._lock:
                for c in missing:
                    self._put(keys[c], out[c])
        return out

    def _put(self, key: _Key, values: np.ndarray) -> None:
        if key in self._arrays or values.nbytes > self.max_bytes:
            return
        self._arrays[key] = values
        self._bytes += values.nbytes
        while self._bytes > self.max_bytes:
            _, evicted = self._arrays.popitem(last=False)
            self._bytes -= evicted.nbytes

    def clear(self) -> None:
        with self._lock:
            self._arrays.clear()
            self._bytes = 0

    @property
    def nbytes(self) -> int:
        """Bytes held now (at most ``max_bytes``)."""
        return self._bytes


_CACHE = SortedColumnCache()


def sorted_columns(path: str | Path, columns: list[str]) -> dict[str, np.ndarray]:
    """The process-wide cache's :meth:`SortedColumnCache.get`."""
    return _CACHE.get(path, columns)
