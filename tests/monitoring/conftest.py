"""A private copy of the built demo repo with one more feature service, ``live_weather`` (the push-fed
view ``origin_weather_fresh``, logged at sampling 1.0), and a helper to open an app on it."""

import io
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from tests.conftest import REPLAY_NOW, copy_repo

LIVE_SERVICE = """

live_weather = FeatureService(
    name="live_weather",
    features=[origin_weather_fresh],
    owner=OWNER,
    description="Pushed weather only (monitoring tests).",
    tags={"feastline.log_sample_rate": "1.0"},
)
unlogged_weather = FeatureService(
    name="unlogged_weather",
    features=[origin_weather],
    owner=OWNER,
    description="Never logged (sampling 0).",
    tags={"feastline.log_sample_rate": "0"},
)
"""


@pytest.fixture(scope="session")
def live_base(built_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built repo with ``live_weather`` and ``unlogged_weather`` applied (once per session)."""
    copy = tmp_path_factory.mktemp("live") / "repo"
    copy_repo(built_repo, copy, ignore=("training_sets", "online_log"))  # never copytree: the session serves it
    definitions = copy / "definitions.py"
    definitions.write_text(definitions.read_text() + LIVE_SERVICE)
    feastline = Path(sys.executable).parent / "feastline"
    subprocess.run([str(feastline), "apply", "--repo", str(copy)], check=True, capture_output=True)
    return copy


@pytest.fixture
def live_repo(live_base: Path, tmp_path: Path) -> Path:
    """A private copy of ``live_base`` (its online store, log and pushes are this test's own)."""
    copy = tmp_path / "repo"
    copy_repo(live_base, copy)
    return copy


@contextmanager
def app_client(repo: Path, now: datetime, **settings: Any) -> Iterator[TestClient]:
    """A client on a fresh app over ``repo`` with the service clock pinned at ``now``; leaving it runs
    the app's shutdown (the online log is flushed)."""
    with TestClient(create_app(Settings(repo=repo, now=now, **settings))) as client:
        yield client


def metric(client: TestClient, name: str, **labels: str) -> float:
    """The value of one sample of ``/metrics`` (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("#"):
            continue
        sample, _, value = line.rpartition(" ")
        metric_name, _, rest = sample.partition("{")
        got = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
        if metric_name == name and got == want:
            return float(value)
    return 0.0


PARQUET = "application/vnd.apache.parquet"
SEASON_STEP = 20  # every 20th flight: about 12,600 rows January-September and 4,200 October-December


def season_flights(repo: Path, start: str, end: str) -> pd.DataFrame:
    """Every ``SEASON_STEP``-th flight departing in ``[start, end)``: entity rows of ``delay_model_v1``."""
    frame = pd.read_parquet(repo / "data" / "flights.parquet")
    ts = frame["event_timestamp"]
    rows = frame.loc[(ts >= start) & (ts < end), ["origin", "carrier", "event_timestamp", "label_delayed"]]
    return rows.iloc[::SEASON_STEP].reset_index(drop=True)


@pytest.fixture(scope="session")
def seasons_repo(live_base: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A copy of ``live_base`` holding two ``delay_model_v1`` training sets made through the API: a sample
    of January-September flights (``jan_sep``, with the model ``season_model@1`` registered on it) and one
    of October-December (``oct_dec``). ``{"repo", "jan_sep", "oct_dec"}``; copy ``repo`` before writing."""
    repo = tmp_path_factory.mktemp("seasons") / "repo"
    copy_repo(live_base, repo)
    ids = {}
    with app_client(repo, REPLAY_NOW) as client:
        seasons = {"jan_sep": ("2013-01-01", "2013-10-01"), "oct_dec": ("2013-10-01", "2014-01-01")}
        for name, (start, end) in seasons.items():
            buffer = io.BytesIO()
            season_flights(repo, start, end).to_parquet(buffer, index=False)
            made = client.post(
                "/training-sets?feature_service=delay_model_v1",
                content=buffer.getvalue(),
                headers={"content-type": PARQUET, "accept": PARQUET},
            )
            assert made.status_code == 201, made.text[:2000]
            ids[name] = str(made.headers["x-training-set-id"])
        model = {"name": "season_model", "version": "1", "training_set_id": ids["jan_sep"]}
        assert client.post("/models", json=model).status_code == 201
    return {"repo": repo, **ids}
