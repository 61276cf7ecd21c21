"""``feastline monitor drift | parity | freshness``: the monitoring reports in process against
``--repo``, printed as rich tables (the cells of the monitoring page, service/monitoring/tables.py), a
spinner while they run, ``--out page.html`` for the page (service/monitoring/page.py).

Exit codes, for cron: 0 the report is fine; 1 it is not (``drift``: a verdict at or above
``--fail-on``, ``drift`` by default; ``parity``: a match rate below ``--min-match-rate``;
``freshness``: with ``--fail-on-late``, a view late against its objective); 2 the report could not be
made (a bad option, an unknown training set, model or feature service, an empty window: what the HTTP
route answers with a 4xx).
"""

import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

T = TypeVar("T")

monitor_app = typer.Typer(
    help="Feature monitoring reports (drift, online/offline parity, freshness) as tables; --out writes the page.",
    no_args_is_help=True,
)
console = Console()
RepoOpt = Annotated[Path, typer.Option("--repo", help="Feast repo folder (with feature_store.yaml)")]
DEFAULT_REPO = Path(os.environ.get("FEASTLINE_REPO", "feature_repo"))
OutOpt = Annotated[Path | None, typer.Option("--out", help="also write the monitoring page (HTML) to this file")]
STYLES = {"ok": "green", "warn": "yellow", "drift": "bold red", "late": "bold red", "unknown": "dim"}
FailOn = Literal["drift", "warn", "never"]


def _time(text: str, name: str) -> str:
    """An ISO 8601 time with Z or an offset, as given (the request model parses it). Raises
    typer.BadParameter (exit 2) on anything else, naive times included."""
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is not ISO 8601", param_hint=f"--{name}") from exc
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise typer.BadParameter(f"{text!r} has no timezone; end it with Z or +HH:MM", param_hint=f"--{name}")
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def print_table(table: tuple[list[str], list[list[str]]], title: str | None = None, badge: str | None = None) -> None:
    """A table of text cells (service/monitoring/tables.py) as a rich table; the ``badge`` column coloured."""
    headers, rows = table
    out = Table(*headers, title=title)
    for row in rows:
        cells = zip(headers, row, strict=True)
        out.add_row(*(Text(c, style=STYLES.get(c, "")) if h == badge else Text(c) for h, c in cells))
    console.print(out)


@contextmanager
def _spinner(what: str) -> Iterator[Callable[[str], None]]:
    """A transient spinner with the elapsed time; yields a function that renames the current step."""
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(what, total=None)
        yield lambda step: progress.update(task, description=step)


def _answerable(call: Callable[[], T]) -> T:
    """``call()``; an error the HTTP API answers with a 4xx (service/errors.py) is printed and exits 2."""
    from pydantic import ValidationError

    from service.errors import PROBLEM_STATUS

    try:
        return call()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        console.print(Text(f"invalid request: {problems}", style="red"))
        raise typer.Exit(2) from exc
    except Exception as exc:
        status = next((s for kind, s in PROBLEM_STATUS.items() if isinstance(exc, kind)), None)
        if status is None or status >= 500:
            raise
        field = getattr(exc, "field", None)
        console.print(Text(f"{field + ': ' if field else ''}{exc}", style="red"))
        raise typer.Exit(2) from exc


def _open(repo: Path) -> tuple[Any, Any]:
    """(settings, Feast store) of ``repo``, after the recovery pass (the commands write reports)."""
    from service.feast_runtime import skip_definition_typechecks

    skip_definition_typechecks()  # definitions come from the registry here; see service/feast_runtime.py
    from service.cli import _recover
    from service.registry import open_feature_store
    from service.settings import Settings

    settings = Settings(repo=repo.resolve())
    store = open_feature_store(settings.repo_path)
    _recover(settings, store)
    return settings, store


def _freshness(settings: Any, store: Any) -> dict[str, Any]:
    """``GET /monitoring/freshness``'s answer, in process (pushes held by a running server's memory are
    not seen: its materialized data is)."""
    from service.clock import service_now
    from service.monitoring.freshness import freshness

    now = service_now(settings)
    views = freshness(store, settings.repo_path, now, {})
    return {"now": now.isoformat().replace("+00:00", "Z"), "feature_views": [v.to_dict() for v in views]}


