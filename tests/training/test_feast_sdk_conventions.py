"""Feast's SDK conventions on feastline's offline store, and the join-key rule shared by every route.

A repo in tmp_path written as Feast's universal tests write theirs: the entity ``driver`` has no value
type, the view declares ``driver_id`` ``String`` and its source holds integers (``field_mapping`` from
``id``); a second view over text keys (``"1001"``, ``"01001"``, ``"+1001"``); a third whose key column
holds floats; ``Float32`` features held as float64 (a scalar and a list); an on-demand view with three
outputs and a request field. Expected values come from brute-force references in pandas that spell
an integer with Python's ``str`` (independently of DuckDB's cast).
"""

import io
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from feast import FeatureStore
from feast.value_type import ValueType
from hypothesis import given
from hypothesis import strategies as st

from service.app import create_app
from service.settings import Settings
from service.training.offline.errors import SourceKeyTypeMismatch
from service.training.offline.keys import canonical_decimal, source_column_types, source_key_sql
from tests.conftest import NoServerErrorClient

T0 = datetime(2024, 1, 1, tzinfo=UTC)
AT = T0 + timedelta(hours=2)
BIG = 2**62 + 1
YAML = """project: conventions
provider: local
registry: data/registry.db
online_store: {type: service.online.stores.sqlite.OrderedSqliteOnlineStore, path: data/online.db}
offline_store: {type: service.training.offline.feast_store.FeastlineOfflineStore}
entity_key_serialization_version: 3
"""
DEFINITIONS = """
from datetime import timedelta

import pandas as pd
from feast import Entity, FeatureView, Field, FileSource, RequestSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Array, Float32, Float64, Int64, String

driver = Entity(name="driver", join_keys=["driver_id"])  # no value_type, as in Feast's own tests
stats = FeatureView(
    name="stats", entities=[driver], ttl=timedelta(days=1),
    source=FileSource(path="data/stats.parquet", timestamp_field="ts", created_timestamp_column="created",
                      field_mapping={"id": "driver_id"}),
    schema=[Field(name="driver_id", dtype=String), Field(name="rate", dtype=Float32),
            Field(name="rates", dtype=Array(Float32)), Field(name="trips", dtype=Int64)],
)
labels = FeatureView(
    name="labels", entities=[driver], ttl=timedelta(days=1),
    source=FileSource(path="data/labels.parquet", timestamp_field="ts"),
    schema=[Field(name="driver_id", dtype=String), Field(name="label", dtype=String)],
)
odd = FeatureView(
    name="odd", entities=[driver], ttl=timedelta(days=1),
    source=FileSource(path="data/odd.parquet", timestamp_field="ts"),
    schema=[Field(name="driver_id", dtype=String), Field(name="x", dtype=Int64)],
)
request = RequestSource(name="req", schema=[Field(name="bonus", dtype=Float64)])


@on_demand_feature_view(
    sources=[stats, request],
    schema=[Field(name="rate_plus", dtype=Float64), Field(name="rate_twice", dtype=Float64),
            Field(name="unused", dtype=Float64)],
)
def derived(inputs: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame()
    out["rate_plus"] = inputs["rate"] + inputs["bonus"]
    out["rate_twice"] = inputs["rate"] * 2
    out["unused"] = inputs["rate"] * 0
    return out
"""


def stats_rows() -> pd.DataFrame:
    ts = [T0, T0 + timedelta(hours=1), T0, T0, T0, T0]
    return pd.DataFrame(
        {
            "id": pd.Series([1001, 1001, 1002, 5, -7, BIG], dtype="int64"),
            "ts": pd.to_datetime(ts, utc=True),
            "created": pd.to_datetime(ts, utc=True),
            "rate": [0.1, 1.111, 0.3, 5.5, -7.25, 9.9],  # float64: 0.1 is not a float32 value
            "rates": [[0.1, 1.111], [2.2], [], [5.5], [-7.25], [9.9]],
            "trips": pd.Series([1, 2, 3, 5, 7, 9], dtype="int64"),
        }
    )


