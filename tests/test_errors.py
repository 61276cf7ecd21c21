"""Bad input gets a 4xx ``application/problem+json`` naming the field and the row; never a 5xx."""

from datetime import UTC, datetime

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from lineage import CycleRefused, Edge, InvalidNodeId, NodeKind, NodeNotFound, NodeRef, Relation
from lineage.errors import ModelVersionConflict, NodeDeleted, NodeInUse
from lineage.versions import VersionNotFound
from service.errors import PROBLEM_STATUS, install_error_handlers
from service.formats import BodyUnreadable, NotAcceptable, UnsupportedMediaType
from service.limits import BodyLimit, RequestBodyTimeout, RequestBodyTooLarge
from service.materialization.materializer import JobNotFound, MaterializationRequestInvalid, UnknownFeatureView
from service.monitoring.drift import DriftRequestInvalid, ThresholdTagInvalid
from service.monitoring.reports import DriftReportNotFound
from service.monitoring.window import OnlineLogUnavailable
from service.online.push import PushRejected, UnknownPushSource
from service.online.quarantine import UnknownQuarantineSource
from service.online.reads import (
    OnlineBatchTooLarge,
    OnlineRequestInvalid,
    OnlineStoreUnavailable,
    OnlineValueNotRepresentable,
)
from service.online.receipts import IdempotencyKeyInvalid, IdempotencyKeyReused, PushInFlight
from service.storage import StorageUnavailable
from service.training.catalog import TrainingSetDeleted, TrainingSetNotFound
from service.training.offline.audit import LeakageAudit, LeakageDetected, ViewAudit
from service.training.offline.errors import (
    EntityRowsInvalid,
    FeatureNameCollision,
    FeatureReferenceInvalid,
    FeatureSelectionInvalid,
    SourceDataMissing,
    SourceKeyTypeMismatch,
    TooLargeForJson,
    UnknownFeature,
    UnknownFeatureService,
)
from service.workers import Overloaded

GOOD = {"origin": "EWR", "carrier": "UA", "event_timestamp": "2013-05-01T13:00:00Z"}


def post(client, body=None, content=None):
    if content is not None:
        return client.post("/training-sets", content=content, headers={"content-type": "application/json"})
    return client.post("/training-sets", json=body)


