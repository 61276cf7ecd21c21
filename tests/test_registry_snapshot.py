"""The registry under concurrent writes: requests read it from immutable snapshots, and every write
feastline causes (materialization intervals, apply) replaces the file atomically.

Before, a materialization job rewrote ``registry.db`` in place while request threads re-read it:
they parsed a truncated file (``DecodeError``: 500) or an empty/partial registry (404 for a feature
service that exists, 422 for valid push rows). The race tests below hammer exactly that: registry
writes every 0.2 s (and, at the registry level, as fast as they go) while requests read and push.
"""

import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from tests.conftest import REPLAY_NOW, copy_repo

RACE_SECONDS = 4.0
WEATHER = dict(
    temp=50.0, dewp=40.0, humid=60.0, wind_dir=180.0, wind_speed=10.0, precip=0.0, pressure=1010.0, visib=10.0
)


@pytest.fixture
def repo(built_repo: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "repo"
    copy_repo(built_repo, copy, ignore=("training_sets",))
    return copy


def z(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def test_requests_never_see_a_registry_being_rewritten_by_materialization(repo):
    """Materialization every 0.2 s (each job commits its views' intervals to the registry) while
    pushes, online reads and training sets run: every answer is the expected success."""
    stop = threading.Event()
    failures: Counter[str] = Counter()
    done: Counter[str] = Counter()
    jobs: list[str] = []
    examples: list[str] = []

    def fail(kind: str, text: str) -> None:
        failures[kind] += 1
        if len(examples) < 10:
            examples.append(f"{kind}: {text[:300]}")

    with TestClient(create_app(Settings(repo=repo, now=REPLAY_NOW)), raise_server_exceptions=False) as client:

        def materializer() -> None:
            while not stop.is_set():
                r = client.post("/materialize-incremental", json={"lookback_seconds": 3600})
                if r.status_code != 202:
                    fail(f"materialize {r.status_code}", r.text)
                else:
                    jobs.append(r.json()["id"])
                time.sleep(0.2)

        def pusher(origin: str) -> None:
            ts = REPLAY_NOW - timedelta(hours=2)
            while not stop.is_set():
                ts += timedelta(seconds=1)
                df = {"origin": [origin], "event_timestamp": [z(ts)], **{k: [v] for k, v in WEATHER.items()}}
                r = client.post("/push", json={"push_source_name": "weather_push", "df": df, "to": "online"})
                if r.status_code != 200 or r.json()["rows_accepted"] != 1:
                    fail(f"push {r.status_code}", r.text)
                done["push"] += 1

        def reader() -> None:
            body = {"feature_service": "delay_model_v1", "entities": {"origin": ["EWR"], "carrier": ["UA"]}}
            while not stop.is_set():
                r = client.post("/get-online-features", json=body)
                if r.status_code != 200:
                    fail(f"online {r.status_code}", r.text)
                done["online"] += 1

        def trainer() -> None:
            rows = [{"origin": "EWR", "carrier": "UA", "event_timestamp": "2013-05-01T13:00:00Z"}] * 5
            while not stop.is_set():
                r = client.post("/training-sets", json={"feature_service": "delay_model_v1", "entity_rows": rows})
                if r.status_code != 201:
                    fail(f"training set {r.status_code}", r.text)
                done["training set"] += 1

        threads = [
            threading.Thread(target=materializer),
            threading.Thread(target=pusher, args=("EWR",)),
            threading.Thread(target=pusher, args=("JFK",)),
            threading.Thread(target=reader),
            threading.Thread(target=reader),
            threading.Thread(target=trainer),
        ]
        for t in threads:
            t.start()
        time.sleep(RACE_SECONDS)
        stop.set()
        for t in threads:
            t.join(60)
        deadline = time.monotonic() + 120
        statuses = Counter()
        for job in jobs:
            while (status := client.get(f"/jobs/{job}").json()["status"]) in ("queued", "running"):
                assert time.monotonic() < deadline, "materialization jobs did not finish"
                time.sleep(0.1)
            statuses[status] += 1
    assert len(jobs) >= 10 and all(done[k] > 0 for k in ("push", "online", "training set")), (jobs, done)
    assert not failures, f"{dict(failures)} of {dict(done)}; e.g.\n" + "\n".join(examples)
    assert statuses == {"completed": len(jobs)}, statuses


def view_count(proto) -> int:
    return len(proto.feature_views)


def test_interval_commits_replace_the_file_whole_for_any_reader(repo):
    """A writer committing intervals as fast as it can (Feast's ``apply_materialization``, as the
    materializer calls it) and readers parsing the file with protobuf directly, as Feast's own reader
    does: every read is a whole registry (the file is renamed into place, never written in place)."""
    from feast.protos.feast.core.Registry_pb2 import Registry as RegistryProto

    from service.registry import open_feature_store

    path = repo / "data" / "registry.db"
    views = view_count(RegistryProto.FromString(path.read_bytes()))
    writer_store = open_feature_store(repo)
    fv = writer_store.get_feature_view("origin_weather")
    stop = threading.Event()
    bad: list[str] = []
    reads = Counter()
    commits = 0

    def reader() -> None:
        while not stop.is_set():
            try:
                n = view_count(RegistryProto.FromString(path.read_bytes()))
            except Exception as exc:  # noqa: BLE001 - any failure is what this test looks for
                bad.append(f"{type(exc).__name__}: {exc}")
                continue
            reads["ok" if n == views else "partial"] += 1

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    start = datetime(2013, 1, 1, tzinfo=UTC)
    deadline = time.monotonic() + 2.0
    try:
        while time.monotonic() < deadline:
            writer_store.registry.apply_materialization(fv, writer_store.project, start, start + timedelta(hours=1))
            commits += 1
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert commits > 20 and reads["ok"] > 100, (commits, reads)
    assert not bad and reads["partial"] == 0, (bad[:5], reads)
    fresh = open_feature_store(repo).get_feature_view("origin_weather")
    assert len(fresh.materialization_intervals) == len(fv.materialization_intervals) + commits


def test_a_snapshot_never_changes_under_its_reader(repo):
    from service.registry import open_feature_store

    store = open_feature_store(repo)
    before = store.registry.snapshot()
    frozen = before.proto.SerializeToString()
    fv = store.get_feature_view("origin_weather")
    start = datetime(2013, 1, 1, tzinfo=UTC)
    store.registry.apply_materialization(fv, store.project, start, start + timedelta(hours=1))
    after = store.registry.snapshot()
    assert before.proto.SerializeToString() == frozen  # the old snapshot is untouched
    assert after is not before and after.proto.version_id != before.proto.version_id
    count = len(store.get_feature_view("origin_weather").materialization_intervals)
    assert count == len(fv.materialization_intervals) + 1


def test_a_file_written_in_place_is_taken_only_once_whole(repo):
    """Another program writing the registry in place (Feast's own store does): while the file is empty,
    cut short or garbage, the last whole version keeps being served; a whole new version is taken."""
    from service.registry import open_feature_store

    path = repo / "data" / "registry.db"
    store = open_feature_store(repo)
    whole = path.read_bytes()
    services = sorted(fs.name for fs in store.list_feature_services())
    for broken in (b"", whole[: len(whole) // 3], b"\xff" * 100):
        with open(path, "r+b") as f:  # in place: same inode, as Feast's FileRegistryStore writes
            f.truncate(0)
            f.write(broken)
        assert sorted(fs.name for fs in store.list_feature_services()) == services
        assert len(store.list_feature_views()) == 4
    writer = open_feature_store(repo)
    with open(path, "r+b") as f:
        f.truncate(0)
        f.write(whole)
    fv = writer.get_feature_view("origin_weather")
    start = datetime(2013, 1, 1, tzinfo=UTC)
    writer.registry.apply_materialization(fv, writer.project, start, start + timedelta(hours=1))
    count = len(fv.materialization_intervals) + 1
    assert len(store.get_feature_view("origin_weather").materialization_intervals) == count


def test_a_restored_registry_is_seen_although_its_mtime_is_older(repo):
    """``feastline apply`` restores the previous registry on failure with ``copy2`` (the backup's old
    modification time): Feast's mtime check missed that; the snapshot's file identity does not."""
    from service.registry import open_feature_store
    from service.repo_apply import RegistryBackup

    path = repo / "data" / "registry.db"
    store = open_feature_store(repo)
    before = len(store.get_feature_view("origin_weather").materialization_intervals)
    backup = RegistryBackup(path)
    writer = open_feature_store(repo)
    fv = writer.get_feature_view("origin_weather")
    start = datetime(2013, 1, 1, tzinfo=UTC)
    writer.registry.apply_materialization(fv, writer.project, start, start + timedelta(hours=1))
    assert len(store.get_feature_view("origin_weather").materialization_intervals) == before + 1
    backup.restore()
    backup.discard()
    assert len(store.get_feature_view("origin_weather").materialization_intervals) == before


def test_concurrent_committers_lose_no_interval(repo):
    """Two stores (as a job and ``feastline materialize`` in another process) committing intervals at
    once: each commit starts from the file's latest version under the registry lock."""
    from service.registry import open_feature_store

    first = open_feature_store(repo).get_feature_view("origin_weather")
    per_thread = 15

    def commit(offset: int) -> None:
        store = open_feature_store(repo)
        fv = store.get_feature_view("origin_weather")
        for i in range(per_thread):
            start = datetime(2013, 1, 1, tzinfo=UTC) + timedelta(days=offset * 100 + i)
            store.registry.apply_materialization(fv, store.project, start, start + timedelta(hours=1))

    threads = [threading.Thread(target=commit, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    intervals = open_feature_store(repo).get_feature_view("origin_weather").materialization_intervals
    assert len(intervals) == len(first.materialization_intervals) + 2 * per_thread
