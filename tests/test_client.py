"""``feastline.client`` against the app (Starlette's TestClient, an httpx client over ASGI): each method's
answer equals the raw HTTP answer of the same request, tables come back with the dtypes the raw
Parquet/Arrow bytes carry, and every error answer raises its typed error carrying the problem as sent.

A copy of the built repo is served (the tests push, materialize and register models), under the 2013
replay clock.
"""

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pyarrow.ipc as ipc
import pytest
from fastapi.testclient import TestClient
from pandas.testing import assert_frame_equal

import feastline
from feastline.client import ARROW_STREAM, PARQUET, FeastlineClient
from service.app import create_app
from service.settings import Settings
from tests.conftest import REPLAY_NOW, NoServerErrorClient, copy_repo

ROWS = [
    {"origin": "EWR", "carrier": "UA", "event_timestamp": "2013-05-01T13:00:00Z", "label_delayed": 1},
    {"origin": "JFK", "carrier": "B6", "event_timestamp": "2013-05-01T09:30:00-04:00", "label_delayed": None},
    {"origin": "LGA", "carrier": "ZZ", "event_timestamp": "2013-05-01T09:30:00Z", "label_delayed": 0},
]
WEATHER = {
    "temp": 31.0,
    "dewp": 12.0,
    "humid": 45.0,
    "wind_dir": 320.0,
    "precip": 0.0,
    "pressure": 1021.0,
    "visib": 10.0,
}


@pytest.fixture(scope="module")
def raw(built_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NoServerErrorClient]:
    repo = tmp_path_factory.mktemp("client") / "repo"
    copy_repo(built_repo, repo, ignore=("training_sets",))
    with NoServerErrorClient(create_app(Settings(repo=repo, now=REPLAY_NOW))) as c:
        yield c


@pytest.fixture(scope="module")
def fl(raw: NoServerErrorClient) -> FeastlineClient:
    return FeastlineClient(http=raw)


@pytest.fixture(scope="module")
def entity_df() -> pd.DataFrame:
    frame = pd.DataFrame(ROWS)
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    frame["label_delayed"] = frame["label_delayed"].astype("Int64")
    return frame


def parquet(response: httpx.Response) -> pd.DataFrame:
    assert response.headers["content-type"] == PARQUET
    return pd.read_parquet(io.BytesIO(response.content))


def test_health_and_readiness(fl: FeastlineClient, raw: NoServerErrorClient) -> None:
    assert fl.health() == raw.get("/health").json()
    ready = fl.ready()
    assert ready["status"] == "ready" and ready["online_store"]["reachable"] is True
    assert fl.metrics().startswith("# HELP") and "feastline_requests_total" in fl.metrics()


def test_training_set_from_a_frame_is_the_raw_parquet_answer(
    fl: FeastlineClient, raw: NoServerErrorClient, entity_df: pd.DataFrame
) -> None:
    ts = fl.create_training_set(entity_df, feature_service="delay_model_v1")
    body = io.BytesIO()
    entity_df.to_parquet(body, index=False)
    direct = raw.post(
        "/training-sets?feature_service=delay_model_v1",
        content=body.getvalue(),
        headers={"content-type": PARQUET},
    )
    assert direct.status_code == 201
    assert ts.fingerprint == direct.headers["x-training-set-fingerprint"]  # same inputs, same fingerprint
    assert_frame_equal(ts.frame, parquet(direct))
    # the declared dtypes: labels Int64 with their null, counts Int64, timestamps UTC, in input order
    assert ts.frame["label_delayed"].dtype == "Int64" and ts.frame["label_delayed"].isna().tolist() == [
        False,
        True,
        False,
    ]
    assert ts.frame["flights_7d"].dtype == "Int64" and str(ts.frame["event_timestamp"].dtype) == "datetime64[ns, UTC]"
    assert ts.frame["origin"].tolist() == ["EWR", "JFK", "LGA"]
    assert ts.frame.loc[2, ["flights_7d"]].isna().all()  # carrier ZZ: no feature row, null
    assert ts.audit is None
    assert fl.training_set(ts.id) == raw.get(f"/training-sets/{ts.id}").json()
    stored = raw.get(f"/training-sets/{ts.id}/data")
    assert_frame_equal(fl.training_set_data(ts.id), parquet(stored))
    arrow = raw.get(f"/training-sets/{ts.id}/data", headers={"accept": ARROW_STREAM})
    assert_frame_equal(fl.training_set_data(ts.id, wire="arrow"), ipc.open_stream(arrow.content).read_all().to_pandas())
    as_json = raw.get(f"/training-sets/{ts.id}/data", headers={"accept": "application/json"}).json()
    assert_frame_equal(
        fl.training_set_data(ts.id, wire="json"), pd.DataFrame(as_json["rows"], columns=as_json["columns"])
    )
    reproduced = fl.reproduce_training_set(ts.id)
    assert reproduced == raw.post(f"/training-sets/{ts.id}/reproduce").json() and reproduced["identical"] is True


