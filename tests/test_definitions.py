"""The Feast definition surface on a small repo of its own: feature-service projections
(``with_name``, ``with_join_key_map``), a view without entities (global features), ``FileSource``
paths that are a directory or a glob of Parquet files, ``feastline apply``'s refusals and its
atomicity, and the SDK's entity timestamps in mixed offsets.

Expected values come from a brute-force point-in-time reference over the rows written here, and the
output column names of the SDK path from Feast's own DuckDB offline store on the same definitions.
"""

import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings

T0 = datetime(2024, 1, 1, tzinfo=UTC)
NOW = T0 + timedelta(days=3)
FEASTLINE = Path(sys.executable).parent / "feastline"

YAML = """\
project: {project}
provider: local
registry: data/registry.db
online_store:
  type: service.online.stores.sqlite.OrderedSqliteOnlineStore
  path: data/online_store.db
offline_store:
  type: {offline}
entity_key_serialization_version: 3
"""

DEFINITIONS = """\
from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource
from feast.types import Float64, String

origin = Entity(name="origin", join_keys=["origin"])
weather_source = FileSource(
    name="weather_source", path="{weather_path}", timestamp_field="event_timestamp", created_timestamp_column="created"
)
weather_push = PushSource(name="weather_push", batch_source=weather_source)
weather = FeatureView(
    name="weather",
    entities=[origin],
    ttl=timedelta(hours=6),
    schema=[Field(name="origin", dtype=String), Field(name="temp", dtype=Float64)],
    source=weather_push,
)
global_source = FileSource(name="global_source", path="{global_path}", timestamp_field="event_timestamp")
global_stats = FeatureView(
    name="global_stats", entities=[], ttl=timedelta(0), schema=[Field(name="avg_temp", dtype=Float64)],
    source=global_source,
)
routes = FeatureService(
    name="routes",
    features=[
        weather.with_name("dest_weather").with_join_key_map({{"origin": "dest"}}),
        weather,
        global_stats,
    ],
)
# the view once (Feast's SDK cannot compare a feature service projecting one view twice)
dest_only = FeatureService(
    name="dest_only",
    features=[weather.with_name("dest_weather").with_join_key_map({{"origin": "dest"}}), global_stats],
)
"""


def weather_rows() -> pd.DataFrame:
    hours = [0, 1, 2, 5, 9, 13]
    rows = [
        {"origin": o, "event_timestamp": T0 + timedelta(hours=h), "temp": 10.0 * i + h + (0.5 if o == "JFK" else 0)}
        for i, o in enumerate(["EWR", "JFK"])
        for h in hours
    ]
    frame = pd.DataFrame(rows)
    frame["created"] = frame["event_timestamp"]
    return frame


def global_rows() -> pd.DataFrame:
    return pd.DataFrame({"event_timestamp": [T0 + timedelta(hours=h) for h in (0, 4, 8)], "avg_temp": [1.5, 2.5, 3.5]})


def write_repo(
    repo: Path, offline: str = "service.training.offline.feast_store.FeastlineOfflineStore", split: bool = True
) -> Path:
    """The repo's files and data: weather in a directory of two Parquet files and globals under a glob
    (``split``), or each in one file (for Feast's DuckDB store)."""
    (repo / "data").mkdir(parents=True)
    weather, stats = weather_rows(), global_rows()
    if split:
        (repo / "data" / "weather").mkdir()
        weather.iloc[::2].to_parquet(repo / "data" / "weather" / "part-0.parquet", index=False)
        weather.iloc[1::2].to_parquet(repo / "data" / "weather" / "part-1.parquet", index=False)
        (repo / "data" / "global").mkdir()
        stats.iloc[:1].to_parquet(repo / "data" / "global" / "stats-0.parquet", index=False)
        stats.iloc[1:].to_parquet(repo / "data" / "global" / "stats-1.parquet", index=False)
        paths = {"weather_path": "data/weather", "global_path": "data/global/stats-*.parquet"}
    else:
        weather.to_parquet(repo / "data" / "weather.parquet", index=False)
        stats.to_parquet(repo / "data" / "global.parquet", index=False)
        paths = {"weather_path": "data/weather.parquet", "global_path": "data/global.parquet"}
    project = f"p_{repo.name[-8:]}".replace("-", "_")
    (repo / "feature_store.yaml").write_text(YAML.format(project=project, offline=offline))
    (repo / "definitions.py").write_text(DEFINITIONS.format(**paths))
    return repo


