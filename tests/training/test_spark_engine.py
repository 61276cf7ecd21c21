"""The Spark engine (``service/training/offline/spark_engine.py``) against the DuckDB engine: the same
frame, exactly (``pandas.testing.assert_frame_equal``: columns, dtypes, index, order, values).

- all 336,776 flights of the demo repo, for ``delay_model_v2`` (three views and the on-demand
  ``plane_age``, through ``training_sets.compute`` with ``FEASTLINE_OFFLINE_ENGINE=spark``'s setting,
  the audit compared too) and ``delay_model_v1`` with the created cut-off turned off;
- the generated cases of the property test (``tests/training/test_pit_property.py``: its strategies,
  and its slow reference as well), with a smaller budget: **25 examples** instead of 300, since each
  Spark join costs ~1-3 s of job overhead on 2 cores where DuckDB's costs milliseconds;
- a directory source whose file names need URL escaping, ties across files, and an integer source
  column for a ``String`` key.

One Spark session (``local[2]``, 2 shuffle partitions, no UI) serves the module; its tests take about
2.6 minutes on 2 cores (measured under a load average of ~5: v2 80 s, generated cases 50 s, v1 21 s),
besides building the demo repo (the session's ``built_repo`` fixture, ~60 s, shared in ``make test``).
"""

import uuid
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from feast import FeatureStore
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.settings import Settings
from service.training.offline import engine, spark_engine
from service.training.offline.engine import JoinOptions, get_training_frame
from service.training.offline.views import ViewSpec, plan_retrieval, service_references
from service.training.training_sets import TrainingSetOptions, compute
from tests.training.test_pit_property import differences, entity_frames, sources, view_names

pytest.importorskip("pyspark")
pytestmark = pytest.mark.slow

SPARK_CONF = {
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.driver.memory": "2g",
}


@pytest.fixture(scope="module", autouse=True)
def spark():  # type: ignore[no-untyped-def]
    """The module's Spark session (the engine's own, built here with the test's settings)."""
    session = spark_engine.session("local[2]", SPARK_CONF)
    yield session
    spark_engine.stop()


@pytest.fixture(scope="module")
def flights(built_repo: Path) -> pd.DataFrame:
    columns = ["flight_id", "origin", "carrier", "tailnum", "sched_year", "event_timestamp", "label_delayed"]
    return pd.read_parquet(built_repo / "data" / "flights.parquet", columns=columns)


def test_delay_model_v2_on_all_flights_is_the_duckdb_answer(built_repo: Path, flights: pd.DataFrame) -> None:
    store = FeatureStore(repo_path=str(built_repo))
    opts = TrainingSetOptions(feature_service="delay_model_v2")
    plan = plan_retrieval(store, service_references(store, "delay_model_v2"), "delay_model_v2")
    duck = compute(flights, plan, opts)
    spark = compute(flights, plan, opts, Settings(repo=built_repo, offline_engine="spark", spark_master="local[2]"))
    assert len(spark.frame) == len(flights) == 336_776
    pd.testing.assert_frame_equal(spark.frame, duck.frame, check_exact=True)
    assert spark.audit == duck.audit and spark.audit.passed
    assert spark.frame["plane_age_years"].notna().sum() > 0  # the on-demand view was computed


def test_delay_model_v1_without_the_created_cut_off_is_the_duckdb_answer(
    built_repo: Path, flights: pd.DataFrame
) -> None:
    store = FeatureStore(repo_path=str(built_repo))
    plan = plan_retrieval(store, service_references(store, "delay_model_v1"), "delay_model_v1")
    entity = flights.drop(columns=["tailnum", "sched_year"])
    duck = engine.join_views(entity, plan.views, created_filter=False)
    spark = spark_engine.join_views(entity, plan.views, created_filter=False)
    pd.testing.assert_frame_equal(spark, duck, check_exact=True)
    assert duck["origin_weather____feature_ts"].notna().sum() > 300_000  # a real join, not two empty frames


@settings(
    max_examples=25,  # the CI budget for Spark (the DuckDB engine's property test runs 300)
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data(), created_filter=st.booleans())
def test_generated_cases_are_the_duckdb_answer(data: st.DataObject, created_filter: bool, tmp_path: Path) -> None:
    srcs = data.draw(view_names.flatmap(sources), label="sources")
    entity_df = data.draw(entity_frames(), label="entity_df")
    folder = tmp_path / uuid.uuid4().hex  # a fresh file per example: no cache may see an older one
    folder.mkdir()
    specs = tuple(s.write(folder) for s in srcs)
    duck = engine.join_views(entity_df, specs, created_filter=created_filter)
    spark = spark_engine.join_views(entity_df, specs, created_filter=created_filter)
    pd.testing.assert_frame_equal(spark, duck, check_exact=True)
    diff = differences(spark, entity_df, srcs, created_filter)  # and the property test's reference
    assert not diff, "Spark differs from the reference:\n" + "\n".join(diff)


