"""Types follow the registry on every route: a Feast quickstart-style repo (``Int64`` driver ids,
``Float32`` rates held as float64 in the source file, an ``Array(String)`` feature, a request source
typed ``Float64`` and ``String``), built in tmp_path, applied with ``feastline apply`` and served in
process; and Feast's own remote online client against a live ``feastline serve``."""

import io
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from service.app import create_app
from service.settings import Settings
from tests.conftest import NoServerErrorClient
from tests.live_server import live_server

NOW = datetime(2024, 1, 10, tzinfo=UTC)
T0 = datetime(2024, 1, 9, 12, tzinfo=UTC)

DEFINITIONS = """
from datetime import timedelta

import pandas as pd
from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, RequestSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Array, Float32, Float64, Int64, String

driver = Entity(name="driver", join_keys=["driver_id"])
stats_source = FileSource(
    name="driver_stats_source", path="data/driver_stats.parquet",
    timestamp_field="event_timestamp", created_timestamp_column="created",
)
stats_push = PushSource(name="driver_stats_push", batch_source=stats_source)
driver_stats = FeatureView(
    name="driver_hourly_stats", entities=[driver], ttl=timedelta(days=2), source=stats_push,
    schema=[
        Field(name="driver_id", dtype=Int64),
        Field(name="conv_rate", dtype=Float32),
        Field(name="acc_rate", dtype=Float32),
        Field(name="avg_daily_trips", dtype=Int64),
        Field(name="tags", dtype=Array(String)),
    ],
)
request = RequestSource(name="vals", schema=[Field(name="val_to_add", dtype=Float64), Field(name="unit", dtype=String)])


@on_demand_feature_view(
    sources=[driver_stats, request],
    schema=[Field(name="conv_plus_val", dtype=Float64), Field(name="conv_per_val", dtype=Float64),
            Field(name="labelled", dtype=String)],
)
def transformed(inputs: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame()
    out["conv_plus_val"] = inputs["conv_rate"].astype("float64") + inputs["val_to_add"]
    out["conv_per_val"] = inputs["conv_rate"].astype("float64") / inputs["val_to_add"]
    out["labelled"] = inputs["unit"] + "!"
    return out


driver_activity = FeatureService(name="driver_activity", features=[driver_stats])
"""