def apply(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(FEASTLINE), "apply", "--repo", str(repo)], capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = write_repo(tmp_path_factory.mktemp("defs") / "repo")
    done = apply(repo)
    assert done.returncode == 0, done.stdout + done.stderr
    return repo


@pytest.fixture(scope="module")
def client(repo: Path):  # type: ignore[no-untyped-def]
    with TestClient(create_app(Settings(repo=repo, now=NOW))) as c:
        yield c


def reference(rows: pd.DataFrame, keys: dict[str, str], at: datetime, ttl: timedelta | None) -> float | None:
    """Brute force: the latest row with feature_ts <= at (and >= at - ttl), created <= at; keys match."""
    ok = rows["event_timestamp"] <= at
    if "created" in rows:
        ok &= rows["created"] <= at
    if ttl:
        ok &= rows["event_timestamp"] >= at - ttl
    for column, value in keys.items():
        ok &= rows[column] == value
    hit = rows[ok].sort_values("event_timestamp", kind="stable")
    if hit.empty:
        return None
    return float(hit.iloc[-1].drop(["event_timestamp", "created", *keys], errors="ignore").iloc[0])


ENTITIES = [
    {"origin": "EWR", "dest": "JFK", "event_timestamp": T0 + timedelta(hours=h, minutes=30)} for h in (0, 3, 6, 12, 30)
] + [{"origin": "JFK", "dest": "EWR", "event_timestamp": T0 + timedelta(hours=1)}]


def expected_rows() -> list[dict[str, object]]:
    weather, stats = weather_rows(), global_rows()
    out = []
    for e in ENTITIES:
        at = e["event_timestamp"]
        out.append(
            {
                "dest_weather__temp": reference(weather, {"origin": e["dest"]}, at, timedelta(hours=6)),
                "weather__temp": reference(weather, {"origin": e["origin"]}, at, timedelta(hours=6)),
                "global_stats__avg_temp": reference(stats, {}, at, None),
            }
        )
    return out


