"""``/models``: registering a model puts it in the lineage graph, downstream of its training set."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from lineage import LineageStore, NodeRef
from service.settings import Settings

PROBLEM_JSON = "application/problem+json"
IMPACT_PATH = "/lineage/nodes/{node_id}/impact"
ROWS = [
    {"origin": "EWR", "carrier": "UA", "event_timestamp": "2013-05-01T13:00:00Z", "label_delayed": 1},
    {"origin": "JFK", "carrier": "B6", "event_timestamp": "2013-05-01T09:30:00-04:00", "label_delayed": 0},
]


def make_training_set(client: TestClient, feature_service: str) -> str:
    rows = [dict(r) for r in ROWS]
    if feature_service == "delay_model_v2":
        for r in rows:
            r.update(tailnum="N14228", sched_year=2013)
    response = client.post("/training-sets", json={"feature_service": feature_service, "entity_rows": rows})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@pytest.fixture(scope="module")
def training_sets(client: TestClient) -> dict[str, str]:
    return {fs: make_training_set(client, fs) for fs in ("delay_model_v1", "delay_model_v2")}


def register(client: TestClient, **body: Any) -> Any:
    return client.post("/models", json=body)


def test_register_get_and_list(client: TestClient, training_sets: dict[str, str]) -> None:
    ts = training_sets["delay_model_v1"]
    response = register(client, name="m_register", version="1", training_set_id=ts, metrics={"roc_auc": 0.7, "n": 3})
    assert response.status_code == 201, response.text
    node = response.json()
    assert node["id"] == "model:m_register@1" and node["kind"] == "model"
    attrs = node["attributes"]
    assert attrs["name"] == "m_register" and attrs["version"] == "1" and attrs["training_set_id"] == ts
    assert attrs["metrics"] == {"roc_auc": 0.7, "n": 3.0}
    assert attrs["registered_at"].endswith("Z")

    assert client.get("/models/m_register/1").json() == node
    assert node in client.get("/models").json()
    upstream = client.get("/lineage/nodes/model:m_register@1/upstream", params={"depth": 1}).json()
    assert {"source": f"training_set:{ts}", "target": "model:m_register@1", "relation": "trained_on"} in upstream[
        "edges"
    ]


def test_reregistering_on_the_same_training_set_is_a_conflict_and_changes_nothing(
    client: TestClient, training_sets: dict[str, str]
) -> None:
    ts = training_sets["delay_model_v1"]
    assert register(client, name="m_same", version="1", training_set_id=ts, metrics={"a": 1}).status_code == 201
    response = register(client, name="m_same", version="1", training_set_id=ts, metrics={"a": 2})
    assert response.status_code == 409
    assert client.get("/models/m_same/1").json()["attributes"]["metrics"] == {"a": 1}


def test_unknown_training_set_is_404(client: TestClient) -> None:
    response = register(client, name="m_404", version="1", training_set_id="ts-nope", metrics={})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert "ts-nope" in response.json()["detail"]
    assert client.get("/models/m_404/1").status_code == 404


def test_unknown_model_is_404(client: TestClient) -> None:
    response = client.get("/models/never/1")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith(PROBLEM_JSON)


def test_same_version_on_another_training_set_is_409(client: TestClient, training_sets: dict[str, str]) -> None:
    v1, v2 = training_sets["delay_model_v1"], training_sets["delay_model_v2"]
    assert register(client, name="m_conflict", version="1", training_set_id=v1, metrics={}).status_code == 201
    response = register(client, name="m_conflict", version="1", training_set_id=v2, metrics={})
    assert response.status_code == 409
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert v1 in response.json()["detail"]
    assert client.get("/models/m_conflict/1").json()["attributes"]["training_set_id"] == v1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"extra": 1}, "extra"),
        ({"metrics": {"auc": "high"}}, "metrics.auc"),
        ({"metrics": {"auc": True}}, "metrics.auc"),
        ({"metrics": [0.7]}, "metrics"),
        ({"name": ""}, "name"),
        ({"name": "a/b"}, "name"),
        ({"version": 1}, "version"),
        ({"training_set_id": None}, "training_set_id"),
    ],
)
def test_bad_body_is_422(client: TestClient, training_sets: dict[str, str], change: dict[str, Any], field: str) -> None:
    body = {"name": "m_bad", "version": "1", "training_set_id": training_sets["delay_model_v1"], "metrics": {}}
    response = client.post("/models", json={**body, **change})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert field in {p["field"] for p in response.json()["problems"]}


def test_missing_key_is_422(client: TestClient) -> None:
    response = client.post("/models", json={"name": "m", "version": "1", "metrics": {}})
    assert response.status_code == 422
    assert response.json()["field"] == "training_set_id"


def impact_ids(client: TestClient, settings: Settings, node_id: str) -> set[str]:
    """``GET /lineage/nodes/{id}/impact`` if the route exists, else ``LineageGraph.impact_of`` directly."""
    if any(getattr(route, "path", None) == IMPACT_PATH for route in client.app.routes):  # type: ignore[attr-defined]
        response = client.get(IMPACT_PATH.format(node_id=node_id))
        assert response.status_code == 200, response.text
        return {n["id"] for n in response.json()["impact"]}
    with LineageStore(settings.lineage_database_url) as store:
        return {n.id for n in store.load_graph().impact_of(NodeRef.parse(node_id))}


def test_weather_source_impact_lists_services_training_sets_and_model(
    client: TestClient, settings: Settings, training_sets: dict[str, str]
) -> None:
    response = register(
        client, name="m_impact", version="2", training_set_id=training_sets["delay_model_v2"], metrics={"auc": 0.6}
    )
    assert response.status_code == 201
    hit = impact_ids(client, settings, "data_source:origin_weather_source")
    expected = {
        "feature_service:delay_model_v1",
        "feature_service:delay_model_v2",
        *(f"training_set:{ts}" for ts in training_sets.values()),
        "model:m_impact@2",
    }
    assert expected <= hit
    assert all(i.split(":", 1)[0] in {"feature_service", "training_set", "model"} for i in hit)
    # plane_profile's source feeds only v2: the v1 training set is not hit, the model on v2 is
    plane_hit = impact_ids(client, settings, "data_source:plane_profile_source")
    assert f"training_set:{training_sets['delay_model_v1']}" not in plane_hit
    assert "model:m_impact@2" in plane_hit
