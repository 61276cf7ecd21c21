"""Materialization, online reads and pushes on Feast's own default online store (``type: sqlite``), not
feastline's ordered one: a repo written as Feast's docs write it must work unchanged (the new-user trial:
``feastline materialize`` failed there with "type 'Timestamp' is not supported").

Feast's plain store takes Feast's ``online_write_batch`` contract (Python ``datetime``) and keeps whole
seconds and the last write; what holds there (README, "Online serving"): per materialization the newest
row per key; inside one push the newest row per key (nanoseconds compared); across writes, the last one.
Expected values are computed here from the repo's own data frames (tests/shop_repo.py).
"""

from datetime import timedelta
from pathlib import Path

import pytest

from service.app import create_app
from service.materialization.materializer import full_windows, online_views
from service.materialization.materializer import materialize as run_materializer
from service.settings import Settings
from tests.conftest import NoServerErrorClient
from tests.repo_gen_files import apply_repo
from tests.shop_repo import (
    CUSTOMERS,
    NOW,
    PLAIN_SQLITE,
    epoch_seconds,
    f32,
    latest_profile,
    materialize,
    online,
    profile_rows,
    push,
    write_shop_repo,
    z,
)

PROFILE = ["score", "recent_amounts", "weights", "recent_ids", "signup_ts", "seen_ts", "name"]


@pytest.fixture
def plain_repo(tmp_path: Path) -> Path:
    repo = write_shop_repo(tmp_path / "shop", PLAIN_SQLITE)
    apply_repo(repo)
    return repo


def expected_online(customer: int) -> dict:
    """The online answer for one customer at NOW: the newest row materialized (created cut-off off)."""
    row = latest_profile(profile_rows(), customer, NOW, created_cut=False)
    assert row is not None
    return {
        "score": f32(row["score"]),
        "recent_amounts": [f32(v) for v in row["recent_amounts"]],
        "weights": [f32(v) for v in row["weights"]],
        "recent_ids": list(row["recent_ids"]),
        "signup_ts": epoch_seconds(row["signup_ts"]),
        "seen_ts": [epoch_seconds(t) for t in row["seen_ts"]],
        "name": row["name"],
        "event_timestamp": z(row["event_timestamp"].floor("s")),
    }


def test_materializer_writes_feasts_plain_sqlite_store(plain_repo: Path) -> None:
    """The materializer itself (what ``feastline materialize`` runs) on Feast's store: no error, every key."""
    from feast import FeatureStore

    store = FeatureStore(repo_path=str(plain_repo))
    results = run_materializer(store, full_windows(online_views(store), NOW.replace(year=2023), NOW))
    offered = {r.view: r.rows_offered for r in results}
    assert offered == {"customer_profile": len(CUSTOMERS), "customer_clicks": len(CUSTOMERS)}


def test_online_reads_after_materializing_into_the_plain_store(plain_repo: Path) -> None:
    with NoServerErrorClient(create_app(Settings(repo=plain_repo, now=NOW))) as client:
        materialize(client)
        got = online(client, [f"customer_profile:{f}" for f in PROFILE], {"customer_id": CUSTOMERS})
    for i, customer in enumerate(CUSTOMERS):
        want = expected_online(customer)
        for feature in PROFILE:
            assert got[feature]["values"][i] == want[feature], (customer, feature)
            assert got[feature]["statuses"][i] == "PRESENT"
            assert got[feature]["event_timestamps"][i] == want["event_timestamp"]


def test_pushes_into_the_plain_store(plain_repo: Path) -> None:
    """Inside one push the newest row per key wins (nanoseconds compared); across pushes Feast's store keeps
    the last write (it has no ordering of its own), as the README says."""
    at = NOW - timedelta(hours=1)
    newer, older = z(at).replace("Z", ".000000500Z"), z(at).replace("Z", ".000000100Z")
    with NoServerErrorClient(create_app(Settings(repo=plain_repo, now=NOW))) as client:
        df = {
            "customer_id": [1, 1, 2],
            "event_time": [newer, older, older],
            "clicks": [5, 6, 7],
            "dwell": [1.5, 2.5, 0.25],
        }
        response = push(client, df)
        assert response.status_code == 200, response.text
        got = online(client, ["customer_clicks:clicks", "customer_clicks:dwell"], {"customer_id": [1, 2]})
        assert got["clicks"]["values"] == [5, 7]  # customer 1: the 500 ns row, though sent first
        assert got["dwell"]["values"] == [1.5, 0.25]
        assert got["clicks"]["event_timestamps"] == [z(at), z(at)]  # Feast's store keeps whole seconds
        later_but_older = {
            "customer_id": [1],
            "event_time": [z(at - timedelta(hours=1))],
            "clicks": [9],
            "dwell": [9.0],
        }
        assert push(client, later_but_older).status_code == 200
        got = online(client, ["customer_clicks:clicks"], {"customer_id": [1]})
        assert got["clicks"]["values"] == [9]  # the plain store: the last write wins (the ordered one keeps 5)
