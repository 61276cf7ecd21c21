"""``Accept`` is followed in its order of preference: a set too large for JSON answers the next acceptable
type; JSON alone on such a set is a 406 naming the binary types (413 is for request bodies)."""

import io

import pandas as pd
import pyarrow.ipc as ipc
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.formats import ARROW_STREAM, JSON, PARQUET, NotAcceptable, acceptable
from service.settings import Settings
from tests.conftest import REPLAY_NOW, NoServerErrorClient

ROWS = [
    {"origin": "EWR", "carrier": "UA", "event_timestamp": "2013-05-01T13:00:00Z", "label": 1},
    {"origin": "JFK", "carrier": "B6", "event_timestamp": "2013-05-01T09:30:00-04:00", "label": 0},
    {"origin": "LGA", "carrier": "DL", "event_timestamp": "2013-06-01T12:00:00Z", "label": 1},
]
FALLBACK = f"{JSON}, {PARQUET};q=0.5"


@pytest.fixture(scope="module")
def client(built_repo):  # type: ignore[no-untyped-def]
    with NoServerErrorClient(create_app(Settings(repo=built_repo, now=REPLAY_NOW, max_json_rows=2))) as c:
        yield c


def post(client: TestClient, rows: list[dict], accept: str | None) -> object:
    headers = {"accept": accept} if accept is not None else {}
    return client.post(
        "/training-sets", json={"feature_service": "delay_model_v1", "entity_rows": rows}, headers=headers
    )


def stored(client: TestClient, ts_id: str) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(client.get(f"/training-sets/{ts_id}/data").content))


@pytest.mark.parametrize(
    ("accept", "answered"),
    [
        (FALLBACK, PARQUET),
        (f"{JSON}, {ARROW_STREAM};q=0.2, {PARQUET};q=0.1", ARROW_STREAM),
        (f"{JSON}, */*;q=0.1", PARQUET),
        (None, PARQUET),  # no Accept: any type will do
    ],
)
def test_a_set_too_large_for_json_answers_the_next_acceptable_type(client: TestClient, accept, answered) -> None:
    response = post(client, ROWS, accept)
    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == answered
    body = response.content
    frame = pd.read_parquet(io.BytesIO(body)) if answered == PARQUET else ipc.open_stream(body).read_pandas()
    assert len(frame) == 3 and frame["label"].tolist() == [1, 0, 1]
    pd.testing.assert_frame_equal(frame, stored(client, response.headers["x-training-set-id"]))


def test_json_first_still_wins_when_the_set_fits(client: TestClient) -> None:
    response = post(client, ROWS[:2], FALLBACK)
    assert response.status_code == 201 and response.headers["content-type"] == JSON
    assert [r["label"] for r in response.json()["rows"]] == [1, 0]


@pytest.mark.parametrize("accept", [JSON, f"{JSON}, {PARQUET};q=0", f"{JSON}, text/csv"])
def test_json_alone_on_a_large_set_is_a_406_naming_the_binary_types(client: TestClient, accept: str) -> None:
    response = post(client, ROWS, accept)
    assert response.status_code == 406, response.text
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert problem["field"] == "header.accept" and problem["rows"] == 3 and problem["limit"] == 2
    assert problem["supported"] == [PARQUET, ARROW_STREAM]
    assert PARQUET in problem["detail"] and ARROW_STREAM in problem["detail"]


def test_reading_a_stored_set_falls_back_the_same_way(client: TestClient) -> None:
    ts_id = post(client, ROWS, PARQUET).headers["x-training-set-id"]
    fallback = client.get(f"/training-sets/{ts_id}/data", headers={"accept": FALLBACK})
    assert fallback.status_code == 200 and fallback.headers["content-type"] == PARQUET
    assert len(pd.read_parquet(io.BytesIO(fallback.content))) == 3
    refused = client.get(f"/training-sets/{ts_id}/data", headers={"accept": JSON})
    assert refused.status_code == 406 and refused.json()["supported"] == [PARQUET, ARROW_STREAM]


@pytest.mark.parametrize(
    ("accept", "default", "order"),
    [
        (None, JSON, [JSON, PARQUET, ARROW_STREAM]),
        (None, PARQUET, [PARQUET, JSON, ARROW_STREAM]),
        (FALLBACK, JSON, [JSON, PARQUET]),
        (f"{PARQUET};q=0.5, {JSON}", JSON, [JSON, PARQUET]),
        (f"{ARROW_STREAM}, {PARQUET}", JSON, [ARROW_STREAM, PARQUET]),  # equal q: the order given
        (f"{JSON};q=0, */*", JSON, [PARQUET, ARROW_STREAM]),
        (f"*/*;q=0.2, {ARROW_STREAM};q=0.5", PARQUET, [ARROW_STREAM, PARQUET, JSON]),
        (f"application/*, {JSON};q=0.1", JSON, [PARQUET, ARROW_STREAM, JSON]),
    ],
)
def test_acceptable_ranks_by_q_then_order(accept: str | None, default: str, order: list[str]) -> None:
    assert acceptable(accept, default) == order


@pytest.mark.parametrize("accept", ["text/csv", f"{JSON};q=0", f"*/*;q=0, {JSON};q=0"])
def test_nothing_acceptable_is_refused(accept: str) -> None:
    with pytest.raises(NotAcceptable):
        acceptable(accept, JSON)
