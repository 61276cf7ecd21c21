"""Pushes to a push source over a batch source that names its columns its own way: a timestamp column
``ts``, a created column ``created_at``, a ``field_mapping`` (file column ``trips_raw`` -> feature
``trips``) and a file column no view reads (``note``); no ``schemas.py``. Built in tmp_path, applied
with ``feastline apply``, served in process. The body uses the view's names (as Feast's ``push``);
the offline append writes the file's own names and keeps each column's Arrow type."""

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from service.app import create_app
from service.settings import Settings
from tests.conftest import NoServerErrorClient

NOW = datetime(2024, 1, 10, tzinfo=UTC)
T0 = datetime(2024, 1, 9, 12, tzinfo=UTC)
BIG = 2**53 + 1  # not a float64

DEFINITIONS = """
from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource, PushSource
from feast.types import Array, Float32, Int64, String

driver = Entity(name="driver", join_keys=["driver_id"])
trips_source = FileSource(
    name="trips_source", path="data/trips.parquet", timestamp_field="ts",
    created_timestamp_column="created_at", field_mapping={"trips_raw": "trips"},
)
trips_push = PushSource(name="trips_push", batch_source=trips_source)
driver_trips = FeatureView(
    name="driver_trips", entities=[driver], ttl=timedelta(days=30), source=trips_push,
    schema=[
        Field(name="driver_id", dtype=Int64),
        Field(name="trips", dtype=Int64),
        Field(name="rate", dtype=Float32),
        Field(name="tags", dtype=Array(String)),
    ],
)
"""

STORE_YAML = """project: push_sources
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
        ("ts", pa.timestamp("us", tz="UTC")),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("trips_raw", pa.int64()),
        ("rate", pa.float32()),
        ("tags", pa.list_(pa.string())),
        ("note", pa.string()),
    ]
)
ROWS = pa.Table.from_pylist(
    [
        {"driver_id": 1, "ts": T0, "created_at": T0, "trips_raw": 5, "rate": 0.5, "tags": ["a"], "note": "seed"},
    ],
    schema=SCHEMA,
)


def serve(repo: Path, definitions: str, rows: pa.Table):  # type: ignore[no-untyped-def]
    (repo / "data").mkdir(parents=True)
    (repo / "definitions.py").write_text(definitions)
    (repo / "feature_store.yaml").write_text(STORE_YAML)
    pq.write_table(rows, repo / "data" / "trips.parquet")
    feastline = Path(sys.executable).parent / "feastline"
    subprocess.run([str(feastline), "apply", "--repo", str(repo)], check=True, capture_output=True)
    client = NoServerErrorClient(create_app(Settings(repo=repo, now=NOW)))
    client.repo = repo  # type: ignore[attr-defined]
    return client


@pytest.fixture
def client(tmp_path: Path):  # type: ignore[no-untyped-def]
    with serve(tmp_path / "push_repo", DEFINITIONS, ROWS) as c:
        yield c


@pytest.fixture
def plain_client(tmp_path: Path):  # type: ignore[no-untyped-def]
    """The same view over a source with Feast's default names (``event_timestamp``, ``created``)."""
    names = {"ts": "event_timestamp", "created_at": "created", "trips_raw": "trips"}
    definitions = DEFINITIONS.replace('timestamp_field="ts"', 'timestamp_field="event_timestamp"')
    definitions = definitions.replace('"created_at", field_mapping={"trips_raw": "trips"}', '"created"')
    with serve(tmp_path / "plain_repo", definitions, ROWS.rename_columns([names.get(n, n) for n in SCHEMA.names])) as c:
        yield c


