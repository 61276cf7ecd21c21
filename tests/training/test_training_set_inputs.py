"""What ``POST /training-sets`` accepts, refuses and answers at its edges: extra columns of Parquet
tables (nested, NaN, ±inf), strict ISO 8601 timestamps, lossy number mixes, content negotiation,
unknown query parameters, the JSON size limit on reads, empty tables, reproduce's verdicts and the
audit's exact ages."""

import hashlib
import io
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from service.app import create_app
from service.settings import Settings
from tests.conftest import NoServerErrorClient, copy_repo

PARQUET = "application/vnd.apache.parquet"
ARROW = "application/vnd.apache.arrow.stream"
JSON = "application/json"
TEMP = "/training-sets?features=origin_weather:temp"
SUPPORTED = [JSON, PARQUET, ARROW]


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def entities(**extra: list) -> pd.DataFrame:
    """An entity table of three rows (or as many as the extra columns have), an hour apart."""
    n = len(next(iter(extra.values()), [None] * 3))
    stamps = pd.date_range("2013-05-01T13:00Z", periods=n, freq="h").as_unit("ns")
    return pd.DataFrame({"origin": (["EWR", "JFK", "LGA"] * n)[:n], "event_timestamp": stamps, **extra})


def post_table(client, frame: pd.DataFrame, accept: str = PARQUET, url: str = TEMP):
    return client.post(url, content=parquet_bytes(frame), headers={"content-type": PARQUET, "accept": accept})


def post_rows(client, rows: list[dict], **options):
    return client.post("/training-sets", json={"features": ["origin_weather:temp"], "entity_rows": rows, **options})


def bad_rows(response, field: str) -> list[int | None]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return [p["row"] for p in response.json()["problems"] if p["field"] == field]


def weather_temp(built_repo, origin: str, at: str) -> float:
    weather = pd.read_parquet(built_repo / "data" / "origin_weather.parquet")
    hit = weather[(weather.origin == origin) & (weather.event_timestamp == pd.Timestamp(at))]
    assert len(hit) == 1
    return float(hit.temp.iloc[0])


# -- extra columns of a Parquet/Arrow entity table --------------------------------------------------


def test_a_nested_extra_column_is_a_422_naming_it_and_its_rows(client):
    response = post_table(client, entities(x=[[1], [2], [3]]))
    assert bad_rows(response, "x") == [0, 1, 2]
    assert "nested" in response.json()["problems"][0]["problem"]


def test_a_nested_join_key_is_a_422_naming_it(client):
    frame = entities().assign(origin=[["EWR"], ["JFK"], ["LGA"]])
    assert bad_rows(post_table(client, frame), "origin") == [0, 1, 2]


def test_nan_in_an_extra_float_column_is_a_missing_value_written_as_null(client):
    frame = entities(x=[np.nan, 1.5, np.nan])
    created = post_table(client, frame, accept=JSON)
    assert created.status_code == 201, created.text
    assert [r["x"] for r in created.json()["rows"]] == [None, 1.5, None]
    stored = client.get(f"/training-sets/{created.json()['id']}/data", headers={"accept": JSON})
    assert stored.status_code == 200 and [r["x"] for r in stored.json()["rows"]] == [None, 1.5, None]
    as_parquet = pd.read_parquet(io.BytesIO(client.get(f"/training-sets/{created.json()['id']}/data").content))
    assert as_parquet.x.isna().tolist() == [True, False, True]


@pytest.mark.parametrize("accept", [JSON, PARQUET])
def test_infinity_in_an_extra_float_column_is_a_422_naming_the_rows(client, accept):
    response = post_table(client, entities(x=[1.0, np.inf, -np.inf]), accept=accept)
    assert bad_rows(response, "x") == [1, 2]


def test_a_stored_set_holding_infinity_is_406_as_json_not_500(client, settings):
    created = post_table(client, entities(x=[1.0, 2.0, 3.0]))
    ts_id = created.headers["x-training-set-id"]
    path = settings.training_sets_path / client.get(f"/training-sets/{ts_id}").json()["data_path"]
    stored = pd.read_parquet(path)
    stored.loc[1, "x"] = np.inf  # as a set stored before infinities were refused
    stored.to_parquet(path, index=False)
    response = client.get(f"/training-sets/{ts_id}/data", headers={"accept": JSON})
    assert response.status_code == 406 and response.json()["field"] == "header.accept"
    assert "x at rows [1]" in response.json()["detail"]
    assert client.get(f"/training-sets/{ts_id}/data").status_code == 200


