"""The recovery pass: at start (the app's lifespan) and before a CLI write, finish or remove what a
crash left half-done, so that the catalog, the lineage graph, the files and the OpenLineage events agree.

In this order:

1. **Migration.** Catalog rows stored with absolute paths (before paths were relative) are rewritten:
   files relative to the training-sets folder, sources relative to the repo, the fingerprint
   recomputed over those keys; the lineage node in the same transaction (:func:`with_relative_paths`).
2. **Dead intents** (:mod:`service.intents`: writes whose process died) are taken over and settled:
   a training set is undone (its files removed, its run FAILed); a push marked ``renaming`` is
   finished (renamed, quarantine and receipt stored), one still ``pending`` undone; a materialization
   run keeps each view whose interval the registry holds (lineage, COMPLETE), FAILs the others, and
   its job reads failed.
3. **Leftovers without an intent** (from before intents, or a process that died without one): jobs
   still queued or running, OpenLineage runs with a START and no end (each gets a FAIL), temporary
   files (``.<name>.<hex>.tmp``) in the training-sets folder and the push sources' folders, training-set
   files no catalog row names, catalog rows whose data is there but empty or cut short (removed, with
   their node), and catalog rows without their lineage node (the node is recreated).

What a live process is doing is never touched: its intents name its files, runs and jobs. Things are
listed before the intents are read, so a write that starts meanwhile is not seen half-done. Every
step is idempotent: a recovery that crashes is redone by the next.

A catalog row whose files are absent (not empty, not cut short: absent) is kept, with a warning: no
crash leaves one (a row commits after its files are in place), so the folder is more likely wrong
(``FEASTLINE_TRAINING_SETS_DIR``, a copy without its ``training_sets``) than the row, and removing rows
cannot be undone. Reading its data answers a 503 naming the missing file.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from feast import FeatureStore, FileSource
from feast.data_source import PushSource
from sqlalchemy import Connection

from lineage import LineageStore, Node, NodeKind, NodeRef
from lineage.database import transaction
from lineage.store import LineageWrite
from service.intents import Intent, Intents
from service.materialization.jobs import INTERRUPTED as JOB_INTERRUPTED
from service.materialization.jobs import JobStore
from service.materialization.runs import INTENT_KIND as RUN_INTENT
from service.materialization.runs import INTERRUPTED, recover_run
from service.online.push_write import INTENT_KIND as PUSH_INTENT
from service.online.push_write import recover_push
from service.online.quarantine import QuarantineStore
from service.online.receipts import Receipts
from service.run_events import OpenLineageEmitter
from service.settings import Settings
from service.storage import is_temp
from service.training.catalog import TrainingSetCatalog, TrainingSetRecord
from service.training.training_sets import INTENT_KIND as TRAINING_SET_INTENT
from service.training.training_sets import (
    lineage_attributes,
    lineage_graph_of,
    source_keys_now,
    stored_file,
    with_relative_paths,
)

log = logging.getLogger("feastline.recovery")

TS_FILE = re.compile(r"^(ts-[0-9a-f]{16})(\.entities\.parquet|\.parquet|\.profile\.json)$")
_PARQUET_MAGIC = b"PAR1"


@dataclass
class Stores:
    """What the recovery pass reads and repairs; all on the lineage database of ``settings``."""

    settings: Settings
    store: FeatureStore | None
    lineage: LineageStore
    catalog: TrainingSetCatalog
    emitter: OpenLineageEmitter
    intents: Intents
    jobs: JobStore
    quarantine: QuarantineStore
    receipts: Receipts


def recover(s: Stores) -> Counter[str]:
    """Run the recovery pass (see the module docstring). Returns what it did, counted by action
    (``{"training_sets_undone": 1, "files_removed": 2, ...}``; empty when there was nothing to do)."""
    done: Counter[str] = Counter()
    root = s.settings.training_sets_path
    _migrate(s, root, done)
    # listed before the intents are read (see the module docstring)
    files = sorted(root.iterdir()) if root.is_dir() else []
    push_temps = _push_temp_files(s)
    open_runs = s.emitter.open_runs()
    unfinished_jobs = s.jobs.unfinished()
    live: list[Intent] = []
    for intent in s.intents.all():
        if s.intents.alive(intent.owner):
            live.append(intent)
        elif s.intents.claim(intent):
            _settle(s, intent, root, done)
    claims = _claims(live, s.settings.repo_path)
    for job_id in unfinished_jobs:
        if job_id not in claims.jobs:

            def fail_job(conn: Connection, job_id: str = job_id) -> bool:
                return s.jobs.fail(job_id, JOB_INTERRUPTED, conn)

            if transaction(s.jobs.engine, fail_job):  # False: settled with its intent above
                done["jobs_failed"] += 1
    for run_id in open_runs:
        if run_id not in claims.runs:
            _fail_run(s, run_id, done)
    _sweep_training_sets(s, root, files, claims.set_files, done)
    for tmp in push_temps:
        if tmp.resolve() not in claims.push_files and tmp.exists():
            tmp.unlink(missing_ok=True)
            done["temp_files_removed"] += 1
    if done:
        log.warning("recovery: %s", ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(done.items())))
    return done


# -- 1. migration --------------------------------------------------------------------------------------


def _migrate(s: Stores, root: Path, done: Counter[str]) -> None:
    known = source_keys_now(s.store) if s.store is not None else []
    for record in s.catalog.all():
        new = with_relative_paths(record, s.settings.repo_path, root, known)
        if new is None:
            continue

        def work(w: LineageWrite, new: TrainingSetRecord = new) -> None:
            s.catalog.replace(w.connection, new)
            ref = NodeRef(NodeKind.TRAINING_SET, new.id)
            node = w.node(ref)
            if node is not None:
                w.save([Node(ref, new.fingerprint, {**node.attributes, **lineage_attributes(new)})], [])

        s.lineage.write(work)
        done["catalog_rows_migrated"] += 1


# -- 2. dead intents -----------------------------------------------------------------------------------


def _settle(s: Stores, intent: Intent, root: Path, done: Counter[str]) -> None:
    if intent.kind == TRAINING_SET_INTENT:
        _undo_training_set(s, intent, root)
        done["training_sets_undone"] += 1
    elif intent.kind == PUSH_INTENT:
        outcome = recover_push(intent, s.settings.repo_path, s.quarantine, s.receipts, s.intents)
        done[f"pushes_{outcome}"] += 1
    elif intent.kind == RUN_INTENT:
        counts = recover_run(intent, s.store, s.lineage, s.emitter, s.intents, s.jobs)
        done["materializations_settled"] += 1
        done["materialized_views_finished"] += counts["views_finished"]
        done["materialized_views_failed"] += counts["views_failed"]
    else:
        log.warning("recovery: unknown intent kind %r (key %s) left alone", intent.kind, intent.key)


def _undo_training_set(s: Stores, intent: Intent, root: Path) -> None:
    committed = True
    try:
        s.catalog.get(intent.key)
    except Exception:
        committed = False
    if not committed:  # its transaction closes the intent: a committed set never gets here, but be sure
        for name in [*intent.details.get("temps", []), *intent.details.get("files", [])]:
            (root / name).unlink(missing_ok=True)
    sent: list[dict[str, Any]] = []

    def work(conn: Connection) -> None:
        sent.clear()
        run_id = intent.details.get("run_id")
        event = s.emitter.fail_open_run(conn, run_id, INTERRUPTED) if run_id else None
        if event is not None:
            sent.append(event)
        s.intents.done(conn, intent.kind, intent.key)

    transaction(s.intents.engine, work)
    for event in sent:
        s.emitter.send(event)


# -- 3. leftovers --------------------------------------------------------------------------------------


@dataclass
class _Claims:
    """What the writes of live processes are using: training-set file names, push files, runs, jobs."""

    set_files: set[str]
    push_files: set[Path]
    runs: set[str]
    jobs: set[str]


def _claims(live: list[Intent], repo: Path) -> _Claims:
    claims = _Claims(set(), set(), set(), set())
    for intent in live:
        d = intent.details
        if intent.kind == TRAINING_SET_INTENT:
            claims.set_files |= {Path(n).name for n in [*d.get("files", []), *d.get("temps", [])]}
            if d.get("run_id"):
                claims.runs.add(d["run_id"])
        elif intent.kind == PUSH_INTENT:
            for stored in (d.get("temp"), d.get("target")):
                if stored:
                    path = Path(stored)
                    claims.push_files.add((path if path.is_absolute() else repo / path).resolve())
        elif intent.kind == RUN_INTENT:
            claims.jobs.add(intent.key)
            claims.runs |= {v["run_id"] for v in d.get("views", {}).values() if v.get("run_id")}
    return claims


def _fail_run(s: Stores, run_id: str, done: Counter[str]) -> None:
    sent: list[dict[str, Any]] = []

    def work(conn: Connection) -> None:
        sent.clear()
        event = s.emitter.fail_open_run(conn, run_id, INTERRUPTED)
        if event is not None:
            sent.append(event)

    transaction(s.intents.engine, work)
    for event in sent:
        s.emitter.send(event)
        done["runs_failed"] += 1


def _readable(path: Path) -> bool:
    """The file exists, is not empty and ends with Parquet's magic bytes (not cut short)."""
    try:
        size = path.stat().st_size
        if size < 12:
            return False
        with open(path, "rb") as fh:
            head = fh.read(4)
            fh.seek(-4, 2)
            return head == _PARQUET_MAGIC and fh.read(4) == _PARQUET_MAGIC
    except OSError:
        return False


