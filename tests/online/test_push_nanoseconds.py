"""Online pushes keep nanosecond ordering: a push at ``...000000500Z`` then one at ``...000000100Z`` for the
same key leaves the 500 ns row online, on the ordered SQLite store and on Redis (real Redis at
127.0.0.1:6379, a project of the test's own, its keys removed afterwards). Feast's own ``store.push``
cut event times to microseconds, so the older row, arriving later, won the tie and overwrote it.

And ``to: online_and_offline`` into a batch file whose event column is ``timestamp[us]`` cannot hold the
nanoseconds: a 422 naming the row(s) at fault (it said ``row: null``), nothing written.
"""

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import redis

from service.app import create_app
from service.settings import Settings
from tests.conftest import NoServerErrorClient, require_services
from tests.repo_gen_files import apply_repo
from tests.shop_repo import NOW, ORDERED_SQLITE, online, ordered_redis, push, write_shop_repo, z

AT = z(NOW - timedelta(hours=1))
NEWER, OLDER = AT.replace("Z", ".000000500Z"), AT.replace("Z", ".000000100Z")


def redis_up() -> bool:
    try:
        return bool(redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1).ping())
    except redis.exceptions.RedisError:
        return False


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.integration)])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NoServerErrorClient]:
    project = f"nu_{uuid.uuid4().hex[:10]}"
    if request.param == "redis":
        if not redis_up():
            if require_services():
                pytest.fail("Redis not reachable at 127.0.0.1:6379 (FEASTLINE_REQUIRE_SERVICES=1)")
            pytest.skip("Redis not reachable at 127.0.0.1:6379")
        store = ordered_redis()
    else:
        store = ORDERED_SQLITE
    repo = write_shop_repo(tmp_path / "shop", store, project=project)
    try:
        apply_repo(repo)
        with NoServerErrorClient(create_app(Settings(repo=repo, now=NOW))) as c:
            c.repo = repo  # type: ignore[attr-defined]
            yield c
    finally:
        if request.param == "redis":
            r = redis.Redis(host="127.0.0.1", port=6379)
            for key in r.scan_iter(match=f"*{project}*".encode()):
                r.delete(key)


def clicks(client: NoServerErrorClient, ids: list[int]) -> list:
    return list(online(client, ["customer_clicks:clicks"], {"customer_id": ids})["clicks"]["values"])


def test_an_older_push_by_100_ns_never_overwrites_a_newer_one(client: NoServerErrorClient) -> None:
    first = push(client, {"customer_id": [1], "event_time": [NEWER], "clicks": [500], "dwell": [0.5]})
    assert first.status_code == 200, first.text
    second = push(client, {"customer_id": [1], "event_time": [OLDER], "clicks": [100], "dwell": [0.1]})
    assert second.status_code == 200, second.text
    assert clicks(client, [1]) == [500]
    # the other way round the newer one replaces the older one (the order is by time, not by arrival)
    assert push(client, {"customer_id": [2], "event_time": [OLDER], "clicks": [100], "dwell": [0.1]}).status_code == 200
    assert push(client, {"customer_id": [2], "event_time": [NEWER], "clicks": [500], "dwell": [0.5]}).status_code == 200
    assert clicks(client, [2]) == [500]
    # inside one push too
    df = {"customer_id": [3, 3], "event_time": [NEWER, OLDER], "clicks": [500, 100], "dwell": [0.5, 0.1]}
    assert push(client, df).status_code == 200
    assert clicks(client, [3]) == [500]


def test_offline_push_that_the_file_cannot_hold_names_the_rows(client: NoServerErrorClient) -> None:
    path = client.repo / "data" / "clicks.parquet"  # type: ignore[attr-defined]
    before = pq.read_table(path)
    micro = AT.replace("Z", ".000001Z")  # a timestamp[us] holds this one
    df = {
        "customer_id": [1, 2, 3],
        "event_time": [micro, NEWER, OLDER],
        "clicks": [7, 8, 9],
        "dwell": [0.5, 0.25, 0.125],
    }
    response = push(client, df, to="online_and_offline")
    assert response.status_code == 422, response.text
    found = response.json()["problems"]
    assert [(p["row"], p["field"]) for p in found] == [(1, "event_time"), (2, "event_time")]
    assert all("timestamp[us" in p["problem"] for p in found)
    assert pq.read_table(path).equals(before)  # nothing written, offline ...
    assert clicks(client, [1, 2, 3]) == [None, None, None]  # ... nor online (nothing materialized here)