# -- timestamps: ISO 8601 only ----------------------------------------------------------------------

GOOD = {"origin": "EWR", "event_timestamp": "2013-05-01T13:00:00Z"}


@pytest.mark.parametrize(
    ("stamp", "options"),
    [
        ("01/05/2013 13:00 UTC", {}),
        ("1/5/13 1pm", {}),
        ("1/5/13 1pm", {"timezone": "UTC"}),
        ("2013-05-01 13:00 PDT", {"timezone": "UTC"}),
        ("May 1 2013 13:00Z", {}),
        ("2013-05-01T13:00:00,5Z", {}),
        ("20130501T130000Z", {}),
        ("2013-05-01T13Z", {}),
    ],
)
def test_a_timestamp_not_in_iso_8601_is_a_422_saying_so(client, stamp, options):
    rows = [GOOD, {**GOOD, "event_timestamp": stamp}, GOOD, {**GOOD, "event_timestamp": stamp}]
    response = post_rows(client, rows, **options)
    assert bad_rows(response, "event_timestamp") == [1, 3]
    problem = response.json()["problems"][0]["problem"]
    assert "not an ISO 8601" in problem and "no timezone" not in problem


@pytest.mark.parametrize(
    "stamp",
    ["2013-05-01T13:00:00Z", "2013-05-01 13:00Z", "2013-05-01T09:00:00-04:00", "2013-05-01T15:00+0200"],
)
def test_iso_8601_forms_are_read_exactly(client, built_repo, stamp):
    response = post_rows(client, [{**GOOD, "event_timestamp": stamp}])
    assert response.status_code == 201, response.text
    row = response.json()["rows"][0]
    assert row["event_timestamp"] == "2013-05-01T13:00:00Z"
    assert row["temp"] == weather_temp(built_repo, "EWR", "2013-05-01T13:00Z")


# -- numbers ----------------------------------------------------------------------------------------


def test_integers_beyond_2_53_mixed_with_decimals_are_a_422_not_rounded(client):
    big = 9007199254740993  # 2**53 + 1: float64 would make it ...992
    rows = [{**GOOD, "x": big}, {**GOOD, "x": 0.5}, {**GOOD, "x": -big}, {**GOOD, "x": 2**53}]
    assert bad_rows(post_rows(client, rows), "x") == [0, 2]
    exact = post_rows(client, [{**GOOD, "x": big}, {**GOOD, "x": 2}])
    assert exact.status_code == 201 and [r["x"] for r in exact.json()["rows"]] == [big, 2]
    mixed = post_rows(client, [{**GOOD, "x": 2**53}, {**GOOD, "x": 0.5}])
    assert mixed.status_code == 201 and [r["x"] for r in mixed.json()["rows"]] == [float(2**53), 0.5]


# -- content negotiation and query parameters --------------------------------------------------------


def test_reading_a_set_in_an_unsupported_type_is_406_listing_the_supported(client):
    created = post_rows(client, [GOOD])
    response = client.get(f"/training-sets/{created.json()['id']}/data", headers={"accept": "text/csv"})
    assert response.status_code == 406, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["supported"] == SUPPORTED and response.json()["field"] == "header.accept"
    anything = client.get(f"/training-sets/{created.json()['id']}/data", headers={"accept": "*/*"})
    assert anything.status_code == 200 and anything.headers["content-type"] == PARQUET
    ranked = client.get(f"/training-sets/{created.json()['id']}/data", headers={"accept": f"text/csv, {JSON};q=0.5"})
    assert ranked.status_code == 200 and ranked.json()["rows"] == created.json()["rows"]


def test_creating_a_set_in_an_unsupported_type_is_406_and_nothing_stored(client):
    response = client.post(
        "/training-sets",
        json={"features": ["origin_weather:temp"], "entity_rows": [GOOD]},
        headers={"accept": "text/csv"},
    )
    assert response.status_code == 406 and response.json()["supported"] == SUPPORTED
    assert "x-training-set-id" not in response.headers


