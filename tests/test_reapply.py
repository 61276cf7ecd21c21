"""``feastline apply`` after ``feastline materialize``: the views keep ``last_materialization``, and a
changed view still gets its new definition hash and its entry in the version's diff."""

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from feast import FeatureStore

from lineage import LineageStore, NodeKind, NodeRef
from lineage.builders import spec_hash
from service.settings import Settings
from tests.conftest import copy_repo

START, END = "2013-12-30T00:00:00Z", "2013-12-31T00:00:00Z"
VIEW = NodeRef(NodeKind.FEATURE_VIEW, "origin_weather")
TTL_MARKER = 'name="origin_weather",\n    entities=[origin],\n    ttl=timedelta(hours=3),'
FEASTLINE = Path(sys.executable).parent / "feastline"


def feastline(*args: str) -> str:
    done = subprocess.run([str(FEASTLINE), *args], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def node(repo: Path) -> dict:
    with LineageStore(Settings(repo=repo).lineage_database_url) as store:
        return store.get_node(VIEW).to_dict()


@pytest.mark.slow
def test_reapply_keeps_last_materialization(built_repo: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    copy_repo(built_repo, repo, ignore=("training_sets",))
    registry = repo / "data" / "registry.db"
    feastline("materialize", "--repo", str(repo), "--start", START, "--end", END)

    weather = pd.read_parquet(repo / "data" / "origin_weather.parquet")
    start, end = pd.Timestamp(START), pd.Timestamp(END)
    in_window = weather[(weather.event_timestamp >= start) & (weather.event_timestamp < end)]
    last = node(repo)["attributes"]["last_materialization"]
    assert (last["start"], last["end"]) == (START, END)
    assert last["rows_written"] == in_window.origin.nunique() == 3
    assert last["job_id"].startswith("cli-")
    assert datetime.fromisoformat(last["finished_at"]) <= datetime.now(UTC)

    before = node(repo)
    feastline("apply", "--repo", str(repo))  # unchanged repo
    assert node(repo) == before

    definitions = repo / "definitions.py"
    assert TTL_MARKER in definitions.read_text()
    definitions.write_text(definitions.read_text().replace(TTL_MARKER, TTL_MARKER.replace("hours=3", "hours=4")))
    inode = registry.stat().st_ino
    out = feastline("apply", "--repo", str(repo))
    assert registry.stat().st_ino != inode  # feast apply ran with the atomic registry store too
    after = node(repo)
    expected_hash = spec_hash(FeatureStore(repo_path=str(repo)).get_feature_view("origin_weather"))
    assert after["definition_hash"] == expected_hash != before["definition_hash"]
    assert after["attributes"]["ttl_seconds"] == 4 * 3600
    assert after["attributes"]["last_materialization"] == last
    with LineageStore(Settings(repo=repo).lineage_database_url) as store:
        version = store.list_versions()[-1]
    assert f"lineage version {version.number} recorded" in out
    changed = {str(c.ref): (c.before, c.after) for c in version.diff.changed_nodes}
    assert changed[str(VIEW)] == (before["definition_hash"], expected_hash)
