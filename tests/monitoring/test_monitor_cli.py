"""``feastline monitor drift | parity | freshness``: the real command (a subprocess over a private copy
of the repo) prints the report's values as tables, writes the page with ``--out`` and exits non-zero
on a drift verdict (1) or a report it cannot make (2)."""

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from service.monitoring.reports import DriftReports
from service.settings import Settings
from tests.conftest import REPLAY_NOW, copy_repo
from tests.monitoring.conftest import app_client
from tests.monitoring.test_parity import PUSHED
from tests.monitoring.test_view import parse

PROJECT = Path(__file__).resolve().parents[2]
FEATURES = ["temp", "dewp", "humid", "wind_speed", "pressure", "origin"]
NOW = "2013-12-31T00:00:00Z"


def feastline(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed ``feastline`` script over this checkout, with a wide terminal (no folded cells)."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "COLUMNS": "250", "FEASTLINE_NOW": NOW, "NO_COLOR": "1"}
    command = [str(Path(sys.executable).parent / "feastline"), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=False)


def rows(stdout: str) -> list[list[str]]:
    """The body rows of every rich table printed (cells split on the box's vertical bars)."""
    return [[c.strip() for c in line.strip().strip("│").split("│")] for line in stdout.splitlines() if "│" in line]


@pytest.fixture(scope="module")
def repo(seasons_repo: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("monitor-cli") / "repo"
    copy_repo(seasons_repo["repo"], copy)
    return copy


def test_drift_prints_the_stored_report_exits_1_and_writes_the_page(
    repo: Path, seasons_repo: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "page.html"
    features = [a for f in FEATURES for a in ("--feature", f)]
    run = feastline(
        "monitor", "drift", "--repo", str(repo), "--model", "season_model@1",
        "--target-training-set", seasons_repo["oct_dec"], *features, "--out", str(out),
    )  # fmt: skip
    assert run.returncode == 1, run.stdout + run.stderr  # temp drifts
    first = next(line for line in run.stdout.splitlines() if line.startswith("drift report "))
    drift_id = first.split()[2].rstrip(":")
    reports = DriftReports(Settings(repo=repo).lineage_database_url)
    try:
        report = reports.get(drift_id)
    finally:
        reports.dispose()
    assert report["verdict"] == "drift" and f"verdict {report['verdict']}" in first
    assert report["baseline"] == {"training_set_id": seasons_repo["jan_sep"], "model": "season_model@1",
                                  "row_count": report["baseline"]["row_count"]}  # fmt: skip
    printed = {r[0]: r for r in rows(run.stdout) if r[0] in FEATURES}
    assert list(printed) == FEATURES
    for f in report["features"]:
        row = printed[f["name"]]
        assert row[1] == f["kind"] and row[-1] == f["verdict"]
        assert float(row[2]) == pytest.approx(f["psi"], abs=5e-5) and float(row[3]) == pytest.approx(f["js"], abs=5e-5)
        assert float(row[5]) == pytest.approx(f["p_value"], rel=5e-3, abs=1e-300)
        assert float(row[6].rstrip("%")) == pytest.approx(100 * f["null_rate_baseline"], abs=5e-3)
    assert f"/monitoring/view?drift={drift_id}" in run.stdout
    page = parse(out.read_text(encoding="utf-8"))
    assert page.histogram_order == FEATURES and page.psi == {f["name"]: f["psi"] for f in report["features"]}
    assert [r[0] for r in page.tables["freshness"][1:]] == ["carrier_daily_stats", "origin_weather",
                                                            "origin_weather_fresh", "plane_profile"]  # fmt: skip

    calm = feastline(
        "monitor", "drift", "--repo", str(repo), "--training-set", seasons_repo["jan_sep"],
        "--target-training-set", seasons_repo["oct_dec"], "--feature", "humid", "--fail-on", "never",
    )  # fmt: skip
    assert calm.returncode == 0, calm.stdout + calm.stderr


def test_drift_that_cannot_be_made_exits_2_naming_the_field(repo: Path) -> None:
    run = feastline("monitor", "drift", "--repo", str(repo), "--training-set", "ts-nope", "--target-training-set", "x")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "baseline.training_set_id" in run.stdout and "ts-nope" in run.stdout
    both = feastline("monitor", "drift", "--repo", str(repo), "--training-set", "a", "--model", "m@1", "--start", NOW)
    assert both.returncode == 2 and "exactly one of --training-set and --model" in both.stderr


def test_freshness_prints_what_the_service_answers(repo: Path) -> None:
    run = feastline("monitor", "freshness", "--repo", str(repo))
    assert run.returncode == 0, run.stdout + run.stderr
    with app_client(repo, REPLAY_NOW) as client:
        answer = client.get("/monitoring/freshness").json()
    printed = {r[0]: r for r in rows(run.stdout) if r[0] and r[0] != "feature view"}
    assert list(printed) == [v["name"] for v in answer["feature_views"]]
    for v in answer["feature_views"]:
        newest, status = printed[v["name"]][1], printed[v["name"]][-1]
        assert newest == (v["newest_event_time"] or "—") and status == v["status"]
    weather = printed["origin_weather"]
    assert weather[2] == "1h 00m" and weather[3] == "2h 00m"  # the 2013 replay: an hour old, objective 2h


def test_parity_prints_the_services_report_and_exits_1_below_the_minimum(repo: Path, tmp_path: Path) -> None:
    live = tmp_path / "repo"
    copy_repo(repo, live)
    at = REPLAY_NOW
    window = {"start": at.isoformat(), "end": (at + timedelta(seconds=1)).isoformat()}
    with app_client(live, at) as client:
        body = {"feature_service": "live_weather", "entities": {"origin": ["EWR", "JFK", "LGA"]}}
        assert client.post("/get-online-features", json=body).status_code == 200
        df = {"origin": ["EWR"], "event_timestamp": ["2013-12-30T23:30:00Z"]} | {k: [v] for k, v in PUSHED.items()}
        pushed = client.post("/push", json={"push_source_name": "weather_push", "df": df, "to": "online"})
        assert pushed.status_code == 200, pushed.text
        assert client.post("/get-online-features", json=body).status_code == 200
        client.app.state.online_log.flush()
        answer = client.post("/monitoring/parity", json={"feature_service": "live_weather", "window": window}).json()
    assert answer["mismatch_count"] > 0
    run = feastline(
        "monitor", "parity", "--repo", str(live), "--feature-service", "live_weather",
        "--start", window["start"], "--end", window["end"], "--min-match-rate", "1", "--out", str(tmp_path / "p.html"),
    )  # fmt: skip
    assert run.returncode == 1, run.stdout + run.stderr
    table = rows(run.stdout)
    printed = {r[0]: r for r in table if len(r) == 7 and r[0] in {f["name"] for f in answer["features"]}}
    assert list(printed) == [f["name"] for f in answer["features"]]
    for f in answer["features"]:
        row = printed[f["name"]]
        assert (int(row[2].replace(",", "")), int(row[3].replace(",", ""))) == (f["compared"], f["matches"])
        assert row[4] == ("—" if f["match_rate"] is None else f"{100 * f['match_rate']:.2f}%")
    assert f"{answer['mismatch_count']:,} mismatching values" in run.stdout
    causes = [r[-1] for r in table if len(r) == 7 and r[0].startswith("2013-")]
    assert causes == [m["cause"] for m in answer["mismatches"][:20]]
    page = parse((tmp_path / "p.html").read_text(encoding="utf-8"))
    assert len(page.tables["parity-0"]) == 1 + len(answer["features"]) and page.histogram_order == []


def test_parity_over_a_window_without_requests_exits_2(repo: Path) -> None:
    """A cron check must not pass when nothing was logged (logging stopped, wrong service or window)."""
    run = feastline(
        "monitor", "parity", "--repo", str(repo), "--feature-service", "live_weather",
        "--start", "2020-01-01T00:00:00Z", "--end", "2020-01-02T00:00:00Z", "--min-match-rate", "0.5",
    )  # fmt: skip
    assert run.returncode == 2, run.stdout + run.stderr
    assert "holds no requests of live_weather" in run.stdout
