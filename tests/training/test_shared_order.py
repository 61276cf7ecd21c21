"""The one order of feature rows (service/training/offline/order.py), end to end on a small repo built in
tmp_path: null ``created`` values, ties on event time, a row created after the entity time. Checked
against a brute-force reference written here: training sets under the created cut-off (a null
``created`` is excluded and counted in the audit) and with ``allow_created_after_entity`` (a null
``created`` is kept and ranks below a known one at a tie), and ``POST /materialize`` into the ordered
SQLite store then ``/get-online-features``, which must agree with the training set at the clock."""

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from service.app import create_app
from service.settings import Settings
from tests.conftest import NoServerErrorClient

NOW = datetime(2024, 1, 10, tzinfo=UTC)
T0 = datetime(2024, 1, 9, 10, tzinfo=UTC)
T1 = datetime(2024, 1, 9, 12, tzinfo=UTC)
AT = T1 + timedelta(minutes=30)  # the entity time of the training sets
TTL = timedelta(days=30)
DRIVERS = [1, 2, 3, 4, 5]

DEFINITIONS = """
from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource
from feast.types import Int64

driver = Entity(name="driver", join_keys=["driver_id"])
source = FileSource(
    name="stats_source", path="data/stats.parquet",
    timestamp_field="event_timestamp", created_timestamp_column="created",
)
stats = FeatureView(
    name="stats", entities=[driver], ttl=timedelta(days=30), source=source,
    schema=[Field(name="driver_id", dtype=Int64), Field(name="v", dtype=Int64)],
)
"""

STORE_YAML = """project: shared_order
provider: local
registry: data/registry.db
online_store:
  type: service.online.stores.sqlite.OrderedSqliteOnlineStore
  path: data/online_store.db
offline_store:
  type: service.training.offline.feast_store.FeastlineOfflineStore
entity_key_serialization_version: 3
auth:
  type: no_auth
"""

SCHEMA = pa.schema(
    [
        ("driver_id", pa.int64()),
        ("event_timestamp", pa.timestamp("us", tz="UTC")),
        ("created", pa.timestamp("us", tz="UTC")),
        ("v", pa.int64()),
    ]
)
# (driver_id, event_timestamp, created, v), in file order
ROWS = [
    (1, T1, T1, 11),
    (2, T0, T0, 19),
    (2, T1, None, 20),  # the newest event of driver 2, knowledge time unknown
    (3, T0, T0, 29),
    (3, T1, T1 + timedelta(hours=1), 30),  # created after AT
    (3, T1, None, 31),  # later in the file than 30, but a null created ranks below a known one
    (4, T1, None, 40),
    (4, T1, None, 41),  # full tie: the later row in the file
]
LATE = (1, T1, None, 12)  # appended after the first materialization: ties 11 with a null created


def reference(rows: list[tuple], driver: int, at: datetime, created_cutoff: bool) -> int | None:
    """Brute force: the newest row by (event time, created known, created, file order) that is
    available at ``at``: event time in [at - ttl, at], and under the cut-off a known created <= at."""
    candidates = [
        (ts, created is not None, created or ts, i, v)
        for i, (d, ts, created, v) in enumerate(rows)
        if d == driver and at - TTL <= ts <= at and (not created_cutoff or (created is not None and created <= at))
    ]
    return max(candidates)[-1] if candidates else None


def write(path: Path, rows: list[tuple]) -> None:
    names = SCHEMA.names
    pq.write_table(pa.Table.from_pylist([dict(zip(names, r, strict=True)) for r in rows], schema=SCHEMA), path)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "order_repo"
    (repo / "data").mkdir(parents=True)
    (repo / "definitions.py").write_text(DEFINITIONS)
    (repo / "feature_store.yaml").write_text(STORE_YAML)
    write(repo / "data" / "stats.parquet", ROWS)
    feastline = Path(sys.executable).parent / "feastline"
    subprocess.run([str(feastline), "apply", "--repo", str(repo)], check=True, capture_output=True)
    return repo


def z(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def training_set(client, at: datetime, allow: bool) -> dict:  # type: ignore[no-untyped-def]
    rows = [{"driver_id": d, "event_timestamp": z(at)} for d in DRIVERS]
    body = {"features": ["stats:v"], "entity_rows": rows, "allow_created_after_entity": allow}
    response = client.post("/training-sets", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def materialize(client, end: datetime) -> None:  # type: ignore[no-untyped-def]
    queued = client.post("/materialize", json={"start": "2024-01-01T00:00:00Z", "end": z(end)})
    assert queued.status_code == 202, queued.text
    job: dict = {}
    for _ in range(1200):
        job = client.get(f"/jobs/{queued.json()['id']}").json()
        if job["status"] in ("completed", "failed"):
            break
        time.sleep(0.05)
    assert job["status"] == "completed", job


def online(client) -> list:  # type: ignore[no-untyped-def]
    response = client.post("/get-online-features", json={"features": ["stats:v"], "entities": {"driver_id": DRIVERS}})
    assert response.status_code == 200, response.text
    return response.json()["results"][1]["values"]


def test_a_null_created_is_excluded_under_the_cutoff_and_counted_in_the_audit(repo):
    with NoServerErrorClient(create_app(Settings(repo=repo, now=NOW))) as client:
        answer = training_set(client, AT, allow=False)
    assert [r["v"] for r in answer["rows"]] == [reference(ROWS, d, AT, True) for d in DRIVERS]
    assert [r["v"] for r in answer["rows"]] == [11, 19, 29, None, None]  # the reference, spelled out
    (view,) = answer["audit"]["views"]
    assert view["feature_rows_created_unknown"] == sum(created is None for _, _, created, _ in ROWS) == 4


def test_with_created_after_entity_a_null_created_ranks_below_a_known_one_at_a_tie(repo):
    with NoServerErrorClient(create_app(Settings(repo=repo, now=NOW))) as client:
        answer = training_set(client, AT, allow=True)
    assert [r["v"] for r in answer["rows"]] == [reference(ROWS, d, AT, False) for d in DRIVERS]
    assert [r["v"] for r in answer["rows"]] == [11, 20, 30, 41, None]
    assert answer["audit"]["views"][0]["feature_rows_created_unknown"] == 0  # the filter was off


def test_engine_materializer_and_online_store_agree(repo):
    with NoServerErrorClient(create_app(Settings(repo=repo, now=NOW))) as client:
        materialize(client, NOW - timedelta(hours=1))
        assert online(client) == [reference(ROWS, d, NOW, False) for d in DRIVERS]
    # a row tying driver 1's stored one with a null created arrives later: the stored row stays
    write(repo / "data" / "stats.parquet", [*ROWS, LATE])
    rows = [*ROWS, LATE]
    with NoServerErrorClient(create_app(Settings(repo=repo, now=NOW))) as client:
        materialize(client, NOW)
        served = online(client)
        at_clock = [r["v"] for r in training_set(client, NOW, allow=True)["rows"]]
    assert served == at_clock == [reference(rows, d, NOW, False) for d in DRIVERS] == [11, 20, 30, 41, None]