def test_training_set_from_rows_and_in_arrow(
    fl: FeastlineClient, raw: NoServerErrorClient, entity_df: pd.DataFrame
) -> None:
    direct = raw.post("/training-sets", json={"feature_service": "delay_model_v1", "entity_rows": ROWS}).json()
    as_json = fl.create_training_set(ROWS, feature_service="delay_model_v1", wire="json")
    assert as_json.fingerprint == direct["fingerprint"] and as_json.audit == direct["audit"]
    assert_frame_equal(as_json.frame, pd.DataFrame(direct["rows"], columns=direct["columns"]))
    from_rows = fl.create_training_set(ROWS, feature_service="delay_model_v1")  # JSON in, Parquet out
    assert_frame_equal(from_rows.frame, fl.training_set_data(direct["id"]))
    arrow = fl.create_training_set(entity_df, features=["origin_weather:temp"], wire="arrow")
    stored = parquet(raw.get(f"/training-sets/{arrow.id}/data"))
    assert_frame_equal(arrow.frame, stored)
    assert list(arrow.frame.columns) == [*entity_df.columns, "temp"]


def test_training_sets_listed_and_deleted_as_the_raw_answers(fl: FeastlineClient, raw: NoServerErrorClient) -> None:
    made = fl.create_training_set(ROWS, feature_service="delay_model_v1", wire="json")
    listed = fl.training_sets(feature_service="delay_model_v1", limit=5)
    assert listed == raw.get("/training-sets", params={"feature_service": "delay_model_v1", "limit": 5}).json()
    assert made.id in [t["id"] for t in listed["training_sets"]]
    deleted = fl.delete_training_set(made.id)
    assert deleted["deleted_at"] and raw.get(f"/training-sets/{made.id}").json()["deleted_at"] == deleted["deleted_at"]


def test_online_features_are_the_raw_answer(fl: FeastlineClient, raw: NoServerErrorClient) -> None:
    entities = {"origin": ["EWR", "JFK"], "carrier": ["UA", "B6"]}
    online = fl.get_online_features(entities, feature_service="delay_model_v1")
    direct = raw.post("/get-online-features", json={"feature_service": "delay_model_v1", "entities": entities})
    assert online.raw == direct.json()
    frame = online.to_frame()
    assert frame["origin"].tolist() == ["EWR", "JFK"] and len(frame.columns) == len(direct.json()["results"])
    temp = direct.json()["metadata"]["feature_names"].index("temp")
    assert frame["temp"].tolist() == direct.json()["results"][temp]["values"]
    assert set(online.statuses["temp"]) <= {"PRESENT", "NULL_VALUE", "NOT_FOUND", "OUTSIDE_MAX_AGE"}
    by_features = fl.get_online_features({"origin": ["LGA"]}, features=["origin_weather:temp"])
    body = {"features": ["origin_weather:temp"], "entities": {"origin": ["LGA"]}}
    assert by_features.raw == raw.post("/get-online-features", json=body).json()


def test_push_of_a_frame_is_read_back_online(fl: FeastlineClient, raw: NoServerErrorClient) -> None:
    at = datetime(2013, 12, 30, 23, 45, tzinfo=UTC)
    rows = pd.DataFrame(
        {
            "origin": ["EWR", "JFK"],
            "event_timestamp": [pd.Timestamp(at)] * 2,
            "wind_speed": [12.5, 1048.0],  # JFK's is out of range: quarantined
            **{name: [value, value] for name, value in WEATHER.items()},
        }
    )
    answer = fl.push("weather_push", rows)
    assert answer["rows_received"] == 2 and answer["rows_accepted"] == 1 and answer["rows_quarantined"] == 1
    body = {
        "push_source_name": "weather_push",
        "to": "online",
        "df": {
            "origin": ["EWR", "JFK"],
            "event_timestamp": ["2013-12-30T23:45:00Z"] * 2,
            "wind_speed": [12.5, 1048.0],
            **{name: [value, value] for name, value in WEATHER.items()},
        },
    }
    assert answer == raw.post("/push", json=body).json()  # the same body, as the client encoded the frame
    online = fl.get_online_features({"origin": ["EWR"]}, features=["origin_weather_fresh:wind_speed"])
    assert online.values["wind_speed"] == [12.5]
    assert online.event_timestamps["wind_speed"] == ["2013-12-30T23:45:00Z"]
    quarantined = fl.quarantine("weather_push")
    assert quarantined == raw.get("/quarantine/weather_push").json() and quarantined["rows"]
    assert fl.quarantine("origin_weather") == raw.get("/quarantine/origin_weather").json()


