"""Prepared sources: each view's ranked rows and frontier (see the engine's docstring), computed once per
state of its source files and kept in a process-wide in-memory DuckDB database, so a small training set
pays for its own entity rows only, not for re-reading and re-ranking every source on every request.

Keyed by the preparation's SQL (source path, column mapping, timestamp and created columns, join keys,
features, created cut-off on or off) and, per Parquet file of the source, ``(path, device, inode, size,
mtime ns)``: a file replaced (feastline's writes are temp file + rename: a new inode), appended to or
touched prepares anew; the stale tables are dropped once no join uses them. A rewrite in place that
keeps size, inode and mtime to the nanosecond is not seen: write sources by rename, as feastline does.

Memory is bounded: a source whose Parquet files add up to more than ``FEASTLINE_PREPARED_SOURCE_MB``
(default 256, MiB on disk; 0 turns preparation off) is not prepared and is read by the join itself as
before, and at most :data:`MAX_PREPARED` preparations are kept (least recently used dropped first).
Answers are the same either way (the same SQL runs over a table instead of a subquery; tested).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import duckdb

MAX_PREPARED = 32
T = TypeVar("T")


def _limit_bytes() -> int:
    return int(float(os.environ.get("FEASTLINE_PREPARED_SOURCE_MB", "256")) * 2**20)


def file_state(files: list[Path]) -> tuple[tuple[str, int, int, int, int], ...]:
    """``(path, device, inode, size, mtime ns)`` of each file: what a preparation is valid for."""
    states = []
    for path in files:
        st = path.stat()
        states.append((str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(states)


@dataclass
class _Entry:
    name: str
    users: int = 0
    stale: bool = False
    lookups: dict[tuple[str, ...], Any] = field(default_factory=dict)  # join keys -> lookup.Lookup | None


@dataclass
class PreparedSources:
    """The process-wide cache of prepared sources (one instance: :data:`PREPARED`)."""

    db: duckdb.DuckDBPyConnection = field(default_factory=duckdb.connect)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _entries: OrderedDict[str, _Entry] = field(default_factory=OrderedDict)
    _by_base: dict[str, str] = field(default_factory=dict)  # prep SQL hash -> key of its newest state

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A connection to the shared database for one join (registrations stay local to it)."""
        return self.db.cursor()

    @contextmanager
    def tables(
        self,
        ranked_sql: str,
        frontier_sql: Callable[[str], str],
        files: list[Path],
        read_sql: str | None = None,
        read_files: list[Path] | None = None,
    ) -> Iterator[tuple[str, str] | None]:
        """The names of the prepared (ranked, frontier) tables: ``ranked_sql`` (a query) over ``files``
        and ``frontier_sql(ranked table)``, prepared if needed; None when the source is too large to
        keep. The tables stay valid until the ``with`` block ends. ``read_sql``/``read_files``: the same
        query over pinned descriptors of ``files`` (``ViewSpec.pinned``): what is read, while the key
        stays the files' names with the pinned versions' inode, size and mtime."""
        pinned_states = file_state(read_files if read_files is not None else files)
        states = tuple((str(f), *st[1:]) for f, st in zip(files, pinned_states, strict=True))
        if sum(s[3] for s in states) > _limit_bytes():
            yield None
            return
        base = hashlib.sha256(ranked_sql.encode()).hexdigest()[:24]
        key = hashlib.sha256(repr((base, states)).encode()).hexdigest()[:24]
        entry = self._acquire(base, key, read_sql or ranked_sql, frontier_sql)
        try:
            yield f"{entry.name}_ranked", f"{entry.name}_frontier"
        finally:
            self._release(entry)

    def lookup(self, tables: tuple[str, str], keys: tuple[str, ...]) -> Any:
        """The :class:`~service.training.offline.lookup.Lookup` of prepared ``tables`` (held by the
        caller's ``with tables(...)`` block), built on first use and kept with them; None if its keys
        cannot be looked up as arrays."""
        from service.training.offline import lookup

        entry = next(e for e in self._entries.values() if f"{e.name}_ranked" == tables[0])
        with self._lock:
            if keys not in entry.lookups:
                con = self.db.cursor()
                try:
                    entry.lookups[keys] = lookup.build(con, list(keys), *tables)
                finally:
                    con.close()
            return entry.lookups[keys]

    def _acquire(self, base: str, key: str, ranked_sql: str, frontier_sql: Callable[[str], str]) -> _Entry:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                name = f"prep_{key}"
                con = self.db.cursor()
                try:
                    con.execute(f"CREATE TABLE {name}_ranked AS {ranked_sql}")
                    con.execute(f"CREATE TABLE {name}_frontier AS {frontier_sql(f'{name}_ranked')}")
                except BaseException:
                    con.execute(f"DROP TABLE IF EXISTS {name}_ranked")
                    con.close()
                    raise
                con.close()
                entry = self._entries[key] = _Entry(name)
                previous = self._by_base.get(base)
                if previous is not None and previous != key and previous in self._entries:
                    self._entries[previous].stale = True
                self._by_base[base] = key
            self._entries.move_to_end(key)
            entry.users += 1
            self._evict()
            return entry

    def _release(self, entry: _Entry) -> None:
        with self._lock:
            entry.users -= 1
            self._evict()

    def _evict(self) -> None:
        """Drop stale preparations and the least recently used beyond :data:`MAX_PREPARED`, if unused."""
        excess = len(self._entries) - MAX_PREPARED
        for key, entry in list(self._entries.items()):
            if entry.users or not (entry.stale or excess > 0):
                continue
            con = self.db.cursor()
            con.execute(f"DROP TABLE IF EXISTS {entry.name}_frontier")
            con.execute(f"DROP TABLE IF EXISTS {entry.name}_ranked")
            con.close()
            del self._entries[key]
            excess -= 1

    def clear(self) -> None:
        """Drop every unused preparation (tests)."""
        with self._lock:
            for entry in self._entries.values():
                entry.stale = True
            self._evict()


PREPARED = PreparedSources()


_FACTS: OrderedDict[tuple[object, ...], object] = OrderedDict()
_FACTS_LOCK = threading.Lock()
MAX_FACTS = 512


def per_file_state(what: tuple[object, ...], files: list[Path], compute: Callable[[], T]) -> T:
    """``compute()``, remembered for ``what`` (e.g. ``("sha256",)``) and the current :func:`file_state`
    of ``files``: a source's content hash or null-created count is computed once per state of its files
    (the same validity rule as the prepared tables). At most :data:`MAX_FACTS` are kept."""
    key = (*what, file_state(files))
    with _FACTS_LOCK:
        if key in _FACTS:
            _FACTS.move_to_end(key)
            return _FACTS[key]  # type: ignore[return-value]
    value = compute()
    with _FACTS_LOCK:
        _FACTS[key] = value
        while len(_FACTS) > MAX_FACTS:
            _FACTS.popitem(last=False)
    return value