def test_an_unknown_query_parameter_is_a_422_naming_it(client):
    response = post_table(client, entities(), url=f"{TEMP}&foo=bar")
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "query.foo"
    typo = post_table(client, entities(), url=f"{TEMP}&full_feature_name=true")
    assert typo.status_code == 422 and typo.json()["field"] == "query.full_feature_name"


def test_options_in_the_query_next_to_a_json_body_are_a_422(client):
    response = client.post(
        "/training-sets?full_feature_names=true", json={"features": ["origin_weather:temp"], "entity_rows": [GOOD]}
    )
    assert response.status_code == 422 and response.json()["field"] == "query.full_feature_names"


# -- sizes -------------------------------------------------------------------------------------------


def test_reading_a_set_as_json_has_the_same_size_limit(built_repo):
    with NoServerErrorClient(create_app(Settings(repo=built_repo, max_json_rows=2))) as c:
        created = post_table(c, entities())
        assert created.status_code == 201
        ts_id = created.headers["x-training-set-id"]
        response = c.get(f"/training-sets/{ts_id}/data", headers={"accept": JSON})
        assert response.status_code == 406, response.text
        body = response.json()
        assert body["field"] == "header.accept" and body["rows"] == 3 and body["limit"] == 2
        assert body["supported"] == ["application/vnd.apache.parquet", "application/vnd.apache.arrow.stream"]
        assert "3 rows" in body["detail"] and "Parquet" in body["detail"]
        assert len(pd.read_parquet(io.BytesIO(c.get(f"/training-sets/{ts_id}/data").content))) == 3


def test_an_empty_entity_table_is_the_same_422_as_empty_json_rows(client):
    as_table = post_table(client, entities().iloc[0:0])
    as_json = post_rows(client, [])
    assert as_table.status_code == as_json.status_code == 422, as_table.text
    assert as_table.json()["field"] == as_json.json()["field"] == "entity_rows"
    assert [p["field"] for p in as_table.json()["problems"]] == ["entity_rows"]


# -- reproduce ---------------------------------------------------------------------------------------


@pytest.fixture
def repo_copy(built_repo, tmp_path):
    copy = tmp_path / "repo"
    copy_repo(built_repo, copy, ignore=("training_sets",))
    with NoServerErrorClient(create_app(Settings(repo=copy))) as c:
        yield copy, c


def test_reproduce_is_not_identical_when_only_an_unused_source_row_changed(repo_copy):
    repo, client = repo_copy
    ts_id = post_rows(client, [GOOD]).json()["id"]
    same = client.post(f"/training-sets/{ts_id}/reproduce").json()
    assert same["identical"] is same["data_identical"] is same["inputs_identical"] is True
    path = repo / "data" / "origin_weather.parquet"
    weather = pd.read_parquet(path)
    unused = (weather.origin == "JFK") & (weather.event_timestamp == pd.Timestamp("2013-11-01T10:00Z"))
    assert unused.sum() == 1
    weather.loc[unused, "temp"] += 10
    weather.to_parquet(path, index=False)
    now = client.post(f"/training-sets/{ts_id}/reproduce").json()
    assert now["data_identical"] is True and now["differences"]["columns"] == []
    assert now["inputs_identical"] is False and now["identical"] is False
    assert now["fingerprint_now"] != now["fingerprint_then"]
    assert now["changed_sources"] == ["data/origin_weather.parquet"]  # relative to the repo


# -- the audit --------------------------------------------------------------------------------------


def test_audit_age_keeps_nanoseconds(client):
    response = post_rows(client, [{**GOOD, "event_timestamp": "2013-05-01T13:00:00.123456789Z"}])
    assert response.status_code == 201, response.text
    assert response.json()["rows"][0]["event_timestamp"] == "2013-05-01T13:00:00.123456789Z"
    age = response.json()["audit"]["views"][0]["max_feature_age_seconds"]
    assert age == 123456789 / 1e9


# -- types of a Parquet/Arrow entity table kept exactly ----------------------------------------------


def arrow_bytes(table: pa.Table, media: str) -> bytes:
    sink = io.BytesIO()
    if media == PARQUET:
        pq.write_table(table, sink)
    else:
        with ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    return sink.getvalue()


