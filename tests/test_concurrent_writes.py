"""Eight concurrent writers on the SQLite lineage database (training sets, model registrations and
quarantine writes, all at once): every request succeeds, and nothing half-done is left behind.

Before WAL mode, a busy timeout on every engine and retries, 32 of 610 such requests failed with
``database is locked`` and each failed training set left two orphan Parquet files (issue #11).
"""

import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from lineage import LineageStore
from service.settings import Settings
from tests.conftest import copy_repo
from tests.live_server import live_server

WRITERS = 8
ROUNDS = int(os.environ.get("FEASTLINE_CONCURRENT_WRITE_ROUNDS", "4"))  # per writer; 3 writes each
ROWS = [
    {"origin": "EWR", "carrier": "UA", "event_timestamp": "2013-05-01T13:00:00Z", "label_delayed": 1},
    {"origin": "JFK", "carrier": "B6", "event_timestamp": "2013-05-01T09:30:00-04:00", "label_delayed": 0},
]
WEATHER = dict(temp=50.0, dewp=40.0, humid=60.0, wind_dir=180.0, precip=0.0, pressure=1010.0, visib=10.0)


@pytest.fixture
def repo(built_repo: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "repo"
    copy_repo(built_repo, copy, ignore=("training_sets",))
    return copy


def quarantine_push(n: int) -> dict[str, Any]:
    """A push to ``weather_push`` (quarantine policy) whose only row is rejected (wind 1048 mph)."""
    row = {"origin": "EWR", "event_timestamp": f"2013-12-30T{n % 24:02d}:00:00Z", **WEATHER, "wind_speed": 1048.0}
    return {"push_source_name": "weather_push", "df": {k: [v] for k, v in row.items()}, "to": "online"}


def test_eight_concurrent_writers_get_no_error(repo: Path, tmp_path: Path) -> None:
    """A real server (``feastline serve``): 8 clients, each a keep-alive connection of its own, write
    training sets, models and quarantined push rows at once; every answer is a success."""
    settings = Settings(repo=repo)
    counter = itertools.count()
    errors: list[str] = []
    made: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(WRITERS)

    with live_server(repo, tmp_path / "server.log") as url:
        seed = httpx.post(
            f"{url}/training-sets", json={"feature_service": "delay_model_v1", "entity_rows": ROWS}, timeout=60
        )
        assert seed.status_code == 201, seed.text
        seed_id = seed.json()["id"]
        quarantined_before = len(httpx.get(f"{url}/quarantine/weather_push", timeout=60).json()["rows"])
        sets_before = {r[0] for r in _rows(settings, "SELECT id FROM training_sets")} - {seed_id}

        def writer(w: int) -> None:
            with httpx.Client(base_url=url, timeout=60) as client:
                start.wait(timeout=30)
                for r in range(ROUNDS):
                    n = next(counter)
                    calls = (
                        (
                            "training set",
                            201,
                            "/training-sets",
                            {"feature_service": "delay_model_v1", "entity_rows": ROWS},
                        ),
                        ("model", 201, "/models", {"name": f"m{w}", "version": str(r), "training_set_id": seed_id}),
                        ("push", 200, "/push", quarantine_push(n)),
                    )
                    for what, ok, path, body in calls:
                        try:
                            response = client.post(path, json=body)
                        except httpx.TransportError as exc:  # e.g. the connection dropped after a 500
                            with lock:
                                errors.append(f"{what}: {type(exc).__name__}: {exc}")
                            continue
                        with lock:
                            if response.status_code != ok:
                                errors.append(f"{what} {response.status_code}: {response.text[:300]}")
                            elif what == "training set":
                                made.append(response.json()["id"])

        with ThreadPoolExecutor(WRITERS) as pool:
            list(pool.map(writer, range(WRITERS)))
        assert errors == []
        quarantined = httpx.get(f"{url}/quarantine/weather_push", timeout=60).json()["rows"]
        assert len(quarantined) - quarantined_before == WRITERS * ROUNDS
        models = {m["id"] for m in httpx.get(f"{url}/models", timeout=60).json()}
        assert {f"model:m{w}@{r}" for w in range(WRITERS) for r in range(ROUNDS)} <= models

    sets = {seed_id, *made}
    files = sorted(p.name for p in settings.training_sets_path.iterdir())
    assert files == sorted(f"{i}.{x}" for i in sets for x in ("parquet", "entities.parquet", "profile.json"))
    with LineageStore(settings.lineage_database_url) as lineage:
        nodes = {n.ref.name for n in lineage.load_graph().nodes() if str(n.ref.kind) == "training_set"}
    catalog = {r[0] for r in _rows(settings, "SELECT id FROM training_sets")} - sets_before
    nodes -= sets_before  # the copied repo's own sets (their files were not copied)
    assert catalog == nodes == sets
    assert _rows(settings, "PRAGMA journal_mode") == [("wal",)]


def _rows(settings: Settings, query: str) -> list[tuple[Any, ...]]:
    engine = create_engine(settings.lineage_database_url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(query))]
    finally:
        engine.dispose()
