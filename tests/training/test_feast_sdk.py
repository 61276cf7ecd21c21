"""Feast's own SDK on feastline's offline store (``FeastlineOfflineStore``): a small repo in tmp_path whose
source maps its timestamp and created columns (``field_mapping``), applied with ``feastline apply`` and
read with ``FeatureStore``. Expected values come from a brute-force point-in-time reference in pandas.
"""

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from feast import FeatureStore
from feast.errors import SavedDatasetLocationAlreadyExists
from feast.infra.offline_stores.file_source import SavedDatasetFileStorage

T0 = datetime(2024, 1, 1, tzinfo=UTC)
YAML = """project: sdk
provider: local
registry: data/registry.db
online_store: {type: sqlite, path: data/online.db}
offline_store: {type: service.training.offline.feast_store.FeastlineOfflineStore}
entity_key_serialization_version: 3
"""
DEFINITIONS = """
from datetime import timedelta
from feast import Entity, FeatureView, Field, FileSource
from feast.types import Float64, Int64

driver = Entity(name="driver", join_keys=["driver_id"])
source = FileSource(
    path="data/stats.parquet",
    timestamp_field="ts",
    created_timestamp_column="created",
    field_mapping={"ts_1": "ts", "created_1": "created", "trips_raw": "trips"},
)
stats = FeatureView(
    name="stats", entities=[driver], ttl=timedelta(hours=5),
    schema=[Field(name="rate", dtype=Float64), Field(name="trips", dtype=Int64)], source=source,
)
"""