def label_rows() -> pd.DataFrame:
    keys = ["1001", "01001", "+1001", "-7"]
    return pd.DataFrame(
        {"driver_id": keys, "ts": pd.to_datetime([T0] * 4, utc=True), "label": ["plain", "zero", "plus", "minus"]}
    )


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("conventions") / "repo"
    (repo / "data").mkdir(parents=True)
    (repo / "feature_store.yaml").write_text(YAML)
    (repo / "definitions.py").write_text(DEFINITIONS)
    stats_rows().to_parquet(repo / "data" / "stats.parquet", index=False)
    label_rows().to_parquet(repo / "data" / "labels.parquet", index=False)
    odd = pd.DataFrame({"driver_id": [1001.0], "ts": pd.to_datetime([T0], utc=True), "x": [1]})
    odd.to_parquet(repo / "data" / "odd.parquet", index=False)
    feastline = Path(sys.executable).parent / "feastline"
    done = subprocess.run([str(feastline), "apply", "--repo", str(repo)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return repo


def stats_ref(key: str) -> dict | None:
    """The latest stats row at AT whose integer id, spelled by Python, is ``key``."""
    rows = stats_rows()
    spelled = pd.Series([str(int(i)) for i in rows.id], index=rows.index)
    rows = rows[(spelled == key) & (rows.ts <= AT)]
    if rows.empty:
        return None
    best = rows.sort_values("ts").iloc[-1]
    return {"rate": best.rate, "rates": list(best.rates), "trips": int(best.trips)}


def label_ref(key: str) -> str | None:
    rows = label_rows()
    rows = rows[(rows.driver_id == key) & (rows.ts <= AT)]
    return None if rows.empty else str(rows.label.iloc[-1])


def answered(frame: pd.DataFrame) -> list[tuple[dict | None, str | None]]:
    out = []
    for r in frame.itertuples(index=False):
        stats = None if pd.isna(r.trips) else {"rate": r.rate, "rates": list(r.rates), "trips": int(r.trips)}
        out.append((stats, None if pd.isna(r.label) else r.label))
    return out


FEATURES = ["stats:rate", "stats:rates", "stats:trips", "labels:label"]
STRING_KEYS = ["1001", "01001", "+1001", "-7", " 5", "1001.0", str(BIG), "42"]


def test_integer_entity_rows_match_a_string_key_by_their_canonical_spelling(repo: Path) -> None:
    ints = [1001, 1002, 5, -7, 42, BIG]
    entity = pd.DataFrame({"driver_id": pd.Series(ints, dtype="int64"), "event_timestamp": [AT] * len(ints)})
    out = FeatureStore(repo_path=str(repo)).get_historical_features(entity, FEATURES).to_df()
    assert out["driver_id"].tolist() == ints  # the entity column passes through as given
    assert answered(out) == [(stats_ref(str(i)), label_ref(str(i))) for i in ints]
    # 1001 matches the text "1001" only, never "01001" or "+1001"
    assert answered(out)[0] == ({"rate": 1.111, "rates": [2.2], "trips": 2}, "plain")
    assert answered(out)[3][1] == "minus"


def test_text_entity_rows_match_integer_sources_only_by_the_exact_spelling(repo: Path) -> None:
    entity = pd.DataFrame({"driver_id": STRING_KEYS, "event_timestamp": [AT] * len(STRING_KEYS)})
    out = FeatureStore(repo_path=str(repo)).get_historical_features(entity, FEATURES).to_df()
    assert answered(out) == [(stats_ref(k), label_ref(k)) for k in STRING_KEYS]
    got = dict(zip(STRING_KEYS, answered(out), strict=True))
    assert got["01001"] == (None, "zero")  # the integer 1001 is never "01001"
    assert got["+1001"] == (None, "plus")
    assert got[" 5"] == got["1001.0"] == got["42"] == (None, None)
    assert got[str(BIG)][0] == {"rate": 9.9, "rates": [9.9], "trips": 9}


def test_the_http_route_joins_by_the_same_rule_and_keeps_json_strict(repo: Path) -> None:
    rows = [{"driver_id": k, "event_timestamp": AT.isoformat()} for k in STRING_KEYS]
    with NoServerErrorClient(create_app(Settings(repo=repo, now=AT))) as client:
        response = client.post("/training-sets", json={"features": FEATURES[2:], "entity_rows": rows})
        assert response.status_code == 201, response.text
        got = [(r["trips"], r["label"]) for r in response.json()["rows"]]
        expected = [(None if stats_ref(k) is None else stats_ref(k)["trips"], label_ref(k)) for k in STRING_KEYS]
        assert got == expected
        assert got[1] == (None, "zero")  # DuckDB left alone would cast "01001" to 1001

        bad = [
            {"driver_id": "1001", "event_timestamp": AT.isoformat()},
            {"driver_id": 1001, "event_timestamp": AT.isoformat()},
        ]
        response = client.post("/training-sets", json={"features": FEATURES[2:], "entity_rows": bad})
        assert response.status_code == 422, response.text
        assert [(p["row"], p["field"]) for p in response.json()["problems"]] == [(1, "driver_id")]

        response = client.post("/training-sets", json={"features": ["odd:x"], "entity_rows": rows[:1]})
        assert response.status_code == 409, response.text
        assert response.json()["feature_view"] == "odd"
        assert response.json()["source_type"] == "DOUBLE"


def test_a_key_column_of_another_kind_is_refused_on_the_sdk_path(repo: Path) -> None:
    entity = pd.DataFrame({"driver_id": ["1001"], "event_timestamp": [AT]})
    with pytest.raises(SourceKeyTypeMismatch, match="odd"):
        FeatureStore(repo_path=str(repo)).get_historical_features(entity, ["odd:x"]).to_df()


def test_materialized_string_keys_over_integers_read_back_by_their_spelling(repo: Path) -> None:
    with NoServerErrorClient(create_app(Settings(repo=repo, now=AT))) as client:
        body = {"start": "2023-12-31T00:00:00Z", "end": AT.isoformat(), "feature_views": ["stats", "labels"]}
        queued = client.post("/materialize", json=body)
        assert queued.status_code == 202, queued.text
        job = wait(client, queued.json()["id"])
        assert job["status"] == "completed", job
        keys = ["1001", "01001", "-7", str(BIG)]
        response = client.post("/get-online-features", json={"features": FEATURES[2:], "entities": {"driver_id": keys}})
        assert response.status_code == 200, response.text
        results = dict(zip(response.json()["metadata"]["feature_names"], response.json()["results"], strict=True))
        assert results["trips"]["values"] == [None if stats_ref(k) is None else stats_ref(k)["trips"] for k in keys]
        assert results["trips"]["statuses"] == ["PRESENT", "NOT_FOUND", "PRESENT", "PRESENT"]
        assert results["label"]["values"] == [label_ref(k) for k in keys]

        queued = client.post("/materialize", json=body | {"feature_views": ["odd"]})
        job = wait(client, queued.json()["id"])
        assert job["status"] == "failed" and "SourceKeyTypeMismatch" in job["error"], job


def wait(client: NoServerErrorClient, job_id: str) -> dict:
    job: dict = {"status": "queued"}
    for _ in range(600):
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] in ("completed", "failed"):
            break
        time.sleep(0.05)
    return job


def test_sdk_answers_features_as_the_source_holds_them_and_http_at_the_declared_type(repo: Path) -> None:
    entity = pd.DataFrame({"driver_id": ["1001", "1002"], "event_timestamp": [AT, AT]})
    job = FeatureStore(repo_path=str(repo)).get_historical_features(entity, FEATURES[:3])
    table = job.to_arrow()
    assert str(table.schema.field("rate").type) == "double"
    assert str(table.schema.field("rates").type) == "list<item: double>"
    source = stats_rows()
    assert table.column("rate").to_pylist() == [source.rate[1], source.rate[2]] == [1.111, 0.3]
    assert table.column("rates").to_pylist() == [list(source.rates[1]), list(source.rates[2])]
    assert job.to_df()["rate"].dtype == np.float64

    rows = [
        {"driver_id": "1001", "event_timestamp": AT.isoformat()},
        {"driver_id": "1002", "event_timestamp": AT.isoformat()},
    ]
    with NoServerErrorClient(create_app(Settings(repo=repo, now=AT))) as client:
        body = {"features": FEATURES[:3], "entity_rows": rows}
        answer = client.post("/training-sets", json=body, headers={"accept": "application/vnd.apache.parquet"})
        assert answer.status_code == 201, answer.text
        frame = pd.read_parquet(io.BytesIO(answer.content))
        assert frame["rate"].dtype == np.float32  # the route's documented contract: the declared Float32
        assert frame["rate"].tolist() == [np.float32(1.111), np.float32(0.3)]
        json_rows = client.post("/training-sets", json=body).json()["rows"]
        assert [r["rate"] for r in json_rows] == [1.111, 0.3]  # the shortest decimal of the float32


@pytest.mark.parametrize("full", [False, True])
def test_each_on_demand_view_answers_its_requested_outputs_once(repo: Path, full: bool) -> None:
    entity = pd.DataFrame({"driver_id": ["1001", "5", "42"], "event_timestamp": [AT] * 3, "bonus": [0.5, 1.0, 2.0]})
    refs = ["stats:trips", "derived:rate_plus", "derived:rate_twice"]
    out = FeatureStore(repo_path=str(repo)).get_historical_features(entity, refs, full_feature_names=full).to_df()
    name = (lambda v, f: f"{v}__{f}") if full else (lambda v, f: f)
    columns = list(out.columns)
    assert len(columns) == len(set(columns))  # each output once
    assert columns[:4] == ["driver_id", "event_timestamp", "bonus", name("stats", "trips")]
    # then the view's sources, which Feast's FeatureStore adds to the references the store answers (in the
    # order of a Python set: not fixed), then the requested outputs (not "unused")
    assert set(columns[4:6]) == {name("stats", "rate"), name("stats", "rates")}
    assert columns[6:] == [name("derived", "rate_plus"), name("derived", "rate_twice")]
    rates = [None if stats_ref(k) is None else stats_ref(k)["rate"] for k in entity.driver_id]
    # computed from the source's float64 values, as Feast's own stores feed the view
    assert out[name("derived", "rate_plus")].tolist()[:2] == [rates[0] + 0.5, rates[1] + 1.0]
    assert out[name("derived", "rate_twice")].tolist()[:2] == [rates[0] * 2, rates[1] * 2]
    assert out[name("derived", "rate_plus")].isna().tolist() == [False, False, True]


@given(st.integers(min_value=-(2**63), max_value=2**64 - 1))
def test_duckdb_and_python_spell_every_64_bit_integer_alike(value: int) -> None:
    """Both sides of a String key over integers must spell an integer the same way: the entity column by
    ``canonical_decimal`` (Python), the source column by DuckDB's cast; ``int(text)`` reads it back."""
    column = pd.Series([value], dtype="int64" if value < 2**63 else "uint64")
    with duckdb.connect() as con:
        con.register("source", pd.DataFrame({"id": column}))  # a typed column, as a Parquet source reads
        spelled = con.execute(
            f"SELECT {source_key_sql('v', 'k', 'id', 'BIGINT', ValueType.STRING)} FROM source"
        ).fetchone()
    assert spelled is not None
    ours = canonical_decimal(column).iloc[0]
    assert spelled[0] == ours == str(value)
    assert int(ours) == value


def test_a_key_column_of_nulls_only_is_taken_for_any_declared_type(tmp_path: Path) -> None:
    """A push source's file before any push holds its key as Parquet's null type (DuckDB: "NULL")."""
    path = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"origin": pa.array([None], pa.null()), "n": pa.array([1], pa.int64())}), path)
    with duckdb.connect() as con:
        types = source_column_types(con, str(path))
    assert types == {"origin": "NULL", "n": "BIGINT"}
    assert source_key_sql("v", "origin", "origin", types["origin"], ValueType.STRING) == '"origin"'


