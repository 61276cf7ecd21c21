"""Nothing stalls the event loop: blocking work runs on bounded worker pools, bodies are bounded.

Before, online reads (the store call included) and JSON parsing ran on the event loop: with the online
store frozen, ``/health`` (liveness) waited as long as the store did; a big body was read and parsed
whole before its 413. Here, with the store frozen (an SQLite online store held by an exclusive lock;
a private Redis stopped with SIGSTOP), ``/health`` answers while the store is still frozen, online
reads answer 503 + ``Retry-After`` at ``FEASTLINE_STORE_TIMEOUT_SECONDS``, a full pool sheds at once
(503), and bodies over a route's limit are refused before they are read (413); slow ones get a 408.
"""

import asyncio
import inspect
import os
import signal
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from service.workers import Overloaded, WorkerPool
from tests.conftest import REPLAY_NOW, copy_repo
from tests.live_server import live_server

ONLINE = {"feature_service": "delay_model_v1", "entities": {"origin": ["EWR"], "carrier": ["UA"]}}
# they hand each blocking step to a pool
ASYNC_ROUTES = {"get_online_features", "push", "post_training_set", "post_drift"}
HEALTH_BUDGET_S = 1.0  # /health while the store is frozen: well inside a Kubernetes probe's 1 s timeout


