"""Ordered online stores: an older row never overwrites a newer one, on SQLite and on Redis.

Every test runs against both stores through Feast's public API (``push`` / ``write_to_online_store`` and
``get_online_features``) on a tiny repo built in ``tmp_path``: entity ``origin``, view ``w`` with a float
``temp``, fed by push source ``weather_push``. Each repo has its own project name, so Redis keys of
different tests never collide; they are deleted afterwards.
"""

import os
import random
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import redis
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, PushSource, ValueType
from feast.data_source import PushMode
from feast.types import Float32, String

from service.online.stores.redis import OrderedRedisOnlineStore
from service.online.stores.sqlite import OrderedSqliteOnlineStore

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)

ORDERED_STORES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("redis", id="redis", marks=pytest.mark.integration),
]


def online_store_yaml(kind: str, repo: Path) -> str:
    """The ``online_store:`` block of feature_store.yaml for one store kind."""
    if kind == "sqlite":
        return (
            "online_store:\n  type: service.online.stores.sqlite.OrderedSqliteOnlineStore\n"
            f"  path: {repo / 'online.db'}\n"
        )
    if kind == "redis":
        return (
            "online_store:\n  type: service.online.stores.redis.OrderedRedisOnlineStore\n"
            f'  connection_string: "{REDIS_HOST}:{REDIS_PORT}"\n'
        )
    if kind == "stock_sqlite":
        return f"online_store:\n  type: sqlite\n  path: {repo / 'online.db'}\n"
    raise ValueError(kind)


def require_redis() -> redis.Redis:
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as e:
        message = f"Redis not reachable at {REDIS_HOST}:{REDIS_PORT}: {e}"
        if os.environ.get("FEASTLINE_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return client


@dataclass
class Repo:
    """An applied temporary Feast repo and helpers that speak in (origin, temp, event_ts, created_ts)."""

    path: Path
    store: FeatureStore

    def push(self, *rows: tuple[str, float, datetime, datetime], store: FeatureStore | None = None) -> None:
        """Push ``rows`` as one batch to the online store, in the given order."""
        df = pd.DataFrame(rows, columns=["origin", "temp", "event_timestamp", "created"])
        (store or self.store).push("weather_push", df, to=PushMode.ONLINE)

    def temp(self, *origins: str) -> list[float | None]:
        rows = [{"origin": o} for o in origins]
        return self.store.get_online_features(features=["w:temp"], entity_rows=rows).to_dict()["temp"]


def build_repo(tmp_path: Path, kind: str) -> Repo:
    """Write feature_store.yaml and a small Parquet source, then apply the definitions."""
    project = f"t_{uuid.uuid4().hex[:8]}"
    (tmp_path / "feature_store.yaml").write_text(
        f"project: {project}\nregistry: {tmp_path / 'registry.db'}\nprovider: local\n"
        + online_store_yaml(kind, tmp_path)
        + "entity_key_serialization_version: 3\n"
    )
    parquet = tmp_path / "weather.parquet"
    pd.DataFrame(
        {
            "origin": ["EWR", "JFK", "LGA"],
            "temp": [50.0, 51.0, 52.0],
            "event_timestamp": [T0 - 48 * HOUR] * 3,
            "created": [T0 - 48 * HOUR] * 3,
        }
    ).to_parquet(parquet)
    origin = Entity(name="origin", join_keys=["origin"], value_type=ValueType.STRING)
    batch = FileSource(
        name="weather_file", path=str(parquet), timestamp_field="event_timestamp", created_timestamp_column="created"
    )
    push = PushSource(name="weather_push", batch_source=batch)
    view = FeatureView(
        name="w",
        entities=[origin],
        ttl=timedelta(days=3650),
        schema=[Field(name="origin", dtype=String), Field(name="temp", dtype=Float32)],
        source=push,
        online=True,
    )
    store = FeatureStore(repo_path=str(tmp_path))
    store.apply([origin, batch, push, view])
    return Repo(tmp_path, store)


@pytest.fixture(params=ORDERED_STORES)
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Repo]:
    client = require_redis() if request.param == "redis" else None
    built = build_repo(tmp_path, request.param)
    online_store = built.store._get_provider().online_store  # type: ignore[attr-defined]
    assert type(online_store) is {"sqlite": OrderedSqliteOnlineStore, "redis": OrderedRedisOnlineStore}[request.param]
    yield built
    if client is not None:
        keys = list(client.scan_iter(match=b"*" + built.store.project.encode()))
        if keys:
            client.delete(*keys)