def z(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


FEATURES = ["dest_weather__temp", "weather__temp", "global_stats__avg_temp"]


def test_projections_global_view_and_multi_file_sources_in_training_sets(client: TestClient) -> None:
    body = {
        "feature_service": "routes",
        "full_feature_names": True,
        "entity_rows": [{**e, "event_timestamp": z(e["event_timestamp"])} for e in ENTITIES],
    }
    answer = client.post("/training-sets", json=body)
    assert answer.status_code == 201, answer.text
    got = [{f: row[f] for f in FEATURES} for row in answer.json()["rows"]]
    assert got == expected_rows()
    assert answer.json()["columns"] == ["origin", "dest", "event_timestamp", *FEATURES]
    ts_id = answer.json()["id"]
    upstream = client.get(f"/lineage/nodes/training_set:{ts_id}/upstream", params={"depth": 1}).json()
    ids = {n["id"] for n in upstream["nodes"]}
    assert {"feature:weather.temp", "feature:global_stats.avg_temp", "feature_service:routes"} <= ids
    # the same as Parquet, and reproducible (the directory and glob sources are fingerprinted file by file)
    frame = pd.DataFrame(ENTITIES)
    parquet = client.post(
        "/training-sets?feature_service=routes&full_feature_names=true",
        content=frame.to_parquet(index=False),
        headers={"content-type": "application/vnd.apache.parquet", "accept": "application/json"},
    )
    assert parquet.status_code == 201, parquet.text
    assert [{f: row[f] for f in FEATURES} for row in parquet.json()["rows"]] == expected_rows()
    again = client.post(f"/training-sets/{ts_id}/reproduce").json()
    assert again["identical"], again


def test_projections_and_global_view_online_after_materialization(client: TestClient, repo: Path) -> None:
    job = client.post("/materialize", json={"start": z(T0 - timedelta(days=1)), "end": z(NOW)})
    assert job.status_code in (200, 202), job.text
    status = client.get(f"/jobs/{job.json()['id']}").json()
    for _ in range(200):
        if status["status"] not in ("queued", "running"):
            break
        time.sleep(0.1)
        status = client.get(f"/jobs/{job.json()['id']}").json()
    assert status["status"] == "completed", status
    assert not any(v.get("skipped") for v in status["views"].values()), status
    # pin the clock within the TTL of the latest weather rows (hour 13)
    with TestClient(create_app(Settings(repo=repo, now=T0 + timedelta(hours=14)))) as c:
        answer = c.post(
            "/get-online-features",
            json={
                "feature_service": "routes",
                "full_feature_names": True,
                "entities": {"origin": ["EWR"], "dest": ["JFK"]},
            },
        )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    values = dict(zip(body["metadata"]["feature_names"], (r["values"][0] for r in body["results"]), strict=True))
    at = T0 + timedelta(hours=14)
    assert values["dest_weather__temp"] == reference(weather_rows(), {"origin": "JFK"}, at, timedelta(hours=6))
    assert values["weather__temp"] == reference(weather_rows(), {"origin": "EWR"}, at, timedelta(hours=6))
    assert values["global_stats__avg_temp"] == 3.5, body


def test_sdk_projections_match_feast_duckdb(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``get_historical_features`` with a projected feature service: the same columns as Feast's DuckDB
    store on the same definitions, and the reference's values (Feast's DuckDB store leaks rows created
    later, ours does not: here created = event time, so the answers agree)."""
    from feast import FeatureStore

    duck = write_repo(tmp_path / "duck", offline="duckdb", split=False)
    feast = str(Path(sys.executable).parent / "feast")
    subprocess.run([feast, "-c", str(duck), "apply"], check=True, capture_output=True)
    monkeypatch.chdir(duck)  # Feast's DuckDB store reads relative source paths from the working directory
    entity = pd.DataFrame(ENTITIES)
    theirs_store = FeatureStore(repo_path=str(duck))
    ours_store = FeatureStore(repo_path=str(repo))
    for full in (False, True):
        kw = {"full_feature_names": full} if full else {}
        refs = ["weather:temp", "global_stats:avg_temp"]
        theirs = theirs_store.get_historical_features(entity, features=refs, **kw).to_df()
        ours = ours_store.get_historical_features(entity, features=refs, **kw).to_df()
        assert list(ours.columns) == list(theirs.columns)
    service = ours_store.get_feature_service("dest_only")
    ours = ours_store.get_historical_features(entity, features=service, full_feature_names=True).to_df()
    names = ["dest_weather__temp", "global_stats__avg_temp"]
    got = ours[names].astype(object).where(ours[names].notna(), None).to_dict("records")
    assert got == [{n: row[n] for n in names} for row in expected_rows()]


def test_sdk_entity_timestamps_in_mixed_offsets(repo: Path) -> None:
    """An object column of aware timestamps in several offsets, and naive ones (UTC, as Feast reads them)."""
    from feast import FeatureStore

    mixed = [
        pd.Timestamp(T0 + timedelta(hours=1, minutes=30)).tz_convert("America/New_York"),
        (T0 + timedelta(hours=6)).replace(tzinfo=None),
        pd.Timestamp(T0 + timedelta(hours=12)).tz_convert("Asia/Tokyo"),
    ]
    entity = pd.DataFrame({"origin": ["EWR", "JFK", "EWR"], "event_timestamp": pd.Series(mixed, dtype=object)})
    frame = FeatureStore(repo_path=str(repo)).get_historical_features(entity, features=["weather:temp"]).to_df()
    at = [T0 + timedelta(hours=1, minutes=30), T0 + timedelta(hours=6), T0 + timedelta(hours=12)]
    keys = entity["origin"]
    want = [reference(weather_rows(), {"origin": o}, t, timedelta(hours=6)) for o, t in zip(keys, at, strict=True)]
    assert frame["temp"].tolist() == want
    strings = pd.DataFrame({"origin": ["EWR"], "event_timestamp": pd.Series(["2024-01-01T01:00:00Z"], dtype=object)})
    with pytest.raises(Exception, match="must be"):
        FeatureStore(repo_path=str(repo)).get_historical_features(strings, features=["weather:temp"]).to_df()


def test_push_to_offline_into_a_directory_source_adds_a_file(client: TestClient, repo: Path) -> None:
    before = sorted((repo / "data" / "weather").glob("*.parquet"))
    at = T0 + timedelta(days=1)
    push = {
        "push_source_name": "weather_push",
        "to": "offline",
        "df": {"origin": ["EWR"], "event_timestamp": [z(at)], "created": [z(at)], "temp": [99.25]},
        "allow_client_created": True,  # the push carries its own created time
    }
    answer = client.post("/push", json=push)
    assert answer.status_code == 200, answer.text
    after = sorted((repo / "data" / "weather").glob("*.parquet"))
    assert len(after) == len(before) + 1 and set(before) < set(after)
    rows = client.post(
        "/training-sets",
        json={"features": ["weather:temp"], "entity_rows": [{"origin": "EWR", "event_timestamp": z(at)}]},
    )
    assert rows.status_code == 201, rows.text
    assert rows.json()["rows"][0]["temp"] == 99.25


def registry_state(repo: Path) -> bytes | None:
    path = repo / "data" / "registry.db"
    return path.read_bytes() if path.exists() else None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d.replace(
                'weather_source = FileSource(\n    name="weather_source", path="data/weather.parquet",',
                'from feast.data_format import DeltaFormat\nweather_source = FileSource(\n    name="weather_source", '
                'path="data/weather.parquet", file_format=DeltaFormat(),',
            ),
            "feastline reads Parquet only",
        ),
        (
            lambda d: d.replace(
                'global_source = FileSource(name="global_source", path="data/global.parquet",',
                'from feast import BigQuerySource\nglobal_source = BigQuerySource(name="global_source", table="p.d.t",',
            ),
            "is a BigQuerySource",
        ),
        (
            lambda d: d.replace('Field(name="origin", dtype=String)', 'Field(name="origin", dtype=Float64)'),
            "join key 'origin' is DOUBLE",
        ),
        (lambda d: d.replace('path="data/weather.parquet"', 'path="s3://bucket/weather.parquet"'), "is remote"),
    ],
)
def test_apply_refuses_what_feastline_cannot_serve_before_the_registry_changes(tmp_path: Path, change, message) -> None:  # type: ignore[no-untyped-def]
    repo = write_repo(tmp_path / "repo", split=False)
    first = apply(repo)
    assert first.returncode == 0, first.stdout + first.stderr
    registry, lineage = registry_state(repo), (repo / "data" / "lineage.db").read_bytes()
    definitions = repo / "definitions.py"
    changed = change(definitions.read_text())
    assert changed != definitions.read_text()
    definitions.write_text(changed)
    done = apply(repo)
    assert done.returncode == 1, done.stdout + done.stderr
    assert message in " ".join(done.stdout.split()), done.stdout + done.stderr
    assert registry_state(repo) == registry
    with TestClient(create_app(Settings(repo=repo, now=NOW))) as c:
        assert len(c.get("/lineage/versions").json()["versions"]) == 1
    del lineage


def test_apply_refuses_a_push_source_over_a_glob(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "repo")
    definitions = repo / "definitions.py"
    definitions.write_text(definitions.read_text().replace('path="data/weather"', 'path="data/weather/part-*.parquet"'))
    done = apply(repo)
    assert done.returncode == 1
    assert "a push to offline needs a file or a directory" in " ".join(done.stdout.split())
    assert registry_state(repo) is None and not (repo / "data" / "lineage.db").exists()


def test_apply_is_atomic_when_recording_the_lineage_fails(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "repo", split=False)
    assert apply(repo).returncode == 0
    registry = registry_state(repo)
    definitions = repo / "definitions.py"
    definitions.write_text(definitions.read_text().replace("ttl=timedelta(hours=6)", "ttl=timedelta(hours=7)"))
    broken = {**__import__("os").environ, "FEASTLINE_LINEAGE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"}
    done = subprocess.run(
        [str(FEASTLINE), "apply", "--repo", str(repo)], capture_output=True, text=True, check=False, env=broken
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "registry restored" in done.stdout
    assert registry_state(repo) == registry
    shutil.rmtree(repo / "data" / "training_sets", ignore_errors=True)
