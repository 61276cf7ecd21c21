"""``POST /get-online-features`` and ``GET /health/ready`` on inputs and outages a tester found.

Unknown entity keys, a wrong or missing content type and malformed JSON are 4xx naming the field;
a duplicated feature gets the hint that fixes it; readiness reports an unreachable online store.
"""

import json
import time

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.materialization.via_feast import materialize
from service.settings import Settings
from tests.conftest import REPLAY_NOW
from tests.online.test_redis import free_port, redis_repo, start_redis

WEATHER = {"features": ["origin_weather:temp"], "entities": {"origin": ["EWR"]}}


def problem_fields(problem: dict) -> list[str]:
    return [p["field"] for p in problem.get("problems") or []]


@pytest.mark.parametrize(
    "body, unknown",
    [
        ({**WEATHER, "entities": {"origin": ["EWR"], "bogus": ["x"]}}, "bogus"),
        # a request field is allowed only when an on-demand view of the request uses it
        ({**WEATHER, "entities": {"origin": ["EWR"], "sched_year": [2013]}}, "sched_year"),
        (
            {
                "feature_service": "delay_model_v1",
                "entities": {"origin": ["EWR"], "carrier": ["UA"], "tailnum": ["N1"]},
            },
            "tailnum",
        ),
        (
            {
                "features": ["plane_age:plane_age_years"],
                "entities": {"tailnum": ["N14228"], "sched_year": [2013], "origin": ["EWR"]},
            },
            "origin",
        ),
    ],
    ids=["bogus key", "request field without its on-demand view", "join key of a view not requested", "on-demand"],
)
def test_an_unknown_entity_key_is_422_naming_it(client, body, unknown):
    response = client.post("/get-online-features", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["field"] == f"entities.{unknown}"
    assert problem_fields(problem) == [f"entities.{unknown}"]
    assert unknown in problem["detail"]
    known = {k: v for k, v in body["entities"].items() if k != unknown}  # every other key is allowed
    assert client.post("/get-online-features", json={**body, "entities": known}).status_code == 200


@pytest.mark.parametrize("headers", [{"content-type": "text/plain"}, {"content-type": "application/xml"}, {}])
@pytest.mark.parametrize("path", ["/get-online-features", "/push"])
def test_a_wrong_or_missing_content_type_is_415(client, path, headers):
    response = client.post(path, content=json.dumps(WEATHER).encode(), headers=headers)
    assert response.status_code == 415, response.text
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert problem["field"] == "header.content-type"
    assert "application/json" in problem["detail"]
    declared = {"content-type": "application/json; charset=utf-8"}  # parameters of the type are fine
    assert client.post(path, content=json.dumps(WEATHER).encode(), headers=declared).status_code != 415


@pytest.mark.parametrize("path", ["/get-online-features", "/push"])
@pytest.mark.parametrize(
    "text",
    [
        '{"features": [}',
        '{\n  "features": ["origin_weather:temp"],\n  "entities": {"origin": ["EWR",]}\n}',
        '{\n  "features": ["origin_weather:temp"]\n  "entities": {}\n}',
    ],
    ids=["missing value", "trailing comma", "missing comma"],
)
def test_malformed_json_names_line_and_column(client, path, text):
    try:
        json.loads(text)
    except json.JSONDecodeError as err:
        where = f"line {err.lineno} column {err.colno}"
    response = client.post(path, content=text.encode(), headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["field"] == "body"
    assert where in problem["detail"], problem


def test_openapi_lists_415_for_json_routes(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/get-online-features", "/push"):
        operation = paths[path]["post"]
        assert "415" in operation["responses"], path
        assert "application/json" in operation["requestBody"]["content"], path


def test_a_duplicate_feature_gets_the_hint_that_fixes_it(client):
    twice = {"features": ["origin_weather:temp", "origin_weather:temp"], "entities": {"origin": ["EWR"]}}
    problem = client.post("/get-online-features", json=twice).json()
    assert problem["status"] == 422 and problem["field"] == "features"
    assert "origin_weather:temp" in problem["detail"] and "list each feature once" in problem["detail"]
    assert "full_feature_names" not in problem["detail"]  # full names would still name it twice
    clash = {"features": ["origin_weather:temp", "origin_weather_fresh:temp"], "entities": {"origin": ["EWR"]}}
    problem = client.post("/get-online-features", json=clash).json()
    assert problem["status"] == 422 and "full_feature_names" in problem["detail"]


def test_readiness_of_the_sqlite_store(client):
    assert client.get("/health").json()["status"] == "ok"
    ready = client.get("/health/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready" and ready.json()["online_store"]["reachable"] is True


@pytest.mark.integration
def test_readiness_is_503_while_redis_is_down_and_liveness_stays_200(built_repo, tmp_path):
    port = free_port()
    proc = start_redis(port)
    try:
        repo = redis_repo(built_repo, tmp_path / "repo", port)
        materialize(repo, REPLAY_NOW.replace(month=12, day=1), REPLAY_NOW)
        with TestClient(create_app(Settings(repo=repo, now=REPLAY_NOW))) as c:
            ready = c.get("/health/ready")
            assert ready.status_code == 200 and ready.json()["online_store"]["reachable"] is True
            proc.terminate()
            proc.wait(10)
            started = time.monotonic()
            down = c.get("/health/ready")
            assert down.status_code == 503, down.text
            assert down.headers["content-type"] == "application/problem+json"
            assert int(down.headers["retry-after"]) > 0
            assert down.json()["field"] == "online_store"
            assert time.monotonic() - started < 3  # a cheap probe, not the store client's retries
            assert c.get("/health").status_code == 200  # liveness: the process is fine, do not restart it
            proc = start_redis(port)
            assert c.get("/health/ready").status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)