def _spec(path: Path, keys: tuple[str, ...], ttl: timedelta | None = None) -> ViewSpec:
    return ViewSpec(
        name="v",
        path=path,
        join_keys=keys,
        features=("x",),
        timestamp_field="event_timestamp",
        created_field="created",
        ttl=ttl,
        columns={c: c for c in (*keys, "x")},
        definition=None,  # type: ignore[arg-type]
    )


def test_directory_source_with_escaped_names_breaks_ties_by_file_then_row(tmp_path: Path) -> None:
    folder = tmp_path / "src dir%+ü"
    folder.mkdir()
    t = pd.Timestamp("2024-01-01", tz="UTC")
    # "a{b" sorts last by name, but not once escaped ("a%7Bb" < "a+b"): the order must be the names'
    names = ["a b.parquet", "a+b.parquet", "a%b.parquet", "a{b.parquet", "Sub/z.parquet"]
    for i, name in enumerate(names):  # every file holds the same key at the same times: ties across files
        (folder / name).parent.mkdir(exist_ok=True)
        table = pa.table(
            {
                "k": pa.array([1001, 1001, 7], pa.int64()),
                "event_timestamp": pa.array([t, t, t + pd.Timedelta(1, "ns")], pa.timestamp("ns", "UTC")),
                "created": pa.array([t, t, None], pa.timestamp("ns", "UTC")),
                "x": pa.array([10.0 * i, 10.0 * i + 1, None]),
            }
        )
        pq.write_table(table, folder / name, row_group_size=1)
    spec = _spec(folder, ("k",))
    spec = ViewSpec(**{**spec.__dict__, "types": {"k": engine.ValueType.STRING}})  # integers for a String key
    entity = pd.DataFrame(
        {
            "k": ["1001", "01001", "7", None, "1001"],
            "event_timestamp": pd.Series([t, t, t + pd.Timedelta(5, "s"), t, t - pd.Timedelta(1, "ns")]),
        }
    )
    for created_filter in (True, False):
        duck = engine.join_views(entity, (spec,), created_filter)
        spark = spark_engine.join_views(entity, (spec,), created_filter)
        pd.testing.assert_frame_equal(spark, duck, check_exact=True)
        # row 0: the last file by name ("a{b", file 3), its later row; "01001" is not "1001"; key 7's
        # row has no created time (never taken under the cut-off; taken, with its null x, without it)
        assert duck["v__x"].iloc[0] == 31.0
        assert duck["v__x"].iloc[1:].isna().all()
        assert duck["v____feature_ts"].notna().tolist() == [True, False, not created_filter, False, False]


def test_training_frame_options_pick_the_engine(tmp_path: Path) -> None:
    t = pd.Timestamp("2024-01-01", tz="UTC")
    path = tmp_path / "v.parquet"
    frame = pd.DataFrame({"k": ["a", "a"], "event_timestamp": [t, t], "created": [t, t], "x": [1.0, None]})
    frame.to_parquet(path)
    spec = _spec(path, ("k",), ttl=timedelta(hours=1))
    from service.training.offline.views import RetrievalPlan

    plan = RetrievalPlan(views=(spec,), on_demand=(), requested=(("v", "x"),))
    entity = pd.DataFrame({"k": ["a", "b"], "event_timestamp": [t, t + pd.Timedelta(2, "h")]})
    duck = get_training_frame(entity, plan, JoinOptions())
    spark = get_training_frame(entity, plan, JoinOptions(engine="spark"))
    pd.testing.assert_frame_equal(spark.frame, duck.frame, check_exact=True)
    assert spark.audit == duck.audit
    assert duck.frame["x"].isna().all()  # the newest row's null is kept, never the older row's 1.0


def test_the_engine_is_chosen_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().offline_engine == "duckdb" and Settings().spark_master == "local[*]"
    monkeypatch.setenv("FEASTLINE_OFFLINE_ENGINE", "spark")
    monkeypatch.setenv("FEASTLINE_SPARK_MASTER", "spark://example:7077")
    assert (Settings().offline_engine, Settings().spark_master) == ("spark", "spark://example:7077")
    monkeypatch.setenv("FEASTLINE_OFFLINE_ENGINE", "flink")
    with pytest.raises(ValueError):
        Settings()


def test_the_session_is_built_once_and_shared_by_threads(spark) -> None:  # type: ignore[no-untyped-def]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        sessions = list(pool.map(lambda _: spark_engine.session("local[1]"), range(16)))
    assert all(s is spark for s in sessions)  # later masters are ignored: one session per process
    assert spark.conf.get("spark.sql.legacy.parquet.nanosAsLong") == "true"
