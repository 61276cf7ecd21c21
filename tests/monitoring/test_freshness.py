"""``GET /monitoring/freshness`` and the ``/metrics`` freshness gauges, with the service clock pinned.

Expected ages are computed here from the data: the newest event time the online store holds per view
(its SQLite table, ``event_ts`` in epoch seconds) and the newest row of the view's Parquet source before
the materialization end (pandas), against the pinned clock; objectives from the demo repo's tags.
"""

import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from feastline import FeastlineClient
from service.app import create_app
from service.monitoring.freshness import InvalidObjective, parse_objective
from service.settings import Settings
from tests.conftest import REPLAY_NOW, copy_repo

OBJECTIVES = {"origin_weather": 7200.0, "carrier_daily_stats": 93600.0, "origin_weather_fresh": 1800.0}
BATCH = ("origin_weather", "carrier_daily_stats", "plane_profile")  # materialized views, source file = view name
FEASTLINE = Path(sys.executable).parent / "feastline"


def newest_online(repo: Path, view: str) -> datetime | None:
    with sqlite3.connect(repo / "data" / "online_store.db") as con:
        (ts,) = con.execute(f'SELECT max(event_ts) FROM "feastline_{view}"').fetchone()
    con.close()
    return None if ts is None else datetime.fromtimestamp(ts, tz=UTC)


def newest_in_source(repo: Path, view: str, end: datetime) -> datetime:
    ts = pd.read_parquet(repo / "data" / f"{view}.parquet", columns=["event_timestamp"])["event_timestamp"]
    return ts[ts < pd.Timestamp(end)].max().to_pydatetime().astimezone(UTC)


def gauges(text: str) -> dict[str, dict[str, float]]:
    """metric name -> {feature_view: value} of the freshness gauges in a Prometheus exposition."""
    out: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name.startswith("feastline_feature_freshness"):
            out[family.name] = {s.labels["feature_view"]: s.value for s in family.samples}
    return out


def by_name(answer: dict) -> dict[str, dict]:  # type: ignore[type-arg]
    return {v["name"]: v for v in answer["feature_views"]}


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("30m", 1800), ("2h", 7200), ("26h", 93600), ("1d", 86400), ("7d", 604800)]
)
def test_objectives_parse(text: str, seconds: int) -> None:
    assert parse_objective(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "2", "h", "0h", "-2h", "1.5h", "2 h", " 2h", "2H", "1h30m", "2w", "02h", "1e3s"])
def test_bad_objectives_are_refused(text: str) -> None:
    with pytest.raises(InvalidObjective, match="feastline.freshness_slo"):
        parse_objective(text)


def test_ages_at_the_replay_clock_come_from_what_is_online(client, built_repo) -> None:  # type: ignore[no-untyped-def]
    answer = client.get("/monitoring/freshness")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["now"] == "2013-12-31T00:00:00Z"
    views = by_name(body)
    assert sorted(views) == ["carrier_daily_stats", "origin_weather", "origin_weather_fresh", "plane_profile"]
    for name in BATCH:
        newest = newest_online(built_repo, name)
        assert newest is not None and newest == newest_in_source(built_repo, name, REPLAY_NOW)
        view = views[name]
        assert view["newest_event_time"] == newest.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert view["age_seconds"] == (REPLAY_NOW - newest).total_seconds()
        assert view["objective_seconds"] == OBJECTIVES.get(name)
        assert view["objective_problem"] is None
    assert views["origin_weather"]["age_seconds"] == 3600.0  # the 23:00 observation, an hour before the clock
    assert views["origin_weather"]["status"] == "ok"
    assert views["carrier_daily_stats"]["status"] == "ok"
    assert views["plane_profile"]["status"] == "unknown"  # no objective
    fresh = views["origin_weather_fresh"]  # nothing pushed yet: nothing online
    assert newest_online(built_repo, "origin_weather_fresh") is None
    assert (fresh["newest_event_time"], fresh["age_seconds"], fresh["status"]) == (None, None, "unknown")
    assert fresh["objective_seconds"] == 1800.0
    assert FeastlineClient(http=client).freshness() == body  # the Python client reads the same answer


