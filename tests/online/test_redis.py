"""The online path on Redis, the production online store: the Redis server on 127.0.0.1:6379 for the
acceptance checks (skipped without it, a failure when FEASTLINE_REQUIRE_SERVICES=1), and a Redis of
the test's own on another loopback port, stopped and restarted, for the outage behaviour."""

import shutil
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import redis
from fastapi.testclient import TestClient

from service.app import create_app
from service.materialization.via_feast import materialize
from service.online.stores.redis import OrderedRedisOnlineStore, OrderedRedisOnlineStoreConfig
from service.settings import Settings
from tests.conftest import REPLAY_NOW, copy_repo, require_services

pytestmark = pytest.mark.integration
WEATHER = dict(
    temp=50.0, dewp=40.0, humid=60.0, wind_dir=180.0, wind_speed=10.0, precip=0.0, pressure=1010.0, visib=10.0
)


def redis_up(port: int) -> bool:
    try:
        return bool(redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1).ping())
    except redis.exceptions.RedisError:
        return False


def redis_repo(built_repo: Path, dest: Path, port: int) -> Path:
    """A copy of the built repo with a fresh registry, a unique project and the ordered Redis store."""
    copy_repo(built_repo, dest, ignore=("training_sets", "registry.db", "online_store.db"))
    yaml = (dest / "feature_store.yaml").read_text()
    online = yaml[yaml.index("online_store:") : yaml.index("offline_store:")]
    yaml = yaml.replace(
        online,
        "online_store:\n  type: service.online.stores.redis.OrderedRedisOnlineStore\n"
        f'  connection_string: "127.0.0.1:{port}"\n',
    )
    yaml = yaml.replace("project: feastline", f"project: t_{uuid.uuid4().hex[:8]}")
    (dest / "feature_store.yaml").write_text(yaml)
    feast = Path(sys.executable).parent / "feast"
    subprocess.run([str(feast), "-c", str(dest), "apply"], check=True, capture_output=True)
    return dest


@pytest.fixture(scope="module")
def shared_redis_repo(built_repo, tmp_path_factory):
    if not redis_up(6379):
        message = "Redis not reachable at 127.0.0.1:6379"
        if require_services():
            pytest.fail(message + " (FEASTLINE_REQUIRE_SERVICES=1)")
        pytest.skip(message)
    repo = redis_repo(built_repo, tmp_path_factory.mktemp("redis") / "repo", 6379)
    materialize(repo, datetime(2012, 12, 1, tzinfo=UTC), REPLAY_NOW)
    yield repo
    project = (repo / "feature_store.yaml").read_text().split("project: ")[1].split()[0]
    r = redis.Redis(host="127.0.0.1", port=6379)
    for key in r.scan_iter(match=f"*{project}*".encode()):
        r.delete(key)


def table(body):
    return {n: r for n, r in zip(body["metadata"]["feature_names"], body["results"], strict=True)}


def test_latest_materialized_values_from_redis(shared_redis_repo):
    weather = pd.read_parquet(shared_redis_repo / "data" / "origin_weather.parquet")
    last = weather[weather.origin == "EWR"].sort_values("event_timestamp").iloc[-1]
    with TestClient(create_app(Settings(repo=shared_redis_repo, now=REPLAY_NOW))) as c:
        body = c.post(
            "/get-online-features",
            json={"feature_service": "delay_model_v1", "entities": {"origin": ["EWR"], "carrier": ["UA"]}},
        )
        assert body.status_code == 200, body.text
        t = table(body.json())
    assert t["temp"]["values"] == [pytest.approx(last.temp)] and t["temp"]["statuses"] == ["PRESENT"]
    assert t["flights_7d"]["statuses"] == ["PRESENT"]


def test_ttl_on_redis(shared_redis_repo):
    stale = last_weather(shared_redis_repo) + pd.Timedelta(hours=5)
    with TestClient(create_app(Settings(repo=shared_redis_repo, now=stale.to_pydatetime()))) as c:
        t = table(
            c.post(
                "/get-online-features", json={"features": ["origin_weather:temp"], "entities": {"origin": ["EWR"]}}
            ).json()
        )
    assert t["temp"]["statuses"] == ["OUTSIDE_MAX_AGE"] and t["temp"]["values"] == [None]


