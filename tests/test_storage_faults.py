"""Faults answered as faults: a full disk, a read-only file system, a database that refuses writes, a
folder that cannot be written. Each is a 503 ``application/problem+json`` saying what is wrong, with
``Retry-After`` only where the fault may clear by itself; no SQL and no absolute path in any body;
nothing half-written; ``/health/ready`` is 503 while a data folder cannot be written. A 500 (a bug)
answers a problem naming an error id, and the keep-alive connection stays usable.

In process, faults are raised where the OS raises them (``os.fsync`` of the file being written, the
database's own error); ``tests/test_storage_faults_real.py`` makes them for real (a read-only
remount, a full tmpfs) around a served repo.
"""

import errno
import os
import re
import socket
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import sqlalchemy.exc
import uvicorn
from fastapi.testclient import TestClient

from lineage import LineageStore
from service.app import create_app
from service.settings import Settings
from tests.conftest import REPLAY_NOW, copy_repo
from tests.live_server import free_port

PROBLEM_JSON = "application/problem+json"
ROWS = [{"origin": "EWR", "carrier": "UA", "event_timestamp": "2013-05-01T13:00:00Z", "label_delayed": 1}]
WEATHER = dict(dewp=40.0, humid=60.0, wind_dir=180.0, wind_speed=10.0, precip=0.0, pressure=1010.0, visib=10.0)
SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|PRAGMA)\b|\[SQL|sqlite3\.|OperationalError")


def assert_clean_problem(response: httpx.Response | Any, status: int, *, roots: tuple[Path, ...]) -> dict[str, Any]:
    """A problem+json of ``status`` whose body holds no SQL and no absolute path under ``roots``."""
    assert response.status_code == status, response.text[:1000]
    assert response.headers["content-type"] == PROBLEM_JSON
    text = response.text
    assert not SQL.search(text), text
    for root in roots:
        assert str(root) not in text and str(root.resolve()) not in text, text
    assert not re.search(r'"/(tmp|root|home|work)/', text), text
    return dict(response.json())


@pytest.fixture(scope="module")
def repo(built_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("faults") / "repo"
    copy_repo(built_repo, copy, ignore=("training_sets",))
    return copy


@pytest.fixture(scope="module")
def client(repo: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(repo=repo, now=REPLAY_NOW))) as c:
        yield c


def failing_fsync(code: int) -> Any:
    """``os.fsync`` that fails with ``code`` for regular files (as writes do on a full disk)."""
    real = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(code, os.strerror(code))
        real(fd)

    return fsync


def snapshot(repo: Path) -> dict[str, int]:
    """File name -> size under the repo's data folder (the DB files excluded: they change by reading)."""
    data = repo / "data"
    return {
        str(p.relative_to(data)): p.stat().st_size
        for p in data.rglob("*")
        if p.is_file() and "lineage.db" not in p.name and "online_store" not in p.name
    }


@pytest.mark.parametrize(
    ("code", "reason", "retry"),
    [(errno.ENOSPC, "no space left on the device", True), (errno.EROFS, "read-only file system", False)],
)
def test_a_training_set_on_a_failing_disk_is_a_503_and_stores_nothing(client, repo, monkeypatch, code, reason, retry):
    before_files = snapshot(repo)
    before_sets = len(client.app.state.catalog.all())
    monkeypatch.setattr(os, "fsync", failing_fsync(code))
    response = client.post("/training-sets", json={"feature_service": "delay_model_v1", "entity_rows": ROWS})
    monkeypatch.undo()
    problem = assert_clean_problem(response, 503, roots=(repo,))
    assert problem["title"] == "storage-unavailable" and reason in problem["detail"]
    assert "training-sets directory" in problem["detail"] and problem["reason"] == reason
    assert ("retry-after" in response.headers) is retry
    assert snapshot(repo) == before_files
    assert len(client.app.state.catalog.all()) == before_sets
    assert client.app.state.intents.all() == []
    events = client.get("/lineage/openlineage/events", params={"job": "training_set", "limit": 2}).json()
    assert [e["eventType"] for e in events] == ["FAIL", "START"]
    assert (
        client.post("/training-sets", json={"feature_service": "delay_model_v1", "entity_rows": ROWS}).status_code
        == 201
    )


def test_a_database_that_refuses_writes_is_a_503_without_sql(client, repo, monkeypatch):
    def refuse(*_: Any, **__: Any) -> Any:
        orig = sqlite3.OperationalError("attempt to write a readonly database")
        raise sqlalchemy.exc.OperationalError("INSERT INTO lineage_nodes (id) VALUES (?)", ("x",), orig)

    ts = client.post("/training-sets", json={"feature_service": "delay_model_v1", "entity_rows": ROWS}).json()["id"]
    monkeypatch.setattr(LineageStore, "write", refuse)
    response = client.post("/models", json={"name": "m", "version": "1", "training_set_id": ts})
    problem = assert_clean_problem(response, 503, roots=(repo,))
    assert problem["detail"].startswith("the lineage database: the database is read-only")
    assert "retry-after" not in response.headers
    before = snapshot(repo)
    response = client.post("/training-sets", json={"feature_service": "delay_model_v1", "entity_rows": ROWS})
    assert_clean_problem(response, 503, roots=(repo,))
    assert snapshot(repo) == before  # the files renamed into place are removed again


def push_body(to: str, n: int = 0) -> dict[str, Any]:
    stamp = f"2013-12-30T23:{n:02d}:00Z"
    df = {"origin": ["EWR"], "event_timestamp": [stamp], "temp": [40.0 + n], **{k: [v] for k, v in WEATHER.items()}}
    return {"push_source_name": "weather_push", "df": df, "to": to}


def online_temp(client: Any) -> Any:
    body = {"features": ["origin_weather_fresh:temp"], "entities": {"origin": ["EWR"]}}
    return client.post("/get-online-features", json=body).json()["results"][1]["values"][0]


def test_a_push_whose_offline_part_fails_says_what_was_written_and_a_resend_is_safe(client, repo, monkeypatch):
    offline = repo / "data" / "origin_weather_fresh.parquet"
    rows_before = len(pd.read_parquet(offline))
    monkeypatch.setattr(os, "fsync", failing_fsync(errno.ENOSPC))
    response = client.post("/push", json=push_body("online_and_offline", 7), headers={"Idempotency-Key": "p-7"})
    monkeypatch.undo()
    problem = assert_clean_problem(response, 503, roots=(repo,))
    assert problem["written"] == {"online": True, "offline": False}
    assert "written: online; not written: offline" in problem["detail"] and "resend the same push" in problem["detail"]
    assert "retry-after" in response.headers
    assert online_temp(client) == 47.0  # the online part is there
    assert len(pd.read_parquet(offline)) == rows_before  # the offline part is not
    assert [p.name for p in offline.parent.iterdir() if p.name.endswith(".tmp")] == []

    again = client.post("/push", json=push_body("online_and_offline", 7), headers={"Idempotency-Key": "p-7"})
    assert again.status_code == 200, again.text
    assert len(pd.read_parquet(offline)) == rows_before + 1
    replay = client.post("/push", json=push_body("online_and_offline", 7), headers={"Idempotency-Key": "p-7"})
    assert replay.status_code == 200 and replay.json() == {**again.json(), "replayed": True}
    assert len(pd.read_parquet(offline)) == rows_before + 1  # written once
    other = client.post("/push", json=push_body("online_and_offline", 8), headers={"Idempotency-Key": "p-7"})
    assert other.status_code == 422 and other.json()["field"] == "header.idempotency-key"


def test_readiness_is_503_while_the_training_sets_folder_cannot_be_written(repo, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the training-sets folder should be")
    settings = Settings(repo=repo, now=REPLAY_NOW, training_sets_dir=blocker / "training_sets")
    with TestClient(create_app(settings)) as client:
        response = client.get("/health/ready")
        problem = assert_clean_problem(response, 503, roots=(repo, tmp_path))
        assert problem["field"] == "training_sets_dir" and "not writable" in problem["detail"]
        assert "retry-after" not in response.headers  # someone has to fix it
        assert client.get("/health").status_code == 200  # liveness: restarting would not help
        response = client.post("/training-sets", json={"feature_service": "delay_model_v1", "entity_rows": ROWS})
        assert_clean_problem(response, 503, roots=(repo, tmp_path))
    blocker.unlink()
    with TestClient(create_app(settings)) as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 200 and ready.json()["storage"] == {
            "training_sets_dir": "writable",
            "data_dir": "writable",
        }


# -- a 500 over a real connection --------------------------------------------------------------------


class Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # in a thread: no signal handlers
        pass


def test_a_500_answers_a_problem_and_keeps_the_connection(repo):
    """A bug in a route: the answer is a problem with an error id (no exception text), and the next
    request on the same keep-alive connection is answered (before: the server closed the connection
    after the 500 without ``Connection: close``, and that next request failed)."""
    app = create_app(Settings(repo=repo, now=REPLAY_NOW))

    @app.get("/test-bug")
    def bug() -> None:
        raise RuntimeError(f"secret detail {repo}")

    port = free_port()
    server = Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive()
            time.sleep(0.05)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", limits=httpx.Limits(max_connections=1)) as client:
            first = client.get("/test-bug")
            problem = assert_clean_problem(first, 500, roots=(repo,))
            assert "secret" not in first.text and problem["error_id"] in problem["detail"]
            assert first.headers.get("connection") != "close"
            second = client.get("/health")
            assert second.status_code == 200
            assert second.extensions["network_stream"] is first.extensions["network_stream"]  # the same connection
        with socket.create_connection(("127.0.0.1", port)) as raw:  # and byte by byte, without a client's retries
            raw.sendall(b"GET /test-bug HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            raw.settimeout(10)
            received = b""
            while received.count(b"HTTP/1.1 ") < 2 or not received.rstrip().endswith(b"}"):
                chunk = raw.recv(65536)
                assert chunk, f"connection closed after: {received[:300]!r}"
                received += chunk
        assert received.startswith(b"HTTP/1.1 500") and b"HTTP/1.1 200" in received
    finally:
        server.should_exit = True
        thread.join(timeout=30)