STORE_YAML = """project: types_repo
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

# The source file holds the Float32 features as float64, as a pandas-written file usually does.
ROWS = pd.DataFrame(
    {
        "driver_id": pd.Series([1001, 1002, 1001], dtype="int64"),
        "event_timestamp": pd.to_datetime([T0 - timedelta(hours=2), T0 - timedelta(hours=1), T0], utc=True),
        "created": pd.to_datetime([T0 - timedelta(hours=2), T0 - timedelta(hours=1), T0], utc=True),
        "conv_rate": [0.5, 0.25, 1.111],
        "acc_rate": [0.7, 0.1, 0.3],
        "avg_daily_trips": pd.Series([10, 2**40, 12], dtype="int64"),
        "tags": [["a"], ["b", "c"], ["new", "york"]],
    }
)


def f32(x: float) -> float:
    """The reference for a Float32 answer: the shortest decimal that round-trips the float32."""
    return float(np.format_float_positional(np.float32(x), unique=True))


def build_repo(root: Path) -> Path:
    repo = root / "types_repo"
    (repo / "data").mkdir(parents=True)
    (repo / "definitions.py").write_text(DEFINITIONS)
    (repo / "feature_store.yaml").write_text(STORE_YAML)
    ROWS.to_parquet(repo / "data" / "driver_stats.parquet", index=False)
    feastline = Path(sys.executable).parent / "feastline"
    subprocess.run([str(feastline), "apply", "--repo", str(repo)], check=True, capture_output=True)
    return repo


@pytest.fixture(scope="module")
def types_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = build_repo(tmp_path_factory.mktemp("types"))
    with NoServerErrorClient(create_app(Settings(repo=repo, now=NOW))) as c:
        queued = c.post("/materialize", json={"start": "2024-01-01T00:00:00Z", "end": "2024-01-10T00:00:00Z"})
        assert queued.status_code == 202, queued.text
        job = {"status": "queued"}
        for _ in range(600):
            job = c.get(f"/jobs/{queued.json()['id']}").json()
            if job["status"] in ("completed", "failed"):
                break
            time.sleep(0.05)
        assert job["status"] == "completed", job
    return repo


@pytest.fixture
def client(types_repo: Path):  # type: ignore[no-untyped-def]
    with NoServerErrorClient(create_app(Settings(repo=types_repo, now=NOW))) as c:
        yield c


FEATURES = [
    "driver_hourly_stats:conv_rate",
    "driver_hourly_stats:acc_rate",
    "driver_hourly_stats:avg_daily_trips",
    "driver_hourly_stats:tags",
]


def test_json_training_set_with_integer_keys_answers_declared_precision(client):
    at = "2024-01-09T12:30:00Z"
    rows = [{"driver_id": 1001, "event_timestamp": at}, {"driver_id": 1002, "event_timestamp": at}]
    response = client.post("/training-sets", json={"features": FEATURES, "entity_rows": rows})
    assert response.status_code == 201, response.text
    got = response.json()["rows"]
    # reference: the latest source row per driver at or before 12:30 (1001: the 12:00 row; 1002: 11:00)
    assert [r["driver_id"] for r in got] == [1001, 1002]
    assert [r["conv_rate"] for r in got] == [f32(1.111), f32(0.25)] == [1.111, 0.25]
    assert [r["acc_rate"] for r in got] == [0.3, 0.1]
    assert [r["avg_daily_trips"] for r in got] == [12, 2**40]
    assert [r["tags"] for r in got] == [["new", "york"], ["b", "c"]]


@pytest.mark.parametrize("bad", ["1001", 1001.0, True])
def test_a_non_integer_for_an_int64_key_is_a_422_on_every_route(client, bad):
    at = "2024-01-09T12:30:00Z"
    rows = [{"driver_id": 1001, "event_timestamp": at}, {"driver_id": bad, "event_timestamp": at}]
    response = client.post("/training-sets", json={"features": FEATURES, "entity_rows": rows})
    assert response.status_code == 422, response.text
    assert [(p["row"], p["field"]) for p in response.json()["problems"]] == [(1, "driver_id")]

    response = client.post("/get-online-features", json={"features": FEATURES, "entities": {"driver_id": [1001, bad]}})
    assert response.status_code == 422, response.text
    assert [(p["row"], p["field"]) for p in response.json()["problems"]] == [(1, "entities.driver_id")]

    df = {"driver_id": [bad], "event_timestamp": [at], "conv_rate": [0.5], "acc_rate": [0.5]}
    df |= {"avg_daily_trips": [1], "tags": [["x"]]}
    response = client.post("/push", json={"push_source_name": "driver_stats_push", "df": df})
    assert response.status_code == 422, response.text
    assert [(p["row"], p["field"]) for p in response.json()["problems"]] == [(0, "driver_id")]


def parquet(frame: pd.DataFrame) -> bytes:
    sink = io.BytesIO()
    frame.to_parquet(sink, index=False)
    return sink.getvalue()


def test_parquet_entity_tables_take_integer_columns_of_the_declared_type(client):
    at = pd.Timestamp("2024-01-09T12:30:00Z")
    features = "&".join(f"features={f}" for f in FEATURES)
    ok = pd.DataFrame({"driver_id": pd.Series([1002, 1001], dtype="int32"), "event_timestamp": [at, at]})
    response = client.post(
        f"/training-sets?{features}",
        content=parquet(ok),
        headers={"content-type": "application/vnd.apache.parquet", "accept": "application/vnd.apache.parquet"},
    )
    assert response.status_code == 201, response.text
    got = pd.read_parquet(io.BytesIO(response.content))
    assert got["conv_rate"].dtype == np.float32  # the declared Float32, though the source holds float64
    assert got["conv_rate"].tolist() == [np.float32(0.25), np.float32(1.111)]
    assert got["avg_daily_trips"].tolist() == [2**40, 12]

    strings = ok.assign(driver_id=["1002", "1001"])
    response = client.post(
        f"/training-sets?{features}",
        content=parquet(strings),
        headers={"content-type": "application/vnd.apache.parquet"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["problems"][0]["field"] == "driver_id"


def online(client, entities: dict, features: list[str] = FEATURES, **extra) -> dict:
    response = client.post("/get-online-features", json={"features": features, "entities": entities, **extra})
    assert response.status_code == 200, response.text
    body = response.json()
    return dict(zip(body["metadata"]["feature_names"], body["results"], strict=True))


def test_online_values_equal_the_training_set_at_the_clock(client):
    at = NOW.isoformat().replace("+00:00", "Z")
    rows = [{"driver_id": 1001, "event_timestamp": at}, {"driver_id": 1002, "event_timestamp": at}]
    offline = client.post("/training-sets", json={"features": FEATURES, "entity_rows": rows}).json()["rows"]
    got = online(client, {"driver_id": [1001, 1002]}, include_feature_view_version_metadata=True)
    assert got["driver_id"]["values"] == [1001, 1002]
    for name in ("conv_rate", "acc_rate", "avg_daily_trips", "tags"):
        assert got[name]["values"] == [r[name] for r in offline], name
        assert got[name]["statuses"] == ["PRESENT", "PRESENT"]
    assert got["conv_rate"]["values"] == [1.111, 0.25]


def test_request_fields_of_any_type_and_infinite_on_demand_values(client):
    odfv = ["transformed:conv_plus_val", "transformed:conv_per_val", "transformed:labelled"]
    got = online(client, {"driver_id": [1001, 1002], "val_to_add": [1.5, 2], "unit": ["km", "mi"]}, odfv)
    # reference: the float32 conv_rate widened to float64, as the view computes it
    assert got["conv_plus_val"]["values"] == [float(np.float32(1.111)) + 1.5, 0.25 + 2]
    assert got["labelled"]["values"] == ["km!", "mi!"]
    response = client.post(
        "/get-online-features",
        json={"features": odfv, "entities": {"driver_id": [1001, 1002], "val_to_add": [1.0, 0.0], "unit": ["a", "b"]}},
    )
    assert response.status_code == 406, response.text
    assert [(p["field"], p["row"]) for p in response.json()["problems"]] == [("conv_per_val", 1)]
    response = client.post(
        "/get-online-features",
        json={"features": odfv, "entities": {"driver_id": [1001], "val_to_add": ["1.0"], "unit": ["a"]}},
    )
    assert response.status_code == 422, response.text
    assert response.json()["problems"][0]["field"] == "entities.val_to_add"


def test_unknown_non_feast_request_keys_are_still_refused(client):
    response = client.post(
        "/get-online-features", json={"features": FEATURES, "entities": {"driver_id": [1001]}, "bogus": True}
    )
    assert response.status_code == 422, response.text


def test_a_bare_string_for_an_array_of_strings_is_refused_and_a_list_is_stored(types_repo, tmp_path):
    with NoServerErrorClient(create_app(Settings(repo=types_repo, now=NOW))) as client:
        base = {"driver_id": [1003], "event_timestamp": ["2024-01-09T23:00:00Z"], "conv_rate": [0.125]}
        base |= {"acc_rate": [0.5], "avg_daily_trips": [3]}
        response = client.post("/push", json={"push_source_name": "driver_stats_push", "df": base | {"tags": ["abc"]}})
        assert response.status_code == 422, response.text
        assert response.json()["problems"][0]["field"] == "tags"
        response = client.post(
            "/push", json={"push_source_name": "driver_stats_push", "df": base | {"tags": [["abc", "d"]]}}
        )
        assert response.status_code == 200, response.text
        got = online(client, {"driver_id": [1003]})
        assert got["tags"]["values"] == [["abc", "d"]]
        assert got["conv_rate"]["values"] == [0.125]


def test_feast_remote_online_client_reads_through_feastline(types_repo, tmp_path):
    from feast import FeatureStore

    with live_server(types_repo, tmp_path / "server.log", NOW) as url:
        client_repo = tmp_path / "client"
        client_repo.mkdir()
        registry = types_repo / "data" / "registry.db"
        (client_repo / "feature_store.yaml").write_text(
            f"project: types_repo\nprovider: local\nregistry: {registry}\n"
            f"online_store:\n  type: remote\n  path: {url}\nentity_key_serialization_version: 3\n"
            "auth:\n  type: no_auth\n"
        )
        store = FeatureStore(repo_path=str(client_repo))
        got = store.get_online_features(features=FEATURES[:3], entity_rows=[{"driver_id": 1001}]).to_dict()
    assert got["driver_id"] == [1001]
    assert got["avg_daily_trips"] == [12]
    assert [f32(v) for v in got["conv_rate"]] == [1.111]
    assert [f32(v) for v in got["acc_rate"]] == [0.3]


def test_the_sdk_path_keys_by_the_declared_type(types_repo):
    from feast import FeatureStore

    from service.training.offline.errors import EntityRowsInvalid

    store = FeatureStore(repo_path=str(types_repo))
    at = pd.Timestamp("2024-01-09T12:30:00Z")
    entity = pd.DataFrame({"driver_id": pd.Series([1001, 1002], dtype="int64"), "event_timestamp": [at, at]})
    job = store.get_historical_features(entity_df=entity, features=FEATURES[:3])
    got = job.to_df()
    # Feast's SDK convention: a Float32 feature is answered as the source holds it (float64 here), equal to
    # the source's value (the HTTP route answers the declared float32: see the Parquet test above)
    assert got["conv_rate"].dtype == np.float64
    assert got["conv_rate"].tolist() == [ROWS.conv_rate[2], ROWS.conv_rate[1]] == [1.111, 0.25]
    assert str(job.to_arrow().schema.field("conv_rate").type) == "double"
    assert got["avg_daily_trips"].tolist() == [12, 2**40]
    with pytest.raises(EntityRowsInvalid, match="driver_id"):
        store.get_historical_features(
            entity_df=entity.assign(driver_id=["1001", "01002"]), features=FEATURES[:3]
        ).to_df()
