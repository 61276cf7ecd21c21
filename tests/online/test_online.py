"""``POST /get-online-features``: feast serve's JSON, latest materialized values, validated input."""

from datetime import timedelta

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from tests.conftest import REPLAY_NOW


def as_table(body: dict) -> dict:
    names = body["metadata"]["feature_names"]
    return {n: (r["values"], r["statuses"], r["event_timestamps"]) for n, r in zip(names, body["results"], strict=True)}


def test_returns_latest_materialized_values_for_ewr_and_ua(client, built_repo):
    body = client.post(
        "/get-online-features",
        json={"feature_service": "delay_model_v1", "entities": {"origin": ["EWR"], "carrier": ["UA"]}},
    ).json()
    table = as_table(body)
    weather = pd.read_parquet(built_repo / "data" / "origin_weather.parquet")
    latest_w = weather[weather.origin == "EWR"].sort_values("event_timestamp").iloc[-1]
    stats = pd.read_parquet(built_repo / "data" / "carrier_daily_stats.parquet")
    known = stats[(stats.carrier == "UA") & (stats.event_timestamp <= REPLAY_NOW)]  # materialized up to the clock
    latest_c = known.sort_values("event_timestamp").iloc[-1]
    assert table["origin"][0] == ["EWR"] and table["carrier"][0] == ["UA"]
    for col in ("temp", "dewp", "humid", "wind_speed", "pressure", "visib"):
        assert table[col][0][0] == pytest.approx(latest_w[col]), col
        assert table[col][2][0] == latest_w.event_timestamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert table["flights_7d"][0][0] == latest_c.flights_7d
    assert table["mean_dep_delay_7d"][0][0] == pytest.approx(latest_c.mean_dep_delay_7d)


def test_feature_list_and_on_demand_view(client):
    body = client.post(
        "/get-online-features",
        json={
            "features": ["plane_profile:seats", "plane_age:plane_age_years"],
            "entities": {"tailnum": ["N14228", "NOPE"], "sched_year": [2013, 2013]},
        },
    ).json()
    table = as_table(body)
    assert table["seats"][0] == [149, None]
    assert table["seats"][1] == ["PRESENT", "NOT_FOUND"]
    assert table["plane_age_years"][0][0] == pytest.approx(14.0)


@pytest.mark.parametrize(
    ("body", "field", "row"),
    [
        ({"feature_service": "delay_model_v1", "entities": {"origin": ["EWR"]}}, "entities.carrier", None),
        (
            {"feature_service": "delay_model_v1", "entities": {"origin": ["EWR", "JFK"], "carrier": ["UA"]}},
            "entities",
            None,
        ),
        (
            {
                "feature_service": "delay_model_v1",
                "entities": {"origin": ["EWR", 7], "carrier": ["UA", "AA"]},
            },
            "entities.origin",
            1,
        ),
        (
            {"features": ["plane_age:plane_age_years"], "entities": {"tailnum": ["N14228"]}},
            "entities.sched_year",
            None,
        ),
        (
            {
                "features": ["plane_age:plane_age_years"],
                "entities": {"tailnum": ["N14228"], "sched_year": ["2013"]},
            },
            "entities.sched_year",
            0,
        ),
        ({"entities": {"origin": ["EWR"]}}, "features", None),
    ],
)
def test_bad_requests_get_422_naming_the_key(client, body, field, row):
    response = client.post("/get-online-features", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problems = response.json()["problems"]
    assert any(p["field"] == field and p["row"] == row for p in problems), problems


def test_unknown_feature_service_is_404(client):
    response = client.post("/get-online-features", json={"feature_service": "nope", "entities": {"origin": ["EWR"]}})
    assert response.status_code == 404
    assert response.json()["field"] == "feature_service"


@pytest.mark.parametrize(
    "body",
    [
        {"features": ["origin_weather:temp", "origin_weather_fresh:temp"], "entities": {"origin": ["EWR"]}},
        {"features": ["origin_weather:temp", "origin_weather:temp"], "entities": {"origin": ["EWR"]}},
        {"features": ["plane_age:plane_age_years"], "entities": {"tailnum": ["N14228"], "sched_year": [2**70]}},
        {
            "feature_service": "delay_model_v1",
            "entities": {"origin": ["EWR"], "carrier": ["UA"]},
            "full_feature_name": True,
        },
    ],
    ids=["same name in two views", "same feature twice", "request field out of range", "unknown key"],
)
def test_more_bad_online_requests_are_422(client, body):
    response = client.post("/get-online-features", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_full_feature_names_resolve_a_clash(client):
    body = client.post(
        "/get-online-features",
        json={
            "features": ["origin_weather:temp", "origin_weather_fresh:temp"],
            "entities": {"origin": ["EWR"]},
            "full_feature_names": True,
        },
    ).json()
    assert body["metadata"]["feature_names"][1:] == ["origin_weather__temp", "origin_weather_fresh__temp"]


def _weather_status(repo, now, origin="EWR"):
    with TestClient(create_app(Settings(repo=repo, now=now))) as c:
        body = c.post(
            "/get-online-features",
            json={"features": ["origin_weather:temp", "origin_weather:wind_speed"], "entities": {"origin": [origin]}},
        ).json()
    return as_table(body)


def test_ttl_is_enforced_against_the_service_clock(built_repo):
    weather = pd.read_parquet(built_repo / "data" / "origin_weather.parquet")
    last = weather[weather.origin == "EWR"].sort_values("event_timestamp").iloc[-1]
    stale = _weather_status(built_repo, last.event_timestamp + timedelta(hours=5))
    assert stale["temp"][1] == ["OUTSIDE_MAX_AGE"] and stale["temp"][0] == [None]
    assert stale["temp"][2] == [last.event_timestamp.strftime("%Y-%m-%dT%H:%M:%SZ")]
    fresh = _weather_status(built_repo, last.event_timestamp + timedelta(hours=1))
    assert fresh["temp"][1] == ["PRESENT"] and fresh["temp"][0] == [pytest.approx(last.temp)]
    assert fresh["wind_speed"][0] == [pytest.approx(last.wind_speed)]
    edge = _weather_status(built_repo, last.event_timestamp + timedelta(hours=3))  # exactly at the TTL
    assert edge["temp"][1] == ["PRESENT"]


def test_naive_feastline_now_is_refused():
    with pytest.raises(ValueError, match="timezone"):
        Settings(now="2013-12-31T00:00:00")
