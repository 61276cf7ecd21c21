"""``POST /models`` under concurrency: registrations of one name@version on different training sets,
all in flight at once, make exactly one model (SQLite and, marked integration, PostgreSQL)."""

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest

from lineage import LineageStore
from service.app import create_app
from service.settings import Settings
from tests.conftest import REPLAY_NOW, NoServerErrorClient
from tests.lineage.conftest import PG_DSN, PG_URL, postgres_url  # noqa: F401 -- the fixture
from tests.test_models import make_training_set

WRITERS = 4
MODEL = "model:race@1"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def lineage_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh lineage database holding the built repo's first apply: a SQLite file, or a PostgreSQL
    schema of its own in the test database (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'lineage.db'}"
        return
    request.getfixturevalue("postgres_url")
    schema = f"models_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def client(built_repo: Path, lineage_url: str, tmp_path: Path) -> Iterator[NoServerErrorClient]:
    built = Settings(repo=built_repo)
    with LineageStore(built.lineage_database_url) as source, LineageStore(lineage_url) as target:
        first = source.load_graph(as_of=1)
        target.record_version(first.nodes(), first.edges())
    settings = Settings(repo=built_repo, now=REPLAY_NOW, lineage_url=lineage_url, training_sets_dir=tmp_path / "ts")
    with NoServerErrorClient(create_app(settings)) as c:
        yield c


def test_concurrent_registrations_make_one_model(client: NoServerErrorClient, monkeypatch: pytest.MonkeyPatch) -> None:
    sets = [make_training_set(client, "delay_model_v1") for _ in range(WRITERS)]
    catalog = client.app.state.catalog  # type: ignore[attr-defined]
    barrier = threading.Barrier(WRITERS)
    original = catalog.get

    def all_at_once(ts_id: str) -> Any:  # every request has passed validation before any goes on
        barrier.wait(timeout=30)
        return original(ts_id)

    monkeypatch.setattr(catalog, "get", all_at_once)

    def register(ts: str) -> Any:
        return client.post("/models", json={"name": "race", "version": "1", "training_set_id": ts, "metrics": {}})

    with ThreadPoolExecutor(WRITERS) as pool:
        responses = list(pool.map(register, sets))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * (WRITERS - 1), [r.text for r in responses]
    winner = next(ts for ts, r in zip(sets, responses, strict=True) if r.status_code == 201)
    for r in responses:
        if r.status_code == 409:
            problem = r.json()
            assert r.headers["content-type"] == "application/problem+json"
            assert problem["title"] == "model-version-conflict" and problem["field"] == "version"
            assert problem["registered_on"] == winner and problem["model"] == MODEL

    assert [m["id"] for m in client.get("/models").json()].count(MODEL) == 1
    assert client.get("/models/race/1").json()["attributes"]["training_set_id"] == winner
    upstream = client.get(f"/lineage/nodes/{MODEL}/upstream", params={"depth": 1}).json()
    into_model = [e for e in upstream["edges"] if e["target"] == MODEL]
    assert into_model == [{"source": f"training_set:{winner}", "target": MODEL, "relation": "trained_on"}]