def test_materialize_and_job_status(fl: FeastlineClient, raw: NoServerErrorClient) -> None:
    job = fl.materialize(datetime(2013, 12, 29, tzinfo=UTC), REPLAY_NOW, feature_views=["origin_weather"])
    assert job["status"] == "queued" and job["request"]["feature_views"] == ["origin_weather"]
    done = fl.wait_for_job(job["id"], timeout=120)
    assert done == raw.get(f"/jobs/{job['id']}").json() and done["status"] == "completed"
    assert done["views"]["origin_weather"]["rows_written"] > 0
    incremental = fl.wait_for_job(fl.materialize_incremental(lookback_seconds=3600)["id"], timeout=120)
    assert incremental["kind"] == "materialize-incremental" and incremental["status"] == "completed"
    with pytest.raises(feastline.Unprocessable) as refused:  # a window may not end after the clock
        fl.materialize("2013-12-30T00:00:00Z", "2014-01-01T00:00:00Z")
    assert refused.value.field == "end"


def test_models(fl: FeastlineClient, raw: NoServerErrorClient) -> None:
    ts = fl.create_training_set(ROWS, feature_service="delay_model_v1")
    model = fl.register_model("client_baseline", "1", ts.id, {"auc": 0.61, "rows": 3})
    assert model == raw.get("/models/client_baseline/1").json() == fl.model("client_baseline", "1")
    assert model["attributes"]["metrics"] == {"auc": 0.61, "rows": 3}
    assert fl.models() == raw.get("/models").json() and model["id"] in {m["id"] for m in fl.models()}
    with pytest.raises(feastline.Conflict) as twice:
        fl.register_model("client_baseline", "1", ts.id)
    assert twice.value.status == 409 and twice.value.problem == twice.value.response.json()


@pytest.mark.parametrize(
    ("method", "args", "path", "params"),
    [
        ("node", ("feature_view:origin_weather",), "/lineage/nodes/feature_view:origin_weather", {}),
        ("upstream", ("feature_service:delay_model_v1",), "/lineage/nodes/feature_service:delay_model_v1/upstream", {}),
        ("downstream", ("feature_view:origin_weather",), "/lineage/nodes/feature_view:origin_weather/downstream", {}),
        (
            "impact",
            ("data_source:origin_weather_source",),
            "/lineage/nodes/data_source:origin_weather_source/impact",
            {},
        ),
        ("versions", (), "/lineage/versions", {}),
        ("version", (1,), "/lineage/versions/1", {}),
    ],
)
def test_lineage_queries_are_the_raw_answers(
    fl: FeastlineClient, raw: NoServerErrorClient, method: str, args: tuple[Any, ...], path: str, params: dict
) -> None:
    assert getattr(fl, method)(*args) == raw.get(path, params=params).json()


def test_lineage_options_and_exports(fl: FeastlineClient, raw: NoServerErrorClient) -> None:
    node = "feature_view:origin_weather"
    assert fl.upstream(node, depth=1, as_of=1) == raw.get(f"/lineage/nodes/{node}/upstream?depth=1&as_of=1").json()
    then = raw.get("/lineage/versions").json()["versions"][0]["created_at"]
    at = datetime.fromisoformat(then)
    assert fl.node(node, as_of=at) == raw.get(f"/lineage/nodes/{node}", params={"as_of": then}).json()
    path = fl.lineage_path("raw_table:nycflights13.weather", "feature_service:delay_model_v1")
    params = {"source": "raw_table:nycflights13.weather", "target": "feature_service:delay_model_v1"}
    assert path == raw.get("/lineage/path", params=params).json() and path["direction"] == "downstream"
    query = {"node": node, "depth": 2, "direction": "upstream"}
    assert fl.export_node_link(**query) == raw.get("/lineage/export/node-link", params=query).json()
    assert fl.export_graphml(**query) == raw.get("/lineage/export/graphml", params=query).text
    assert fl.export_svg(node=node) == raw.get("/lineage/export/svg", params={"node": node}).text
    page = fl.lineage_view(node, depth=1)
    assert page == raw.get("/lineage/view", params={"node": node, "depth": 1}).text and "<svg" in page


