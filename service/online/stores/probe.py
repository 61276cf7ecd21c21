"""Is the online store reachable? One cheap check with a short timeout, for readiness probes.

Feast's store clients are made for serving, not probing: redis-py retries a refused connection with
back-off (about 4 s before it gives up), longer than a load balancer's or Kubernetes' probe timeout.
A probe therefore opens a connection of its own, once, without retries, and closes it.
"""

import inspect
import sqlite3
import time
from pathlib import Path
from typing import Any

import redis
from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig
from feast.infra.online_stores.sqlite import SqliteOnlineStore, SqliteOnlineStoreConfig
from feast.repo_config import RepoConfig
from redis.backoff import NoBackoff
from redis.retry import Retry

from service.online.reads import STORE_ERRORS

_REDIS_OPTIONS = set(inspect.signature(redis.Redis.__init__).parameters) - {"self", "host", "port"}


def probe_online_store(config: RepoConfig, timeout: float) -> dict[str, Any]:
    """Check that the online store of ``config`` answers within ``timeout`` seconds.

    Redis (any ``RedisOnlineStoreConfig``, feastline's ordered store included): ``PING`` to the first
    node of ``connection_string`` (the sentinel, for a sentinel setup). SQLite: the database file opens
    read-only and its schema is readable. Other store types are not checked.

    Returns:
        ``{"type", "reachable": True | False | None (not checked), "latency_ms", "error", "error_type"}``;
        ``error`` and ``error_type`` are None unless ``reachable`` is False.
    """
    online = config.online_store
    state: dict[str, Any] = {"type": online.type, "reachable": None, "latency_ms": None, "error": None}
    state["error_type"] = None
    started = time.perf_counter()
    try:
        if isinstance(online, RedisOnlineStoreConfig):
            _ping_redis(online, timeout)
        elif isinstance(online, SqliteOnlineStoreConfig):
            _open_sqlite(Path(SqliteOnlineStore._get_db_path(config)), timeout)
        else:
            state["error"] = "no probe for this online store type"
            return state
    except STORE_ERRORS + (redis.exceptions.RedisError,) as exc:
        return state | {"reachable": False, "error": f"{type(exc).__name__}: {exc}", "error_type": type(exc).__name__}
    return state | {"reachable": True, "latency_ms": round((time.perf_counter() - started) * 1000, 3)}


def _ping_redis(online: RedisOnlineStoreConfig, timeout: float) -> None:
    nodes, options = RedisOnlineStore._parse_connection_string(online.connection_string)
    client = redis.Redis(
        host=nodes[0]["host"],
        port=int(nodes[0].get("port", 6379)),
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        **{k: v for k, v in options.items() if k in _REDIS_OPTIONS and k not in ("retry", "socket_timeout")},
    )
    try:
        client.ping()
    finally:
        client.close()


def _open_sqlite(path: Path, timeout: float) -> None:
    if not path.exists():  # mode=ro never creates it; say which file, not "unable to open database file"
        raise FileNotFoundError(f"online store database {path} does not exist")
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=timeout)
    try:
        conn.execute("PRAGMA schema_version").fetchone()
    finally:
        conn.close()
