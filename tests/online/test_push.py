"""``POST /push`` behind the validation gate, on a private copy of the built repo.

Acceptance of the push gate: a push with one bad row — ``strict`` writes nothing and reports the
row; ``quarantine`` writes the others and the bad one is readable from ``GET /quarantine/{source}``.
Ordered writes: a newer value is never overwritten by an older one, across requests or in one batch.
An acknowledged push survives a restart.
"""

import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from tests.conftest import REPLAY_NOW, copy_repo

WEATHER = dict(
    temp=50.0, dewp=40.0, humid=60.0, wind_dir=180.0, wind_speed=10.0, precip=0.0, pressure=1010.0, visib=10.0
)


def body(rows, to="online", source="weather_push"):
    return {"push_source_name": source, "df": {k: [r[k] for r in rows] for k in rows[0]}, "to": to}


def row(origin, ts, **changes):
    return {"origin": origin, "event_timestamp": ts, **WEATHER, **changes}


def fresh(client, origins, feature="temp"):
    out = client.post(
        "/get-online-features", json={"features": [f"origin_weather_fresh:{feature}"], "entities": {"origin": origins}}
    ).json()
    return out["results"][1]


@pytest.fixture
def repo(built_repo, tmp_path) -> Path:
    copy = tmp_path / "repo"
    copy_repo(built_repo, copy, ignore=("training_sets",))
    return copy


@pytest.fixture
def client(repo):
    with TestClient(create_app(Settings(repo=repo, now=REPLAY_NOW))) as c:
        yield c


def test_quarantine_policy_writes_the_good_rows_and_keeps_the_bad_one(client):
    rows = [
        row("EWR", "2013-12-30T22:00:00Z"),
        row("JFK", "2013-12-30T22:00:00Z", wind_speed=1048.0),
        row("LGA", "2013-12-30T22:00:00Z", temp=41.5),
    ]
    answer = client.post("/push", json=body(rows))
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["policy"] == "quarantine"
    assert (result["rows_accepted"], result["rows_quarantined"]) == (2, 1)
    assert result["quarantined"][0]["row"] == 1
    assert result["quarantined"][0]["problems"][0]["field"] == "wind_speed"
    read = fresh(client, ["EWR", "JFK", "LGA"])
    assert read["values"] == [50.0, None, 41.5] and read["statuses"] == ["PRESENT", "NOT_FOUND", "PRESENT"]
    kept = client.get("/quarantine/weather_push").json()
    assert kept["kind"] == "push" and kept["rows"][0]["values"]["wind_speed"] == 1048.0
    assert kept["rows"][0]["values"]["origin"] == "JFK"


def test_strict_policy_writes_nothing_and_reports_the_row(repo):
    definitions = repo / "definitions.py"
    definitions.write_text(
        definitions.read_text().replace('"feastline.validation": "quarantine"', '"feastline.validation": "strict"')
    )
    feast = Path(sys.executable).parent / "feast"
    subprocess.run([str(feast), "-c", str(repo), "apply"], check=True, capture_output=True)
    with TestClient(create_app(Settings(repo=repo, now=REPLAY_NOW))) as c:
        rows = [row("EWR", "2013-12-30T22:00:00Z"), row("JFK", "2013-12-30T22:00:00Z", humid=140.0)]
        answer = c.post("/push", json=body(rows))
        assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"
        problems = answer.json()["problems"]
        assert [(p["row"], p["field"]) for p in problems] == [(1, "humid")]
        assert fresh(c, ["EWR", "JFK"])["statuses"] == ["NOT_FOUND", "NOT_FOUND"]  # nothing written


def test_an_older_push_never_overwrites_a_newer_value(client):
    assert client.post("/push", json=body([row("EWR", "2013-12-30T22:00:00Z", temp=30.0)])).status_code == 200
    assert client.post("/push", json=body([row("EWR", "2013-12-30T20:00:00Z", temp=10.0)])).status_code == 200
    assert fresh(client, ["EWR"])["values"] == [30.0]
    same_batch = [row("JFK", "2013-12-30T22:00:00Z", temp=31.0), row("JFK", "2013-12-30T21:00:00Z", temp=11.0)]
    assert client.post("/push", json=body(same_batch)).status_code == 200
    assert fresh(client, ["JFK"])["values"] == [31.0]
    assert client.post("/push", json=body([row("EWR", "2013-12-30T23:00:00Z", temp=35.0)])).status_code == 200
    assert fresh(client, ["EWR"])["values"] == [35.0]  # a genuinely newer row does win