def _write_page(
    out: Path | None,
    report: Mapping[str, Any] | None,
    parity: Sequence[Mapping[str, Any]],
    fresh: Mapping[str, Any],
) -> None:
    if out is None:
        return
    from service.monitoring.page import render_page
    from service.storage import write_atomically

    page = render_page(report, parity, fresh).encode()
    write_atomically(out, lambda f: f.write(page))
    console.print(f"page written to {out}")


@monitor_app.command("drift")
def drift_cmd(
    repo: RepoOpt = DEFAULT_REPO,
    training_set: Annotated[str | None, typer.Option("--training-set", help="baseline: a training set id")] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="baseline: the set a model was trained on, NAME@VERSION")
    ] = None,
    target_training_set: Annotated[
        str | None, typer.Option("--target-training-set", help="target: a training set id")
    ] = None,
    start: Annotated[str | None, typer.Option(help="target: online log window start, ISO 8601 with Z/offset")] = None,
    end: Annotated[str | None, typer.Option(help="target: online log window end (excluded)")] = None,
    feature: Annotated[
        list[str] | None, typer.Option("--feature", help="a column to assess (repeat); default every feature")
    ] = None,
    fail_on: Annotated[
        str, typer.Option("--fail-on", help="exit 1 at this verdict or worse: drift, warn or never")
    ] = "drift",
    out: OutOpt = None,
) -> None:
    """Drift of a target against a baseline: table, exit 1 on drift.

    A drift report of a target (a training set, or the online log's requests in --start/--end) against
    a baseline (a training set, or the one a model was trained on), as ``POST /monitoring/drift``: stored,
    in lineage and OpenLineage, viewable at ``/monitoring/view?drift=ID``. Exit 1 on a verdict at or above
    ``--fail-on``; 2 when it cannot be made."""
    if fail_on not in ("drift", "warn", "never"):
        raise typer.BadParameter("give drift, warn or never", param_hint="--fail-on")
    if (training_set is None) == (model is None):
        raise typer.BadParameter("give exactly one of --training-set and --model", param_hint="--training-set")
    if (target_training_set is None) == (start is None and end is None):
        raise typer.BadParameter("give --target-training-set, or --start and --end", param_hint="--target-training-set")
    if target_training_set is None and (start is None or end is None):
        raise typer.BadParameter("a window needs both --start and --end", param_hint="--start")
    baseline: dict[str, Any] = {"training_set_id": training_set}
    if model is not None:
        name, at, version = model.rpartition("@")
        if not at or not name or not version:
            raise typer.BadParameter(f"{model!r} is not NAME@VERSION", param_hint="--model")
        baseline = {"model": {"name": name, "version": version}}
    target: dict[str, Any] = {"training_set_id": target_training_set}
    if target_training_set is None:
        assert start is not None and end is not None
        target = {"window": {"start": _time(start, "start"), "end": _time(end, "end")}}
    body: dict[str, Any] = {"baseline": baseline, "target": target}
    if feature:
        body["features"] = list(feature)

    from service.monitoring.drift import VERDICTS, DriftRequest

    request = _answerable(lambda: DriftRequest.model_validate_json(json.dumps(body)))
    with _spinner("opening the feature repo") as step:
        settings, store = _open(repo)
        from lineage import LineageStore
        from service.monitoring.drift import run_drift
        from service.monitoring.reports import DriftReports
        from service.training.catalog import TrainingSetCatalog

        url = settings.lineage_database_url
        lineage, catalog, reports = LineageStore(url), TrainingSetCatalog(url), DriftReports(url)
        try:
            step("joining the target and computing drift")
            report = _answerable(lambda: run_drift(request, store, catalog, lineage, reports, settings))
            step("freshness")
            fresh = _freshness(settings, store) if out is not None else None
        finally:
            lineage.dispose()
            catalog.dispose()
            reports.dispose()
    from service.monitoring.tables import drift_table

    verdict = str(report["verdict"])
    console.print(
        Text.assemble(
            f"drift report {report['id']}: verdict ",
            Text(verdict, style=STYLES[verdict]),
            f" (baseline training set {report['baseline']['training_set_id']}"
            + (f", model {report['baseline']['model']}" if report["baseline"]["model"] else "")
            + f"; target {report['target']['kind']}, {report['target']['row_count']:,} rows)",
        )
    )
    print_table(drift_table(report), badge="verdict")
    console.print(f"page: /monitoring/view?drift={report['id']}")
    if fresh is not None:
        _write_page(out, report, [], fresh)
    if fail_on != "never" and VERDICTS.index(verdict) >= VERDICTS.index(fail_on):
        raise typer.Exit(1)


