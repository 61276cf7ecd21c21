"""Request fields and join keys of a training-set request that are not values of their declared type are a
422 naming the row and field, every one of them, never coerced (tests/shop_repo.py: ``amount`` ``Float64``
and ``channel`` ``String`` are request fields of ``txn_features``, ``customer_id`` an ``Int64`` key):

- a JSON ``NaN`` (Python's json accepts the literal) was silently turned into null (201);
- ±inf in a request-field column of a Parquet/Arrow entity table was accepted and stored.
"""

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from service.app import create_app
from service.settings import Settings
from tests.conftest import NoServerErrorClient
from tests.repo_gen_files import apply_repo
from tests.shop_repo import NOW, write_shop_repo

PARQUET = "application/vnd.apache.parquet"
TS = "2024-02-28T00:00:00Z"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    repo = write_shop_repo(tmp_path_factory.mktemp("requests") / "shop")
    apply_repo(repo)
    with NoServerErrorClient(create_app(Settings(repo=repo, now=NOW))) as c:
        yield c


def raw_json(client: NoServerErrorClient, rows: list[str]):  # type: ignore[no-untyped-def]
    body = '{"feature_service": "shop_v1", "entity_rows": [' + ", ".join(rows) + "]}"
    return client.post("/training-sets", content=body.encode(), headers={"content-type": "application/json"})


def problems(response) -> set[tuple]:  # type: ignore[no-untyped-def]
    assert response.status_code == 422, response.text
    return {(p["row"], p["field"]) for p in response.json()["problems"]}


def test_json_nan_request_field_is_a_422_naming_row_and_field(client: NoServerErrorClient) -> None:
    good = f'{{"customer_id": 1, "event_timestamp": "{TS}", "amount": 10.0, "channel": "web"}}'
    nan = f'{{"customer_id": 1, "event_timestamp": "{TS}", "amount": NaN, "channel": "web"}}'
    response = raw_json(client, [good, nan])
    assert problems(response) == {(1, "amount")}
    assert "finite" in response.json()["problems"][0]["problem"]
    assert raw_json(client, [good]).status_code == 201  # the same body without the NaN is fine


def test_every_bad_field_of_a_row_is_reported(client: NoServerErrorClient) -> None:
    row = f'{{"customer_id": NaN, "event_timestamp": "{TS}", "amount": NaN, "channel": 7}}'
    other = f'{{"customer_id": "2", "event_timestamp": "{TS}", "amount": -Infinity, "channel": "pos"}}'
    response = raw_json(client, [row, other])
    assert problems(response) == {(0, "customer_id"), (0, "amount"), (0, "channel"), (1, "customer_id"), (1, "amount")}


def table_body(amounts: list[float]) -> bytes:
    n = len(amounts)
    table = pa.table(
        {
            "customer_id": pa.array([1] * n, pa.int64()),
            "event_timestamp": pa.array([NOW] * n, pa.timestamp("ns", tz="UTC")),
            "amount": pa.array(amounts, pa.float64()),
            "channel": pa.array(["web"] * n, pa.string()),
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def test_infinite_request_field_in_a_parquet_table_is_a_422(client: NoServerErrorClient) -> None:
    url = "/training-sets?feature_service=shop_v1"
    headers = {"content-type": PARQUET, "accept": "application/json"}
    response = client.post(url, content=table_body([1.0, float("inf"), 2.0, float("-inf")]), headers=headers)
    assert problems(response) == {(1, "amount"), (3, "amount")}
    assert client.post(url, content=table_body([1.0, 2.5]), headers=headers).status_code == 201
