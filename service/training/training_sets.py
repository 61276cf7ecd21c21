"""Create, store, describe and reproduce training sets.

A training set is: the entity table (Parquet), the joined data (Parquet), a catalog row (see
``service.training.catalog``) and the lineage node ``training_set:<id>`` with ``trained_on`` edges from every
feature used (and the feature service). Its fingerprint is the sha256 over the entity table, the
feature references, each view's definition hash, each source file's content hash (keyed by the
source's path relative to the repo, so a copy of the repo elsewhere gives the same fingerprint) and
the options that change the answer (``full_feature_names``, ``allow_created_after_entity``): equal
fingerprints mean the same inputs, so the same answer.

All or nothing: a write intent and the OpenLineage START commit first; the two Parquet files are
written under temporary names, flushed and renamed into place; then the catalog row, the lineage node
and the COMPLETE event commit in one transaction that also closes the intent. A failure removes the
files and records FAIL; a crash leaves an intent the recovery pass (``service.recovery``) undoes.
"""

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import uuid
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from feast import FeatureStore
from pydantic import BaseModel, ConfigDict, Field

from lineage import LineageStore, NodeKind, NodeNotFound, NodeRef
from lineage.builders import spec_hash, training_set_graph
from lineage.database import transaction
from lineage.store import LineageWrite
from service.intents import Intents
from service.monitoring.profiles import profile_path, start_profile
from service.run_events import TrainingSetRun, openlineage_for
from service.settings import Settings
from service.storage import TempWrites, crash_point, replace_all, temp_path
from service.training.catalog import TrainingSetCatalog, TrainingSetRecord, stored_file
from service.training.offline.engine import JoinOptions, TrainingFrame, get_training_frame
from service.training.offline.errors import FeatureSelectionInvalid
from service.training.offline.prepared import per_file_state
from service.training.offline.views import RetrievalPlan, batch_spec, plan_retrieval, service_references
from service.value_types import is_missing

log = logging.getLogger("feastline.training_sets")


class TrainingSetOptions(BaseModel):
    """What to join, and how. (Query parameters when the entity table comes as Parquet or Arrow.)

    Strict: an unknown key (a typo such as ``full_feature_name``) or a value of the wrong JSON type
    (``"yes"`` for a boolean) is a 422, never guessed at.
    """

    model_config = ConfigDict(strict=True, extra="forbid")

    feature_service: str | None = Field(None, examples=["delay_model_v1"])
    features: list[str] = Field(default_factory=list, description="'view:feature' references")
    full_feature_names: bool = Field(False, description="name feature columns 'view__feature'")
    timezone: str | None = Field(None, description="IANA timezone assumed for naive timestamps (else refused)")
    allow_created_after_entity: bool = Field(
        False,
        description="turn OFF the created_ts <= entity_ts rule (a backfill may then leak into the past); "
        "recorded in the audit",
    )


class TrainingSetRequest(TrainingSetOptions):
    """``POST /training-sets`` JSON body."""

    entity_rows: list[dict[str, Any]] = Field(
        description="one object per training example: join keys, event_timestamp (ISO 8601 with Z or "
        "an offset), request fields, and any other columns (labels), passed through unchanged",
        examples=[
            [
                {
                    "origin": "EWR",
                    "carrier": "UA",
                    "event_timestamp": "2013-05-01T13:00:00Z",
                    "label_delayed": 1,
                }
            ]
        ],
    )


@dataclass(frozen=True)
class TrainingSet:
    record: TrainingSetRecord
    frame: pd.DataFrame


def requested_references(store: FeatureStore, opts: TrainingSetOptions) -> list[str]:
    if opts.feature_service and opts.features:
        raise FeatureSelectionInvalid("give feature_service or features, not both")
    if opts.feature_service:
        return service_references(store, opts.feature_service)
    if not opts.features:
        raise FeatureSelectionInvalid("give feature_service or a non-empty features list")
    return list(opts.features)


