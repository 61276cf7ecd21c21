"""Monitoring benchmarks, online part (issue #12, parts 3 and 4): online logging cost and parity time.

    .venv/bin/python bench/monitoring_online.py [--requests 3000] [--rounds 2] [--parity-requests 100000]
        [--repo BUILT_REPO]

One run on a temporary copy of ``feature_repo/`` built from the real data, applied and materialized
(or, with ``--repo``, a copy of that built, applied and materialized repo, its online log left out):

1. **Online logging.** ``feastline serve`` (1 worker, ``FEASTLINE_NOW=2013-12-31T00:00:00Z``) is started
   alternately with logging off (``FEASTLINE_ONLINE_LOG_ENABLED=false``) and on (the demo's
   ``delay_model_v1`` tag ``feastline.log_sample_rate=1.0``), ``--rounds`` times each, one server at a
   time; each serves ``--requests`` sequential ``POST /get-online-features`` (batch 1 and batch 100,
   after 300 warm-up requests) from the load client of ``bench/online_load.py``. p99 per variant is
   over all its rounds' latencies. Target: p99 on ≤ 1.1× p99 off, per batch. The logged records
   are counted at the end (``/metrics``: logged + dropped = served).
2. **Parity.** ``--parity-requests`` online reads of single flights (origin, carrier, one per request,
   the first flights of the year) are logged at the replay clock (values read through the online
   store in batches of 10,000, split into one record per request, written as log partitions), then
   ``parity_report`` over them is timed in process against a training set of the same entity rows
   (entity table validation + ``get_training_frame``, as ``POST /training-sets`` joins). Target:
   parity ≤ 2× the training set.

Writes its section of ``bench/RESULTS.md`` between ``<!-- monitoring-online:start -->`` and
``<!-- monitoring-online:end -->``.
"""

import argparse
import datetime as dt
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
import pandas as pd
from online_load import LoadResult, run_load
from online_servers import VENV_BIN, child_env, materialize_in_process, serving
from training_set import machine

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from feature_repo.pipeline.run import build_data  # noqa: E402
from service.monitoring.online_log import LogRecord, read_log, write_partition  # noqa: E402
from service.monitoring.parity import parity_report  # noqa: E402
from service.online.reads import OnlineFeaturesRequest, read_online  # noqa: E402
from service.registry import open_feature_store  # noqa: E402
from service.settings import Settings  # noqa: E402
from service.training.entity_rows import entity_frame_from_table  # noqa: E402
from service.training.offline.engine import JoinOptions, get_training_frame  # noqa: E402
from service.training.offline.views import plan_retrieval, service_references  # noqa: E402

NOW = dt.datetime(2013, 12, 31, tzinfo=dt.UTC)
SERVICE = "delay_model_v1"
RESULTS = PROJECT / "bench" / "RESULTS.md"
START, END = "<!-- monitoring-online:start -->", "<!-- monitoring-online:end -->"
REPO_FILES = ("feature_store.yaml", ".feastignore", "definitions.py", "schemas.py")


def build_repo(root: Path) -> Path:
    repo = root / "repo"
    repo.mkdir()
    for name in REPO_FILES:
        shutil.copy(PROJECT / "feature_repo" / name, repo / name)
    build_data(repo)
    subprocess.run([str(VENV_BIN / "feastline"), "apply", "--repo", str(repo)], check=True, capture_output=True)
    materialize_in_process(repo, root)
    return repo


def copy_built_repo(src: Path, root: Path) -> Path:
    """A copy of a built repo (``tests.conftest.copy_repo``: its SQLite lineage database by the backup
    API), without its online log."""
    from tests.conftest import copy_repo

    return copy_repo(src, root / "repo", ignore=("online_log", "__pycache__"))


def bodies(repo: Path) -> dict[int, bytes]:
    flights = pd.read_parquet(repo / "data" / "flights.parquet", columns=["origin", "carrier"]).head(100)
    return {
        n: orjson.dumps(
            {
                "feature_service": SERVICE,
                "entities": {
                    "origin": flights["origin"].head(n).tolist(),
                    "carrier": flights["carrier"].head(n).tolist(),
                },
            }
        )
        for n in (1, 100)
    }


def counted(base: str) -> dict[str, float]:
    out = {}
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        if m := re.match(r'feastline_online_log_records_total\{feature_service="[^"]+",outcome="(\w+)"\} (\S+)', line):
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(2))
        elif line.startswith("feastline_requests_total{") and "/get-online-features" in line and 'status="200"' in line:
            out["served"] = out.get("served", 0.0) + float(line.rpartition(" ")[2])
    return out


