"""Materialization jobs: ``POST /materialize``, ``POST /materialize-incremental``, ``GET /jobs/{id}``.

Each test works on its own copy of a freshly applied repo (empty online store, no registry intervals),
since it writes to the online store and the registry. Expected counts and values are computed
independently with pandas from the Parquet files.
"""

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import yaml
from feast import FeatureStore

from service.app import create_app
from service.materialization.jobs import INTERRUPTED, JobStore
from service.settings import Settings
from tests.conftest import NoServerErrorClient, copy_repo

START = datetime(2012, 12, 1, tzinfo=UTC)
T = datetime(2013, 12, 31, 1, tzinfo=UTC)  # end of the first run; EWR's last observation is 2013-12-30T23:00
KEYS = {
    "origin_weather": "origin",
    "carrier_daily_stats": "carrier",
    "plane_profile": "tailnum",
    "origin_weather_fresh": "origin",
}
FILES = {
    "origin_weather": "origin_weather",
    "carrier_daily_stats": "carrier_daily_stats",
    "plane_profile": "plane_profile",
    "origin_weather_fresh": "origin_weather_fresh",
}


def z(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def fresh_repo(built_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built repo, re-applied without its online store and registry (the session one is materialized)."""
    repo = tmp_path_factory.mktemp("materialize") / "repo"
    copy_repo(built_repo, repo, ignore=("registry.db", "online_store.db", "training_sets"))
    feast = Path(sys.executable).parent / "feast"
    subprocess.run([str(feast), "-c", str(repo), "apply"], check=True, capture_output=True, cwd=repo)
    return repo


@pytest.fixture
def repo(fresh_repo: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "repo"
    copy_repo(fresh_repo, copy)
    return copy


def client_for(repo: Path, now: datetime = T) -> NoServerErrorClient:
    return NoServerErrorClient(create_app(Settings(repo=repo, now=now)))


def wait(client: NoServerErrorClient, job_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] in ("completed", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s: {job}")


def run(client: NoServerErrorClient, path: str, body: dict) -> dict:
    response = client.post(path, json=body)
    assert response.status_code == 202, response.text
    queued = response.json()
    assert queued["status"] == "queued" and response.headers["location"] == f"/jobs/{queued['id']}"
    job = wait(client, queued["id"])
    assert job["status"] == "completed", job["error"]
    return job


def source(repo: Path, view: str) -> pd.DataFrame:
    return pd.read_parquet(repo / "data" / f"{FILES[view]}.parquet")


def latest(frame: pd.DataFrame, key: str, value: str, end: datetime) -> pd.Series:
    """The slow, obvious reference: the last row by (event time, created, file order) before ``end``."""
    rows = frame.assign(_row=range(len(frame)))
    rows = rows[(rows[key] == value) & (rows.event_timestamp < end)]
    return rows.sort_values(["event_timestamp", "created", "_row"]).iloc[-1]


def online(client: NoServerErrorClient, features: list[str], entities: dict) -> dict:
    response = client.post("/get-online-features", json={"features": features, "entities": entities})
    assert response.status_code == 200, response.text
    body = response.json()
    return {n: r for n, r in zip(body["metadata"]["feature_names"], body["results"], strict=True)}


def append_row(repo: Path, **values) -> None:
    path = repo / "data" / "origin_weather.parquet"
    frame = pd.read_parquet(path)
    row = frame.iloc[[-1]].copy()
    for name, value in values.items():
        row[name] = value
    pd.concat([frame, row], ignore_index=True).to_parquet(path, index=False)


def test_full_job_writes_latest_rows_and_records_registry_and_lineage(repo):
    with client_for(repo) as client:
        job = run(client, "/materialize", {"start": z(START), "end": z(T), "feature_views": None})
        assert job["kind"] == "materialize" and job["error"] is None
        assert job["started_at"] and job["finished_at"] >= job["started_at"]
        for view, key in KEYS.items():
            frame = source(repo, view)
            in_window = frame[(frame.event_timestamp >= START) & (frame.event_timestamp < T)]
            assert job["views"][view] == {
                "rows_in_window": len(in_window),
                "rows_written": in_window[key].dropna().nunique(),
                "start": z(START),
                "end": z(T),
            }, view
        assert job["progress"] == {
            "views_done": 4,
            "views_total": 4,
            "rows_written": sum(v["rows_written"] for v in job["views"].values()),
        }
        assert job["views"]["origin_weather"]["rows_written"] == 3

        values = online(
            client,
            ["origin_weather:temp", "origin_weather:pressure", "carrier_daily_stats:flights_7d"],
            {"origin": ["EWR"], "carrier": ["UA"]},
        )
        weather = latest(source(repo, "origin_weather"), "origin", "EWR", T)
        stats = latest(source(repo, "carrier_daily_stats"), "carrier", "UA", T)
        assert values["temp"]["values"] == [pytest.approx(weather.temp)]
        assert values["pressure"]["values"] == [pytest.approx(weather.pressure)]
        assert values["temp"]["event_timestamps"] == [weather.event_timestamp.strftime("%Y-%m-%dT%H:%M:%SZ")]
        assert values["flights_7d"]["values"] == [stats.flights_7d]
        assert stats.event_timestamp < pd.Timestamp("2014-01-01T05:00Z")  # the file's last row is after T

        node = client.get("/lineage/nodes/feature_view:origin_weather").json()
        last = node["attributes"]["last_materialization"]
        finished = last.pop("finished_at")  # when the view was recorded: during the job
        assert job["started_at"] <= finished <= job["finished_at"]
        assert last == {"job_id": job["id"], "start": z(START), "end": z(T), "rows_written": 3}
    fv = FeatureStore(repo_path=str(repo)).get_feature_view("origin_weather")
    assert fv.materialization_intervals[-1] == (START, T)


def test_late_row_is_served_after_the_next_incremental_run(repo):
    with client_for(repo) as client:
        run(client, "/materialize", {"start": z(START), "end": z(T)})
        online_before = latest(source(repo, "origin_weather"), "origin", "EWR", T)
        late = T - timedelta(hours=1)
        assert late > online_before.event_timestamp
        append_row(repo, origin="EWR", event_timestamp=late, created=T + timedelta(minutes=30), temp=123.5)

        job = run(client, "/materialize-incremental", {"end": z(T)})
        assert job["kind"] == "materialize-incremental"
        assert job["views"]["origin_weather"]["start"] == z(T - timedelta(days=1))  # last end minus the lookback
        assert job["views"]["origin_weather"]["end"] == z(T)
        temp = online(client, ["origin_weather:temp"], {"origin": ["EWR"]})["temp"]
        assert temp["values"] == [123.5]
        assert temp["event_timestamps"] == [z(late)]

        # an older row arriving later still (created after everything) does not replace the newer one
        older = T - timedelta(minutes=90)
        append_row(repo, origin="EWR", event_timestamp=older, created=T + timedelta(hours=2), temp=-40.0)
        job = run(client, "/materialize-incremental", {"end": None, "lookback_seconds": None})
        assert job["views"]["origin_weather"]["end"] == z(T)  # the (pinned) service clock
        assert job["request"]["lookback_seconds"] == 86400
        assert job["views"]["origin_weather"]["rows_written"] == 3  # one per origin
        assert online(client, ["origin_weather:temp"], {"origin": ["EWR"]})["temp"]["values"] == [123.5]

    intervals = FeatureStore(repo_path=str(repo)).get_feature_view("origin_weather").materialization_intervals
    assert intervals[-1] == (T - timedelta(days=1), T)


def test_older_row_alone_in_its_window_does_not_overwrite_a_newer_online_value(repo):
    pytest.importorskip("service.online.stores.sqlite", reason="needs the ordered-write online store")
    config_path = repo / "feature_store.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["online_store"]["type"] = "service.online.stores.sqlite.OrderedSqliteOnlineStore"
    config_path.write_text(yaml.safe_dump(config))
    with client_for(repo) as client:
        run(client, "/materialize", {"start": z(START), "end": z(T), "feature_views": ["origin_weather"]})
        newest = latest(source(repo, "origin_weather"), "origin", "EWR", T)
        stale = newest.event_timestamp - timedelta(minutes=30)
        append_row(repo, origin="EWR", event_timestamp=stale, created=T + timedelta(minutes=5), temp=-40.0)
        window = {"start": z(stale - timedelta(minutes=5)), "end": z(stale + timedelta(minutes=5))}
        job = run(client, "/materialize", {**window, "feature_views": ["origin_weather"]})
        assert job["views"]["origin_weather"]["rows_written"] == 1
        temp = online(client, ["origin_weather:temp"], {"origin": ["EWR"]})["temp"]
        assert temp["values"] == [pytest.approx(newest.temp)]


def test_subset_of_views_and_unknown_job(repo):
    with client_for(repo) as client:
        job = run(client, "/materialize", {"start": z(START), "end": z(T), "feature_views": ["carrier_daily_stats"]})
        assert list(job["views"]) == ["carrier_daily_stats"] and job["progress"]["views_total"] == 1
        response = client.get("/jobs/nope")
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("path", ["/materialize", "/materialize-incremental"])
def test_unknown_feature_view_is_404(repo, path):
    body = {"feature_views": ["origin_weather", "no_such_view"]}
    if path == "/materialize":
        body |= {"start": z(START), "end": z(T)}
    with client_for(repo) as client:
        response = client.post(path, json=body)
    assert response.status_code == 404, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "no_such_view" in response.json()["detail"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/materialize", {"start": "2013-01-01T00:00:00", "end": "2013-02-01T00:00:00Z"}, "start"),
        ("/materialize", {"start": "2013-01-01T00:00:00Z", "end": "2013-02-01T00:00:00"}, "end"),
        ("/materialize", {"start": "2013-02-01T00:00:00Z", "end": "2013-02-01T00:00:00Z"}, "end"),
        ("/materialize", {"start": "2013-02-01T00:00:00Z", "end": "2013-01-01T00:00:00+05:00"}, "end"),
        ("/materialize", {"start": "yesterday", "end": "2013-02-01T00:00:00Z"}, "start"),
        ("/materialize", {"start": 1356998400, "end": "2013-02-01T00:00:00Z"}, "start"),
        ("/materialize", {"end": "2013-02-01T00:00:00Z"}, "start"),
        ("/materialize", {"start": "2013-01-01T00:00:00Z", "end": "2013-02-01T00:00:00Z", "views": ["x"]}, "views"),
        (
            "/materialize",
            {"start": "2013-13-01T00:00:00Z", "end": "2013-02-01T00:00:00Z", "feature_views": "x"},
            "start",
        ),
        ("/materialize", {"start": "2013-01-01T00:00:00Z", "end": "2013-02-01T00:00:00Z", "feature_views": []}, None),
        ("/materialize-incremental", {"end": "2013-02-01T00:00:00"}, "end"),
        ("/materialize-incremental", {"lookback_seconds": -1}, "lookback_seconds"),
        ("/materialize-incremental", {"lookback_seconds": "3600"}, "lookback_seconds"),
        ("/materialize-incremental", {"default_start": "2013-01-01T00:00:00"}, "default_start"),
    ],
)
def test_bad_bodies_are_422_naming_the_field(repo, path, body, field):
    with client_for(repo) as client:
        response = client.post(path, json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["field"] == (field or "feature_views"), problem


def test_malformed_json_is_400(repo):
    with client_for(repo) as client:
        response = client.post("/materialize", content=b"{", headers={"content-type": "application/json"})
    assert response.status_code == 400


def test_jobs_survive_a_restart_and_unfinished_ones_read_as_interrupted(repo):
    with client_for(repo) as client:
        job = run(client, "/materialize", {"start": z(START), "end": z(T), "feature_views": ["origin_weather"]})
    settings = Settings(repo=repo)
    jobs = JobStore(settings.lineage_database_url)
    stuck = jobs.create("materialize", {"start": z(START), "end": z(T), "feature_views": None}, 4)
    jobs.update(stuck.id, status="running", started_at=datetime.now(UTC))
    jobs.dispose()
    with client_for(repo) as client:
        assert client.get(f"/jobs/{job['id']}").json() == job
        interrupted = client.get(f"/jobs/{stuck.id}").json()
    assert interrupted["status"] == "failed" and interrupted["error"] == INTERRUPTED
    assert interrupted["finished_at"] is not None


def test_cli_materializes_from_any_cwd(repo, tmp_path):
    feastline = Path(sys.executable).parent / "feastline"
    done = subprocess.run(
        [str(feastline), "materialize", "--repo", str(repo), "--end", z(T), "--incremental", "--lookback-seconds", "0"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "origin_weather" in done.stdout
    fv = FeatureStore(repo_path=str(repo)).get_feature_view("origin_weather")
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert fv.materialization_intervals[-1] == (epoch, T)  # never materialized: from --start's default, the epoch
    with client_for(repo) as client:
        temp = online(client, ["origin_weather:temp"], {"origin": ["EWR"]})["temp"]
        assert temp["values"] == [pytest.approx(latest(source(repo, "origin_weather"), "origin", "EWR", T).temp)]
        node = client.get("/lineage/nodes/feature_view:origin_weather").json()
        assert node["attributes"]["last_materialization"]["job_id"].startswith("cli-")