@pytest.fixture(scope="module")
def repo(built_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("nonblocking") / "repo"
    copy_repo(built_repo, copy, ignore=("training_sets",))
    return copy


def app_client(repo: Path, **settings: object) -> TestClient:
    # raise_server_exceptions=False: a 5xx is an answer to check here, not an exception in the test thread
    return TestClient(create_app(Settings(repo=repo, now=REPLAY_NOW, **settings)), raise_server_exceptions=False)


def test_every_route_keeps_its_blocking_work_off_the_event_loop(client):
    """Each route is a plain function run on a worker pool (``WorkerRoute``), or one of the ``async`` routes
    that hand every blocking step to a pool themselves; no dependency is a plain function (FastAPI would run
    it in its own unbounded thread pool)."""

    def dependencies(dependant) -> Iterator:  # type: ignore[no-untyped-def]
        for dep in dependant.dependencies:
            yield dep
            yield from dependencies(dep)

    def api_routes(routes) -> Iterator[APIRoute]:  # type: ignore[no-untyped-def]
        for r in routes:  # FastAPI keeps an included router whole (an _IncludedRouter with its original_router)
            if isinstance(r, APIRoute):
                yield r
            elif hasattr(r, "original_router"):
                yield from api_routes(r.original_router.routes)

    offenders = []
    app = client.app
    docs = {"/docs", "/redoc", "/docs/oauth2-redirect"}  # fastapi-offline's static pages (its own routes)
    routes = [r for r in api_routes(app.routes) if r.path not in docs]  # static HTML, nothing that blocks
    assert len(routes) > 20
    for route in routes:
        name = route.endpoint.__name__
        if not hasattr(route.endpoint, "feastline_pool") and name not in ASYNC_ROUTES:
            offenders.append(f"{route.path}: {name} runs on the event loop")
        for dep in dependencies(route.dependant):
            if dep.call is not None and not inspect.iscoroutinefunction(dep.call):
                offenders.append(f"{route.path}: dependency {dep.call.__name__} is a plain function")
    assert offenders == []
    pools = {r.path: r.endpoint.feastline_pool for r in routes if hasattr(r.endpoint, "feastline_pool")}
    assert pools["/health"] == pools["/health/ready"] == "health"
    assert pools["/lineage/nodes/{node_id}/upstream"] == "work"


def timed(call) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def frozen_store_checks(client: TestClient, freeze, thaw, store_timeout: float) -> None:  # type: ignore[no-untyped-def]
    """With the store frozen: online reads in flight, ``/health`` answers within the budget while they are
    still waiting, then they answer 503 + Retry-After at the store timeout; thawed, reads answer 200."""
    assert client.post("/get-online-features", json=ONLINE).status_code == 200  # warm: connection open
    freeze()
    answers: list[httpx.Response] = []
    try:
        readers = [
            threading.Thread(target=lambda: answers.append(client.post("/get-online-features", json=ONLINE)))
            for _ in range(4)
        ]
        began = time.monotonic()
        for t in readers:
            t.start()
        pool = client.app.state.workers.online
        while pool.in_flight < 4:
            assert time.monotonic() - began < store_timeout, "the online reads never reached the store"
            time.sleep(0.01)
        elapsed, health = timed(lambda: client.get("/health"))
        still_frozen = not answers  # no read has come back: the store was frozen the whole time
        assert health.status_code == 200, health.text
        assert elapsed < HEALTH_BUDGET_S, f"/health took {elapsed:.2f} s with the store frozen"
        assert still_frozen, "a read answered before /health: the store was not frozen"
        for t in readers:
            t.join(30)
        waited = time.monotonic() - began
    finally:
        thaw()
    assert [a.status_code for a in answers] == [503] * 4, [a.text for a in answers]
    assert all(int(a.headers["retry-after"]) > 0 for a in answers)
    assert all(a.headers["content-type"] == "application/problem+json" for a in answers)
    assert waited < store_timeout + 3, waited
    deadline = time.monotonic() + 30
    while (after := client.post("/get-online-features", json=ONLINE)).status_code != 200:
        assert time.monotonic() < deadline, after.text  # the stuck threads come back, the pool with them
        time.sleep(0.2)


def test_health_answers_while_the_sqlite_online_store_is_locked(repo):
    """An exclusive lock on the SQLite online store (a writer that never commits): reads wait on it."""
    lock = sqlite3.connect(repo / "data" / "online_store.db", isolation_level=None, check_same_thread=False)

    def freeze() -> None:
        lock.execute("BEGIN EXCLUSIVE")

    def thaw() -> None:
        if lock.in_transaction:
            lock.execute("ROLLBACK")

    with app_client(repo, store_timeout_seconds=1.0) as client:
        frozen_store_checks(client, freeze, thaw, store_timeout=1.0)
    lock.close()


@pytest.mark.integration
def test_health_answers_while_redis_is_frozen(built_repo, tmp_path):
    """A private redis-server stopped with SIGSTOP: connections stay open, nothing answers."""
    from service.materialization.via_feast import materialize
    from tests.online.test_redis import free_port, redis_repo, start_redis

    port = free_port()
    proc = start_redis(port)
    try:
        repo = redis_repo(built_repo, tmp_path / "repo", port)
        materialize(repo, datetime(2013, 12, 1, tzinfo=UTC), REPLAY_NOW)
        with app_client(repo, store_timeout_seconds=1.0) as client:
            frozen_store_checks(
                client,
                lambda: os.kill(proc.pid, signal.SIGSTOP),
                lambda: os.kill(proc.pid, signal.SIGCONT),
                store_timeout=1.0,
            )
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.terminate()
        proc.wait(10)


def test_a_full_pool_sheds_at_once_with_503_and_retry_after(repo):
    """One online thread, no queue, the store locked: the second read is refused at once, undone."""
    lock = sqlite3.connect(repo / "data" / "online_store.db", isolation_level=None, check_same_thread=False)
    with app_client(repo, online_workers=1, online_queue=0, store_timeout_seconds=2.0) as client:
        assert client.post("/get-online-features", json=ONLINE).status_code == 200
        lock.execute("BEGIN EXCLUSIVE")
        try:
            first = threading.Thread(target=lambda: client.post("/get-online-features", json=ONLINE))
            first.start()
            while client.app.state.workers.online.in_flight < 1:
                time.sleep(0.01)
            elapsed, shed = timed(lambda: client.post("/get-online-features", json=ONLINE))
            health = client.get("/health")
        finally:
            lock.execute("ROLLBACK")
            first.join(30)
    lock.close()
    assert shed.status_code == 503 and elapsed < 0.5, (elapsed, shed.text)
    body = shed.json()
    assert body["title"] == "overloaded" and body["pool"] == "online" and body["capacity"] == 1
    assert int(shed.headers["retry-after"]) > 0
    assert health.status_code == 200


def test_a_request_that_waits_too_long_for_a_thread_is_dropped_unstarted():
    ran: list[int] = []
    release = threading.Event()

    async def scenario() -> None:
        pool = WorkerPool("work", threads=1, queue=4, retry_after=3, queue_timeout=0.2)
        pool.start()
        try:
            blocker = asyncio.ensure_future(pool.run(release.wait))
            await asyncio.sleep(0.05)
            with pytest.raises(Overloaded) as waited:
                await pool.run(ran.append, 1)  # waits 0.2 s behind the blocker, then is dropped
            assert waited.value.waited == 0.2 and waited.value.retry_after == 3
            release.set()
            await blocker
            await asyncio.sleep(0.05)
            assert ran == [] and pool.in_flight == 0  # the dropped call never ran; its slot is free
            assert await pool.run(lambda: 7) == 7
        finally:
            pool.shutdown()

    asyncio.run(scenario())


def test_a_read_past_its_timeout_answers_and_keeps_its_slot_until_it_returns():
    release = threading.Event()

    async def scenario() -> None:
        pool = WorkerPool("online", threads=1, queue=0, retry_after=1)
        pool.start()
        try:
            with pytest.raises(TimeoutError):
                await pool.run(release.wait, timeout=0.1)
            assert pool.in_flight == 1  # still running on its thread: counted
            with pytest.raises(Overloaded):
                await pool.run(lambda: None)
            release.set()
            await asyncio.sleep(0.05)
            assert pool.in_flight == 0
        finally:
            pool.shutdown()

    asyncio.run(scenario())


def test_an_online_batch_over_the_cap_is_413_naming_entities(repo):
    with app_client(repo, max_online_entities=50) as client:
        ok = client.post(
            "/get-online-features", json={**ONLINE, "entities": {"origin": ["EWR"] * 50, "carrier": ["UA"] * 50}}
        )
        over = client.post(
            "/get-online-features", json={**ONLINE, "entities": {"origin": ["EWR"] * 51, "carrier": ["UA"] * 51}}
        )
    assert ok.status_code == 200
    assert over.status_code == 413, over.text
    body = over.json()
    assert (body["field"], body["entities"], body["limit"]) == ("entities", 51, 50)
    assert "FEASTLINE_MAX_ONLINE_ENTITIES" in body["detail"]


@pytest.mark.parametrize(
    ("path", "content_type", "setting"),
    [
        ("/get-online-features", "application/json", "max_online_body_bytes"),
        ("/push", "application/json", "max_push_body_bytes"),
        ("/training-sets", "application/json", "max_training_set_json_bytes"),
        ("/training-sets", "application/vnd.apache.parquet", "max_training_set_table_bytes"),
        ("/models", "application/json", "max_body_bytes"),
        ("/materialize", "application/json", "max_body_bytes"),
    ],
)
def test_each_route_refuses_a_body_over_its_limit_with_413(repo, path, content_type, setting):
    limit = 1000
    with app_client(repo, **{setting: limit}) as client:
        declared = client.post(path, content=b" " * (limit + 1), headers={"content-type": content_type})
        chunked = client.post(path, content=iter([b" " * 600, b" " * 600]), headers={"content-type": content_type})
        within = client.post(path, content=b"{" + b" " * (limit - 2) + b"}", headers={"content-type": content_type})
    for answer in (declared, chunked):
        assert answer.status_code == 413, answer.text
        body = answer.json()
        assert body["field"] == "body" and body["limit_bytes"] == limit
        assert body["setting"] == f"FEASTLINE_{setting.upper()}"
    assert declared.json()["size_bytes"] == limit + 1
    assert within.status_code not in (413, 500), within.text  # within the limit: the route's own answer


def test_a_json_training_set_over_its_limit_is_told_to_send_parquet(repo):
    with app_client(repo, max_training_set_json_bytes=100) as client:
        answer = client.post("/training-sets", content=b" " * 101, headers={"content-type": "application/json"})
    assert answer.status_code == 413 and "Parquet" in answer.json()["detail"]


@pytest.fixture(scope="module")
def server(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``feastline serve`` on the repo with a 1 s body timeout and an 8 MiB JSON training-set limit."""
    log = tmp_path_factory.mktemp("server") / "server.log"
    env = {"FEASTLINE_BODY_TIMEOUT_SECONDS": "1", "FEASTLINE_MAX_TRAINING_SET_JSON_BYTES": str(8 << 20)}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with live_server(repo, log) as url:
            yield url
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def health_latencies(url: str, stop: threading.Event, out: list[float]) -> None:
    with httpx.Client(timeout=10) as c:
        while not stop.is_set():
            start = time.perf_counter()
            assert c.get(f"{url}/health").status_code == 200
            out.append(time.perf_counter() - start)
            time.sleep(0.01)


def test_a_big_body_is_413_before_it_is_read_and_health_stays_fast(server):
    """64 MiB of JSON to ``/training-sets`` (limit 8 MiB), with and without ``Content-Length``."""
    big = b'{"feature_service": "delay_model_v1", "entity_rows": [' + b'{"origin": "EWR"},' * (4 << 20) + b"{}]}"
    assert len(big) > 64 << 20
    latencies: list[float] = []
    stop = threading.Event()
    prober = threading.Thread(target=health_latencies, args=(server, stop, latencies))
    prober.start()
    try:
        time.sleep(0.2)
        headers = {"content-type": "application/json"}
        declared = httpx.post(f"{server}/training-sets", content=big, headers=headers, timeout=60)
        chunks = (big[i : i + (1 << 16)] for i in range(0, len(big), 1 << 16))
        chunked = httpx.post(f"{server}/training-sets", content=chunks, headers=headers, timeout=60)
        time.sleep(0.2)
    finally:
        stop.set()
        prober.join(30)
    for answer in (declared, chunked):
        assert answer.status_code == 413, answer.text
        assert answer.json()["limit_bytes"] == 8 << 20
    assert len(latencies) >= 10 and max(latencies) < HEALTH_BUDGET_S, sorted(latencies)[-5:]


def test_a_body_that_stops_arriving_is_408_and_the_connection_closed(server):
    port = int(server.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(
            b"POST /push HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"
        )
        start = time.monotonic()
        answer = b""
        while chunk := s.recv(65536):  # until the server closes the connection
            answer += chunk
        waited = time.monotonic() - start
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"connection: close" in head.lower()
    assert b'"field":"body"' in body and b"FEASTLINE_BODY_TIMEOUT_SECONDS" in body
    assert 0.9 < waited < 5, waited