def test_openlineage_events_page_after_page(fl: FeastlineClient, raw: NoServerErrorClient) -> None:
    fl.create_training_set(ROWS, feature_service="delay_model_v1")  # at least one START and one COMPLETE
    assert fl.openlineage_events(limit=3) == raw.get("/lineage/openlineage/events?limit=3").json()
    everything = raw.get("/lineage/openlineage/events?limit=10000").json()
    assert list(fl.iter_openlineage_events(page_size=2)) == everything
    only = list(fl.iter_openlineage_events(job="training_set", page_size=50))
    assert only and {e["job"]["name"] for e in only} == {"training_set"}


# --- errors -----------------------------------------------------------------------------------------------


def test_every_error_is_its_typed_exception_with_the_problem_as_sent(
    fl: FeastlineClient, raw: NoServerErrorClient
) -> None:
    ts_id = fl.create_training_set(ROWS, feature_service="delay_model_v1").id
    cases: list[tuple[type[feastline.ApiError], Any, httpx.Response]] = [
        (
            feastline.NotFound,
            lambda: fl.create_training_set(ROWS, feature_service="nope"),
            raw.post("/training-sets", json={"feature_service": "nope", "entity_rows": ROWS}),
        ),
        (
            feastline.Unprocessable,
            lambda: fl.create_training_set([{"origin": "EWR"}], feature_service="delay_model_v1"),
            raw.post("/training-sets", json={"feature_service": "delay_model_v1", "entity_rows": [{"origin": "EWR"}]}),
        ),
        (
            feastline.BadRequest,
            lambda: fl.request("POST", "/push", content=b"{", headers={"content-type": "application/json"}),
            raw.post("/push", content=b"{", headers={"content-type": "application/json"}),
        ),
        (
            feastline.UnsupportedMediaType,
            lambda: fl.request("POST", "/models", content=b"{}", headers={"content-type": "text/plain"}),
            raw.post("/models", content=b"{}", headers={"content-type": "text/plain"}),
        ),
        (
            feastline.NotAcceptable,
            lambda: fl.request("GET", f"/training-sets/{ts_id}/data", headers={"accept": "text/csv"}),
            raw.get(f"/training-sets/{ts_id}/data", headers={"accept": "text/csv"}),
        ),
        (feastline.MethodNotAllowed, lambda: fl.request("PUT", "/models"), raw.put("/models")),
        (feastline.NotFound, lambda: fl.job("no-such-job"), raw.get("/jobs/no-such-job")),
        (feastline.Unprocessable, lambda: fl.node("not-an-id"), raw.get("/lineage/nodes/not-an-id")),
    ]
    for error_type, call, direct in cases:
        with pytest.raises(error_type) as caught:
            call()
        err = caught.value
        expected = direct.json()
        assert direct.headers["content-type"] == "application/problem+json"
        assert isinstance(err, feastline.ClientError) and not isinstance(err, feastline.ServerError)
        assert (err.status, err.problem) == (direct.status_code, expected), error_type
        assert (err.title, err.detail, err.field) == (
            err.problem["title"],
            err.problem["detail"],
            err.problem.get("field"),
        )
        assert err.problems == err.problem.get("problems", [])
    with pytest.raises(feastline.Unprocessable) as rows:
        fl.create_training_set(
            [{"origin": "EWR", "carrier": "UA", "event_timestamp": "2013-05-01T13:00:00"}],
            feature_service="delay_model_v1",
        )
    assert rows.value.problems[0]["row"] == 0 and rows.value.problems[0]["field"] == "event_timestamp"


def test_readiness_503_is_service_unavailable_with_retry_after(raw: NoServerErrorClient) -> None:
    plain = TestClient(raw.app)  # the same running app, without the no-5xx assertion
    db = Path(raw.app.state.settings.data_dir) / "online_store.db"  # type: ignore[attr-defined]
    aside = db.with_suffix(".aside")
    db.rename(aside)
    try:
        direct = plain.get("/health/ready")
        with pytest.raises(feastline.ServiceUnavailable) as down:
            FeastlineClient(http=plain).ready()
    finally:
        aside.rename(db)
    assert direct.status_code == 503 and down.value.problem == direct.json()
    assert down.value.retry_after == float(direct.headers["retry-after"]) > 0
    assert down.value.problem["online_store"]["reachable"] is False
    assert isinstance(down.value, feastline.ServerError)