def test_stock_sqlite_lets_an_older_push_win(tmp_path: Path) -> None:
    """The bug fixed here: Feast's own SQLite store keeps whatever was written last."""
    repo = build_repo(tmp_path, "stock_sqlite")
    repo.push(("EWR", 30.0, T0, T0))
    repo.push(("EWR", 10.0, T0 - 2 * HOUR, T0 + HOUR))
    assert repo.temp("EWR") == [10.0]


def test_older_push_does_not_overwrite_newer(repo: Repo) -> None:
    repo.push(("EWR", 30.0, T0, T0))
    repo.push(("EWR", 10.0, T0 - 2 * HOUR, T0 + HOUR))  # a late replay: created later, event older
    assert repo.temp("EWR") == [30.0]


def test_older_row_last_in_one_batch_does_not_win(repo: Repo) -> None:
    repo.push(("EWR", 30.0, T0, T0), ("EWR", 10.0, T0 - 2 * HOUR, T0 + HOUR))
    assert repo.temp("EWR") == [30.0]


def test_equal_event_ts_is_decided_by_created_ts(repo: Repo) -> None:
    repo.push(("EWR", 20.0, T0, T0 + HOUR))
    repo.push(("EWR", 10.0, T0, T0))  # same event, created earlier: kept out
    assert repo.temp("EWR") == [20.0]
    repo.push(("EWR", 30.0, T0, T0 + 2 * HOUR))  # same event, created later: a correction
    assert repo.temp("EWR") == [30.0]
    repo.push(("EWR", 31.0, T0, T0 + 2 * HOUR))  # full tie: the later write wins (idempotent re-writes)
    assert repo.temp("EWR") == [31.0]
    repo.push(("EWR", 40.0, T0, T0 + 3 * HOUR), ("EWR", 35.0, T0, T0 + 2 * HOUR))  # in one batch as well
    assert repo.temp("EWR") == [40.0]


def test_newer_row_overwrites(repo: Repo) -> None:
    repo.push(("EWR", 10.0, T0 - 2 * HOUR, T0))
    repo.push(("EWR", 30.0, T0, T0 - HOUR))  # created earlier does not matter once the event is newer
    assert repo.temp("EWR") == [30.0]
    repo.store.write_to_online_store(
        "w",
        pd.DataFrame({"origin": ["EWR"], "temp": [40.0], "event_timestamp": [T0 + HOUR], "created": [T0]}),
    )
    assert repo.temp("EWR") == [40.0]


def test_entity_keys_in_one_batch_are_ordered_independently(repo: Repo) -> None:
    repo.push(("EWR", 1.0, T0, T0), ("JFK", 2.0, T0, T0))
    repo.push(
        ("EWR", 11.0, T0 + HOUR, T0),  # newer: written
        ("JFK", 12.0, T0 - HOUR, T0),  # older: dropped
        ("LGA", 13.0, T0 - HOUR, T0),  # first value for LGA: written
        ("EWR", 10.0, T0 - HOUR, T0),  # older than the batch's own EWR row: dropped
        ("LGA", 14.0, T0, T0),  # newer than the batch's earlier LGA row: written
    )
    assert repo.temp("EWR", "JFK", "LGA") == [11.0, 2.0, 14.0]


def test_concurrent_writers_leave_the_newest_value(repo: Repo) -> None:
    """8 threads, each with its own FeatureStore (own connection), push interleaved timestamps."""
    threads, pushes = 8, 5
    offsets = list(range(threads * pushes))  # thread i gets offsets i, i+8, i+16, ...; the largest is 39
    stores = [FeatureStore(repo_path=str(repo.path)) for _ in range(threads)]
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        mine = offsets[i::threads]
        random.Random(i).shuffle(mine)
        try:
            barrier.wait()
            for k in mine:
                ts = T0 + timedelta(seconds=k)
                repo.push(("EWR", float(k), ts, ts), store=stores[i])
        except BaseException as e:  # surfaced below; a thread's exception is otherwise lost
            errors.append(e)

    workers = [threading.Thread(target=writer, args=(i,)) for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert not errors, errors
    assert repo.temp("EWR") == [float(max(offsets))]


def test_sub_second_event_times_are_ordered(repo: Repo) -> None:
    """Feast's SQLite table keeps whole seconds; an older row 0.4 s earlier but created later must not win."""
    ms = timedelta(milliseconds=1)
    repo.push(("EWR", 30.0, T0 + 600 * ms, T0))
    repo.push(("EWR", 10.0, T0 + 200 * ms, T0 + HOUR))
    assert repo.temp("EWR") == [30.0]
    repo.push(("EWR", 40.0, T0 + 700 * ms, T0))
    assert repo.temp("EWR") == [40.0]