def entity_table(n: int, **extra: pa.Array) -> pa.Table:
    stamps = pa.array(pd.date_range("2013-05-01T13:00Z", periods=n, freq="h").as_unit("ns"))
    return pa.table({"origin": ["EWR", "JFK", "LGA"][:n], "event_timestamp": stamps, **extra})


UNSIGNED_WITH_NULLS = [
    (pa.uint64(), [2**53 + 1, 1, None]),
    (pa.uint64(), [2**64 - 1, 0, None]),
    (pa.uint32(), [1, 4_000_000_000, None]),
    (pa.uint8(), [255, None, 0]),
    (pa.int32(), [-(2**31), None, 2**31 - 1]),
]


@pytest.mark.parametrize("media", [PARQUET, ARROW])
@pytest.mark.parametrize(("arrow_type", "values"), UNSIGNED_WITH_NULLS)
def test_integer_labels_with_nulls_keep_their_type_and_digits(client, media, arrow_type, values):
    body = arrow_bytes(entity_table(3, label=pa.array(values, arrow_type)), media)
    as_json = client.post(TEMP, content=body, headers={"content-type": media, "accept": JSON})
    assert as_json.status_code == 201, as_json.text
    assert [r["label"] for r in as_json.json()["rows"]] == values
    ts_id = as_json.json()["id"]
    stored = pq.read_table(io.BytesIO(client.get(f"/training-sets/{ts_id}/data").content))
    assert stored.schema.field("label").type == arrow_type
    assert stored.column("label").to_pylist() == values
    again = client.get(f"/training-sets/{ts_id}/data", headers={"accept": JSON})
    assert [r["label"] for r in again.json()["rows"]] == values
    as_parquet = client.post(TEMP, content=body, headers={"content-type": media, "accept": PARQUET})
    assert pq.read_table(io.BytesIO(as_parquet.content)).column("label").to_pylist() == values


@pytest.mark.parametrize("media", [PARQUET, ARROW])
def test_a_boolean_label_with_nulls_is_accepted_as_from_json(client, media):
    body = arrow_bytes(entity_table(2, label=pa.array([True, None], pa.bool_())), media)
    response = client.post(TEMP, content=body, headers={"content-type": media, "accept": JSON})
    assert response.status_code == 201, response.text
    assert [r["label"] for r in response.json()["rows"]] == [True, None]
    rows = [{**GOOD, "label": True}, {**GOOD, "event_timestamp": "2013-05-01T14:00:00Z", "label": None}]
    assert [r["label"] for r in post_rows(client, rows).json()["rows"]] == [True, None]
    stored = pq.read_table(io.BytesIO(client.get(f"/training-sets/{response.json()['id']}/data").content))
    assert stored.schema.field("label").type == pa.bool_()


@pytest.mark.parametrize("media", [PARQUET, ARROW])
def test_duplicate_column_names_are_a_422_naming_them(client, media):
    table = entity_table(3, a=pa.array([1, 2, 3]), b=pa.array([4, 5, 6]), c=pa.array(["x", "y", "z"]))
    table = table.rename_columns(["origin", "event_timestamp", "label", "label", "c"])
    response = client.post(TEMP, content=arrow_bytes(table, media), headers={"content-type": media})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [p["field"] for p in response.json()["problems"]] == ["label"]
    assert "__fragment_index" not in response.text and "__filename" not in response.text


# -- fingerprints count the options ------------------------------------------------------------------

FOUR_ROWS = [{**GOOD, "event_timestamp": f"2013-05-0{d}T13:00:00Z"} for d in (1, 2, 3, 4)]


@pytest.mark.parametrize("option", ["allow_created_after_entity", "full_feature_names"])
def test_sets_differing_only_by_an_option_have_different_fingerprints(client, option):
    off = post_rows(client, FOUR_ROWS, **{option: False})
    on = post_rows(client, FOUR_ROWS, **{option: True})
    assert off.status_code == on.status_code == 201, on.text
    assert off.json()["fingerprint"] != on.json()["fingerprint"]
    assert post_rows(client, FOUR_ROWS, **{option: True}).json()["fingerprint"] == on.json()["fingerprint"]
    for created in (off, on):
        again = client.post(f"/training-sets/{created.json()['id']}/reproduce").json()
        assert again["identical"] is again["inputs_identical"] is again["data_identical"] is True
        assert again["fingerprint_now"] == created.json()["fingerprint"]


