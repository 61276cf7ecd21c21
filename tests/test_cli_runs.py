"""The CLI's runs: OpenLineage events from ``feastline apply`` and ``feastline materialize`` (as from
the service), an apply with an empty diff recording no lineage version, and ``--if-changed`` skipping
a step whose inputs are unchanged (the stamps of ``service/stamps.py``) and running it when they changed.

On a private copy of the built repo; ``feastline`` runs as a subprocess, as ``make serve`` runs it.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lineage import LineageStore
from service.cli import _apply_unchanged
from service.run_events import OpenLineageEmitter
from service.settings import Settings
from service.stamps import Stamp, apply_fingerprint, pipeline_fingerprint, pipeline_outputs_intact
from tests.conftest import REPLAY_NOW, copy_repo
from tests.test_openlineage import check_runs

FEASTLINE = Path(sys.executable).parent / "feastline"


@pytest.fixture(scope="module")
def repo(built_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("cli") / "repo"
    copy_repo(built_repo, copy, ignore=("training_sets", ".feastline"))
    return copy


def feastline(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FEASTLINE_NOW": REPLAY_NOW.isoformat(), "COLUMNS": "200"}
    done = subprocess.run(
        [str(FEASTLINE), *args, "--repo", str(repo)], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, f"feastline {args}: {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def events(repo: Path, job_prefix: str) -> list[dict]:
    emitter = OpenLineageEmitter(Settings(repo=repo).lineage_database_url)
    try:
        return [e for e in emitter.events(limit=10_000) if e["job"]["name"].startswith(job_prefix)]
    finally:
        emitter.dispose()


def versions(repo: Path) -> list[int]:
    with LineageStore(Settings(repo=repo).lineage_database_url) as lineage:
        return [v.number for v in lineage.list_versions()]


def test_an_apply_with_an_empty_diff_records_no_version_and_emits_its_run(repo: Path) -> None:
    before, seen = versions(repo), len(events(repo, "apply"))  # the fixture's own apply emitted its run too
    done = feastline(repo, "apply")
    assert "no lineage version recorded" in done.stdout
    assert versions(repo) == before  # the repo was applied already: nothing changed
    new = events(repo, "apply")[: len(events(repo, "apply")) - seen]  # newest first
    runs = check_runs(new)  # every event valid; one START and one COMPLETE per run
    assert list(runs.values()) == [["COMPLETE", "START"]]
    complete = next(e for e in new if e["eventType"] == "COMPLETE")
    assert [d["name"] for d in complete["outputs"]] == ["registry:feastline"]  # no lineage_version: none recorded
    assert [d["name"] for d in complete["inputs"]] == ["feature_repo:feastline"]


def test_apply_if_changed_skips_an_unchanged_repo_and_runs_a_changed_one(repo: Path) -> None:
    url = Settings(repo=repo).lineage_database_url
    if Stamp(repo, "apply").read() is None:
        feastline(repo, "apply")
    apply_events = len(events(repo, "apply"))
    skipped = feastline(repo, "apply", "--if-changed")
    assert "skipped" in skipped.stdout and len(events(repo, "apply")) == apply_events  # no run, no events
    assert _apply_unchanged(repo, url) == versions(repo)[-1]
    definitions = repo / "definitions.py"
    original = definitions.read_text()
    try:
        definitions.write_text(original + "\n# edited\n")
        assert _apply_unchanged(repo, url) is None  # a definition file changed: the apply would run
    finally:
        definitions.write_text(original)
    assert _apply_unchanged(repo, url) is not None
    (repo / "data" / "registry.db").rename(repo / "data" / "registry.db.aside")
    try:
        assert _apply_unchanged(repo, url) is None  # what the apply left behind is gone: run it again
    finally:
        (repo / "data" / "registry.db.aside").rename(repo / "data" / "registry.db")


def test_materialize_from_the_cli_emits_openlineage_per_view_and_skips_when_unchanged(repo: Path) -> None:
    feastline(repo, "materialize")
    emitted = events(repo, "materialize.")
    runs = check_runs(emitted)
    views = {e["job"]["name"] for e in emitted}
    assert views == {f"materialize.{v}" for v in ("origin_weather", "origin_weather_fresh", "carrier_daily_stats")} | {
        "materialize.plane_profile"
    }
    assert len(runs) == len(views) and all(kinds == ["COMPLETE", "START"] for kinds in runs.values())
    skipped = feastline(repo, "materialize", "--if-changed")
    assert "skipped" in skipped.stdout and len(events(repo, "materialize.")) == len(emitted)
    stamp = Stamp(repo, "materialize").read()
    assert stamp is not None and stamp["end"] == "2013-12-31T00:00:00Z"
    assert str(repo / "data" / "origin_weather.parquet") in stamp["sources"]


def test_build_data_stamp_follows_code_record_and_outputs(repo: Path) -> None:
    stamp = Stamp(repo, "build-data")
    stamp.write(pipeline_fingerprint(repo))
    assert stamp.matches(pipeline_fingerprint(repo)) is not None and pipeline_outputs_intact(repo)
    record = repo / "data" / "pipeline_run.json"
    text = record.read_text()
    try:
        record.write_text(json.dumps({**json.loads(text), "run_id": "another"}))
        assert stamp.matches(pipeline_fingerprint(repo)) is None  # another run record: another fingerprint
    finally:
        record.write_text(text)
    output = repo / "data" / "plane_profile.parquet"
    data = output.read_bytes()
    try:
        output.write_bytes(data + b"\0")
        assert not pipeline_outputs_intact(repo)  # an output differs from what the run wrote
    finally:
        output.write_bytes(data)
    assert pipeline_outputs_intact(repo)
    assert apply_fingerprint(repo, "sqlite://") != apply_fingerprint(repo, "sqlite:///other.db")
