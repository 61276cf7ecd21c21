"""Training-set retrieval, side by side: feastline (in process and over HTTP) against Feast's stores.

    .venv/bin/python bench/training_set.py [--file-store-rows 2000] [--rows N]

All flights in ``feature_repo/data/flights.parquet`` (origin, carrier, event_timestamp, label_delayed
and a ``row_id`` to align outputs) are joined with feature service ``delay_model_v1`` by:

1. ``feastline``: ``plan_retrieval`` + ``get_training_frame`` in process;
2. ``http``: ``feastline serve`` on a temporary copy of the repo, one ``POST /training-sets`` with a
   Parquet body and ``Accept: application/vnd.apache.parquet`` (timed by the client; RSS of the server);
3. ``feast_duckdb``: Feast's DuckDB offline store on an applied copy of the repo;
4. ``feast_file``: Feast's default (``file``/Dask) store on the first ``--file-store-rows`` flights only.

Each variant runs in its own fresh process, bounded by a timeout; its output is compared value by
value with an independent ``merge_asof`` reference (``bench/reference.py``). Prints the table and
writes ``bench/RESULTS.md``.
"""

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pandas as pd
from reference import ROW_ID, TS, Comparison, compare, reference_frame
from repos import copy_repo, feast_apply

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
ENTITY_COLUMNS = [ROW_ID, "origin", "carrier", TS, "label_delayed"]
COMPARED = [
    "label_delayed",
    "temp",
    "dewp",
    "humid",
    "wind_dir",
    "wind_speed",
    "precip",
    "pressure",
    "visib",
    "flights_7d",
    "mean_dep_delay_7d",
    "share_delayed_15_7d",
    "share_cancelled_7d",
]
LABELS = {
    "feastline": "feastline, in process",
    "http": "feastline, HTTP + Parquet",
    "feast_duckdb": "Feast, DuckDB offline store",
    "feast_file": "Feast, default `file` (Dask) store",
}
TARGETS = (  # (variant, measure, largest ratio to Feast DuckDB)
    ("feastline", "wall_s", 0.25),
    ("feastline", "peak_rss_mib", 1.0),
    ("http", "wall_s", 0.35),
)


@dataclass
class Outcome:
    variant: str
    entity_rows: int
    result: dict[str, Any] = field(default_factory=dict)
    failure: str | None = None
    comparison: Comparison | None = None


def _child_peak_mib(usage: Any) -> float:
    return usage.ru_maxrss / 1024


def run_child(variant: str, repo: Path, entities: Path, work: Path, timeout: float) -> Outcome:
    """Run ``bench/variants.py VARIANT`` in a fresh process group; kill the group on timeout or error."""
    out, result, log = work / f"{variant}.out.parquet", work / f"{variant}.json", work / f"{variant}.log"
    cmd = [sys.executable, str(BENCH / "variants.py"), variant, "--repo", str(repo)]
    cmd += ["--entities", str(entities), "--out", str(out), "--result", str(result)]
    rows = len(pd.read_parquet(entities, columns=[ROW_ID]))
    outcome = Outcome(variant, rows)
    print(f"-- {LABELS[variant]}: {rows:,} entity rows ...", flush=True)
    with log.open("wb") as sink:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    started = time.monotonic()
    status, usage = 0, None
    try:
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() - started > timeout:
                os.killpg(proc.pid, signal.SIGKILL)
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
                outcome.failure = f"timeout: killed after {timeout:.0f} s"
                break
            time.sleep(0.1)
    finally:
        if proc.returncode is None:  # interrupted: take the whole group down with us
            os.killpg(proc.pid, signal.SIGKILL)
            os.wait4(proc.pid, 0)
    elapsed = time.monotonic() - started
    if outcome.failure is None and proc.returncode != 0:
        code = proc.returncode
        how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        outcome.failure = f"{how} after {elapsed:.0f} s: " + " | ".join(tail)[-400:]
    if outcome.failure:
        outcome.result = {"peak_rss_mib": _child_peak_mib(usage) if usage else None, "rss_of": "child (wait4)"}
        if result.exists():  # the child said why, and what it could still measure
            reported = json.loads(result.read_text())
            outcome.failure = reported["error"]
            outcome.result["diagnostic"] = reported["diagnostic"]
            outcome.result["peak_rss_mib"] = None
        print(f"   FAILED: {outcome.failure}  (full log: {log})", flush=True)
        return outcome
    outcome.result = json.loads(result.read_text())
    outcome.result["process_s"] = elapsed
    print(
        f"   {outcome.result['wall_s']:.2f} s, {outcome.result['peak_rss_mib']:.0f} MiB, "
        f"{outcome.result['rows_out']:,} rows out",
        flush=True,
    )
    return outcome


