"""Online/offline parity: logged reads replayed through the point-in-time engine, value by value.

Acceptance: serve, push ``to: online`` only, serve again: parity names exactly the rows served with
the pushed value, with the cause "pushed online but not offline"; after the same push ``to:
online_and_offline``, parity over the reads served after it is 100 %.
"""

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from service.monitoring.parity import (
    LATER_BACKFILL,
    MATERIALIZATION_BEHIND,
    PUSHED_ONLINE_ONLY,
    TTL_DIFFERS,
    TYPE_PRECISION,
    UNEXPLAINED,
    Cell,
    decide_cause,
)
from tests.conftest import REPLAY_NOW
from tests.monitoring.conftest import app_client, metric

LIVE = "live_weather"
FEATURES = ["temp", "dewp", "humid", "wind_dir", "wind_speed", "precip", "pressure", "visib"]
PUSHED = dict(
    temp=77.7, dewp=40.5, humid=61.25, wind_dir=190.0, wind_speed=11.5, precip=0.0, pressure=1011.5, visib=9.5
)
PUSHED_AT = "2013-12-30T23:30:00Z"
ORIGINS = ["EWR", "JFK", "LGA"]


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def serve(client, service=LIVE, entities=None):
    answer = client.post(
        "/get-online-features", json={"feature_service": service, "entities": entities or {"origin": ORIGINS}}
    )
    assert answer.status_code == 200, answer.text
    return answer


def push(client, to):
    df = {"origin": ["EWR"], "event_timestamp": [PUSHED_AT]} | {k: [v] for k, v in PUSHED.items()}
    answer = client.post("/push", json={"push_source_name": "weather_push", "df": df, "to": to})
    assert answer.status_code == 200 and answer.json()["rows_accepted"] == 1, answer.text


def parity(client, at, service=LIVE):
    client.app.state.online_log.flush()
    window = {"start": iso(at), "end": iso(at + timedelta(seconds=1))}
    answer = client.post("/monitoring/parity", json={"feature_service": service, "window": window})
    assert answer.status_code == 200, answer.text
    return answer.json()


def offline_fresh(repo, origin, at):
    """The point-in-time value of origin_weather_fresh at ``at``, by brute force over the source file
    (TTL 3 h, created <= at): a dict of features, or None when no row qualifies."""
    rows = pd.read_parquet(repo / "data" / "origin_weather_fresh.parquet")
    ts, created = pd.to_datetime(rows["event_timestamp"], utc=True), pd.to_datetime(rows["created"], utc=True)
    at = pd.Timestamp(at)
    ok = (rows["origin"] == origin) & (ts <= at) & (ts >= at - pd.Timedelta(hours=3)) & (created <= at)
    if not ok.any():
        return None
    best = rows[ok].assign(_ts=ts[ok], _c=created[ok]).sort_values(["_ts", "_c"]).iloc[-1]
    return {f: float(best[f]) for f in FEATURES}


def test_push_online_only_is_named_and_online_and_offline_is_100_percent(live_repo):
    with app_client(live_repo, REPLAY_NOW) as client:
        before = serve(client)
        push(client, "online")
        after = serve(client)
        report = parity(client, REPLAY_NOW)
        gauge_then = metric(client, "feastline_parity_match_rate", feature_service=LIVE, feature="temp")

    # independently: online values as answered, offline ones by brute force over the source
    expected = set()
    for answer in (before, after):
        body = answer.json()
        for i, origin in enumerate(ORIGINS):
            offline = offline_fresh(live_repo, origin, REPLAY_NOW)
            for name, result in zip(body["metadata"]["feature_names"][1:], body["results"][1:], strict=True):
                value = result["values"][i]
                if value != (None if offline is None else offline[name]):
                    expected.add((answer.headers["x-request-id"], i, name, value))
    assert expected == {(after.headers["x-request-id"], 0, f, PUSHED[f]) for f in FEATURES}  # the pushed row only
    listed = {(m["request_id"], m["row"], m["feature"], m["online_value"]) for m in report["mismatches"]}
    assert listed == expected
    assert {m["cause"] for m in report["mismatches"]} == {PUSHED_ONLINE_ONLY}
    assert all(m["offline_value"] is None and m["online_event_timestamp"] == PUSHED_AT for m in report["mismatches"])
    assert all(m["entity"] == {"origin": "EWR"} for m in report["mismatches"])
    assert report["requests"] == 2 and report["rows"] == 6 and report["mismatch_count"] == len(FEATURES)
    assert report["causes"] == {PUSHED_ONLINE_ONLY: len(FEATURES)}
    for f in report["features"]:
        assert f["match_rate"] == pytest.approx(5 / 6) and f["statuses"] == {"NOT_FOUND": 5, "PRESENT": 1}
    assert report["match_rate"] == pytest.approx(5 / 6)
    assert gauge_then == pytest.approx(5 / 6)

    later = REPLAY_NOW + timedelta(minutes=10)
    with app_client(live_repo, later) as client:
        push(client, "online_and_offline")
        served = serve(client)
        report = parity(client, later)
        gauge_now = metric(client, "feastline_parity_match_rate", feature_service=LIVE, feature="temp")
        rows = metric(client, "feastline_parity_rows", feature_service=LIVE)
        # the earlier window again: the pushed row is offline now, but written after those reads
        earlier = parity(client, REPLAY_NOW)
    assert served.json()["results"][1]["values"][0] == PUSHED["temp"]
    assert offline_fresh(live_repo, "EWR", later) == PUSHED
    assert report["rows"] == 3 and report["mismatch_count"] == 0 and report["mismatches"] == []
    assert report["match_rate"] == 1.0 and all(f["match_rate"] == 1.0 for f in report["features"])
    assert gauge_now == 1.0 and rows == 3
    assert earlier["mismatch_count"] == len(FEATURES) and earlier["causes"] == {LATER_BACKFILL: len(FEATURES)}