def test_an_acknowledged_push_survives_a_restart(repo, client):
    assert (
        client.post(
            "/push",
            json=body([row("LGA", "2013-12-30T22:30:00Z", temp=44.0), row("EWR", "2013-12-30T22:30:00Z", visib=-1.0)]),
        ).status_code
        == 200
    )
    with TestClient(create_app(Settings(repo=repo, now=REPLAY_NOW))) as restarted:
        assert fresh(restarted, ["LGA"])["values"] == [44.0]
        assert restarted.get("/quarantine/weather_push").json()["rows"][0]["values"]["visib"] == -1.0


def test_offline_push_appends_to_the_batch_source(repo, client):
    import pandas as pd

    answer = client.post("/push", json=body([row("EWR", "2013-12-30T22:00:00Z", temp=12.5)], to="online_and_offline"))
    assert answer.status_code == 200
    log = pd.read_parquet(repo / "data" / "origin_weather_fresh.parquet")
    assert log.temp.tolist() == [12.5] and str(log.event_timestamp.dtype) == "datetime64[ns, UTC]"


@pytest.mark.parametrize(
    ("payload", "status", "field"),
    [
        ({"push_source_name": "nope", "df": {"origin": ["EWR"]}}, 404, "push_source_name"),
        (body([row("EWR", "2013-12-30T22:00:00Z")], source="origin_weather_source"), 404, "push_source_name"),
        ({"push_source_name": "weather_push", "df": {"origin": ["EWR", "JFK"], "temp": [1.0]}}, 422, "df"),
        ({"push_source_name": "weather_push", "df": {}}, 422, "df"),
        (body([{**row("EWR", "2013-12-30T22:00:00Z"), "colour": "red"}]), 422, "df"),
        ({"push_source_name": "weather_push", "df": {"origin": ["EWR"]}, "to": "moon"}, 422, "to"),
    ],
    ids=["unknown source", "not a push source", "unequal columns", "no rows", "unknown column", "bad mode"],
)
def test_bad_pushes(client, payload, status, field):
    answer = client.post("/push", json=payload)
    assert answer.status_code == status, answer.text
    problem = answer.json()
    fields = [problem.get("field")] + [p["field"] for p in problem.get("problems", [])]
    assert any(f is not None and f.startswith(field) for f in fields) or field in fields, problem


def test_pipeline_quarantine_is_readable_too(client):
    rows = client.get("/quarantine/origin_weather").json()["rows"]
    assert rows[0]["wind_speed"] == pytest.approx(1048.36058) and "wind_speed" in rows[0]["quarantine_reason"]
    assert client.get("/quarantine/nothing").status_code == 404


def test_a_type_error_is_quarantined_row_by_row_and_a_future_row_refused(client):
    rows = [
        row("EWR", "2013-12-30T22:00:00Z"),
        row("JFK", "2013-12-30T22:00:00Z", temp="warm"),
        row("LGA", "2099-01-01T00:00:00Z"),
    ]
    result = client.post("/push", json=body(rows)).json()
    assert (result["rows_accepted"], result["rows_quarantined"]) == (1, 2)
    assert {q["row"]: q["problems"][0]["field"] for q in result["quarantined"]} == {1: "temp", 2: "event_timestamp"}
    assert fresh(client, ["EWR", "LGA"])["statuses"] == ["PRESENT", "NOT_FOUND"]


def test_odd_inputs_on_lineage_and_materialize_are_4xx_and_metrics_survive(client):
    for url in (
        "/lineage/nodes/feature_view:origin_weather?as_of=%D9%A1",  # an Arabic-Indic digit: not a version
        "/lineage/versions/99999999999999999999",  # beyond the documented integer range
    ):
        assert client.get(url).status_code == 422, url
    for url in (  # valid per the documented as_of (digits, or an RFC 3339 time): no such version, 404
        "/lineage/nodes/feature_view:origin_weather?as_of=99999999999999999999999",
        "/lineage/nodes/feature_view:origin_weather?as_of=0001-01-01T00:00:00%2B14:00",
    ):
        answer = client.get(url)
        assert answer.status_code == 404 and answer.json()["field"] == "query.as_of", url
    far = client.post("/materialize", json={"start": "0001-01-01T00:00:00Z", "end": "9999-12-31T23:59:59Z"})
    assert far.status_code == 422
    huge = client.post("/materialize-incremental", json={"lookback_seconds": 99999999999999999999})
    assert huge.status_code == 422
    assert client.get("/metrics").status_code == 200