def stats_frame() -> pd.DataFrame:
    """Two drivers, hourly rows; created lags the event by 30 min, one row is a late backfill."""
    rows = []
    for d, driver in enumerate(["a", "b"]):
        for h in range(6):
            ts = T0 + timedelta(hours=h)
            late = driver == "a" and h == 3
            rows.append(
                {
                    "driver_id": driver,
                    "ts_1": ts,
                    "created_1": ts + (timedelta(hours=10) if late else timedelta(minutes=30)),
                    "rate": round(0.1 * h + d, 3),
                    "trips_raw": 10 * h + d,
                }
            )
    frame = pd.DataFrame(rows)
    frame["ts_1"] = frame["ts_1"].astype("datetime64[ns, UTC]")
    frame["created_1"] = frame["created_1"].astype("datetime64[ns, UTC]")
    return frame


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    (repo / "feature_store.yaml").write_text(YAML)
    (repo / "definitions.py").write_text(DEFINITIONS)
    stats_frame().to_parquet(repo / "data" / "stats.parquet", index=False)
    feastline = Path(sys.executable).parent / "feastline"
    done = subprocess.run([str(feastline), "apply", "--repo", str(repo)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return repo


def reference(source: pd.DataFrame, driver: str, at: pd.Timestamp) -> dict | None:
    """The slow, obvious rule: the latest row with ts <= at, ts >= at - ttl, created <= at."""
    rows = source[
        (source.driver_id == driver)
        & (source.ts_1 <= at)
        & (source.ts_1 >= at - timedelta(hours=5))
        & (source.created_1 <= at)
    ]
    if rows.empty:
        return None
    best = rows.assign(_row=range(len(rows))).sort_values(["ts_1", "created_1", "_row"]).iloc[-1]
    return {"rate": best.rate, "trips": int(best.trips_raw)}


def entity_rows() -> pd.DataFrame:
    times = [T0 + timedelta(minutes=m) for m in (0, 40, 200, 215, 250, 390, 700)]
    frame = pd.DataFrame([{"driver_id": d, "event_timestamp": t} for d in ("a", "b", "zz") for t in times])
    frame["event_timestamp"] = frame["event_timestamp"].astype("datetime64[ns, UTC]")
    return frame


def expected(source: pd.DataFrame, entity: pd.DataFrame) -> list[dict | None]:
    return [reference(source, r.driver_id, r.event_timestamp) for r in entity.itertuples()]


def answered(frame: pd.DataFrame) -> list[dict | None]:
    return [None if pd.isna(r.rate) else {"rate": r.rate, "trips": int(r.trips)} for r in frame.itertuples(index=False)]


def test_mapped_timestamp_and_created_columns_give_the_point_in_time_answer(repo: Path) -> None:
    store = FeatureStore(repo_path=str(repo))
    entity = entity_rows()
    out = store.get_historical_features(entity_df=entity, features=["stats:rate", "stats:trips"]).to_df()
    assert list(out.columns) == ["driver_id", "event_timestamp", "rate", "trips"]
    assert answered(out) == expected(stats_frame(), entity)
    assert any(e is not None for e in expected(stats_frame(), entity))


def test_persist_writes_the_answer_and_never_overwrites_silently(repo: Path) -> None:
    store = FeatureStore(repo_path=str(repo))
    entity = entity_rows()
    job = store.get_historical_features(entity_df=entity, features=["stats:rate", "stats:trips"])
    # absolute: Feast's inherited DuckDB read of a saved dataset resolves a relative path against the cwd
    storage = SavedDatasetFileStorage(path=str(repo / "data" / "saved.parquet"))
    saved = store.create_saved_dataset(from_=job, name="ds", storage=storage)
    written = pd.read_parquet(repo / "data" / "saved.parquet")
    assert answered(written) == expected(stats_frame(), entity)
    order = ["driver_id", "event_timestamp"]
    assert answered(store.get_saved_dataset(saved.name).to_df().sort_values(order)) == answered(
        written.sort_values(order)
    )
    before = (repo / "data" / "saved.parquet").read_bytes()
    with pytest.raises(SavedDatasetLocationAlreadyExists):
        job.persist(storage)
    assert (repo / "data" / "saved.parquet").read_bytes() == before
    job.persist(storage, allow_overwrite=True)
    assert answered(pd.read_parquet(repo / "data" / "saved.parquet")) == expected(stats_frame(), entity)
    assert sorted(p.name for p in (repo / "data").iterdir() if p.name.endswith(".tmp")) == []


def test_persist_to_a_directory_writes_one_part_file_and_never_mixes_in_other_files(repo: Path) -> None:
    """A path without ``.parquet`` is a directory dataset (Feast's File store writes one too): the answer is
    ``<dir>/part-0.parquet``; other Parquet files in it would be read as rows of the dataset, so it is refused."""
    store = FeatureStore(repo_path=str(repo))
    entity = entity_rows()
    job = store.get_historical_features(entity_df=entity, features=["stats:rate", "stats:trips"])
    folder = repo / "data" / "saved_dir"
    folder.mkdir()  # an existing (empty) directory, as Feast's tests hand out
    storage = SavedDatasetFileStorage(path=str(folder))
    with pytest.raises(SavedDatasetLocationAlreadyExists):
        job.persist(storage)
    assert list(folder.iterdir()) == []
    saved = store.create_saved_dataset(from_=job, name="ds_dir", storage=storage, allow_overwrite=True)
    assert sorted(p.name for p in folder.iterdir()) == ["part-0.parquet"]
    order = ["driver_id", "event_timestamp"]
    assert answered(saved.to_df().sort_values(order)) == answered(
        entity.assign(
            rate=[None if e is None else e["rate"] for e in expected(stats_frame(), entity)],
            trips=[None if e is None else e["trips"] for e in expected(stats_frame(), entity)],
        ).sort_values(order)
    )
    job.persist(storage, allow_overwrite=True)  # its own part file is overwritten in place
    assert sorted(p.name for p in folder.iterdir()) == ["part-0.parquet"]

    other = repo / "data" / "other_dir"
    (other / "nested").mkdir(parents=True)
    stats_frame().to_parquet(other / "nested" / "x.parquet")
    with pytest.raises(ValueError, match="other Parquet files"):
        job.persist(SavedDatasetFileStorage(path=str(other)), allow_overwrite=True)
    assert sorted(str(p.relative_to(other)) for p in other.rglob("*")) == ["nested", "nested/x.parquet"]


def test_non_entity_mode_answers_each_entity_seen_in_the_range_as_of_its_end(repo: Path) -> None:
    store = FeatureStore(repo_path=str(repo))
    source = stats_frame()
    start, end = T0 + timedelta(hours=1), T0 + timedelta(hours=3, minutes=45)
    out = store.get_historical_features(features=["stats:rate", "stats:trips"], start_date=start, end_date=end).to_df()
    seen = sorted(source[(source.ts_1 >= start) & (source.ts_1 <= end)].driver_id.unique())
    assert list(out.driver_id) == seen == ["a", "b"]
    assert (out.event_timestamp == pd.Timestamp(end)).all()
    assert answered(out) == [reference(source, d, pd.Timestamp(end)) for d in seen]
    # a's 03:00 row was created at 13:00: not known at 03:45, so a answers its 02:00 row
    assert answered(out)[0] == {"rate": 0.2, "trips": 20}


def test_offline_write_keeps_the_file_dtypes_and_is_read_back(repo: Path) -> None:
    store = FeatureStore(repo_path=str(repo))
    path = repo / "data" / "stats.parquet"
    schema = pq.read_schema(path)
    at = T0 + timedelta(hours=8)
    new = pd.DataFrame(
        {
            "driver_id": ["b"],
            "ts_1": [at.replace(tzinfo=None)],  # naive micro-second stamps: Feast's own test data does this
            "created_1": [at.replace(tzinfo=None)],
            "rate": [9.5],
            "trips_raw": [None],  # a null in an Int64 column must not turn it into double
        }
    ).astype({"ts_1": "datetime64[us]", "created_1": "datetime64[us]", "trips_raw": "Int64"})
    store.write_to_offline_store("stats", new)
    store.write_to_offline_store("stats", new.assign(rate=[9.75], trips_raw=pd.array([7], dtype="Int64")))
    after = pq.read_table(path)
    assert after.schema.remove_metadata() == schema.remove_metadata()
    assert after.num_rows == len(stats_frame()) + 2
    assert after.column("trips_raw").to_pylist()[-2:] == [None, 7]
    entity = pd.DataFrame({"driver_id": ["b"], "event_timestamp": [pd.Timestamp(at)]})
    out = store.get_historical_features(entity_df=entity, features=["stats:rate", "stats:trips"]).to_df()
    assert answered(out) == [{"rate": 9.75, "trips": 7}]  # equal event and created: the later row wins

    before = path.read_bytes()
    bad = new.astype({"ts_1": str, "created_1": str})  # text stamps are refused, the file is unchanged
    with pytest.raises(ValueError, match="ts_1"):
        store.write_to_offline_store("stats", bad)
    assert path.read_bytes() == before


def test_created_cut_off_is_the_default_and_the_store_config_can_lift_it(repo: Path) -> None:
    """Driver a's 03:00 row is created at 13:00. At 03:35 the default leaves it out (02:00's row answers);
    ``allow_created_after_entity: true`` in ``feature_store.yaml`` joins it, as Feast's own stores do."""
    at = pd.DataFrame({"driver_id": ["a"], "event_timestamp": [pd.Timestamp(T0 + timedelta(minutes=215))]})
    default = FeatureStore(repo_path=str(repo)).get_historical_features(at, ["stats:trips"]).to_df()
    assert default["trips"].tolist() == [20]
    config = repo / "feature_store.yaml"
    config.write_text(
        config.read_text().replace("FeastlineOfflineStore}", "FeastlineOfflineStore, allow_created_after_entity: true}")
    )
    lifted = FeatureStore(repo_path=str(repo)).get_historical_features(at, ["stats:trips"]).to_df()
    assert lifted["trips"].tolist() == [30]
    # Feast's per-call filter_by_created_timestamp=True applies the cut-off whatever the config says
    asked = FeatureStore(repo_path=str(repo)).get_historical_features(
        at, ["stats:trips"], filter_by_created_timestamp=True
    )
    assert asked.to_df()["trips"].tolist() == [20]