def resolve(store: FeatureStore, opts: TrainingSetOptions) -> tuple[list[str], RetrievalPlan]:
    refs = requested_references(store, opts)
    return refs, plan_retrieval(store, refs, opts.feature_service)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def entity_sha256(entity_df: pd.DataFrame) -> str:
    digest = hashlib.sha256(json.dumps([[c, str(t)] for c, t in entity_df.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(entity_df, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def sha256_source(path: Path, files: list[Path]) -> str:
    """The content sha256 of a source: its file's, or for a directory or glob of Parquet files the
    sha256 over each file's name (relative to ``path`` or the glob's folder) and content sha256."""
    return per_file_state(("sha256", str(path)), files, lambda: _sha256_files(path, files))


def _sha256_files(path: Path, files: list[Path]) -> str:
    if files == [path]:
        return sha256_file(path)
    base = path if path.is_dir() else Path(os.path.commonpath([f.parent for f in files]))
    listing = [[str(f.relative_to(base)), sha256_file(f)] for f in files]
    return hashlib.sha256(json.dumps(listing).encode()).hexdigest()


def source_key(path: Path, repo: Path) -> str:
    """How a source is named in fingerprints and ``source_hashes``: its path relative to the repo
    (POSIX separators: ``data/origin_weather.parquet``), or its absolute path if it is outside the repo."""
    try:
        return path.resolve().relative_to(repo.resolve()).as_posix()
    except ValueError:
        return str(path)


def inputs_of(plan: RetrievalPlan, repo: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(view name -> definition hash, source key -> content sha256) for everything joined: see
    ``source_key`` (relative to ``repo``) and, for a directory or a glob of Parquet files, ``sha256_source``."""
    views = {v.name: spec_hash(v.definition) for v in plan.views}
    views |= {o.name: spec_hash(o.definition) for o in plan.on_demand}
    sources = {
        source_key(v.path, repo): sha256_source(v.path, files) for v in plan.views if (files := v.parquet_files())
    }
    return views, sources


def files_of(out_dir: Path, ts_id: str) -> tuple[Path, Path]:
    """(data file, entity table file) of training set ``ts_id`` in the training-sets folder."""
    return out_dir / f"{ts_id}.parquet", out_dir / f"{ts_id}.entities.parquet"


INTENT_KIND = "training_set"


OUTPUT_OPTIONS = ("full_feature_names", "allow_created_after_entity")  # change the rows or columns answered


def output_options(opts: TrainingSetOptions) -> dict[str, Any]:
    """The options that change the answer for a given entity table and feature list, when not the
    default (``timezone`` is already in the entity table: its timestamps are stored in UTC)."""
    defaults = TrainingSetOptions()
    return {k: getattr(opts, k) for k in OUTPUT_OPTIONS if getattr(opts, k) != getattr(defaults, k)}


def fingerprint(
    entity_hash: str,
    refs: list[str],
    views: dict[str, str],
    sources: dict[str, str],
    options: dict[str, Any] | None = None,
) -> str:
    """sha256 over the inputs of an answer. ``options`` (see ``output_options``) enter only when not
    empty, so a set made with the default options keeps the fingerprint it had before options counted."""
    spec: dict[str, Any] = {"entity_sha256": entity_hash, "features": refs, "views": views, "sources": sources}
    if options:
        spec["options"] = options
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def compute(
    entity_df: pd.DataFrame, plan: RetrievalPlan, opts: TrainingSetOptions, settings: Settings | None = None
) -> TrainingFrame:
    """The training frame of ``entity_df`` under ``opts`` (see ``get_training_frame``), joined by the
    engine ``settings`` choose (``offline_engine``: DuckDB, the default, or Spark on ``spark_master``)."""
    join = JoinOptions(
        full_feature_names=opts.full_feature_names,
        created_filter=not opts.allow_created_after_entity,
        engine=settings.offline_engine if settings is not None else "duckdb",
        spark_master=settings.spark_master if settings is not None else None,
    )
    return get_training_frame(entity_df, plan, join)


def create_training_set(
    store: FeatureStore,
    catalog: TrainingSetCatalog,
    lineage: LineageStore,
    intents: Intents,
    opts: TrainingSetOptions,
    entity_df: pd.DataFrame,
    plan: RetrievalPlan,
    refs: list[str],
    out_dir: Path,
    settings: Settings | None = None,
) -> TrainingSet:
    """Join, audit, store (Parquet + catalog row) and record lineage and OpenLineage events, all or
    nothing (see the module docstring). ``catalog``, ``lineage`` and ``intents`` share one database;
    ``settings`` choose the engine that joins (see ``compute``; None: DuckDB).

    Raises:
        LeakageDetected: the audit failed (nothing is stored).
        FeatureNameCollision, SourceDataMissing: see ``get_training_frame``.
        OSError, sqlalchemy errors: the storage failed (nothing is stored; see ``service.storage``).
    """
    emitter = openlineage_for(lineage)
    run = TrainingSetRun(plan)
    ts_id = f"ts-{uuid.uuid4().hex[:16]}"
    files = files_of(out_dir, ts_id)
    temps = tuple(temp_path(f) for f in files)
    details = {"run_id": run.run_id, "files": [f.name for f in files], "temps": [t.name for t in temps]}
    started = run.start()

    def begin(conn: Any) -> None:
        intents.add(conn, INTENT_KIND, ts_id, details)
        emitter.store(conn, started)

    transaction(intents.engine, begin)
    emitter.send(started)
    crash_point("training_set.started")
    profile: Future[dict[str, Any]] | None = None
    writing: TempWrites | None = None
    try:
        result = compute(entity_df, plan, opts, settings)
        out_dir.mkdir(parents=True, exist_ok=True)
        profile = start_profile(result.frame, plan, opts.full_feature_names, files[0])  # <id>.profile.json, meanwhile
        writing = TempWrites(  # on writer threads, while the inputs are hashed here
            [
                (files[0], lambda fh: result.frame.to_parquet(fh, index=False), temps[0]),
                (files[1], lambda fh: entity_df.to_parquet(fh, index=False), temps[1]),
            ]
        )
        views, sources = inputs_of(plan, Path(store.repo_path))
        ent_hash = entity_sha256(entity_df)
        writing.wait()
        crash_point("training_set.files_written")
        replace_all(list(zip(temps, files, strict=True)))
        try:
            profile_summary = profile.result()
        except Exception:  # a profile never costs the set: it is computed on its first request instead
            log.exception("could not profile training set %s", ts_id)
            profile_summary = None
        crash_point("training_set.renamed")
        record = TrainingSetRecord(
            id=ts_id,
            created_at=datetime.now(UTC),
            fingerprint=fingerprint(ent_hash, refs, views, sources, output_options(opts)),
            feature_service=opts.feature_service,
            features=refs,
            options=opts.model_dump(exclude={"entity_rows"}),
            entity_sha256=ent_hash,
            view_hashes=views,
            source_hashes=sources,
            audit=result.audit.to_dict(),
            row_count=len(result.frame),
            columns=[str(c) for c in result.frame.columns],
            data_path=files[0].name,
            entity_path=files[1].name,
        )
        completed = run.complete(ts_id, result.frame)
        view_names = {v.name: v.definition.name for v in plan.views}
        view_names |= {o.name: o.definition.name for o in plan.on_demand}
        attributes = {**lineage_attributes(record), "profile": profile_summary}
        graph = training_set_graph(ts_id, refs, opts.feature_service, attributes, view_names)

        def commit(w: LineageWrite) -> None:
            catalog.add(record, w.connection)
            w.save(*graph)
            emitter.store(w.connection, completed)
            intents.done(w.connection, INTENT_KIND, ts_id)

        lineage.write(commit)
    except BaseException as exc:
        if writing is not None:  # the files are written on writer threads: wait, then remove them (below)
            with contextlib.suppress(Exception):
                writing.wait()
        if profile is not None:  # its file is written on the profiler thread: wait, then remove it too
            with contextlib.suppress(Exception):
                profile.result()
            profile_path(files[0]).unlink(missing_ok=True)
        for path in (*temps, *files):
            path.unlink(missing_ok=True)
        failed = run.fail(exc)

        def undo(conn: Any) -> None:
            emitter.store(conn, failed)
            intents.done(conn, INTENT_KIND, ts_id)

        try:
            transaction(intents.engine, undo)
            emitter.send(failed)
        except Exception:  # the intent stays open: the recovery pass records the FAIL
            log.exception("could not record the failure of training set %s", ts_id)
        raise
    emitter.send(completed)
    crash_point("training_set.committed")
    return TrainingSet(record, result.frame)


def lineage_attributes(record: TrainingSetRecord) -> dict[str, Any]:
    """The attributes of a set's lineage node: its catalog row without the audit, options and columns,
    and whether the audit passed."""
    attributes = {k: v for k, v in record.to_dict().items() if k not in ("audit", "options", "columns", "deleted_at")}
    attributes["audit_passed"] = bool(record.audit.get("passed"))
    return attributes


def _differing(before: pd.DataFrame, after: pd.DataFrame, cap: int = 100) -> dict[str, Any]:
    if list(before.columns) != list(after.columns) or len(before) != len(after):
        return {
            "columns": sorted(set(before.columns) ^ set(after.columns)),
            "rows": [],
            "row_count": {"then": len(before), "now": len(after)},
        }
    columns, rows = [], set()
    for col in before.columns:
        same = _same_rows(before[col].reset_index(drop=True), after[col].reset_index(drop=True))
        if not same.all():
            columns.append(col)
            rows.update(np.flatnonzero(~same).tolist())
    return {"columns": columns, "rows": sorted(rows)[:cap], "rows_differing": len(rows)}


def _same_rows(a: pd.Series, b: pd.Series) -> np.ndarray:
    """Per row, whether ``a`` and ``b`` (two columns of equal length) hold the same value exactly: a
    missing value equals only a missing value; lists (Array features) are compared item by item."""
    if a.dtype != object and b.dtype != object:
        try:
            equal = (a == b).fillna(False).to_numpy(dtype=bool)  # a missing value compares as NA: not equal
            return equal | (a.isna() & b.isna()).to_numpy(dtype=bool)
        except TypeError:  # dtypes that do not compare (e.g. aware and naive timestamps): value by value
            pass
    return np.array([_same(x, y) for x, y in zip(a.tolist(), b.tolist(), strict=True)], dtype=bool)


def _same(x: Any, y: Any) -> bool:
    """Exact equality of two stored values; lists and arrays item by item, missing equals missing."""
    lists = (list, tuple, np.ndarray)
    if isinstance(x, lists) or isinstance(y, lists):
        if not (isinstance(x, lists) and isinstance(y, lists)) or len(x) != len(y):
            return False
        return all(_same(i, j) for i, j in zip(x, y, strict=True))
    if is_missing(x) or is_missing(y):
        return is_missing(x) and is_missing(y)
    try:
        return bool(x == y)
    except (TypeError, ValueError):
        return False


def reproduce(
    store: FeatureStore, record: TrainingSetRecord, root: Path, settings: Settings | None = None
) -> dict[str, Any]:
    """Recompute ``record`` from its stored entity table (under the training-sets folder ``root``)
    with the repo as it is now (joined by the engine ``settings`` choose, see ``compute``).

    Returns ``{"id", "identical", "data_identical", "inputs_identical", "fingerprint_then",
    "fingerprint_now", "changed_sources", "changed_views", "differences"}``:

    - ``data_identical``: the recomputed rows equal the stored ones (same columns, same values);
    - ``inputs_identical``: the fingerprint is unchanged (no source file or view definition changed);
    - ``identical``: both. Data can be identical while inputs changed (a source row the set never
      used was edited): then ``identical`` is false and ``changed_sources``/``changed_views`` say what.
    - ``differences``: ``{"columns", "rows" (first 100), "rows_differing"}``, or ``{"columns",
      "rows": [], "row_count": {"then", "now"}}`` when the shape changed.
    """
    opts = TrainingSetOptions(**record.options)
    refs, plan = resolve(store, opts)
    entity_df = pd.read_parquet(stored_file(root, record.entity_path))
    now = compute(entity_df, plan, opts, settings).frame
    then = pd.read_parquet(stored_file(root, record.data_path))
    views, sources = inputs_of(plan, Path(store.repo_path))
    diff = _differing(then, now.reset_index(drop=True))
    changed_sources = sorted(
        p for p in set(sources) | set(record.source_hashes) if sources.get(p) != record.source_hashes.get(p)
    )
    changed_views = sorted(v for v in set(views) | set(record.view_hashes) if views.get(v) != record.view_hashes.get(v))
    ent_hash = entity_sha256(entity_df)
    fingerprint_now = fingerprint(ent_hash, refs, views, sources, output_options(opts))
    if fingerprint(ent_hash, refs, views, sources) == record.fingerprint:
        fingerprint_now = record.fingerprint  # stored before options counted, inputs unchanged
    data_identical = not diff["columns"] and not diff.get("row_count")
    inputs_identical = fingerprint_now == record.fingerprint
    return {
        "id": record.id,
        "identical": data_identical and inputs_identical,
        "data_identical": data_identical,
        "inputs_identical": inputs_identical,
        "fingerprint_then": record.fingerprint,
        "fingerprint_now": fingerprint_now,
        "changed_sources": changed_sources,
        "changed_views": changed_views,
        "differences": diff,
    }


# -- recovery and migration (called by service.recovery at start) -----------------------------------


def source_keys_now(store: FeatureStore) -> list[str]:
    """The source keys (see ``source_key``) of every feature view's batch source in the registry."""
    repo = Path(store.repo_path)
    keys = []
    for fv in store.list_feature_views():
        try:
            keys.append(source_key(batch_spec(repo, fv).path, repo))
        except Exception:  # not a file source: it never enters a fingerprint
            continue
    return keys


def _relative_key(key: str, repo: Path, known: list[str]) -> str:
    path = Path(key)
    if not path.is_absolute():
        return key
    try:
        return path.relative_to(repo.resolve()).as_posix()
    except ValueError:
        pass
    # the repo was moved or copied: the key of a current source whose path the old one ends with
    matches = [k for k in known if not Path(k).is_absolute() and key.endswith("/" + k)]
    return max(matches, key=len) if matches else key


def with_relative_paths(
    record: TrainingSetRecord, repo: Path, root: Path, known: list[str]
) -> TrainingSetRecord | None:
    """``record`` as this version stores it, when it was stored with absolute paths (before paths were
    relative): ``data_path`` / ``entity_path`` relative to the training-sets folder ``root`` (a file
    elsewhere, as after a move: its name), ``source_hashes`` keyed relative to the repo (``known``: the
    current source keys, to recognise a moved repo's sources), and the fingerprint recomputed over the
    relative keys (only if the stored one is what the formula gave over the old keys). None when the
    record is already relative."""

    def rel_file(stored: str) -> str:
        path = Path(stored)
        if not path.is_absolute():
            return stored
        try:
            return path.relative_to(root.resolve()).as_posix()
        except ValueError:
            return path.name

    data, entities = rel_file(record.data_path), rel_file(record.entity_path)
    sources = {_relative_key(k, repo, known): v for k, v in record.source_hashes.items()}
    if (data, entities, sources) == (record.data_path, record.entity_path, record.source_hashes):
        return None
    fp = record.fingerprint
    opts = TrainingSetOptions(**record.options)
    for options in (output_options(opts), None):
        old = fingerprint(record.entity_sha256, record.features, record.view_hashes, record.source_hashes, options)
        if old == record.fingerprint:
            fp = fingerprint(record.entity_sha256, record.features, record.view_hashes, sources, options)
            break
    return dataclasses.replace(record, data_path=data, entity_path=entities, source_hashes=sources, fingerprint=fp)


def lineage_graph_of(store: FeatureStore | None, record: TrainingSetRecord) -> tuple[list[Any], list[Any]]:
    """The lineage node and edges of a stored set (to repair a node a crash left out): the features'
    projections resolved with the registry where it still knows them."""
    view_names: dict[str, str] = {}
    if store is not None:
        try:
            plan = plan_retrieval(store, record.features, record.feature_service)
            view_names = {v.name: v.definition.name for v in plan.views}
            view_names |= {o.name: o.definition.name for o in plan.on_demand}
        except Exception:
            view_names = {}
    nodes, edges = training_set_graph(
        record.id, record.features, record.feature_service, lineage_attributes(record), view_names
    )
    return list(nodes), list(edges)


def delete_training_set(
    catalog: TrainingSetCatalog, lineage: LineageStore, ts_id: str, at: datetime, root: Path
) -> dict[str, Any]:
    """Delete a stored training set: its data and entity files are removed, its catalog row and lineage
    node ``training_set:<id>`` are kept and marked deleted (``deleted_at``), so its history stays
    readable (``as_of`` a time before shows it as it was) and nothing new can be trained on it.
    ``root``: the training-sets folder the catalog's paths are relative to.

    The lineage mark comes first, under the lineage writers' lock, where the models trained on the
    set are checked: a model registered concurrently either lands first (this is refused) or finds
    the set deleted. Then the catalog row, then the files; a delete interrupted midway is finished by
    running it again.

    Returns:
        the record as now stored (``deleted_at`` set) plus ``files_removed``.

    Raises:
        TrainingSetNotFound: no such set (404).
        TrainingSetDeleted: it was deleted already (410).
        NodeInUse: a registered model was trained on it (409, ``used_by`` names the models).
    """
    record = catalog.get(ts_id)
    record.check_present()
    ref = NodeRef(NodeKind.TRAINING_SET, ts_id)
    with contextlib.suppress(NodeNotFound):  # a row without its node (an older crash): nothing depends on it
        lineage.mark_deleted(ref, at, refuse_if_used_by=NodeKind.MODEL)
    record = catalog.mark_deleted(ts_id, at)
    removed = []
    data = stored_file(root, record.data_path)
    for path in (data, stored_file(root, record.entity_path), profile_path(data)):
        if path.exists():
            path.unlink()
            removed.append(path.name)
    return {**record.to_dict(), "files_removed": removed}
