"""Stored, fingerprinted, reproducible training sets; Parquet/Arrow in and out; the Feast SDK path
(our offline store) agreeing with the HTTP API on every real flight; the leakage audit."""

import io

import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from fastapi.testclient import TestClient
from feast import FeatureStore

from service.app import create_app
from service.settings import Settings
from tests.conftest import copy_repo

PARQUET = "application/vnd.apache.parquet"
ARROW = "application/vnd.apache.arrow.stream"
V1 = "feature_service=delay_model_v1"


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


@pytest.fixture(scope="module")
def flights(built_repo) -> pd.DataFrame:
    return pd.read_parquet(built_repo / "data" / "flights.parquet")[
        ["flight_id", "origin", "carrier", "event_timestamp", "label_delayed"]
    ]


@pytest.mark.slow
def test_sdk_and_http_agree_on_all_flights(client, built_repo, flights):
    response = client.post(
        f"/training-sets?{V1}", content=parquet_bytes(flights), headers={"content-type": PARQUET, "accept": PARQUET}
    )
    assert response.status_code == 201, response.text[:2000]
    http = pd.read_parquet(io.BytesIO(response.content))
    store = FeatureStore(repo_path=str(built_repo))
    sdk = store.get_historical_features(entity_df=flights, features=store.get_feature_service("delay_model_v1")).to_df()
    assert len(http) == len(sdk) == len(flights) == 336776
    assert http.flight_id.tolist() == flights.flight_id.tolist()  # input order
    pd.testing.assert_frame_equal(http, sdk[http.columns], check_dtype=False)
    ts_id = response.headers["x-training-set-id"]
    meta = client.get(f"/training-sets/{ts_id}").json()
    assert meta["row_count"] == 336776 and meta["audit"]["passed"]
    weather = next(v for v in meta["audit"]["views"] if v["view"] == "origin_weather")
    assert weather["rows_matched"] + weather["rows_null"] == 336776
    assert weather["max_feature_age_seconds"] <= 3 * 3600
    assert weather["created_filter"] is True


def test_arrow_stream_in_and_out(client, flights):
    sample = flights.head(500)
    sink = io.BytesIO()
    table = pa.Table.from_pandas(sample, preserve_index=False)
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    response = client.post(
        f"/training-sets?{V1}", content=sink.getvalue(), headers={"content-type": ARROW, "accept": ARROW}
    )
    assert response.status_code == 201 and response.headers["content-type"] == ARROW
    out = ipc.open_stream(io.BytesIO(response.content)).read_all().to_pandas()
    as_json = client.post(
        "/training-sets",
        json={
            "feature_service": "delay_model_v1",
            "entity_rows": [
                {"origin": r.origin, "carrier": r.carrier, "event_timestamp": r.event_timestamp.isoformat()}
                for r in sample.itertuples()
            ],
        },
    ).json()
    assert len(out) == 500
    assert out.temp.tolist()[:50] == [r["temp"] for r in as_json["rows"][:50]]


def test_stored_metadata_and_data_round_trip(client):
    rows = [{"origin": "EWR", "carrier": "UA", "event_timestamp": "2013-05-01T13:00:00Z", "label": 1}]
    created = client.post("/training-sets", json={"feature_service": "delay_model_v1", "entity_rows": rows})
    body = created.json()
    assert created.headers["location"] == f"/training-sets/{body['id']}"
    meta = client.get(f"/training-sets/{body['id']}").json()
    assert meta["fingerprint"] == body["fingerprint"] and len(meta["fingerprint"]) == 64
    assert set(meta["view_hashes"]) == {"origin_weather", "carrier_daily_stats"}
    assert len(meta["source_hashes"]) == 2
    data = client.get(f"/training-sets/{body['id']}/data")
    assert data.headers["content-type"] == PARQUET
    stored = pd.read_parquet(io.BytesIO(data.content))
    assert stored.temp.tolist() == [body["rows"][0]["temp"]]
    as_json = client.get(f"/training-sets/{body['id']}/data", headers={"accept": "application/json"}).json()
    assert as_json["rows"] == body["rows"]
    assert client.get("/training-sets/ts-doesnotexist").status_code == 404


def test_same_inputs_same_fingerprint(client):
    body = {
        "feature_service": "delay_model_v1",
        "entity_rows": [{"origin": "JFK", "carrier": "B6", "event_timestamp": "2013-08-01T10:00:00Z"}],
    }
    a, b = client.post("/training-sets", json=body).json(), client.post("/training-sets", json=body).json()
    assert a["id"] != b["id"] and a["fingerprint"] == b["fingerprint"]
    body["entity_rows"][0]["event_timestamp"] = "2013-08-01T11:00:00Z"
    assert client.post("/training-sets", json=body).json()["fingerprint"] != a["fingerprint"]


@pytest.fixture
def repo_copy(built_repo, tmp_path):
    """A private copy of the built repo, free to change."""
    copy = tmp_path / "repo"
    copy_repo(built_repo, copy, ignore=("training_sets",))
    with TestClient(create_app(Settings(repo=copy))) as c:
        yield copy, c