def test_a_set_made_with_default_options_keeps_its_fingerprint_formula(client, built_repo):
    created = post_rows(client, FOUR_ROWS).json()
    record = client.get(f"/training-sets/{created['id']}").json()
    spec = {
        "entity_sha256": record["entity_sha256"],
        "features": record["features"],
        "views": record["view_hashes"],
        "sources": record["source_hashes"],
    }
    assert created["fingerprint"] == hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


# -- query parameters, Accept q-values, collision hints -----------------------------------------------


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("feature_service=delay_model_v1&feature_service=delay_model_v1", "feature_service"),
        ("features=origin_weather:temp&full_feature_names=true&full_feature_names=false", "full_feature_names"),
        ("features=origin_weather:temp&timezone=UTC&timezone=UTC", "timezone"),
    ],
)
def test_a_single_valued_option_given_twice_is_a_422_naming_it(client, query, name):
    response = post_table(client, entities(), url=f"/training-sets?{query}")
    assert response.status_code == 422, response.text
    assert response.json()["field"] == f"query.{name}"
    assert "x-training-set-id" not in response.headers


def test_features_may_be_repeated(client):
    url = "/training-sets?features=origin_weather:temp&features=origin_weather:humid"
    response = post_table(client, entities(), url=url, accept=JSON)
    assert response.status_code == 201, response.text
    assert response.json()["columns"][-2:] == ["temp", "humid"]


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (f"{JSON};q=0.1, {PARQUET};q=0.9", PARQUET),
        (f"{PARQUET};q=0.2, {ARROW};q=0.3, {JSON};q=0.25", ARROW),
        (f"{ARROW};q=0.5, {JSON};q=0.5", ARROW),
        (f"{PARQUET}, {JSON};q=0", PARQUET),
        (f"*/*;q=0.1, {ARROW}", ARROW),
        (f"*/*, {JSON};q=0", PARQUET),
    ],
)
def test_accept_q_values_pick_the_answer(client, accept, expected):
    created = post_rows(client, [GOOD]).json()
    response = client.get(f"/training-sets/{created['id']}/data", headers={"accept": accept})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].split(";")[0] == expected


def test_accept_q_values_pick_the_answer_on_creation(client):
    response = client.post(
        "/training-sets",
        json={"features": ["origin_weather:temp"], "entity_rows": [GOOD]},
        headers={"accept": f"{JSON};q=0.1, {PARQUET};q=0.9"},
    )
    assert response.status_code == 201 and response.headers["content-type"] == PARQUET


def test_a_collision_with_an_entity_column_under_full_names_advises_renaming_it(client):
    rows = [{**GOOD, "origin_weather__temp": 1}]
    response = post_rows(client, rows, full_feature_names=True)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert "origin_weather__temp" in detail and "rename the entity column" in detail
    assert "full_feature_names=true" not in detail
    short = post_rows(client, [{**GOOD, "temp": 1}])
    assert short.status_code == 422 and "full_feature_names=true" in short.json()["detail"]


def test_a_request_field_beyond_int64_is_a_422_and_a_narrow_one_is_read_exactly(client, built_repo):
    url = "/training-sets?features=plane_age:plane_age_years"
    table = pa.table(
        {
            "tailnum": ["N14228", "N14228"],
            "event_timestamp": pa.array(pd.to_datetime(["2013-07-04T16:00Z"] * 2).as_unit("ns")),
            "sched_year": pa.array([2013, 2**63], pa.uint64()),
        }
    )
    response = client.post(url, content=arrow_bytes(table, PARQUET), headers={"content-type": PARQUET})
    assert bad_rows(response, "sched_year") == [1]
    narrow = table.set_column(2, "sched_year", pa.array([2013, 2014], pa.uint16()))
    ok = client.post(url, content=arrow_bytes(narrow, PARQUET), headers={"content-type": PARQUET, "accept": JSON})
    assert ok.status_code == 201, ok.text
    built = int(
        pd.read_parquet(built_repo / "data" / "plane_profile.parquet").set_index("tailnum").year_built["N14228"]
    )
    assert [r["plane_age_years"] for r in ok.json()["rows"]] == [2013.0 - built, 2014.0 - built]
