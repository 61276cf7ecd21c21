"""Paths relative to their root: a byte-identical copy of a repo, served from another folder, reproduces
its training sets (``identical: true``), a moved repo keeps them, and a catalog stored with absolute
paths (before paths were relative) is migrated at start."""

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from tests.conftest import REPLAY_NOW, copy_repo

ROWS = [
    {"origin": "LGA", "carrier": "DL", "event_timestamp": "2013-06-03T15:30:00Z", "label_delayed": 1},
    {"origin": "JFK", "carrier": "B6", "event_timestamp": "2013-06-04T09:30:00Z", "label_delayed": 0},
]


def serve(repo: Path) -> TestClient:
    return TestClient(create_app(Settings(repo=repo, now=REPLAY_NOW)))


@pytest.fixture(scope="module")
def made_once(built_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], bytes]:
    repo = tmp_path_factory.mktemp("relative") / "repo"
    copy_repo(built_repo, repo, ignore=("training_sets",))
    with serve(repo) as client:
        created = client.post("/training-sets", json={"feature_service": "delay_model_v1", "entity_rows": ROWS})
        assert created.status_code == 201, created.text
        ts_id = created.json()["id"]
        meta = client.get(f"/training-sets/{ts_id}").json()
        data = client.get(f"/training-sets/{ts_id}/data").content
    return repo, meta, data


@pytest.fixture
def made(made_once: tuple[Path, dict[str, Any], bytes], tmp_path: Path) -> tuple[Path, dict[str, Any], bytes]:
    """A private repo holding one new training set: (repo, its metadata, its data as answered)."""
    original, meta, data = made_once
    repo = tmp_path / "a" / "repo"
    copy_repo(original, repo)
    return repo, meta, data


def check_served(repo: Path, meta: dict[str, Any], data: bytes) -> None:
    with serve(repo) as client:
        ts_id = meta["id"]
        assert client.get(f"/training-sets/{ts_id}").json() == meta
        assert client.get(f"/training-sets/{ts_id}/data").content == data
        again = client.post(f"/training-sets/{ts_id}/reproduce").json()
        assert again["identical"] is True, again
        assert again["fingerprint_now"] == meta["fingerprint"]
        node = client.get(f"/lineage/nodes/training_set:{ts_id}").json()
        assert node["attributes"]["data_path"] == f"{ts_id}.parquet"
        assert node["attributes"]["fingerprint"] == meta["fingerprint"] == node["definition_hash"]


def test_paths_are_stored_relative_to_their_root(made):
    repo, meta, _ = made
    assert meta["data_path"] == f"{meta['id']}.parquet" and meta["entity_path"] == f"{meta['id']}.entities.parquet"
    assert sorted(meta["source_hashes"]) == ["data/carrier_daily_stats.parquet", "data/origin_weather.parquet"]
    assert str(repo) not in json.dumps(meta)


def test_a_copy_elsewhere_reproduces_and_a_moved_repo_keeps_its_sets(made, tmp_path):
    repo, meta, data = made
    copy = tmp_path / "b" / "elsewhere" / "repo"
    shutil.copytree(repo, copy)  # byte for byte, training sets and lineage database included (not served now)
    check_served(copy, meta, data)
    moved = tmp_path / "c" / "moved"
    moved.parent.mkdir()
    repo.rename(moved)
    check_served(moved, meta, data)


def old_fingerprint(meta: dict[str, Any], sources: dict[str, str]) -> str:
    """The fingerprint formula (default options), computed here independently."""
    spec = {
        "entity_sha256": meta["entity_sha256"],
        "features": meta["features"],
        "views": meta["view_hashes"],
        "sources": sources,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def test_a_catalog_with_absolute_paths_is_migrated_at_start(made, tmp_path):
    """A set stored as before (absolute file paths and source keys, a fingerprint over those keys),
    then the repo moved: at start its row and lineage node are rewritten relative, the fingerprint
    recomputed over the relative keys (the one the set would have had), and it reproduces."""
    repo, meta, data = made
    ts_id, root = meta["id"], repo / "data" / "training_sets"
    absolute = {str(repo / key): value for key, value in meta["source_hashes"].items()}
    legacy_fp = old_fingerprint(meta, absolute)
    assert old_fingerprint(meta, meta["source_hashes"]) == meta["fingerprint"]
    db = sqlite3.connect(repo / "data" / "lineage.db")
    with db:
        db.execute(
            "UPDATE training_sets SET data_path = ?, entity_path = ?, source_hashes = ?, fingerprint = ? WHERE id = ?",
            (
                str(root / f"{ts_id}.parquet"),
                str(root / f"{ts_id}.entities.parquet"),
                json.dumps(absolute),
                legacy_fp,
                ts_id,
            ),
        )
        (attributes,) = db.execute(
            "SELECT attributes FROM lineage_nodes WHERE id = ?", (f"training_set:{ts_id}",)
        ).fetchone()
        legacy = {**json.loads(attributes), "data_path": str(root / f"{ts_id}.parquet"), "fingerprint": legacy_fp}
        legacy |= {"entity_path": str(root / f"{ts_id}.entities.parquet"), "source_hashes": absolute}
        db.execute(
            "UPDATE lineage_nodes SET attributes = ?, definition_hash = ? WHERE id = ?",
            (json.dumps(legacy, sort_keys=True), legacy_fp, f"training_set:{ts_id}"),
        )
    db.close()
    moved = tmp_path / "c" / "moved"
    moved.parent.mkdir()
    repo.rename(moved)
    check_served(moved, meta, data)
