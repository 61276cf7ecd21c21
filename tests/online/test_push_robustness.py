"""``POST /push`` on inputs and outages a tester found: clear messages naming the field and the row,
problems in row order, and an unreachable online store answered as 503 with nothing acknowledged."""

import time

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from tests.conftest import REPLAY_NOW, copy_repo
from tests.online.test_redis import free_port, redis_repo, start_redis

WEATHER = dict(
    temp=50.0, dewp=40.0, humid=60.0, wind_dir=180.0, wind_speed=10.0, precip=0.0, pressure=1010.0, visib=10.0
)


def body(rows, to="online"):
    return {"push_source_name": "weather_push", "df": {k: [r[k] for r in rows] for k in rows[0]}, "to": to}


def row(origin, ts, **changes):
    return {"origin": origin, "event_timestamp": ts, **WEATHER, **changes}


@pytest.fixture
def client(built_repo, tmp_path):
    copy = tmp_path / "repo"
    copy_repo(built_repo, copy, ignore=("training_sets",))
    with TestClient(create_app(Settings(repo=copy, now=REPLAY_NOW))) as c:
        yield c


def only_problem(client, ts):
    answer = client.post("/push", json=body([row("EWR", ts)]))
    assert answer.status_code == 200, answer.text  # weather_push quarantines bad rows
    [quarantined] = answer.json()["quarantined"]
    [problem] = quarantined["problems"]
    assert (quarantined["row"], problem["field"]) == (0, "event_timestamp")
    return problem["problem"]


@pytest.mark.parametrize("ts", ["30/12/2013 23:40", "Dec 30 2013 23:40", "2013/12/30 23:40Z"])
def test_a_non_iso_timestamp_is_called_not_iso_8601(client, ts):
    message = only_problem(client, ts)
    assert "ISO 8601" in message and repr(ts) in message
    assert "timezone" not in message, message


def test_a_naive_timestamp_message_is_a_whole_sentence(client):
    message = only_problem(client, "2013-12-30 23:40")
    assert "no timezone" in message and "'Z'" in message
    assert not message.rstrip().endswith(","), message
    assert '"timezone"' not in message  # pushes take no timezone option: do not suggest one


def test_a_missing_column_names_the_column_and_no_rows(client):
    rows = [row("EWR", "2013-12-30T22:00:00Z"), row("JFK", "2013-12-30T22:00:00Z")]
    for r in rows:
        del r["dewp"]
    answer = client.post("/push", json=body(rows))
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert [(p["row"], p["field"]) for p in problem["problems"]] == [(None, "dewp")]
    assert "missing" in problem["problems"][0]["problem"]
    assert "rows []" not in problem["detail"] and "dewp" in problem["detail"]


def test_problems_are_listed_in_row_order(client):
    rows = [
        row("EWR", "yesterday"),
        row("JFK", "2013-12-30T22:00:00Z"),
        row("LGA", "2013-12-30T22:00:00Z", temp="warm"),
    ]
    for r in rows:
        r["colour"] = "red"  # not a column of the views: a problem of no row
    answer = client.post("/push", json=body(rows))
    assert answer.status_code == 422, answer.text
    found = [(p["row"], p["field"]) for p in answer.json()["problems"]]
    assert found == [(None, "colour"), (0, "event_timestamp"), (2, "temp")]


@pytest.mark.integration
@pytest.mark.parametrize("to", ["online", "online_and_offline"])
def test_a_push_while_redis_is_down_is_503_and_nothing_is_acknowledged(built_repo, tmp_path, to):
    port = free_port()
    proc = start_redis(port)
    try:
        repo = redis_repo(built_repo, tmp_path / "repo", port)
        offline = repo / "data" / "origin_weather_fresh.parquet"
        rows_before = len(pd.read_parquet(offline))
        push = body([row("EWR", "2013-12-30T22:00:00Z", temp=12.5), row("JFK", "2013-12-30T22:00:00Z")], to=to)
        with TestClient(create_app(Settings(repo=repo, now=REPLAY_NOW))) as c:
            proc.terminate()
            proc.wait(10)
            started = time.monotonic()
            down = c.post("/push", json=push)
            assert down.status_code == 503, down.text
            assert down.headers["content-type"] == "application/problem+json"
            assert int(down.headers["retry-after"]) > 0
            assert "online store" in down.json()["detail"]
            assert time.monotonic() - started < 10
            assert len(pd.read_parquet(offline)) == rows_before  # not half-written: offline untouched
            proc = start_redis(port)
            up = c.post("/push", json=push)
            assert up.status_code == 200 and up.json()["rows_accepted"] == 2, up.text
            read = c.post(
                "/get-online-features",
                json={"features": ["origin_weather_fresh:temp"], "entities": {"origin": ["EWR"]}},
            ).json()
            assert read["results"][1]["values"] == [12.5]
        if to == "online_and_offline":
            assert len(pd.read_parquet(offline)) == rows_before + 2
    finally:
        proc.terminate()
        proc.wait(10)