def test_answers_that_are_not_problems_and_no_answers() -> None:
    def gateway(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/health":
            return httpx.Response(502, text="<html>bad gateway</html>", headers={"content-type": "text/html"})
        if request.url.path == "/slow":
            raise httpx.ReadTimeout("timed out", request=request)
        raise httpx.ConnectError("refused", request=request)

    with FeastlineClient(http=httpx.Client(transport=httpx.MockTransport(gateway), base_url="http://x")) as fl:
        with pytest.raises(feastline.ServerError) as bad:
            fl.health()
        assert bad.value.status == 502 and bad.value.title == "bad-gateway" and "bad gateway" in bad.value.detail
        with pytest.raises(feastline.Timeout):
            fl.request("GET", "/slow")
        with pytest.raises(feastline.TransportError) as refused:
            fl.models()
        assert isinstance(refused.value.__cause__, httpx.ConnectError)


def test_timeouts_are_the_clients_unless_a_call_gives_its_own() -> None:
    seen: list[dict[str, float | None]] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return httpx.Response(200, json={"status": "ok"})

    fl = FeastlineClient("http://x", timeout=2.5)
    fl._http = httpx.Client(transport=httpx.MockTransport(record), base_url="http://x", timeout=fl._http.timeout)
    fl.health()
    fl.request("GET", "/health", timeout=120)
    assert seen[0]["read"] == 2.5 and seen[0]["connect"] == 2.5
    assert seen[1]["read"] == 120
    fl.close()


def test_the_client_covers_every_route(raw: NoServerErrorClient) -> None:
    """Each operation of the OpenAPI document has a method (a route added later needs one here too)."""
    covered = {
        ("get", "/health"): "health",
        ("get", "/health/ready"): "ready",
        ("get", "/metrics"): "metrics",
        ("get", "/monitoring/freshness"): "freshness",
        ("post", "/monitoring/drift"): "drift",
        ("get", "/monitoring/drift/{drift_id}"): "drift_report",
        ("get", "/monitoring/view"): "monitoring_view",
        ("get", "/training-sets/{ts_id}/profile"): "training_set_profile",
        ("get", "/monitoring/online-log"): "online_log",
        ("post", "/monitoring/parity"): "parity",
        ("post", "/training-sets"): "create_training_set",
        ("get", "/training-sets"): "training_sets",
        ("delete", "/training-sets/{ts_id}"): "delete_training_set",
        ("get", "/training-sets/{ts_id}"): "training_set",
        ("get", "/training-sets/{ts_id}/data"): "training_set_data",
        ("post", "/training-sets/{ts_id}/reproduce"): "reproduce_training_set",
        ("post", "/get-online-features"): "get_online_features",
        ("post", "/push"): "push",
        ("get", "/quarantine/{source}"): "quarantine",
        ("post", "/materialize"): "materialize",
        ("post", "/materialize-incremental"): "materialize_incremental",
        ("get", "/jobs/{job_id}"): "job",
        ("post", "/models"): "register_model",
        ("get", "/models"): "models",
        ("get", "/models/{name}/{version}"): "model",
        ("get", "/lineage/nodes/{node_id}"): "node",
        ("get", "/lineage/nodes/{node_id}/upstream"): "upstream",
        ("get", "/lineage/nodes/{node_id}/downstream"): "downstream",
        ("get", "/lineage/nodes/{node_id}/impact"): "impact",
        ("get", "/lineage/path"): "lineage_path",
        ("get", "/lineage/versions"): "versions",
        ("get", "/lineage/versions/{number}"): "version",
        ("get", "/lineage/export/node-link"): "export_node_link",
        ("get", "/lineage/export/graphml"): "export_graphml",
        ("get", "/lineage/export/svg"): "export_svg",
        ("get", "/lineage/view"): "lineage_view",
        ("get", "/lineage/openlineage/events"): "openlineage_events",
    }
    operations = {(m, p) for p, ops in raw.get("/openapi.json").json()["paths"].items() for m in ops}
    assert sorted(operations - set(covered)) == []
    assert all(callable(getattr(FeastlineClient, name)) for name in covered.values())