def _sweep_training_sets(s: Stores, root: Path, files: list[Path], claimed: set[str], done: Counter[str]) -> None:
    records = {r.id: r for r in s.catalog.all()}  # read after the intents: a set committed meanwhile is here
    names_in_catalog = {stored_file(root, p).name for r in records.values() for p in (r.data_path, r.entity_path)}
    names_in_catalog |= {f"{r.id}.profile.json" for r in records.values()}  # beside the data (service.monitoring)
    for path in files:
        if path.name in claimed or not path.is_file():
            continue
        match = TS_FILE.match(path.name)
        if is_temp(path) or (match and path.name not in names_in_catalog):
            path.unlink(missing_ok=True)
            done["files_removed"] += 1
    graph = s.lineage.load_graph()
    missing = []
    for record in records.values():
        if record.deleted_at is not None:  # deleted on purpose (DELETE /training-sets/{id}): no files, row kept
            continue
        data, entities = stored_file(root, record.data_path), stored_file(root, record.entity_path)
        if not data.exists() or not entities.exists():
            missing.append(record.id)
            continue
        if not (_readable(data) and _readable(entities)):
            _remove_set(s, record, root)
            done["catalog_rows_removed"] += 1
            continue
        ref = NodeRef(NodeKind.TRAINING_SET, record.id)
        if ref not in graph:
            nodes, edges = lineage_graph_of(s.store, record)
            edges = [e for e in edges if e.source in graph]  # features no longer in the graph: no edge
            s.lineage.save(nodes, edges)
            done["lineage_nodes_repaired"] += 1
    if missing:
        log.warning(
            "%d training set(s) have no files in the training-sets folder (is FEASTLINE_TRAINING_SETS_DIR right?); "
            "their catalog rows are kept: %s",
            len(missing),
            ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""),
        )


