"""Materialization against the service clock: no window may end after it, skipped views say why, and a
view without offline data is skipped rather than crashing the run (HTTP jobs and ``feastline materialize``).

The service here is pinned to the replay clock (2013-12-31T00:00:00Z), as ``make serve`` pins it.
"""

from pathlib import Path

import pytest
from feast import FeatureStore
from typer.testing import CliRunner

from service.app import create_app
from service.cli import app as cli
from service.settings import Settings
from tests.conftest import REPLAY_NOW, NoServerErrorClient, copy_repo
from tests.materialization.test_materialize import wait

PROBLEM_JSON = "application/problem+json"
CLOCK = "2013-12-31T00:00:00Z"
FUTURE = "2099-12-31T00:00:00Z"
FRESH_FILE = Path("data") / "origin_weather_fresh.parquet"  # the push source's batch file


@pytest.fixture
def repo(built_repo: Path, tmp_path: Path) -> Path:
    """A copy of the built repo: applied, and materialized up to the replay clock (registry intervals)."""
    copy = tmp_path / "repo"
    copy_repo(built_repo, copy, ignore=("training_sets",))
    return copy


def online_view_names(repo: Path) -> list[str]:
    return sorted(fv.name for fv in FeatureStore(repo_path=str(repo)).list_feature_views() if fv.online)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/materialize", {"start": "2013-12-01T00:00:00Z", "end": FUTURE}),
        ("/materialize", {"start": "2013-12-01T00:00:00Z", "end": "2013-12-31T00:00:01Z"}),
        ("/materialize-incremental", {"end": FUTURE}),
    ],
)
def test_end_after_the_clock_is_a_422_naming_end(client: NoServerErrorClient, path: str, body: dict) -> None:
    response = client.post(path, json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    problem = response.json()
    assert problem["field"] == "end"
    assert CLOCK in problem["detail"] and body["end"] in problem["detail"]


def test_incremental_with_every_view_up_to_date_lists_each_skipped_view(repo: Path) -> None:
    views = online_view_names(repo)
    with NoServerErrorClient(create_app(Settings(repo=repo, now=REPLAY_NOW))) as client:
        response = client.post("/materialize-incremental", json={"lookback_seconds": 0})
        assert response.status_code == 202, response.text
        job = wait(client, response.json()["id"])
    assert job["status"] == "completed", job["error"]
    assert sorted(job["views"]) == views
    for name in views:
        assert job["views"][name]["skipped"] == f"already materialized up to {CLOCK} >= end {CLOCK}"
        assert job["views"][name]["rows_written"] == 0
    assert job["progress"]["rows_written"] == 0 and job["progress"]["views_done"] == len(views)


def test_a_view_without_offline_data_is_skipped_by_the_job(repo: Path) -> None:
    (repo / FRESH_FILE).unlink()
    with NoServerErrorClient(create_app(Settings(repo=repo, now=REPLAY_NOW))) as client:
        response = client.post("/materialize", json={"start": "2013-12-01T00:00:00Z", "end": CLOCK})
        assert response.status_code == 202, response.text
        job = wait(client, response.json()["id"])
    assert job["status"] == "completed", job["error"]
    assert job["views"]["origin_weather_fresh"]["skipped"] == f"no offline data at {repo / FRESH_FILE}"
    assert job["views"]["origin_weather"]["rows_written"] == 3  # EWR, JFK, LGA
    assert "skipped" not in job["views"]["origin_weather"]


# -- the CLI -----------------------------------------------------------------------------------------


def run_cli(repo: Path, *args: str) -> object:
    return CliRunner().invoke(
        cli, ["materialize", "--repo", str(repo), *args], env={"FEASTLINE_NOW": CLOCK, "COLUMNS": "200"}
    )


def test_cli_end_after_the_clock_is_an_error(repo: Path) -> None:
    done = run_cli(repo, "--start", "2013-12-01T00:00:00Z", "--end", FUTURE)
    assert done.exit_code == 2, done.output
    assert "--end" in done.output and "FEASTLINE_NOW" in done.output and CLOCK in done.output


@pytest.mark.parametrize("option", ["--start", "--end"])
def test_cli_naive_time_is_an_error_naming_the_option(repo: Path, option: str) -> None:
    times = {"--start": "2013-12-01T00:00:00Z", "--end": CLOCK, option: "2013-12-30T00:00:00"}
    done = run_cli(repo, *(x for pair in times.items() for x in pair))
    assert done.exit_code == 2, done.output
    assert option in done.output and "no timezone" in done.output


def test_cli_incremental_with_nothing_to_do_says_why(repo: Path) -> None:
    done = run_cli(repo, "--incremental", "--lookback-seconds", "0")
    assert done.exit_code == 0, done.output
    for name in online_view_names(repo):
        assert f"skipped {name}: already materialized up to {CLOCK} >= end {CLOCK}" in done.output
    assert "nothing materialized" in done.output


def test_cli_skips_a_view_without_offline_data(repo: Path) -> None:
    (repo / FRESH_FILE).unlink()
    done = run_cli(repo, "--start", "2013-12-01T00:00:00Z")
    assert done.exit_code == 0, done.output
    assert f"skipped origin_weather_fresh: no offline data at {repo / FRESH_FILE}" in done.output
    assert "origin_weather " in done.output  # the other views ran
