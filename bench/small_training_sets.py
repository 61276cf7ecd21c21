"""Small training sets: latency and throughput of a 100-row ``POST /training-sets`` (JSON in and out) on a
running ``feastline serve``, side by side with Feast's ``get_historical_features`` (DuckDB offline store)
on the same 100 rows in process.

- data: feature service ``delay_model_v1``; 100 flights drawn once (seed 13) from the real flights,
  each request the same 100 rows (every request is stored as a new training set: Parquet files, catalog
  row, lineage node, OpenLineage events, as any client's would be).
- latency: ``--requests`` sequential requests after ``--warmup`` ones, wall time client-side until the
  whole answer is read (HTTP keep-alive, one client); Feast: ``--requests`` calls of
  ``get_historical_features(...).to_df()`` in one warm process (Feast's own cost per call, no HTTP).
- throughput: ``--clients`` concurrent clients (threads, one keep-alive connection each) for
  ``--seconds`` s; answers per second, and every answer that is not a 201 counted as an error.
- targets (issue #11): p50 <= 30 ms and >= 20 sets/s.

Run: ``.venv/bin/python bench/small_training_sets.py`` (after ``make materialize``); writes its section of
``bench/RESULTS.md``.
"""

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from online_servers import child_env, prepare_repo, serving  # noqa: E402
from repos import copy_repo, feast_apply  # noqa: E402
from training_set import invocation, machine, write_section  # noqa: E402

SERVICE = "delay_model_v1"
FEAST_CHILD = """
import contextlib, json, statistics, sys, time
import pandas as pd
from feast import FeatureStore
repo, entities, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
entity_df = pd.read_parquet(entities)
with contextlib.chdir(repo):
    store = FeatureStore(repo_path=".")
    service = store.get_feature_service("delay_model_v1")
    for _ in range(3):
        store.get_historical_features(entity_df=entity_df, features=service).to_df()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        store.get_historical_features(entity_df=entity_df, features=service).to_df()
        times.append(time.perf_counter() - t)
print(json.dumps(times))
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def row(label: str, times: list[float]) -> str:
    """A table row: label, count, p50/p90/p99 in ms."""
    cells = [statistics.median(times), percentile(times, 0.9), percentile(times, 0.99)]
    return f"| {label} | {len(times)} | " + " | ".join(f"{t * 1e3:.1f}" for t in cells) + " |"


def sample(repo: Path) -> pd.DataFrame:
    flights = pd.read_parquet(repo / "data" / "flights.parquet")
    rows = flights.sample(100, random_state=13)[["origin", "carrier", "event_timestamp", "label_delayed"]]
    return rows.reset_index(drop=True)


def body_of(rows: pd.DataFrame) -> dict[str, Any]:
    entity_rows = [
        {
            "origin": r.origin,
            "carrier": r.carrier,
            "event_timestamp": pd.Timestamp(r.event_timestamp).isoformat(),
            "label_delayed": None if pd.isna(r.label_delayed) else int(r.label_delayed),
        }
        for r in rows.itertuples()
    ]
    return {"feature_service": SERVICE, "entity_rows": entity_rows}


def latency(base: str, body: dict[str, Any], warmup: int, n: int) -> list[float]:
    with httpx.Client(base_url=base, timeout=60) as client:
        for _ in range(warmup):
            client.post("/training-sets", json=body).raise_for_status()
        times = []
        for _ in range(n):
            t = time.perf_counter()
            answer = client.post("/training-sets", json=body)
            answer.read()
            times.append(time.perf_counter() - t)
            if answer.status_code != 201:
                raise RuntimeError(f"{answer.status_code}: {answer.text[:300]}")
    return times


def throughput(base: str, body: dict[str, Any], clients: int, seconds: float) -> tuple[int, Counter[str], list[float]]:
    statuses: Counter[str] = Counter()
    times: list[float] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def run() -> None:
        with httpx.Client(base_url=base, timeout=60) as client:
            while time.perf_counter() < deadline:
                t = time.perf_counter()
                try:
                    status = str(client.post("/training-sets", json=body).status_code)
                except httpx.HTTPError as err:
                    status = type(err).__name__
                with lock:
                    statuses[status] += 1
                    times.append(time.perf_counter() - t)

    threads = [threading.Thread(target=run) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses["201"], statuses, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=ROOT / "feature_repo")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--results", type=Path, default=BENCH / "RESULTS.md")
    args = parser.parse_args()
    command = invocation(__file__)
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    began = time.monotonic()
    rows = sample(args.repo)
    body = body_of(rows)
    with tempfile.TemporaryDirectory(prefix="feastline-small-") as tmp:
        work = Path(tmp)
        repo = prepare_repo(args.repo, work / "repo", work)
        env = child_env(FEASTLINE_NOW="2013-12-31T00:00:00Z")
        with serving("feastline serve", repo, work / "serve.log", {}, env) as server:
            lat = latency(server.base, body, args.warmup, args.requests)
            done, statuses, loaded = throughput(server.base, body, args.clients, args.seconds)
        feast_repo = copy_repo(args.repo, work / "repo_duckdb", offline_store="duckdb")
        feast_apply(feast_repo, work / "apply_duckdb.log")
        entities = work / "entities.parquet"
        rows.to_parquet(entities, index=False)
        out = subprocess.run(
            [sys.executable, "-c", FEAST_CHILD, str(feast_repo), str(entities), str(args.requests)],
            capture_output=True,
            text=True,
            check=True,
            timeout=900,
        )
        feast = json.loads(out.stdout.strip().splitlines()[-1])
    rate = done / args.seconds
    p50 = statistics.median(lat) * 1e3
    errors = {k: v for k, v in statuses.items() if k != "201"}
    m = machine()
    text = f"""# Small training sets (100 rows): feastline over HTTP vs Feast in process

Written by `bench/small_training_sets.py`; every number below was measured by the run it describes.

- command: `{command}` (from the project root)
- date: {when}; whole run {time.monotonic() - began:.0f} s
- machine: {m["nproc"]} CPUs, {m["memory"]}, {m["cpu"]}
- request: `POST /training-sets`, JSON, feature service `{SERVICE}`, the same 100 flights (seed 13) each time,
  every answer stored as a new training set (files, catalog, lineage, OpenLineage); SQLite lineage database
- Feast: `get_historical_features(...).to_df()` with the DuckDB offline store, same 100 rows, in process
  (no HTTP, no storage), after 3 warm-up calls

| variant | requests | p50 ms | p90 ms | p99 ms |
|---|---:|---:|---:|---:|
{row("feastline, HTTP, 1 client", lat)}
{row(f"feastline, HTTP, {args.clients} clients", loaded)}
{row("Feast DuckDB, in process", feast)}

- throughput, {args.clients} concurrent clients for {args.seconds:.0f} s: **{rate:.1f} training sets/s**
  ({done} answered 201; other outcomes: {errors or "none"})

## Targets

- p50 ≤ 30 ms (1 client): {p50:.1f} ms → {"met" if p50 <= 30 else "**NOT met**"}
- ≥ 20 training sets/s: {rate:.1f}/s → {"met" if rate >= 20 and not errors else "**NOT met**"}
"""
    write_section(args.results, "small-training-sets", text)
    print(text)


if __name__ == "__main__":
    main()