def test_metrics_export_age_and_objective(client, built_repo) -> None:  # type: ignore[no-untyped-def]
    metrics = gauges(client.get("/metrics").text)
    ages = {name: (REPLAY_NOW - newest_in_source(built_repo, name, REPLAY_NOW)).total_seconds() for name in BATCH}
    assert metrics["feastline_feature_freshness_seconds"] == ages  # nothing pushed: no series for the push view
    assert metrics["feastline_feature_freshness_objective_seconds"] == OBJECTIVES  # none for plane_profile


LATER = REPLAY_NOW + timedelta(hours=3)  # the clock 3 h on, nothing materialized since


@pytest.fixture(scope="module")
def later_client(built_repo, tmp_path_factory):  # type: ignore[no-untyped-def]
    """A copy of the built repo whose plane_profile carries a bad objective, served 3 h after the replay."""
    repo = copy_repo(built_repo, tmp_path_factory.mktemp("freshness") / "repo", ignore=("training_sets",))
    definitions = repo / "definitions.py"
    text = definitions.read_text()
    assert text.count('tags={"domain": "fleet"}') == 1
    bad = 'tags={"domain": "fleet", "feastline.freshness_slo": "1.5h"}'
    definitions.write_text(text.replace('tags={"domain": "fleet"}', bad))
    subprocess.run([str(FEASTLINE), "apply", "--repo", str(repo)], check=True, capture_output=True)
    with TestClient(create_app(Settings(repo=repo, now=LATER))) as c:
        yield repo, c


def test_a_view_past_its_objective_is_late_and_a_bad_tag_is_reported(later_client) -> None:  # type: ignore[no-untyped-def]
    repo, client = later_client
    answer = client.get("/monitoring/freshness")
    assert answer.status_code == 200, answer.text
    views = by_name(answer.json())
    weather = views["origin_weather"]
    assert weather["age_seconds"] == (LATER - newest_online(repo, "origin_weather")).total_seconds() == 4 * 3600.0
    assert weather["status"] == "late"  # 4 h > 2 h
    carrier = views["carrier_daily_stats"]
    assert carrier["age_seconds"] == (LATER - newest_online(repo, "carrier_daily_stats")).total_seconds()
    assert carrier["status"] == ("ok" if carrier["age_seconds"] <= 93600 else "late")
    plane = views["plane_profile"]
    assert plane["objective_seconds"] is None and plane["status"] == "unknown"
    assert plane["objective_problem"] == (
        "feastline.freshness_slo: '1.5h' is not a duration (a whole positive number followed by s, m, h or d, "
        "e.g. 30m, 2h, 1d)"
    )
    assert plane["age_seconds"] == (LATER - newest_online(repo, "plane_profile")).total_seconds()
    metrics = gauges(client.get("/metrics").text)
    assert metrics["feastline_feature_freshness_seconds"]["origin_weather"] == 4 * 3600.0
    assert metrics["feastline_feature_freshness_objective_seconds"] == OBJECTIVES  # the bad tag has no series


def test_a_push_makes_the_view_fresh(later_client) -> None:  # type: ignore[no-untyped-def]
    repo, client = later_client
    pushed = LATER - timedelta(minutes=10)
    weather = dict(temp=50.0, dewp=40.0, humid=60.0, wind_dir=180.0, wind_speed=10.0, precip=0.0, pressure=1010.0)
    row = {"origin": "EWR", "event_timestamp": pushed.strftime("%Y-%m-%dT%H:%M:%SZ"), **weather, "visib": 10.0}
    df = {k: [v] for k, v in row.items()}
    answer = client.post("/push", json={"push_source_name": "weather_push", "df": df, "to": "online"})
    assert answer.status_code == 200, answer.text
    assert newest_online(repo, "origin_weather_fresh") == pushed
    fresh = by_name(client.get("/monitoring/freshness").json())["origin_weather_fresh"]
    assert fresh["newest_event_time"] == pushed.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (fresh["age_seconds"], fresh["objective_seconds"], fresh["status"]) == (600.0, 1800.0, "ok")