def test_reproduce_is_identical_then_names_the_changed_source(repo_copy):
    repo, client = repo_copy
    rows = [{"origin": "LGA", "carrier": "DL", "event_timestamp": f"2013-06-0{d}T15:30:00Z"} for d in range(1, 6)]
    ts_id = client.post("/training-sets", json={"feature_service": "delay_model_v1", "entity_rows": rows}).json()["id"]
    same = client.post(f"/training-sets/{ts_id}/reproduce").json()
    assert same["identical"] is True and same["changed_sources"] == [] and same["changed_views"] == []
    assert same["fingerprint_now"] == same["fingerprint_then"]
    path = repo / "data" / "origin_weather.parquet"
    weather = pd.read_parquet(path)
    hit = (weather.origin == "LGA") & (weather.event_timestamp == pd.Timestamp("2013-06-03T15:00Z"))
    assert hit.sum() == 1
    weather.loc[hit, "temp"] = weather.loc[hit, "temp"] + 10
    weather.to_parquet(path, index=False)
    changed = client.post(f"/training-sets/{ts_id}/reproduce").json()
    assert changed["identical"] is False
    assert changed["changed_sources"] == ["data/origin_weather.parquet"]  # relative to the repo
    assert changed["differences"]["columns"] == ["temp"] and changed["differences"]["rows"] == [2]
    assert changed["fingerprint_now"] != changed["fingerprint_then"]


def test_a_backfilled_row_never_reaches_training_unless_asked(repo_copy):
    """A weather row for 12:00 written (created) at 18:00 must not be seen by a 12:30 entity row."""
    repo, client = repo_copy
    path = repo / "data" / "origin_weather.parquet"
    weather = pd.read_parquet(path)
    backfill = weather[(weather.origin == "EWR") & (weather.event_timestamp == pd.Timestamp("2013-05-01T12:00Z"))]
    backfill = backfill.assign(temp=999.0, created=pd.Timestamp("2013-05-01T18:00Z").as_unit("ns"))
    pd.concat([weather, backfill], ignore_index=True).to_parquet(path, index=False)
    original = backfill.index[0]  # the row the backfill rewrites
    rows = [{"origin": "EWR", "event_timestamp": "2013-05-01T12:30:00Z"}]
    safe = client.post("/training-sets", json={"features": ["origin_weather:temp"], "entity_rows": rows}).json()
    assert safe["rows"][0]["temp"] == weather.loc[original, "temp"]  # the original 12:00 observation
    assert safe["audit"]["created_filter_requested"] is True
    leaky = client.post(
        "/training-sets",
        json={"features": ["origin_weather:temp"], "entity_rows": rows, "allow_created_after_entity": True},
    ).json()
    assert leaky["rows"][0]["temp"] == 999.0  # only because it was asked for, explicitly
    assert leaky["audit"]["created_filter_requested"] is False
    assert leaky["audit"]["views"][0]["created_filter"] is False
    assert client.get(f"/training-sets/{leaky['id']}").json()["options"]["allow_created_after_entity"] is True


def test_a_leaking_join_is_refused_with_409_and_nothing_stored(repo_copy, monkeypatch):
    repo, client = repo_copy
    import service.training.offline.engine as engine

    real = engine.join_views

    def leaky(entity_df, views, created_filter=True):
        joined = real(entity_df, views, created_filter)
        col = f"{views[0].name}____feature_ts"
        joined[col] = entity_df["event_timestamp"] + pd.Timedelta(minutes=5)  # a value from the future
        return joined

    monkeypatch.setattr(engine, "join_views", leaky)
    before = set((repo / "data").rglob("ts-*"))
    response = client.post(
        "/training-sets",
        json={
            "features": ["origin_weather:temp"],
            "entity_rows": [{"origin": "EWR", "event_timestamp": "2013-05-01T13:00:00Z"}],
        },
    )
    assert response.status_code == 409 and response.headers["content-type"] == "application/problem+json"
    audit = response.json()["audit"]
    assert audit["passed"] is False and audit["views"][0]["violations"]["feature_ts_after_entity_ts"] == 1
    assert "rows" not in response.json()
    assert set((repo / "data").rglob("ts-*")) == before


def test_json_answer_has_a_size_limit(built_repo):
    with TestClient(create_app(Settings(repo=built_repo, max_json_rows=2))) as c:
        rows = [{"origin": "EWR", "carrier": "UA", "event_timestamp": "2013-05-01T13:00:00Z"}] * 3
        response = c.post(
            "/training-sets",
            json={"feature_service": "delay_model_v1", "entity_rows": rows},
            headers={"accept": "application/json"},
        )
        assert response.status_code == 406  # JSON only, and too large for it (413 is for request bodies)
        ok = c.post(
            "/training-sets",
            json={"feature_service": "delay_model_v1", "entity_rows": rows},
            headers={"accept": PARQUET},
        )
        assert ok.status_code == 201 and len(pd.read_parquet(io.BytesIO(ok.content))) == 3


@pytest.mark.parametrize(
    ("frame_change", "field"),
    [
        (lambda f: f.drop(columns=["carrier"]), "carrier"),
        (lambda f: f.assign(event_timestamp=f.event_timestamp.dt.tz_localize(None)), "event_timestamp"),
        (lambda f: f.assign(origin=1), "origin"),
        (lambda f: f.assign(event_timestamp=f.event_timestamp.astype(str)), "event_timestamp"),
    ],
    ids=["missing join key", "naive timestamps", "join key not a string", "timestamps as text"],
)
def test_bad_parquet_entity_tables_are_422(client, flights, frame_change, field):
    response = client.post(
        f"/training-sets?{V1}", content=parquet_bytes(frame_change(flights.head(10))), headers={"content-type": PARQUET}
    )
    assert response.status_code == 422, response.text
    assert any(p["field"] == field for p in response.json()["problems"])


def test_garbage_parquet_is_400(client):
    response = client.post(f"/training-sets?{V1}", content=b"PAR1 nope", headers={"content-type": PARQUET})
    assert response.status_code == 400 and response.json()["field"] == "body"
