"""The recovery pass on what crashes leave (made here by hand, as the code before write intents left it
or as a process that died mid-write leaves it), and what it must never touch: the writes of a process
that is still alive, and catalog rows whose files are merely absent."""

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from feast import FeatureStore
from sqlalchemy import insert, text

from lineage import LineageStore, NodeRef
from lineage import openlineage as ol
from lineage.database import transaction
from service.intents import Intents, intents_table, this_process
from service.materialization.jobs import JobStore
from service.online.quarantine import QuarantineStore
from service.online.receipts import Receipts
from service.recovery import Stores, recover
from service.run_events import OpenLineageEmitter
from service.settings import Settings
from service.training.catalog import TrainingSetCatalog
from tests.conftest import REPLAY_NOW, NoServerErrorClient, copy_repo

ROWS = [{"origin": "EWR", "carrier": "UA", "event_timestamp": "2013-05-01T13:00:00Z"}]


@pytest.fixture
def repo(built_repo: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "repo"
    copy_repo(built_repo, copy, ignore=("training_sets",))
    return copy


@pytest.fixture
def stores(repo: Path) -> Iterator[Stores]:
    settings = Settings(repo=repo, now=REPLAY_NOW)
    url = settings.lineage_database_url
    s = Stores(
        settings,
        FeatureStore(repo_path=str(repo)),
        LineageStore(url),
        TrainingSetCatalog(url),
        OpenLineageEmitter(url),
        Intents(url),
        JobStore(url),
        QuarantineStore(url),
        Receipts(url),
    )
    yield s
    for part in (s.lineage, s.catalog, s.emitter, s.intents, s.jobs, s.quarantine, s.receipts):
        part.dispose()


def make_set(repo: Path) -> dict[str, Any]:
    from service.app import create_app

    with NoServerErrorClient(create_app(Settings(repo=repo, now=REPLAY_NOW))) as client:
        created = client.post("/training-sets", json={"feature_service": "delay_model_v1", "entity_rows": ROWS})
        return dict(client.get(f"/training-sets/{created.json()['id']}").json())


def dead_owner() -> str:
    """The owner name of a process of this host that has exited."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(child.stdout)
    start = Path("/proc/self/stat").exists() and "12345" or "0"
    return f"{this_process().rsplit(':', 2)[0]}:{pid}:{start}"


def add_intent(s: Stores, kind: str, key: str, details: dict[str, Any], owner: str) -> None:
    row = {"kind": kind, "key": key, "owner": owner, "created_at": datetime.now(UTC), "details": json.dumps(details)}
    transaction(s.intents.engine, lambda c: c.execute(insert(intents_table).values(**row)))


def test_what_the_code_before_intents_left_is_repaired(repo, stores):
    """Orphan and empty files, a catalog row without its lineage node, a row whose data is cut short,
    a START without an end, a job left running, a stray temporary file: all settled, once."""
    kept = make_set(repo)
    broken = make_set(repo)
    root = stores.settings.training_sets_path
    (root / f"{broken['id']}.parquet").write_bytes(b"PAR1 cut short")  # unreadable: the row goes
    orphan = root / "ts-0123456789abcdef.parquet"
    orphan.write_bytes(b"")
    (root / "ts-0123456789abcdef.entities.parquet").write_bytes(b"PAR1...")
    stray = root / f".ts-fedcba9876543210.parquet.{uuid.uuid4().hex}.tmp"
    stray.write_bytes(b"half")
    push_tmp = repo / "data" / f".origin_weather_fresh.parquet.{uuid.uuid4().hex}.tmp"
    push_tmp.write_bytes(b"half")
    ref = NodeRef.parse(f"training_set:{kept['id']}")
    stores.lineage.write(lambda w: w.remove([ref]))  # as if the crash came between the row and the node
    run_id = str(uuid.uuid4())
    stores.emitter.emit(ol.run_event(ol.START, run_id, "training_set", datetime.now(UTC)))
    job = stores.jobs.create("materialize", {"start": "x", "end": "y", "feature_views": None}, 1)
    stores.jobs.update(job.id, status="running")

    done = recover(stores)
    assert done == {
        "files_removed": 3,
        "temp_files_removed": 1,
        "catalog_rows_removed": 1,
        "lineage_nodes_repaired": 1,
        "runs_failed": 1,
        "jobs_failed": 1,
    }, done
    names = sorted(p.name for p in root.iterdir())
    assert names == sorted([f"{kept['id']}.{x}" for x in ("parquet", "entities.parquet", "profile.json")])
    assert not push_tmp.exists()
    assert [r.id for r in stores.catalog.all() if r.id in (kept["id"], broken["id"])] == [kept["id"]]
    graph = stores.lineage.load_graph()
    assert ref in graph and any(e.target == ref for e in graph.edges())  # repaired, with its edges
    assert f"training_set:{broken['id']}" not in {str(n.ref) for n in graph.nodes()}
    fail = stores.emitter.events(job="training_set", limit=1)[0]
    assert fail["eventType"] == "FAIL" and fail["run"]["runId"] == run_id
    assert stores.jobs.get(job.id).status == "failed" and stores.jobs.get(job.id).error.startswith("interrupted")
    assert recover(stores) == {}  # idempotent


def test_a_dead_process_s_training_set_is_undone_and_a_live_one_s_is_left_alone(repo, stores):
    root = stores.settings.training_sets_path
    root.mkdir(parents=True, exist_ok=True)
    mine, theirs = "ts-00000000000000aa", "ts-00000000000000bb"
    for ts in (mine, theirs):
        (root / f"{ts}.parquet").write_bytes(b"PAR1 data PAR1")
        (root / f".{ts}.entities.parquet.{uuid.uuid4().hex[:32]}.tmp").write_bytes(b"half")
    runs = {ts: str(uuid.uuid4()) for ts in (mine, theirs)}
    for ts, owner in ((mine, this_process()), (theirs, dead_owner())):
        tmp = next(p.name for p in root.iterdir() if p.name.startswith(f".{ts}"))
        details = {"run_id": runs[ts], "files": [f"{ts}.parquet", f"{ts}.entities.parquet"], "temps": [tmp]}
        add_intent(stores, "training_set", ts, details, owner)
        stores.emitter.emit(ol.run_event(ol.START, runs[ts], "training_set", datetime.now(UTC)))
    done = recover(stores)
    assert done["training_sets_undone"] == 1
    left = sorted(p.name for p in root.iterdir())
    assert len(left) == 2 and all(mine in name for name in left)
    assert [i.key for i in stores.intents.all()] == [mine]
    assert stores.emitter.open_runs() == [runs[mine]]  # the live one's run is still open


def test_absent_files_keep_their_catalog_row(repo, stores, caplog):
    made = make_set(repo)
    root = stores.settings.training_sets_path
    shutil.rmtree(root)  # a copy without its training sets, or a wrong FEASTLINE_TRAINING_SETS_DIR
    assert "catalog_rows_removed" not in recover(stores)
    assert made["id"] in {r.id for r in stores.catalog.all()}
    assert "is FEASTLINE_TRAINING_SETS_DIR right?" in caplog.text


def test_a_dead_push_is_finished_or_undone_by_its_phase(repo, stores):
    """A push marked 'renaming' is completed (its temporary file renamed in, its quarantined rows and
    receipt stored); one still 'pending' leaves nothing offline."""
    target = repo / "data" / "origin_weather_fresh.parquet"
    before = pq.read_table(target)
    one = pq.read_table(repo / "data" / "origin_weather.parquet").slice(0, 1).select(before.schema.names)
    before = before.cast(one.schema)  # the push log starts empty (all-null columns): take the source's types
    renaming = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    pq.write_table(pa.concat_tables([before, one]), renaming)  # what the push had written, then died
    pending = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    pq.write_table(pa.concat_tables([before, one, one]), pending)
    owner = dead_owner()
    common = {"source": "weather_push", "to": "offline", "received_at": datetime.now(UTC).isoformat()}
    quarantined = [{"row": 1, "values": {"origin": "JFK"}, "problems": [{"row": 1, "field": "temp", "problem": "x"}]}]
    for key, phase, tmp in (("a" * 64, "renaming", renaming), ("b" * 64, "pending", pending)):
        details = {**common, "key": key, "body_sha256": "0" * 64, "phase": phase, "answer": {"ok": key[0]}}
        details |= {
            "quarantine": quarantined,
            "target": "data/origin_weather_fresh.parquet",
            "temp": f"data/{tmp.name}",
        }
        add_intent(stores, "push", key, details, owner)
    done = recover(stores)
    assert (done["pushes_finished"], done["pushes_undone"]) == (1, 1)
    assert pq.read_table(target).num_rows == before.num_rows + 1
    assert not renaming.exists() and not pending.exists()
    assert stores.receipts.get("a" * 64).answer == {"ok": "a"} and stores.receipts.get("b" * 64) is None
    assert len(stores.quarantine.list("weather_push")) == 1
    assert stores.intents.all() == []


def test_a_dead_materialization_keeps_the_views_the_registry_recorded(repo, stores):
    """Of a run cut short: the view whose interval reached the registry gets its lineage and COMPLETE,
    the one still writing gets FAIL; the job reads failed (interrupted)."""
    store = stores.store
    start, end = datetime(2013, 12, 1, tzinfo=UTC), datetime(2013, 12, 2, tzinfo=UTC)
    store.registry.apply_materialization(store.get_feature_view("origin_weather"), store.project, start, end)
    job = stores.jobs.create("materialize", {"start": "x", "end": "y", "feature_views": None}, 2)
    stores.jobs.update(job.id, status="running")
    views = {}
    for view, phase in (("origin_weather", "registering"), ("carrier_daily_stats", "writing")):
        run_id = str(uuid.uuid4())
        stores.emitter.emit(ol.run_event(ol.START, run_id, f"materialize.{view}", start))
        views[view] = {"run_id": run_id, "start": start.isoformat(), "end": end.isoformat(), "phase": phase}
        views[view] |= {"started_at": start.isoformat(), "rows_in_window": 5, "rows": 3}
    add_intent(stores, "materialization", job.id, {"job": job.id, "views": views}, dead_owner())
    done = recover(stores)
    assert (done["materialized_views_finished"], done["materialized_views_failed"]) == (1, 1)
    node = stores.lineage.get_node(NodeRef.parse("feature_view:origin_weather"))
    assert node.attributes["last_materialization"]["job_id"] == job.id
    assert node.attributes["last_materialization"]["start"] == "2013-12-01T00:00:00Z"
    ended = {e["job"]["name"]: e["eventType"] for e in stores.emitter.events(limit=4) if e["eventType"] != "START"}
    assert ended == {"materialize.origin_weather": "COMPLETE", "materialize.carrier_daily_stats": "FAIL"}
    failed = stores.jobs.get(job.id)
    assert failed.status == "failed" and failed.views["origin_weather"]["rows_written"] == 3
    assert stores.emitter.open_runs() == [] and stores.intents.all() == []
    with stores.lineage._engine.connect() as conn:  # noqa: SLF001 -- the WAL mode the engine set
        assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
    assert os.path.exists(str(stores.settings.data_dir / "lineage.db-wal"))
