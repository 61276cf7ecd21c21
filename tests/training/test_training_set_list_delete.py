"""``GET /training-sets`` (paged, filtered) and ``DELETE /training-sets/{id}`` (data removed, record and
lineage kept and marked, refused while a model was trained on the set), on a private copy of the repo."""

import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from tests.conftest import REPLAY_NOW, NoServerErrorClient, copy_repo

ROW = {"origin": "EWR", "carrier": "UA", "event_timestamp": "2013-05-01T13:00:00Z"}


def z(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def made(built_repo: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A client and three sets made after ``since``: ``a``, ``b`` (delay_model_v1), ``c`` (delay_model_v2)."""
    repo = tmp_path_factory.mktemp("sets") / "repo"
    copy_repo(built_repo, repo, ignore=("training_sets",))
    with NoServerErrorClient(create_app(Settings(repo=repo, now=REPLAY_NOW))) as client:
        since = datetime.now(UTC)
        ids = {}
        for name, service in (("a", "delay_model_v1"), ("b", "delay_model_v1"), ("c", "delay_model_v2")):
            row = {**ROW, "sched_year": 2013, "tailnum": "N14228"} if service == "delay_model_v2" else ROW
            answer = client.post("/training-sets", json={"feature_service": service, "entity_rows": [row]})
            assert answer.status_code == 201, answer.text
            ids[name] = answer.json()["id"]
            time.sleep(0.01)  # distinct creation times
        client.sets_dir = Settings(repo=repo).training_sets_path  # catalog paths are relative to it
        yield client, since, ids


def listed(client: TestClient, **params: object) -> dict:
    response = client.get("/training-sets", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_listing_is_newest_first_filtered_and_paged(made) -> None:  # type: ignore[no-untyped-def]
    client, since, ids = made
    page = listed(client, created_after=z(since))
    assert page["total"] == 3 and [s["id"] for s in page["training_sets"]] == [ids["c"], ids["b"], ids["a"]]
    assert page["training_sets"][0] == client.get(f"/training-sets/{ids['c']}").json()
    v1 = listed(client, created_after=z(since), feature_service="delay_model_v1")
    assert [s["id"] for s in v1["training_sets"]] == [ids["b"], ids["a"]]
    b_created = datetime.fromisoformat(client.get(f"/training-sets/{ids['b']}").json()["created_at"])
    before_b = listed(client, created_after=z(since), created_before=z(b_created))
    assert [s["id"] for s in before_b["training_sets"]] == [ids["a"]]
    first = client.get("/training-sets", params={"created_after": z(since), "limit": 2})
    assert first.json()["next_offset"] == 2 and [s["id"] for s in first.json()["training_sets"]] == [ids["c"], ids["b"]]
    link = first.headers["link"]
    query = parse_qs(urlsplit(link[1 : link.index(">")]).query)
    assert query == {"created_after": [z(since)], "limit": ["2"], "offset": ["2"]}
    rest = listed(client, created_after=z(since), limit=2, offset=2)
    assert [s["id"] for s in rest["training_sets"]] == [ids["a"]] and rest["next_offset"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"created_after": "2013-05-01T00:00:00"}, "query.created_after"),  # no offset
        ({"limit": 0}, "query.limit"),
        ({"feature_servic": "delay_model_v1"}, "query.feature_servic"),
    ],
)
def test_a_bad_filter_is_a_422(made, params: dict, field: str) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = made
    response = client.get("/training-sets", params=params)
    assert response.status_code == 422 and response.json()["field"] == field, response.text


def test_delete_keeps_the_record_and_history_removes_the_data_and_refuses_while_a_model_uses_it(made) -> None:  # type: ignore[no-untyped-def]
    client, since, ids = made
    registered = client.post("/models", json={"name": "delay_lr", "version": "1", "training_set_id": ids["a"]})
    assert registered.status_code == 201, registered.text
    assert [s["id"] for s in listed(client, model="delay_lr@1")["training_sets"]] == [ids["a"]]
    assert [s["id"] for s in listed(client, model="delay_lr")["training_sets"]] == [ids["a"]]
    assert listed(client, model="other")["total"] == 0

    record_a = client.get(f"/training-sets/{ids['a']}").json()
    refused = client.delete(f"/training-sets/{ids['a']}")
    assert refused.status_code == 409 and refused.json()["used_by"] == ["model:delay_lr@1"], refused.text
    assert (client.sets_dir / record_a["data_path"]).exists()
    assert client.get(f"/training-sets/{ids['a']}/data").status_code == 200

    record_b = client.get(f"/training-sets/{ids['b']}").json()
    before_delete = datetime.now(UTC)
    time.sleep(0.01)
    deleted = client.delete(f"/training-sets/{ids['b']}")
    assert deleted.status_code == 200, deleted.text
    body = deleted.json()
    assert body["id"] == ids["b"] and body["deleted_at"] is not None
    assert sorted(body["files_removed"]) == sorted(
        [Path(record_b["data_path"]).name, Path(record_b["entity_path"]).name, f"{ids['b']}.profile.json"]
    )
    assert not (client.sets_dir / record_b["data_path"]).exists()
    assert not (client.sets_dir / record_b["entity_path"]).exists()
    kept = client.get(f"/training-sets/{ids['b']}").json()
    assert kept == {**record_b, "deleted_at": body["deleted_at"]}  # the record is kept, marked
    for gone in (
        client.get(f"/training-sets/{ids['b']}/data"),
        client.post(f"/training-sets/{ids['b']}/reproduce"),
        client.delete(f"/training-sets/{ids['b']}"),
        client.post("/models", json={"name": "late", "version": "1", "training_set_id": ids["b"]}),
    ):
        assert gone.status_code == 410, gone.text
        assert gone.json()["deleted_at"] == body["deleted_at"]
    assert ids["b"] not in [s["id"] for s in listed(client, created_after=z(since))["training_sets"]]
    with_deleted = listed(client, created_after=z(since), include_deleted=True)
    assert [s["id"] for s in with_deleted["training_sets"]] == [ids["c"], ids["b"], ids["a"]]

    node = client.get(f"/lineage/nodes/training_set:{ids['b']}").json()
    assert node["attributes"]["deleted"] is True and node["attributes"]["deleted_at"] == body["deleted_at"]
    then = client.get(f"/lineage/nodes/training_set:{ids['b']}", params={"as_of": z(before_delete)}).json()
    assert "deleted_at" not in then["attributes"] and then["attributes"]["fingerprint"] == record_b["fingerprint"]
    assert client.delete("/training-sets/ts-nope").status_code == 404