def test_source_key_rule_takes_only_columns_that_hold_the_declared_type() -> None:
    assert source_key_sql("v", "k", "id", "BIGINT", ValueType.STRING) == 'CAST("id" AS VARCHAR)'
    assert source_key_sql("v", "k", "id", "VARCHAR", ValueType.STRING) == '"id"'
    assert source_key_sql("v", "k", "id", "INTEGER", ValueType.INT64) == '"id"'
    assert source_key_sql("v", "k", "id", "DOUBLE", ValueType.UNKNOWN) == '"id"'
    assert source_key_sql("v", "k", "id", "NULL", ValueType.INT64) == '"id"'  # nulls only: no key to cast
    refused = [
        ("VARCHAR", ValueType.INT64),  # "01001" and "1001" would both be 1001
        ("VARCHAR", ValueType.INT32),
        ("DOUBLE", ValueType.STRING),
        ("DOUBLE", ValueType.INT64),
        ("BOOLEAN", ValueType.STRING),
        ("VARCHAR", ValueType.BYTES),
        ("BIGINT", ValueType.UNIX_TIMESTAMP),
        ("no such column", ValueType.STRING),
    ]
    for physical, declared in refused:
        with pytest.raises(SourceKeyTypeMismatch) as caught:
            source_key_sql("v", "k", "id", physical, declared)
        assert caught.value.details()["source_type"] == physical