def last_weather(repo):
    weather = pd.read_parquet(repo / "data" / "origin_weather.parquet")
    return weather[weather.origin == "EWR"].event_timestamp.max()


def test_ordered_pushes_and_quarantine_on_redis(shared_redis_repo):
    def push(rows):
        return c.post(
            "/push", json={"push_source_name": "weather_push", "df": {k: [r[k] for r in rows] for k in rows[0]}}
        )

    def fresh(origin):
        return table(
            c.post(
                "/get-online-features",
                json={"features": ["origin_weather_fresh:temp"], "entities": {"origin": [origin]}},
            ).json()
        )["temp"]

    with TestClient(create_app(Settings(repo=shared_redis_repo, now=REPLAY_NOW))) as c:
        assert (
            push([{"origin": "EWR", "event_timestamp": "2013-12-30T22:00:00Z", **WEATHER, "temp": 30.0}]).status_code
            == 200
        )
        assert (
            push([{"origin": "EWR", "event_timestamp": "2013-12-30T20:00:00Z", **WEATHER, "temp": 10.0}]).status_code
            == 200
        )
        assert fresh("EWR")["values"] == [30.0]
        both = [
            {"origin": "JFK", "event_timestamp": "2013-12-30T22:00:00Z", **WEATHER, "temp": 31.0},
            {"origin": "JFK", "event_timestamp": "2013-12-30T21:00:00Z", **WEATHER, "temp": 11.0},
            {"origin": "LGA", "event_timestamp": "2013-12-30T21:00:00Z", **WEATHER, "wind_speed": 999.0},
        ]
        answer = push(both).json()
        assert answer["rows_accepted"] == 2 and answer["quarantined"][0]["row"] == 2
        assert fresh("JFK")["values"] == [31.0]
        assert fresh("LGA")["statuses"] == ["NOT_FOUND"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(port: int) -> subprocess.Popen:
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is not installed") if require_services() else pytest.skip("no redis-server binary")
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not redis_up(port):
        assert time.monotonic() < deadline and proc.poll() is None, "own redis-server did not start"
        time.sleep(0.05)
    return proc


def test_an_unreachable_store_is_503_with_retry_after_and_recovers(built_repo, tmp_path):
    port = free_port()
    proc = start_redis(port)
    try:
        repo = redis_repo(built_repo, tmp_path / "repo", port)
        materialize(repo, datetime(2013, 12, 1, tzinfo=UTC), datetime(2014, 1, 2, tzinfo=UTC))
        request = {"features": ["origin_weather:temp"], "entities": {"origin": ["EWR"]}}
        with TestClient(create_app(Settings(repo=repo, now=REPLAY_NOW))) as c:
            assert c.post("/get-online-features", json=request).json()["results"][1]["statuses"] == ["PRESENT"]
            proc.terminate()
            proc.wait(10)
            for _ in range(3):
                down = c.post("/get-online-features", json=request)
                assert down.status_code == 503, down.text
                assert down.headers["content-type"] == "application/problem+json"
                assert int(down.headers["retry-after"]) > 0
            proc = start_redis(port)  # back, empty (no persistence): answers resume, no restart of feastline
            up = c.post("/get-online-features", json=request)
            assert up.status_code == 200 and up.json()["results"][1]["statuses"] == ["NOT_FOUND"]
            metrics = c.get("/metrics").text
            assert "feastline_online_store_errors_total" in metrics
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize(
    ("connection_string", "expected"),
    [
        ("127.0.0.1:1", {"socket_connect_timeout": 1.0, "socket_timeout": 2.0}),
        ("127.0.0.1:1,socket_timeout=5,socket_connect_timeout=3", {"socket_connect_timeout": 3, "socket_timeout": 5}),
    ],
)
def test_the_redis_client_fails_fast_unless_the_connection_string_says_otherwise(connection_string, expected):
    """redis-py's default (3 retries, exponential back-off) made a 503 take 3.5-9.5 s with Redis down."""
    store = OrderedRedisOnlineStore()
    client = store._get_client(OrderedRedisOnlineStoreConfig(connection_string=connection_string))
    settings = client.connection_pool.connection_kwargs
    assert {k: settings[k] for k in expected} == expected
    assert client.get_retry().get_retries() == 1