def online_phase(repo: Path, root: Path, requests: int, rounds: int) -> dict[tuple[str, int], list[LoadResult]]:
    results: dict[tuple[str, int], list[LoadResult]] = {}
    load_bodies = bodies(repo)
    counts: dict[str, float] = {}
    for r in range(rounds):
        for variant in ("off", "on") if r % 2 == 0 else ("on", "off"):
            env = child_env(FEASTLINE_NOW=NOW.isoformat(), FEASTLINE_ONLINE_LOG_ENABLED=str(variant == "on").lower())
            probe = orjson.loads(load_bodies[1])
            with serving("feastline serve", repo, root / f"serve_{variant}_{r}.log", probe, env) as server:
                for batch, body in load_bodies.items():
                    _, measured = run_load(f"{server.base}/get-online-features", body, 1, 300, requests, 120)
                    results.setdefault((variant, batch), []).append(measured)
                if variant == "on":
                    time.sleep(1.5)  # one flush interval: the last records written
                    for k, v in counted(server.base).items():
                        counts[k] = counts.get(k, 0.0) + v
    results[("counts", 0)] = counts  # type: ignore[assignment]
    return results


def pooled(runs: list[LoadResult]) -> LoadResult:
    out = LoadResult(runs[0].concurrency)
    for r in runs:
        out.latencies_ms += r.latencies_ms
        out.errors.update(r.errors)
        out.elapsed_s += r.elapsed_s
    return out


def write_log(repo: Path, settings: Settings, n: int) -> pd.DataFrame:
    """Log ``n`` single-flight reads (real online values) at the replay clock; their entity rows."""
    store = open_feature_store(repo)
    flights = pd.read_parquet(repo / "data" / "flights.parquet", columns=["origin", "carrier"]).head(n)
    sequence = 0
    for start in range(0, n, 10_000):
        chunk = flights.iloc[start : start + 10_000]
        req = OnlineFeaturesRequest(
            feature_service=SERVICE,
            entities={"origin": chunk["origin"].tolist(), "carrier": chunk["carrier"].tolist()},
        )
        answer = read_online(store, req, NOW, max_entities=10_000)
        names, results = answer["metadata"]["feature_names"][2:], answer["results"][2:]
        records = []
        for i in range(len(chunk)):
            one = [
                {
                    "values": [r["values"][i]],
                    "statuses": [r["statuses"][i]],
                    "event_timestamps": [r["event_timestamps"][i]],
                }
                for r in results
            ]
            entities = {"origin": [req.entities["origin"][i]], "carrier": [req.entities["carrier"][i]]}
            records.append(LogRecord(f"r{sequence}", NOW, sequence, SERVICE, entities, names, one))
            sequence += 1
        write_partition(settings.online_log_path, SERVICE, NOW.strftime("%Y-%m-%dT%H"), records, store)
    return flights