def _remove_set(s: Stores, record: TrainingSetRecord, root: Path) -> None:
    """A set whose data is gone or cut short: its row and its lineage node go (the node's history
    stays), then what is left of its files."""

    def work(w: LineageWrite) -> None:
        s.catalog.remove(w.connection, record.id)
        w.remove([NodeRef(NodeKind.TRAINING_SET, record.id)])

    s.lineage.write(work)
    profile = root / f"{record.id}.profile.json"  # beside the data (service.monitoring)
    for path in (stored_file(root, record.data_path), stored_file(root, record.entity_path), profile):
        path.unlink(missing_ok=True)


def _source_folders(s: Stores, push_only: bool) -> set[Path]:
    """The folders of the file sources in the registry (of the push sources' batch files only)."""
    if s.store is None:
        return set()
    try:
        sources = s.store.list_data_sources()
    except Exception:
        return set()
    folders: set[Path] = set()
    for source in sources:
        batch = source.batch_source if isinstance(source, PushSource) else None if push_only else source
        if not isinstance(batch, FileSource) or any(c in batch.path for c in "*?["):
            continue
        path = Path(FileSource.get_uri_for_file_path(s.store.repo_path, batch.path))
        folders.add(path if path.is_dir() else path.parent)
    return folders


def _push_temp_files(s: Stores) -> list[Path]:
    """Temporary files in the folders of the push sources' batch files."""
    folders = _source_folders(s, push_only=True)
    return sorted(p for folder in folders if folder.is_dir() for p in folder.iterdir() if is_temp(p))