@monitor_app.command("parity")
def parity_cmd(
    feature_service: Annotated[str, typer.Option("--feature-service", help="the feature service to replay")],
    start: Annotated[str, typer.Option(help="first service-clock time replayed, ISO 8601 with Z/offset")],
    end: Annotated[str, typer.Option(help="end of the window (excluded), after --start")],
    repo: RepoOpt = DEFAULT_REPO,
    max_mismatches: Annotated[int, typer.Option(min=0, help="mismatching values listed (all are counted)")] = 20,
    min_match_rate: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="exit 1 when the exact-match rate is below this (0-1)")
    ] = None,
    out: OutOpt = None,
) -> None:
    """Online/offline parity of a window's logged reads: table, exit 1 below --min-match-rate.

    Online/offline parity of the window's logged reads, as ``POST /monitoring/parity`` (the log is the
    one a server over this repo wrote: ``FEASTLINE_ONLINE_LOG_DIR``, default ``<repo>/data/online_log``)."""
    t0, t1 = _time(start, "start"), _time(end, "end")
    if t1 <= t0:
        raise typer.BadParameter(f"must be after --start ({t0})", param_hint="--end")
    from service.monitoring.parity import parity_report

    with _spinner("opening the feature repo") as step:
        settings, store = _open(repo)
        step(f"replaying {feature_service}'s logged reads offline")
        begin, finish = (datetime.fromisoformat(t.replace("Z", "+00:00")) for t in (t0, t1))
        report = _answerable(
            lambda: parity_report(store, settings, feature_service, begin, finish, max_listed=max_mismatches)
        )
        step("freshness")
        fresh = _freshness(settings, store) if out is not None else None
    from service.monitoring.tables import mismatch_table, parity_table, percent

    if report["requests"] == 0:  # logging stopped, or the wrong service/window: never a passing check
        console.print(f"[red]the online log holds no requests of {feature_service} from {t0} to {t1}[/red]")
        raise typer.Exit(2)
    rate = report["match_rate"]
    console.print(
        f"parity of {feature_service}, {t0} to {t1}: {report['requests']:,} requests, {report['rows']:,} rows, "
        f"exact matches {percent(rate)}, {report['mismatch_count']:,} mismatching values"
    )
    print_table(parity_table(report))
    if report["mismatches"]:
        print_table(mismatch_table(report, limit=max_mismatches), title="mismatches")
    if fresh is not None:
        _write_page(out, None, [report], fresh)
    if min_match_rate is not None and rate is not None and rate < min_match_rate:
        raise typer.Exit(1)


@monitor_app.command("freshness")
def freshness_cmd(
    repo: RepoOpt = DEFAULT_REPO,
    fail_on_late: Annotated[bool, typer.Option("--fail-on-late", help="exit 1 when a view is late")] = False,
    out: OutOpt = None,
) -> None:
    """Freshness of each online feature view: table, exit 1 on a late view with --fail-on-late.

    Each online feature view's age at the service clock against its objective (tag
    ``feastline.freshness_slo``), as ``GET /monitoring/freshness`` (in process: a running server's
    pushes are not seen, only what was materialized)."""
    with _spinner("reading the newest materialized rows"):
        settings, store = _open(repo)
        fresh = _freshness(settings, store)
    from service.monitoring.tables import freshness_table

    print_table(freshness_table(fresh["feature_views"]), title=f"freshness at {fresh['now']}", badge="status")
    _write_page(out, None, [], fresh)
    if fail_on_late and any(v["status"] == "late" for v in fresh["feature_views"]):
        raise typer.Exit(1)