def test_materialized_views_match_offline_including_request_fields(live_repo, built_repo):
    flights = pd.read_parquet(built_repo / "data" / "flights.parquet")
    sample = flights.drop_duplicates(["origin", "carrier", "tailnum"]).dropna(subset=["tailnum"]).head(40)
    entities = {
        "origin": sample["origin"].tolist(),
        "carrier": sample["carrier"].tolist(),
        "tailnum": sample["tailnum"].tolist(),
        "sched_year": [2013] * len(sample),
    }
    with app_client(live_repo, REPLAY_NOW) as client:
        answer = serve(client, "delay_model_v2", entities)
        report = parity(client, REPLAY_NOW, "delay_model_v2")
    body = answer.json()
    statuses = [s for r in body["results"][3:] for s in r["statuses"]]
    assert report["rows"] == len(sample) and report["requests"] == 1
    assert report["mismatch_count"] == 0 and report["match_rate"] == 1.0
    assert sum(sum(f["statuses"].values()) for f in report["features"]) == len(statuses)
    assert {k: v for f in report["features"] for k, v in f["statuses"].items()}.keys() <= {
        "PRESENT",
        "NOT_FOUND",
        "NULL_VALUE",
        "OUTSIDE_MAX_AGE",
    }
    assert "PRESENT" in statuses


def test_parity_requests_are_validated(client):
    window = {"start": "2013-12-31T00:00:00Z", "end": "2013-12-31T01:00:00Z"}
    unknown = client.post("/monitoring/parity", json={"feature_service": "nope", "window": window})
    backwards = client.post(
        "/monitoring/parity",
        json={"feature_service": "delay_model_v1", "window": {"start": window["end"], "end": window["start"]}},
    )
    naive = client.post(
        "/monitoring/parity",
        json={"feature_service": "delay_model_v1", "window": {"start": "2013-12-31T00:00:00", "end": window["end"]}},
    )
    extra = client.post("/monitoring/parity", json={"feature_service": "delay_model_v1", "window": window, "x": 1})
    empty = client.post(
        "/monitoring/parity",
        json={
            "feature_service": "delay_model_v1",
            "window": {"start": "2001-01-01T00:00:00Z", "end": "2001-01-02T00:00:00Z"},
        },
    )
    assert unknown.status_code == 404
    assert backwards.status_code == 422 and backwards.json()["field"] == "window.end"
    assert naive.status_code == 422 and extra.status_code == 422
    assert empty.status_code == 200 and empty.json()["rows"] == 0 and empty.json()["match_rate"] is None


T = pd.Timestamp("2013-12-31T00:00:00Z")
H = pd.Timedelta(hours=1)


@pytest.mark.parametrize(
    ("cell", "same_time", "has_created", "push_fed", "cause"),
    [
        # 1.0000001 and 1.0 are one float32
        (Cell(1.0000001, "PRESENT", T - H, 1.0, T - H, T), [(1.0, T - H)], True, False, TYPE_PRECISION),
        (Cell(3, "PRESENT", T - H, "3", T - H, T), [("3", T - H)], True, False, TYPE_PRECISION),
        # the served row is not offline at all
        (Cell(5.0, "PRESENT", T - H, None, None, T), [], True, True, PUSHED_ONLINE_ONLY),
        (Cell(5.0, "PRESENT", T - H, 4.0, T - H, T), [(4.0, T - H)], True, False, LATER_BACKFILL),
        # offline took a newer row than the one served / online had none
        (Cell(5.0, "PRESENT", T - 2 * H, 6.0, T - H, T), [(5.0, T - 2 * H)], True, False, MATERIALIZATION_BEHIND),
        (Cell(None, "NOT_FOUND", None, 6.0, T - H, T), [], True, False, MATERIALIZATION_BEHIND),
        # the same row, expired on one side only
        (Cell(None, "OUTSIDE_MAX_AGE", T - 3 * H, 5.0, T - 3 * H, T), [(5.0, T - 3 * H)], True, False, TTL_DIFFERS),
        (Cell(5.0, "PRESENT", T - 3 * H, None, None, T), [(5.0, T - 3 * H)], True, False, TTL_DIFFERS),
        # the served row offline, but written after the read; or unknown when written
        (Cell(5.0, "PRESENT", T - H, None, None, T), [(5.0, T + H)], True, False, LATER_BACKFILL),
        (Cell(5.0, "PRESENT", T - H, None, None, T), [(5.0, None)], True, False, LATER_BACKFILL),
        (Cell(None, "NOT_FOUND", None, None, None, T), [], True, False, UNEXPLAINED),
    ],
)
def test_each_cause_is_decided_by_its_rule(cell, same_time, has_created, push_fed, cause):
    assert decide_cause(cell, same_time, has_created, push_fed) == cause


def test_float32_equality_is_the_json_precision():
    # the float32 nearest 1.111 spelled shortest is 1.111: equal as float32 <=> equal JSON spellings
    value = np.float32(1.111)
    assert float(str(value)) == 1.111 and np.float32(float(str(value))) == value
