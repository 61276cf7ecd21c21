"""A push's ``created`` time is the service's (its clock, when it takes the push), unless the push asks
for its own with ``allow_client_created: true``: then the push is recorded as such on the push source's
lineage node, and the leakage audit of every training set counts the rows joined from such rows."""

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from tests.conftest import REPLAY_NOW, NoServerErrorClient, copy_repo

WEATHER = {"temp": 50.0, "dewp": 40.0, "humid": 60.0, "wind_dir": 180.0, "wind_speed": 10.0, "precip": 0.0}
WEATHER |= {"pressure": 1010.0, "visib": 10.0}
T1 = REPLAY_NOW - timedelta(hours=1)


def z(ts: pd.Timestamp) -> str:
    return pd.Timestamp(ts).isoformat().replace("+00:00", "Z")


def body(origin: str, **extra: object) -> dict:
    df = {"origin": [origin], "event_timestamp": [z(T1)], **{f: [v] for f, v in WEATHER.items()}}
    return {"push_source_name": "weather_push", "to": "online_and_offline", "df": df, **extra}


@pytest.fixture
def repo(built_repo: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "repo"
    copy_repo(built_repo, copy, ignore=("training_sets",))
    return copy


@pytest.fixture
def client(repo: Path):  # type: ignore[no-untyped-def]
    with NoServerErrorClient(create_app(Settings(repo=repo, now=REPLAY_NOW))) as c:
        yield c


def pushed_file(repo: Path) -> pd.DataFrame:
    return pd.read_parquet(repo / "data" / "origin_weather_fresh.parquet")


def test_a_created_column_without_the_option_is_a_422_naming_it(client: TestClient, repo: Path) -> None:
    before = pushed_file(repo)
    sent = body("EWR")
    sent["df"]["created"] = [z(T1 - timedelta(days=365))]  # years before: the cut-off would trust it
    response = client.post("/push", json=sent)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert [(p["field"], p["row"]) for p in problem["problems"]] == [("created", None)]
    assert "allow_client_created" in problem["problems"][0]["problem"] and "created" in problem["detail"]
    pd.testing.assert_frame_equal(pushed_file(repo), before)  # nothing written


def test_without_it_created_is_the_service_clock(client: TestClient, repo: Path) -> None:
    answer = client.post("/push", json=body("JFK"))
    assert answer.status_code == 200 and answer.json()["created_from"] == "service"
    row = pushed_file(repo).iloc[-1]
    assert row["origin"] == "JFK" and row["created"] == pd.Timestamp(REPLAY_NOW)


def test_client_created_rows_are_recorded_and_counted_in_every_training_sets_audit(
    client: TestClient, repo: Path
) -> None:
    assert client.post("/push", json=body("JFK")).status_code == 200  # stamped by the service
    own = body("EWR", allow_client_created=True)
    own["df"]["created"] = [z(T1 + timedelta(minutes=1))]
    answer = client.post("/push", json=own)
    assert answer.status_code == 200, answer.text
    assert answer.json()["created_from"] == "client"
    rows = pushed_file(repo)
    assert rows.iloc[-1]["origin"] == "EWR" and rows.iloc[-1]["created"] == pd.Timestamp(T1 + timedelta(minutes=1))

    node = client.get("/lineage/nodes/data_source:weather_push").json()
    recorded = node["attributes"]["client_created_timestamps"]
    assert (recorded["pushes"], recorded["rows"], recorded["last_push_to"]) == (1, 1, "online_and_offline")

    at = [T1 + timedelta(minutes=30), T1 + timedelta(minutes=31)]
    entities = [{"origin": "EWR", "event_timestamp": z(t)} for t in at]  # both joined to the client's row
    # JFK's row was created at the service clock (REPLAY_NOW): asked for then, it is joined, and not counted
    entities += [{"origin": "JFK", "event_timestamp": z(REPLAY_NOW)}, {"origin": "LGA", "event_timestamp": z(at[0])}]
    made = client.post("/training-sets", json={"features": ["origin_weather_fresh:temp"], "entity_rows": entities})
    assert made.status_code == 201, made.text
    audit = made.json()["audit"]
    assert [r["temp"] for r in made.json()["rows"]] == [50.0, 50.0, 50.0, None]
    (view,) = audit["views"]
    assert view["feature_rows_client_created"] == 2 and audit["client_created_rows"] == 2
    stored = client.get(f"/training-sets/{made.json()['id']}").json()["audit"]
    assert stored["client_created_rows"] == 2  # kept with the set

    only_service = client.post(
        "/training-sets",
        json={
            "features": ["origin_weather_fresh:temp"],
            "entity_rows": [{"origin": "JFK", "event_timestamp": z(at[0])}],
        },
    )
    assert only_service.json()["audit"]["client_created_rows"] == 0


def test_the_ledger_matches_on_keys_and_both_times_whatever_the_key_type(tmp_path: Path) -> None:
    import pyarrow as pa

    from service.training.offline.client_created import client_created_matches, ledger_path, record_client_created

    source = tmp_path / "pushed.parquet"
    stamps = pd.Series(pd.to_datetime(["2024-01-01T00:00Z", "2024-01-01T00:01Z"], utc=True))
    ns = stamps.astype("int64")
    recorded = pa.table(
        {
            "b": pa.array([b"\x00", b"\xee"]),  # bytes that are not UTF-8
            "i": pa.array([1, 2], pa.int64()),
            "__event_ts_ns": ns,
            "__created_ts_ns": ns,
            "__push_id": ["p", "p"],
            "__received_at": pa.array(stamps.tolist(), pa.timestamp("us", tz="UTC")),
        }
    )
    record_client_created(source, recorded)
    record_client_created(source, recorded)  # the same rows twice: counted once per joined row
    assert ledger_path(source).name == ".pushed.parquet.feastline-client-created"  # read by no *.parquet glob
    keys = pd.DataFrame({"bk": [b"\xee", b"\x00", b"\x00", None], "ik": pd.array([2, 1, 2, 1], "Int64")})
    joined_ts = pd.Series([stamps[1], stamps[0], stamps[0], pd.NaT], dtype="datetime64[ns, UTC]")
    other_created = joined_ts + pd.Timedelta(seconds=1)
    assert client_created_matches(source, {"bk": "b", "ik": "i"}, keys, joined_ts, joined_ts) == 2  # row 2: key 2≠1
    assert client_created_matches(source, {"bk": "b", "ik": "i"}, keys, joined_ts, other_created) == 0
    assert client_created_matches(tmp_path / "none.parquet", {"bk": "b"}, keys[["bk"]], joined_ts, joined_ts) == 0
