"""Graphs read from the store, kept for reuse between requests (thread-safe).

The current graph is kept with the change token it was read at and reused while the token is
unchanged; past graphs never change, so the last few asked for are kept by change number. The
graphs handed out are shared: callers query them and never modify them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from lineage.graph import LineageGraph


class GraphCache:
    """The current graph (by change token) and the ``past_kept`` most recently used past graphs."""

    def __init__(self, past_kept: int = 8) -> None:
        self._lock = threading.Lock()
        self._past_kept = past_kept
        self._current: tuple[int, LineageGraph] | None = None
        self._past: OrderedDict[int, LineageGraph] = OrderedDict()

    def current(self, token: int) -> LineageGraph | None:
        """The current graph if it was read at change ``token``, else None."""
        cached = self._current
        return cached[1] if cached is not None and cached[0] == token else None

    def keep_current(self, token: int, graph: LineageGraph) -> None:
        with self._lock:
            self._current = (token, graph)

    def past(self, seq: int) -> LineageGraph | None:
        """The graph as of change ``seq``, if kept."""
        with self._lock:
            if seq not in self._past:
                return None
            self._past.move_to_end(seq)
            return self._past[seq]

    def keep_past(self, seq: int, graph: LineageGraph) -> None:
        with self._lock:
            self._past[seq] = graph
            while len(self._past) > self._past_kept:
                self._past.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._current = None
            self._past.clear()
