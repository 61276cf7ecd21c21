"""Training sets with ``Array`` features (tests/shop_repo.py, a repo as a new user writes it):

- ``Array(Float32)`` values are answered at the declared precision, as scalar ``Float32`` values are:
  JSON the shortest decimal that round-trips each float32 (14.799, not 14.798999786376953, also when the
  file holds ``list<double>``), Parquet and Arrow ``list<float>`` (as a ``Float32`` scalar is ``float``);
- ``POST /training-sets/{id}/reproduce`` compares list columns exactly, item by item (it was a 500).

Expected values come from the repo's data frame through the README's point-in-time rule (shop_repo).
"""

import io
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from service.app import create_app
from service.settings import Settings
from tests.conftest import NoServerErrorClient
from tests.repo_gen_files import apply_repo
from tests.shop_repo import CUSTOMERS, NOW, f32, latest_profile, profile_rows, write_shop_repo, z

PARQUET = "application/vnd.apache.parquet"
FEATURES = [f"customer_profile:{f}" for f in ("score", "recent_amounts", "weights", "recent_ids")]
NAMES = [f.partition(":")[2] for f in FEATURES]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = write_shop_repo(tmp_path_factory.mktemp("arrays") / "shop")
    apply_repo(repo)
    return repo


@pytest.fixture(scope="module")
def client(shop: Path):  # type: ignore[no-untyped-def]
    with NoServerErrorClient(create_app(Settings(repo=shop, now=NOW))) as c:
        yield c


def entity_rows() -> list[dict]:
    times = [NOW - timedelta(days=d) for d in (0, 2, 5)]
    return [{"customer_id": c, "event_timestamp": z(t)} for c in CUSTOMERS for t in times]


def at(row: dict) -> pd.Timestamp:
    return pd.Timestamp(row["event_timestamp"])


def expected(row: dict) -> dict:
    ref = latest_profile(profile_rows(), row["customer_id"], at(row))
    if ref is None:
        return dict.fromkeys(NAMES)
    return {
        "score": f32(ref["score"]),
        "recent_amounts": [f32(v) for v in ref["recent_amounts"]],
        "weights": [f32(v) for v in ref["weights"]],
        "recent_ids": list(ref["recent_ids"]),
    }


def test_json_training_set_answers_float32_arrays_at_float32_precision(client: NoServerErrorClient) -> None:
    rows = entity_rows()
    response = client.post("/training-sets", json={"features": FEATURES, "entity_rows": rows})
    assert response.status_code == 201, response.text
    got = response.json()["rows"]
    assert any(r["recent_amounts"] == [14.799, 71.268, 0.1] for r in got)  # the new user's row, digit for digit
    for row, answer in zip(rows, got, strict=True):
        want = expected(row)
        assert {k: answer[k] for k in want} == want, row
    # and the stored set, read back as JSON, says the same
    stored = client.get(f"/training-sets/{response.json()['id']}/data", headers={"accept": "application/json"})
    assert stored.status_code == 200, stored.text
    assert [{k: r[k] for k in NAMES} for r in stored.json()["rows"]] == [{k: a[k] for k in NAMES} for a in got]


def test_parquet_training_set_carries_list_of_float32(client: NoServerErrorClient) -> None:
    rows = entity_rows()
    table = pa.Table.from_pylist(
        [{"customer_id": r["customer_id"], "event_timestamp": at(r)} for r in rows],
        schema=pa.schema([("customer_id", pa.int64()), ("event_timestamp", pa.timestamp("ns", tz="UTC"))]),
    )
    body = io.BytesIO()
    pq.write_table(table, body)
    query = "&".join(f"features={f}" for f in FEATURES)
    response = client.post(
        f"/training-sets?{query}", content=body.getvalue(), headers={"content-type": PARQUET, "accept": PARQUET}
    )
    assert response.status_code == 201, response.text
    answer = pq.read_table(io.BytesIO(response.content))
    assert answer.schema.field("score").type == pa.float32()  # the scalar rule ...
    assert answer.schema.field("recent_amounts").type == pa.list_(pa.float32())  # ... and the same for arrays,
    assert answer.schema.field("weights").type == pa.list_(pa.float32())  # also from a list<double> file
    assert answer.schema.field("recent_ids").type == pa.list_(pa.int64())
    for name in ("recent_amounts", "weights"):
        for row, values in zip(rows, answer.column(name).to_pylist(), strict=True):
            want = expected(row)[name]
            assert (values is None) == (want is None)
            if want is not None:
                assert np.array_equal(np.asarray(values, dtype=np.float32), np.asarray(want, dtype=np.float32))


def test_reproduce_compares_array_columns_exactly(client: NoServerErrorClient, shop: Path) -> None:
    rows = entity_rows()
    created = client.post("/training-sets", json={"features": FEATURES, "entity_rows": rows})
    assert created.status_code == 201, created.text
    ts_id = created.json()["id"]
    same = client.post(f"/training-sets/{ts_id}/reproduce")
    assert same.status_code == 200, same.text
    assert same.json()["data_identical"] is True and same.json()["identical"] is True
    # change one array item of the newest row of customer 1 (which every row of customer 1 at NOW reads)
    path = shop / "data" / "profile.parquet"
    source = pq.read_table(path)
    frame = source.to_pandas()
    newest = frame[frame.customer_id == 1].event_timestamp.idxmax()
    before = list(frame.at[newest, "recent_ids"])
    frame.at[newest, "recent_ids"] = [*before[:-1], before[-1] - 1]
    pq.write_table(pa.Table.from_pandas(frame, schema=source.schema, preserve_index=False), path)
    try:
        changed = client.post(f"/training-sets/{ts_id}/reproduce")
        assert changed.status_code == 200, changed.text
        body = changed.json()
        readers = [
            i
            for i, (r, a) in enumerate(zip(rows, created.json()["rows"], strict=True))
            if r["customer_id"] == 1 and a["recent_ids"] == before
        ]
        assert readers, "no row read the changed source row"
        assert body["data_identical"] is False
        assert body["differences"]["columns"] == ["recent_ids"]
        assert body["differences"]["rows"] == readers
    finally:
        pq.write_table(source, path)