def invocation(script: str) -> str:
    """The command line that ran ``script`` (its ``__file__``), relative to the project root, for a
    results section."""
    return shlex.join([os.path.relpath(sys.executable, ROOT), os.path.relpath(script, ROOT), *sys.argv[1:]])


def machine() -> dict[str, str]:
    meminfo = Path("/proc/meminfo").read_text()
    total_kib = next(int(line.split()[1]) for line in meminfo.splitlines() if line.startswith("MemTotal:"))
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    models = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    cpu = models[0] if models else platform.processor() or "unknown"
    nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip()
    return {
        "nproc": nproc or str(os.cpu_count()),
        "memory": f"{total_kib / 2**20:.1f} GiB",
        "cpu": cpu,
        "python": platform.python_version(),
        "feast": version("feast"),
        "duckdb": version("duckdb"),
        "pandas": version("pandas"),
        "pyarrow": version("pyarrow"),
    }


def _fmt(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def table(outcomes: list[Outcome]) -> str:
    lines = [
        "| variant | entity rows | rows out | wall s | peak RSS MiB | equal to reference |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for o in outcomes:
        r = o.result
        rows_out = "—" if o.failure else f"{r['rows_out']:,}"
        compared = o.comparison.summary() if o.comparison else "not compared"
        equal = f"FAILED: {o.failure}"[:170] if o.failure else compared
        lines.append(
            f"| {LABELS[o.variant]} | {o.entity_rows:,} | {rows_out} | {_fmt(r.get('wall_s'), 2)} "
            f"| {_fmt(r.get('peak_rss_mib'), 0)} | {equal} |"
        )
    return "\n".join(lines)


def ratios(outcomes: list[Outcome]) -> list[str]:
    by = {o.variant: o for o in outcomes if not o.failure}
    base = by.get("feast_duckdb")
    lines = []
    for variant, measure, limit in TARGETS:
        what = "wall time" if measure == "wall_s" else "peak RSS"
        target = f"{LABELS[variant]}: {what} ≤ {limit:g}× Feast DuckDB"
        if base is None or variant not in by:
            lines.append(f"- {target}: **not measured** (a variant failed)")
            continue
        ratio = by[variant].result[measure] / base.result[measure]
        verdict = "met" if ratio <= limit else "**NOT met**"
        unit = "s" if measure == "wall_s" else "MiB"
        lines.append(
            f"- {target}: {by[variant].result[measure]:,.2f} {unit} / {base.result[measure]:,.2f} {unit} "
            f"= **{ratio:.3f}×** → {verdict}"
        )
    return lines


def details(outcomes: list[Outcome]) -> list[str]:
    lines = []
    for o in outcomes:
        r = o.result
        lines.append(f"- **{LABELS[o.variant]}**")
        if o.failure:
            lines.append(f"  - failed: {o.failure}")
            for name, value in r.get("diagnostic", {}).items():
                lines.append(f"  - diagnostic, {name}: {_fmt(value, 2)}")
            if r.get("peak_rss_mib") is not None:
                lines.append(f"  - peak RSS of the killed/failed child (wait4): {r['peak_rss_mib']:,.0f} MiB")
            continue
        lines.append(f"  - wall time includes: {r['includes']}; RSS of: {r['rss_of']}")
        lines.append(f"  - whole child process (start, imports, load, retrieval, write): {r['process_s']:.1f} s")
        for name, secs in r.get("sections_s", {}).items():
            lines.append(f"  - {name}: {secs:.2f} s")
        for key in ("server_rss_after_startup_mib", "request_mb", "answer_mb"):
            if key in r:
                lines.append(f"  - {key}: {r[key]:,.1f}")
        c = o.comparison
        if c is not None:
            lines.append(
                f"  - rows compared {c.rows_compared:,}, missing {c.rows_missing:,}, extra {c.rows_extra:,}; "
                f"output in input order: {'yes' if c.in_input_order else 'no'}"
            )
            if c.columns_mismatched:
                lines.append(f"  - mismatching cells per column: {c.columns_mismatched}")
    return lines


def write_section(path: Path, name: str, text: str) -> None:
    """Replace this benchmark's block (between ``<!-- name:start -->`` and ``<!-- name:end -->``) in
    RESULTS.md, keeping the other benchmarks' sections; the block goes first if it is new."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{text.rstrip()}\n{end}\n"
    old = path.read_text() if path.exists() else ""
    if start in old and end in old:
        new = old[: old.index(start)] + block + old[old.index(end) + len(end) :].lstrip("\n")
    else:
        new = block + ("\n" + old if old else "")
    path.write_text(new)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=ROOT / "feature_repo", help="built and applied feastline repo")
    parser.add_argument("--rows", type=int, default=None, help="first N flights only (default: all)")
    parser.add_argument("--file-store-rows", type=int, default=2000, help="entity rows for Feast's file store")
    parser.add_argument("--file-store-timeout", type=float, default=300, help="seconds before the file store is killed")
    parser.add_argument("--timeout", type=float, default=300, help="seconds before any other variant is killed")
    parser.add_argument("--variants", nargs="+", choices=list(LABELS), default=list(LABELS))
    parser.add_argument("--results", type=Path, default=BENCH / "RESULTS.md")
    args = parser.parse_args()
    command = invocation(__file__)
    repo = args.repo.resolve()
    began = time.monotonic()
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")

    flights = pd.read_parquet(repo / "data" / "flights.parquet")
    flights = flights.head(args.rows) if args.rows else flights
    entity_df = flights.assign(**{ROW_ID: range(len(flights))})[ENTITY_COLUMNS].reset_index(drop=True)
    subset = entity_df.head(args.file_store_rows)

    outcomes: list[Outcome] = []
    setup: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="feastline-bench-") as tmp:
        work = Path(tmp)
        full_path, subset_path = work / "entities.parquet", work / "entities_subset.parquet"
        entity_df.to_parquet(full_path, index=False)
        subset.to_parquet(subset_path, index=False)
        for variant in args.variants:
            t0 = time.monotonic()
            if variant == "feastline":
                target = repo
            elif variant == "http":
                target = copy_repo(repo, work / "repo_http")  # the server stores its training sets here
            else:
                store = variant.removeprefix("feast_")
                target = copy_repo(repo, work / f"repo_{store}", offline_store=store)
                feast_apply(target, work / f"apply_{store}.log")
            setup[variant] = time.monotonic() - t0
            entities = subset_path if variant == "feast_file" else full_path
            timeout = args.file_store_timeout if variant == "feast_file" else args.timeout
            outcomes.append(run_child(variant, target, entities, work, timeout))

        print("-- reference (pandas merge_asof) and comparison ...", flush=True)
        t0 = time.monotonic()
        reference = reference_frame(repo / "data", entity_df)
        reference_s = time.monotonic() - t0
        for o in outcomes:
            if o.failure:
                continue
            output = pd.read_parquet(work / f"{o.variant}.out.parquet")
            expected = reference if o.entity_rows == len(reference) else reference.head(o.entity_rows)
            o.comparison = compare(output, expected, COMPARED)

    total_s = time.monotonic() - began
    info = machine()
    report = "\n".join(
        [
            "# Training-set retrieval: feastline vs Feast",
            "",
            "Written by `bench/training_set.py`; every number below was measured by the run it describes.",
            "",
            f"- command: `{command}` (from the project root)",
            f"- date: {when}; whole run {total_s:.0f} s (reference {reference_s:.1f} s; "
            + ", ".join(f"setup {k} {v:.1f} s" for k, v in setup.items())
            + ")",
            f"- machine: {info['nproc']} CPUs (`nproc`), {info['memory']} RAM, {info['cpu']}",
            f"- versions: Python {info['python']}, Feast {info['feast']}, DuckDB {info['duckdb']}, "
            f"pandas {info['pandas']}, pyarrow {info['pyarrow']}",
            f"- data: feature service `delay_model_v1` (origin_weather, TTL 3 h; carrier_daily_stats, TTL 2 days); "
            f"entity table = {len(entity_df):,} flights (row_id, origin, carrier, event_timestamp, label_delayed); "
            f"Feast's file store gets the first {len(subset):,}",
            "- each variant runs in its own fresh process; peak RSS is that process's high-water mark "
            "(MiB = 2^20 bytes), for HTTP the server's; the entity table is loaded before the clock starts",
            "- reference: pandas `merge_asof` per view (backward, exact matches allowed, tolerance = TTL) on "
            "the raw Parquet, `created == event_timestamp` checked; compared cell by cell on "
            f"{len(COMPARED)} columns (label + 12 features) as float64, NaN == NaN, rows aligned by row_id",
            "",
            table(outcomes),
            "",
            "## Targets (ratios to Feast's DuckDB store)",
            "",
            *ratios(outcomes),
            "",
            "## Details",
            "",
            *details(outcomes),
            "",
        ]
    )
    write_section(args.results, "training-set", report)
    print()
    print(table(outcomes))
    print()
    print("\n".join(ratios(outcomes)))
    print(f"\nwrote {args.results} ({total_s:.0f} s)")


if __name__ == "__main__":
    main()
