"""Every 4xx names what was wrong: a specific problem ``type``/``title``, a ``detail`` and the ``field``.

Fields are named the way request validation names them: ``path.<param>``, ``query.<param>``,
``header.<name>``, and body fields by their path in the body (``feature_views.2``).
"""

import json
from typing import Any

import pytest

PROBLEM_JSON = "application/problem+json"
WINDOW = {"start": "2013-01-01T00:00:00Z", "end": "2013-02-01T00:00:00Z"}


def assert_problem(response: Any, status: int, title: str, field: str, *in_detail: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["status"] == status
    assert body["title"] == title and body["type"] == f"https://feastline.dev/problems/{title}"
    assert body["field"] == field, body
    for text in in_detail:
        assert text in body["detail"], body
    return dict(body)


def test_unknown_job(client: Any) -> None:
    assert_problem(client.get("/jobs/job-nope"), 404, "job-not-found", "path.job_id", "job-nope")


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/materialize", {**WINDOW, "feature_views": ["origin_weather", "plane_profile", "no_such_view"]}, "2"),
        ("/materialize-incremental", {"feature_views": ["nope", "origin_weather", "nope", "nada"]}, "0"),
    ],
)
def test_unknown_view_to_materialize(client: Any, path: str, body: dict[str, Any], field: str) -> None:
    problem = assert_problem(client.post(path, json=body), 404, "unknown-feature-view", f"feature_views.{field}")
    unknown = [v for v in dict.fromkeys(body["feature_views"]) if v != "origin_weather" and v != "plane_profile"]
    assert all(name in problem["detail"] for name in unknown)
    assert problem["feature_views"] == unknown


def test_unknown_quarantine_source(client: Any) -> None:
    assert_problem(client.get("/quarantine/nothing"), 404, "unknown-quarantine-source", "path.source", "'nothing'")


def test_unsupported_content_type(client: Any) -> None:
    response = client.post("/training-sets", content=b"a,b\n1,2\n", headers={"content-type": "text/csv"})
    problem = assert_problem(response, 415, "unsupported-media-type", "header.content-type", "text/csv")
    assert "application/json" in problem["detail"] and "application/vnd.apache.parquet" in problem["detail"]


def test_unknown_version(client: Any) -> None:
    assert_problem(client.get("/lineage/versions/9999"), 404, "version-not-found", "path.number", "9999")
    response = client.get("/lineage/nodes/feature_view:origin_weather", params={"as_of": 9999})
    assert_problem(response, 404, "version-not-found", "query.as_of", "as_of", "9999")


@pytest.mark.parametrize("url", ["/lineage/export/node-link", "/lineage/export/svg", "/lineage/view"])
def test_node_of_an_export_or_view(client: Any, url: str) -> None:
    missing = client.get(url, params={"node": "feature_view:nope"})
    assert_problem(missing, 404, "node-not-found", "query.node", "feature_view:nope")
    assert_problem(client.get(url, params={"node": "nokind"}), 422, "invalid-node-id", "query.node", "nokind")


def test_routing_errors_are_specific_problems_too(client: Any) -> None:
    assert_problem(client.get("/no/such/route"), 404, "not-found", "path", "Not Found")
    assert_problem(client.delete("/health"), 405, "method-not-allowed", "method", "Method Not Allowed")


def test_malformed_json_names_line_and_column(client: Any) -> None:
    body = b'{\n  "name": x}'
    response = client.post("/models", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    # independent reference: the standard library's own decoder position
    try:
        json.loads(body)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
    assert where in response.json()["detail"], response.json()


def test_an_exact_duplicate_feature_gets_the_duplicate_hint(client: Any) -> None:
    body = {
        "features": ["origin_weather:temp", "origin_weather:temp"],
        "entity_rows": [{"origin": "EWR", "event_timestamp": "2013-05-01T13:00:00Z"}],
    }
    detail = client.post("/training-sets", json=body).json()["detail"]
    assert "list each feature once" in detail and "full_feature_names" not in detail


def test_model_on_an_unknown_training_set_names_the_body_field(client: Any) -> None:
    body = {"name": "m_field", "version": "1", "training_set_id": "ts-nope", "metrics": {}}
    assert_problem(client.post("/models", json=body), 404, "training-set-not-found", "training_set_id", "ts-nope")


@pytest.mark.parametrize("which", ["source", "target"])
def test_path_names_the_query_parameter_of_a_bad_node(client: Any, which: str) -> None:
    params = {"source": "raw_table:nycflights13.weather", "target": "feature_service:delay_model_v1"}
    assert_problem(
        client.get("/lineage/path", params=params | {which: "nokind:x"}), 422, "invalid-node-id", f"query.{which}"
    )
    assert_problem(
        client.get("/lineage/path", params=params | {which: "model:nope@1"}), 404, "node-not-found", f"query.{which}"
    )


def test_path_says_which_way_the_data_flows(client: Any) -> None:
    up, down = "raw_table:nycflights13.weather", "feature_service:delay_model_v1"
    forward = client.get("/lineage/path", params={"source": up, "target": down}).json()
    backward = client.get("/lineage/path", params={"source": down, "target": up}).json()
    assert forward["direction"] == "downstream" and forward["path"][0] == up and forward["path"][-1] == down
    assert backward["direction"] == "upstream" and backward["path"] == forward["path"]
    same = client.get("/lineage/path", params={"source": up, "target": up}).json()
    assert same == {"path": [up], "direction": "same"}


def test_path_between_unconnected_nodes_is_an_empty_path(client: Any) -> None:
    """README: no route either way is a 200 with ``path: []`` and ``direction: null`` (not a 404)."""
    a, b = "feature_view:plane_profile", "feature_view:origin_weather"
    for one, other in ((a, b), (b, a)):  # independently: neither is in the other's neighbourhood
        around = client.get(f"/lineage/nodes/{one}/downstream").json()
        around_up = client.get(f"/lineage/nodes/{one}/upstream").json()
        assert other not in {n["id"] for n in around["nodes"] + around_up["nodes"]}
    response = client.get("/lineage/path", params={"source": a, "target": b})
    assert response.status_code == 200, response.text
    assert response.json() == {"path": [], "direction": None}