CASES = {
    "no event_timestamp": (
        {"feature_service": "delay_model_v1", "entity_rows": [GOOD, {"origin": "EWR", "carrier": "UA"}]},
        422,
        "event_timestamp",
        1,
    ),
    "unknown feature service": (
        {"feature_service": "delay_model_v9", "entity_rows": [GOOD]},
        404,
        "feature_service",
        None,
    ),
    "missing join key": (
        {
            "feature_service": "delay_model_v1",
            "entity_rows": [GOOD, GOOD, {"origin": "JFK", "event_timestamp": "2013-05-01T13:00:00Z"}],
        },
        422,
        "carrier",
        2,
    ),
    "naive timestamp": (
        {
            "feature_service": "delay_model_v1",
            "entity_rows": [{**GOOD, "event_timestamp": "2013-05-01 13:00"}],
        },
        422,
        "event_timestamp",
        0,
    ),
    "unparseable timestamp": (
        {
            "feature_service": "delay_model_v1",
            "entity_rows": [GOOD, {**GOOD, "event_timestamp": "yesterday"}],
        },
        422,
        "event_timestamp",
        1,
    ),
    "join key of the wrong type": (
        {"feature_service": "delay_model_v1", "entity_rows": [{**GOOD, "carrier": 42}]},
        422,
        "carrier",
        0,
    ),
    "request field missing": (
        {"feature_service": "delay_model_v2", "entity_rows": [{**GOOD, "tailnum": "N14228"}]},
        422,
        "sched_year",
        0,
    ),
    "unknown feature": ({"features": ["origin_weather:nope"], "entity_rows": [GOOD]}, 404, "features", None),
    "bad feature reference": ({"features": ["temp"], "entity_rows": [GOOD]}, 422, "features", None),
    "entity row not an object": (
        {"feature_service": "delay_model_v1", "entity_rows": [GOOD, 5]},
        422,
        "entity_rows.1",
        1,
    ),
    "no entity rows": ({"feature_service": "delay_model_v1", "entity_rows": []}, 422, "entity_rows", None),
    "nonexistent local time (DST gap)": (
        {
            "feature_service": "delay_model_v1",
            "timezone": "America/New_York",
            "entity_rows": [{**GOOD, "event_timestamp": "2013-03-10T02:30:00"}],
        },
        422,
        "event_timestamp",
        0,
    ),
    "ambiguous local time (DST overlap)": (
        {
            "feature_service": "delay_model_v1",
            "timezone": "America/New_York",
            "entity_rows": [GOOD, {**GOOD, "event_timestamp": "2013-11-03T01:30:00"}],
        },
        422,
        "event_timestamp",
        1,
    ),
    "timestamp out of range": (
        {"feature_service": "delay_model_v1", "entity_rows": [{**GOOD, "event_timestamp": "0001-01-01T00:00:00Z"}]},
        422,
        "event_timestamp",
        0,
    ),
    "extra column mixing kinds": (
        {"feature_service": "delay_model_v1", "entity_rows": [{**GOOD, "a": 1}, {**GOOD, "a": "x"}]},
        422,
        "a",
        None,
    ),
    "extra column not a scalar": (
        {"feature_service": "delay_model_v1", "entity_rows": [{**GOOD, "arr": [1, "x"]}]},
        422,
        "arr",
        0,
    ),
    "extra column integer too large": (
        {"feature_service": "delay_model_v1", "entity_rows": [{**GOOD, "big": 2**64 + 5}]},
        422,
        "big",
        0,
    ),
    "extra column missing in some rows": (
        {"feature_service": "delay_model_v1", "entity_rows": [{**GOOD, "label": 1}, GOOD]},
        422,
        "label",
        1,
    ),
    "request field out of range": (
        {"feature_service": "delay_model_v2", "entity_rows": [{**GOOD, "tailnum": "N14228", "sched_year": 2**70}]},
        422,
        "sched_year",
        0,
    ),
    "boolean option given as a string": (
        {"feature_service": "delay_model_v1", "entity_rows": [GOOD], "full_feature_names": "yes"},
        422,
        "full_feature_names",
        None,
    ),
    "unknown option (a typo)": (
        {"feature_service": "delay_model_v1", "entity_rows": [GOOD], "full_feature_name": True},
        422,
        "full_feature_name",
        None,
    ),
    "same feature twice": (
        {
            "features": ["origin_weather:temp", "origin_weather:temp"],
            "entity_rows": [{"origin": "EWR", "event_timestamp": "2013-05-01T13:00:00Z"}],
        },
        422,
        "features",
        None,
    ),
    "entity column named like a feature": (
        {
            "features": ["origin_weather:temp"],
            "entity_rows": [{"origin": "EWR", "temp": 1, "event_timestamp": "2013-05-01T13:00:00Z"}],
        },
        422,
        "features",
        None,
    ),
    "neither feature_service nor features": ({"entity_rows": [GOOD]}, 422, "features", None),
    "unknown timezone": (
        {"feature_service": "delay_model_v1", "entity_rows": [GOOD], "timezone": "Mars/Olympus"},
        422,
        "timezone",
        None,
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_training_set_request(client, case):
    body, status, field, row = CASES[case]
    response = post(client, body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status and problem["title"] and problem["detail"]
    named = [problem.get("field")] + [p["field"] for p in problem.get("problems", [])]
    assert field in named, problem
    if row is not None:
        assert any(p["row"] == row and p["field"] == field for p in problem["problems"]), problem


def test_every_problem_is_listed_not_just_the_first(client):
    rows = [
        GOOD,
        {"origin": "EWR"},
        {**GOOD, "event_timestamp": "2013-01-01T00:00"},
        {"carrier": "UA", "event_timestamp": "x"},
    ]
    problems = post(client, {"feature_service": "delay_model_v1", "entity_rows": rows}).json()["problems"]
    assert {(p["row"], p["field"]) for p in problems} == {
        (1, "carrier"),
        (1, "event_timestamp"),
        (2, "event_timestamp"),
        (3, "origin"),
        (3, "event_timestamp"),
    }


def test_bare_nan_is_refused_not_turned_into_null(client):
    body = (
        b'{"feature_service": "delay_model_v1", "entity_rows": [{"origin": "EWR", "carrier": "UA", '
        b'"event_timestamp": "2013-05-01T13:00:00Z", "x": NaN}]}'
    )
    response = post(client, content=body)
    assert 400 <= response.status_code < 500, response.text


def test_messages_say_what_is_wrong(client):
    both = post(
        client, {"feature_service": "delay_model_v1", "features": ["origin_weather:temp"], "entity_rows": [GOOD]}
    )
    assert "not both" in both.json()["detail"] and "view:feature" not in both.json()["detail"]
    twice = post(client, {"features": ["origin_weather:temp"] * 2, "entity_rows": [GOOD]})
    assert "more than once" in twice.json()["detail"]
    tz = post(client, {"feature_service": "delay_model_v1", "entity_rows": [GOOD], "timezone": "Mars/Olympus"})
    assert tz.json()["field"] == "timezone" and "None" not in tz.json()["detail"]


def test_unsupported_content_type_is_415(client):
    response = client.post("/training-sets", content=b"{}", headers={"content-type": "text/plain"})
    assert response.status_code == 415 and response.headers["content-type"] == "application/problem+json"


def test_openapi_documents_errors_as_problem_json(client):
    spec = client.get("/openapi.json").json()
    responses = spec["paths"]["/training-sets"]["post"]["responses"]
    for status in ("400", "404", "409", "422"):
        assert "application/problem+json" in responses[status]["content"], status


@pytest.mark.parametrize(
    "content", [b"{not json", b"", b'{"feature_service": "delay_model_v1", "entity_rows": [', b"[1,2]"]
)
def test_malformed_json(client, content):
    response = post(client, content=content)
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"]


EXAMPLES = {
    NotAcceptable: NotAcceptable("text/csv", ("application/json",)),
    UnknownFeatureService: UnknownFeatureService("x"),
    UnknownFeature: UnknownFeature("v:f"),
    NodeNotFound: NodeNotFound(NodeRef(NodeKind.FEATURE, "v.f")),
    FeatureReferenceInvalid: FeatureReferenceInvalid("f"),
    FeatureNameCollision: FeatureNameCollision(["temp"]),
    EntityRowsInvalid: EntityRowsInvalid([{"row": 3, "field": "origin", "problem": "is missing"}]),
    OnlineRequestInvalid: OnlineRequestInvalid([{"row": 0, "field": "entities.origin", "problem": "is missing"}]),
    InvalidNodeId: InvalidNodeId("bogus", "unknown kind"),
    CycleRefused: CycleRefused(Edge(NodeRef(NodeKind.FEATURE, "a"), NodeRef(NodeKind.FEATURE, "b"), Relation.DERIVES)),
    SourceDataMissing: SourceDataMissing("origin_weather", "/nowhere.parquet"),
    SourceKeyTypeMismatch: SourceKeyTypeMismatch("plane_profile", "tailnum", "tailnum", "DOUBLE", "STRING"),
    FeatureSelectionInvalid: FeatureSelectionInvalid("give feature_service or features, not both"),
    OnlineStoreUnavailable: OnlineStoreUnavailable("ConnectionError: refused", 5, "ConnectionError"),
    OnlineValueNotRepresentable: OnlineValueNotRepresentable([{"row": 0, "field": "ratio", "problem": "is inf"}]),
    UnknownPushSource: UnknownPushSource("nope"),
    PushRejected: PushRejected("weather_push", [{"row": 1, "field": "humid", "problem": "fails in_range"}]),
    UnknownFeatureView: UnknownFeatureView(["nope"]),
    JobNotFound: JobNotFound("job-0"),
    VersionNotFound: VersionNotFound(99),
    ModelVersionConflict: ModelVersionConflict(NodeRef(NodeKind.MODEL, "m@1"), "ts-a", "ts-b"),
    MaterializationRequestInvalid: MaterializationRequestInvalid("end", "end must be after start"),
    TrainingSetNotFound: TrainingSetNotFound("ts-0"),
    TrainingSetDeleted: TrainingSetDeleted("ts-0", datetime(2024, 5, 1, tzinfo=UTC)),
    NodeDeleted: NodeDeleted(NodeRef(NodeKind.TRAINING_SET, "ts-0"), "2024-05-01T00:00:00Z"),
    NodeInUse: NodeInUse(NodeRef(NodeKind.TRAINING_SET, "ts-0"), [NodeRef(NodeKind.MODEL, "m@1")]),
    BodyUnreadable: BodyUnreadable("application/vnd.apache.parquet", "not Parquet"),
    TooLargeForJson: TooLargeForJson(10**6, 50_000),
    UnsupportedMediaType: UnsupportedMediaType("text/csv", ("application/json",)),
    UnknownQuarantineSource: UnknownQuarantineSource("nothing"),
    RequestBodyTooLarge: RequestBodyTooLarge("POST /push", BodyLimit(100, "MAX_PUSH_BODY_BYTES"), 101),
    RequestBodyTimeout: RequestBodyTimeout(15.0, 1024),
    OnlineBatchTooLarge: OnlineBatchTooLarge(20_000, 10_000),
    Overloaded: Overloaded("online", 72, 5),
    LeakageDetected: LeakageDetected(
        LeakageAudit(1, True, (ViewAudit("v", 1, 0, 60.0, None, True, {"created_ts_after_entity_ts": 1}),))
    ),
    DriftRequestInvalid: DriftRequestInvalid("features.0", "'x' is not a column of training set ts-0"),
    ThresholdTagInvalid: ThresholdTagInvalid("feature_view:v", "feastline.psi_warn", "high", "is not a number"),
    DriftReportNotFound: DriftReportNotFound("drift-0"),
    OnlineLogUnavailable: OnlineLogUnavailable("online feature logging is not part of this build yet"),
    StorageUnavailable: StorageUnavailable("the training-sets directory", "no space left on the device", 5),
    IdempotencyKeyInvalid: IdempotencyKeyInvalid("must be 1 to 255 printable ASCII characters"),
    IdempotencyKeyReused: IdempotencyKeyReused(),
    PushInFlight: PushInFlight(),
}


@pytest.mark.parametrize("exc_type", list(PROBLEM_STATUS), ids=lambda t: t.__name__)
def test_problem_table_is_what_clients_see(exc_type):
    """Walk the one table: each domain error, raised in a route, renders as problem+json with its status."""
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    def boom():
        raise EXAMPLES[exc_type]

    response = TestClient(app).get("/boom")
    assert response.status_code == PROBLEM_STATUS[exc_type]
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == PROBLEM_STATUS[exc_type]
    assert response.json()["detail"] == str(EXAMPLES[exc_type])