def z(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def push(client, df: dict, to: str = "online"):  # type: ignore[no-untyped-def]
    body = {"push_source_name": "trips_push", "df": df, "to": to}
    if "created_at" in df or "created" in df:  # a created column of the client's: only when asked for
        body["allow_client_created"] = True
    return client.post("/push", json=body)


def online(client, ids: list[int]) -> dict:  # type: ignore[no-untyped-def]
    features = [f"driver_trips:{f}" for f in ("trips", "rate", "tags")]
    response = client.post("/get-online-features", json={"features": features, "entities": {"driver_id": ids}})
    assert response.status_code == 200, response.text
    body = response.json()
    return {n: r for n, r in zip(body["metadata"]["feature_names"], body["results"], strict=True)}


def test_push_in_the_views_names_is_read_back_online(client):
    at = T0 + timedelta(hours=1)
    df = {"driver_id": [1, 2], "ts": [z(at)] * 2, "trips": [7, BIG], "rate": [1.111, 0.25], "tags": [["x"], []]}
    response = push(client, df)
    assert response.status_code == 200, response.text
    got = online(client, [1, 2])
    assert got["trips"]["values"] == [7, BIG]  # Int64 exact, beyond 2**53
    assert got["rate"]["values"] == [1.111, 0.25]
    assert got["tags"]["values"] == [["x"], []]
    assert got["trips"]["statuses"] == ["PRESENT", "PRESENT"]
    # Feast's default name is not this source's timestamp column: a 422 naming it, never a 500
    wrong = {"driver_id": [1], "event_timestamp": [z(at)], "trips": [1], "rate": [1.0], "tags": [["x"]]}
    response = push(client, wrong)
    assert response.status_code == 422, response.text
    fields = {p["field"] for p in response.json()["problems"]}
    assert fields == {"event_timestamp", "ts"}


def test_offline_push_writes_the_files_names_and_keeps_each_columns_type(client):
    path = client.repo / "data" / "trips.parquet"
    at = T0 + timedelta(hours=1)
    first = {"driver_id": [2], "ts": [z(at)], "trips": [None], "rate": [1.111], "tags": [["y"]]}
    assert push(client, first, to="offline").status_code == 200
    second = {"driver_id": [3], "ts": [z(at)], "trips": [BIG], "rate": [None], "tags": [None]}
    second["created_at"] = [z(at + timedelta(minutes=5))]
    response = push(client, second, to="online_and_offline")
    assert response.status_code == 200, response.text
    table = pq.read_table(path)
    assert table.schema == SCHEMA  # the file's own names and types, after two appends with nulls
    assert table.to_pylist() == [
        *ROWS.to_pylist(),
        # created stamped with the service clock when the push does not carry it; a column no view reads: null
        {"driver_id": 2, "ts": at, "created_at": NOW, "trips_raw": None, "rate": np.float32(1.111).item()}
        | {"tags": ["y"], "note": None},
        {"driver_id": 3, "ts": at, "created_at": at + timedelta(minutes=5), "trips_raw": BIG, "rate": None}
        | {"tags": None, "note": None},
    ]
    got = online(client, [3])
    assert got["trips"]["values"] == [BIG]


@pytest.mark.parametrize("repo", ["client", "plain_client"])
def test_a_push_that_leaves_out_a_feature_is_a_422_naming_it(repo, request):
    client = request.getfixturevalue(repo)
    ts = "ts" if repo == "client" else "event_timestamp"
    df = {"driver_id": [1], ts: [z(T0 + timedelta(hours=1))], "trips": [1], "tags": [["x"]]}
    for to in ("online", "offline", "online_and_offline"):
        response = push(client, df, to=to)
        assert response.status_code == 422, response.text
        assert [(p["row"], p["field"]) for p in response.json()["problems"]] == [(None, "rate")]
    assert pd.read_parquet(client.repo / "data" / "trips.parquet").shape[0] == 1  # nothing appended
    assert online(client, [1])["rate"]["statuses"] == ["NOT_FOUND"]


def test_offline_pushes_keep_int64_exact_in_a_source_with_feasts_default_names(plain_client):
    path = plain_client.repo / "data" / "trips.parquet"
    at = z(T0 + timedelta(hours=1))
    for trips in ([None], [BIG]):  # a null, then an integer float64 cannot hold
        df = {"driver_id": [2], "event_timestamp": [at], "trips": trips, "rate": [0.5], "tags": [["x"]]}
        response = push(plain_client, df, to="offline")
        assert response.status_code == 200, response.text
    table = pq.read_table(path)
    assert table.schema.field("trips").type == pa.int64()
    assert table.column("trips").to_pylist() == [5, None, BIG]