def parity_phase(repo: Path, n: int, repeat: int) -> dict[str, float]:
    settings = Settings(repo=repo, now=NOW)
    shutil.rmtree(settings.online_log_path, ignore_errors=True)
    t0 = time.perf_counter()
    flights = write_log(repo, settings, n)
    write_s = time.perf_counter() - t0
    store = open_feature_store(repo)
    window = (NOW, NOW + dt.timedelta(seconds=1))
    logged = len(read_log(settings, *window, SERVICE))
    out: dict[str, float] = {"logged_rows": logged, "write_log_s": write_s}
    times: dict[str, list[float]] = {"training_set_s": [], "parity_s": [], "read_log_s": []}
    for attempt in range(1 + repeat):  # the first warms the prepared sources; medians of the others
        plan = plan_retrieval(store, service_references(store, SERVICE), SERVICE)
        t0 = time.perf_counter()
        entity = flights.assign(event_timestamp=pd.Timestamp(NOW))
        frame = get_training_frame(entity_frame_from_table(entity, plan), plan, JoinOptions()).frame
        t1 = time.perf_counter()
        report = parity_report(store, settings, SERVICE, *window)
        t2 = time.perf_counter()
        read_log(settings, *window, SERVICE)
        t3 = time.perf_counter()
        if attempt:
            for key, seconds in zip(times, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                times[key].append(seconds)
    out |= {key: statistics.median(values) for key, values in times.items()}
    out["rows"] = len(frame)
    out["parity_rows"] = report["rows"]
    out["match_rate"] = report["match_rate"] or 0.0
    out["mismatches"] = report["mismatch_count"]
    return out


def render(args: argparse.Namespace, online: dict, parity: dict[str, float], wall: float) -> str:
    counts = online.pop(("counts", 0))
    lines = [
        START,
        "# Monitoring, online part: online logging cost and online/offline parity",
        "",
        "Written by `bench/monitoring_online.py`; every number below was measured by the run it describes.",
        "",
        f"- command: `.venv/bin/python bench/monitoring_online.py --requests {args.requests} --rounds {args.rounds} "
        f"--parity-requests {args.parity_requests} --parity-repeat {args.parity_repeat}"
        + (f" --repo {args.repo}" if args.repo else "")
        + "`",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; whole run {wall:.0f} s",
        f"- machine: {machine()}",
        "- online: `feastline serve`, 1 worker, SQLite online store, `delay_model_v1`, sequential client "
        f"(concurrency 1), {args.requests} measured requests per round after 300 warm-up, {args.rounds} round(s) "
        "per variant, servers alternated, one at a time",
        "",
        "| batch | logging | requests | errors | p50 ms | p99 ms |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    targets = []
    for batch in (1, 100):
        p99 = {}
        for variant in ("off", "on"):
            r = pooled(online[(variant, batch)])
            p99[variant] = r.percentile(99)
            errors = sum(r.errors.values())
            lines.append(
                f"| {batch} | {variant} | {r.requests:,} | {errors} | {r.percentile(50):.2f} | {p99[variant]:.2f} |"
            )
        ratio = p99["on"] / p99["off"]
        targets.append(
            f"- batch {batch}: p99 logging on ≤ 1.1× off: {p99['on']:.2f} ms / {p99['off']:.2f} ms = "
            f"**{ratio:.3f}×** → " + ("met" if ratio <= 1.1 else "not met")
        )
    ratio = parity["parity_s"] / parity["training_set_s"]
    lines += [
        "",
        f"Log records of the logging-on servers (`/metrics`): logged {counts.get('logged', 0):,.0f}, dropped "
        f"{counts.get('dropped', 0):,.0f}, failed {counts.get('failed', 0):,.0f}; online reads they answered with 200 "
        f"{counts.get('served', 0):,.0f} (the load client's and the readiness probes).",
        "",
        f"Parity: {args.parity_requests:,} logged single-flight reads (`delay_model_v1`, {parity['parity_rows']:,.0f} "
        f"rows read back), written in {parity['write_log_s']:.1f} s (not timed against the target); medians of "
        f"{args.parity_repeat} runs after a warm-up, the training set and the report alternating.",
        "",
        "| step | seconds |",
        "|---|---:|",
        f"| training set of the same entity rows (validation + `get_training_frame`) "
        f"| {parity['training_set_s']:.2f} |",
        f"| `parity_report` (read log + replay + compare + causes) | {parity['parity_s']:.2f} |",
        f"| of which `read_log` alone | {parity['read_log_s']:.2f} |",
        "",
        f"Parity found match rate {parity['match_rate']:.6f}, {parity['mismatches']:,.0f} mismatching values.",
        "",
        "## Targets",
        "",
        *targets,
        f"- parity over {args.parity_requests:,} logged requests ≤ 2× the training set: {parity['parity_s']:.2f} s / "
        f"{parity['training_set_s']:.2f} s = **{ratio:.2f}×** → " + ("met" if ratio <= 2 else "not met"),
        END,
    ]
    return "\n".join(lines)


def write_results(section: str) -> None:
    text = RESULTS.read_text() if RESULTS.exists() else ""
    if START in text and END in text:
        text = text[: text.index(START)] + section + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    RESULTS.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--parity-requests", type=int, default=100_000)
    parser.add_argument("--parity-repeat", type=int, default=5, help="measured parity runs (medians)")
    parser.add_argument("--repo", type=Path, default=None, help="a built, applied and materialized repo to copy")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="feastline-bench-monitoring-") as tmp:
        root = Path(tmp)
        os.environ.pop("FEASTLINE_NOW", None)
        repo = copy_built_repo(args.repo, root) if args.repo else build_repo(root)
        online = online_phase(repo, root, args.requests, args.rounds)
        parity = parity_phase(repo, args.parity_requests, args.parity_repeat)
    section = render(args, online, parity, time.perf_counter() - started)
    write_results(section)
    print(section)


if __name__ == "__main__":
    main()
