"""Online serving and materialization, side by side: ``feastline serve`` against ``feast serve``.

    .venv/bin/python bench/online.py [--requests 2000] [--seconds 20] [--concurrency 8]

One run, one applied temporary copy of ``feature_repo/``, materialized once (``FeatureStore.materialize``
of 2012-12-01Z..2013-12-31Z, the replay clock; cwd = the copy), so both servers read the same SQLite online
store file:

1. each server in turn (1 worker, a free loopback port): ``feast serve`` and ``feastline serve`` (with
   ``FEASTLINE_NOW=2013-12-31T00:00:00Z`` so TTLs are evaluated in the 2013 replay);
2. the same ``POST /get-online-features`` bodies to both (feature service ``delay_model_v1``; batch 1 and
   batch 100); the answers are compared value by value, by feature name;
3. closed-loop load per (server, batch): ``--concurrency`` clients, then 1 client (sequential);
   p50 / p99 latency as seen by the client, requests/s, errors;
4. materialization (``bench/online_materialize.py``), each on a fresh applied copy: ``feast materialize``
   (this repo's stores, and Feast's stock ones) vs ``feastline materialize``, wall time of the command and
   source rows in the window per second, the online stores compared; then each engine timed in process.

Writes its section of ``bench/RESULTS.md`` between ``<!-- online:start -->`` and ``<!-- online:end -->``
(the rest of the file, the training-set benchmark, is left as it is).
"""

import argparse
import datetime as dt
import json
import math
import os
import shlex
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
from online_load import LoadResult, run_load
from online_materialize import (
    END,
    START,
    command_table,
    engine_table,
    online_rows,
    rows_in_window,
    store_difference,
    time_engines,
    time_materialization,
)
from online_servers import (
    VENV_BIN,
    child_env,
    group_cpu_seconds,
    materialize_in_process,
    prepare_repo,
    serving,
)
from training_set import invocation, machine

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SERVICE = "delay_model_v1"
ORIGINS = ("EWR", "JFK", "LGA")
NOW = "2013-12-31T00:00:00Z"
SERVERS = ("feast serve", "feastline")
TARGET_P99 = {1: 0.25, 100: 0.15}  # feastline p99 <= this x feast serve p99
TARGET_MATERIALIZE = 5.0  # feastline rows/s >= this x feast materialize rows/s
MARK_START, MARK_END = "<!-- online:start -->", "<!-- online:end -->"


def bodies(data: Path) -> dict[int, dict[str, Any]]:
    """Request body per batch size: batch 1 = EWR/UA; batch 100 cycles through the origins and the 16 carriers."""
    carriers = sorted(pd.read_parquet(data / "carrier_daily_stats.parquet", columns=["carrier"])["carrier"].unique())
    rows = range(100)
    return {
        1: {"feature_service": SERVICE, "entities": {"origin": ["EWR"], "carrier": ["UA"]}},
        100: {
            "feature_service": SERVICE,
            "entities": {
                "origin": [ORIGINS[i % len(ORIGINS)] for i in rows],
                "carrier": [carriers[i % len(carriers)] for i in rows],
            },
        },
    }


# -- answers -------------------------------------------------------------------------------------


def _by_name(answer: dict[str, Any]) -> dict[str, dict[str, list[Any]]]:
    return dict(zip(answer["metadata"]["feature_names"], answer["results"], strict=True))


def _same(a: Any, b: Any) -> bool:
    if a == b:
        return True
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=0.0)
    except (TypeError, ValueError):
        return False


@dataclass
class Agreement:
    cells: int = 0
    equal: int = 0
    withheld: int = 0  # feastline OUTSIDE_MAX_AGE where feast serve answered a value
    mismatches: list[str] = field(default_factory=list)
    status_only: list[str] = field(default_factory=list)  # same value, different status (e.g. null stored value)
    statuses: dict[str, dict[str, int]] = field(default_factory=dict)

    def summary(self) -> str:
        verdict = "same values" if not self.mismatches and not self.withheld else "DIFFERENT"
        text = f"{verdict}: {self.equal:,}/{self.cells:,} cells equal"
        if self.withheld:
            text += f", {self.withheld:,} withheld by feastline as OUTSIDE_MAX_AGE"
        if self.mismatches:
            text += f", {len(self.mismatches):,} mismatches (first: {self.mismatches[0]})"
        if self.status_only:
            text += (
                f"; {len(self.status_only):,} cells with equal values but different statuses "
                f"(first: {self.status_only[0]})"
            )
        return text


def compare_answers(feast: dict[str, Any], ours: dict[str, Any]) -> Agreement:
    """Compare two ``/get-online-features`` answers by feature name: values, statuses and event timestamps."""
    a, b = _by_name(feast), _by_name(ours)
    agreement = Agreement()
    if set(a) != set(b):
        agreement.mismatches.append(f"feature names differ: {sorted(set(a) ^ set(b))}")
    for name in sorted(set(a) & set(b)):
        for side, result in (("feast serve", a[name]), ("feastline", b[name])):
            counts = agreement.statuses.setdefault(side, {})
            for status in result["statuses"]:
                counts[status] = counts.get(status, 0) + 1
        rows = zip(a[name]["values"], b[name]["values"], a[name]["statuses"], b[name]["statuses"], strict=True)
        for i, (va, vb, sa, sb) in enumerate(rows):
            agreement.cells += 1
            if sb == "OUTSIDE_MAX_AGE" and sa == "PRESENT":
                agreement.withheld += 1
            elif _same(va, vb):
                agreement.equal += 1
                if sa != sb:
                    agreement.status_only.append(f"{name}[{i}]: feast {va!r} ({sa}) vs feastline {vb!r} ({sb})")
            else:
                agreement.mismatches.append(f"{name}[{i}]: feast {va!r} ({sa}) vs feastline {vb!r} ({sb})")
        stamps = zip(a[name]["event_timestamps"], b[name]["event_timestamps"], strict=True)
        for i, (ta, tb) in enumerate(stamps):
            if ta != tb and a[name]["statuses"][i] == "PRESENT":
                agreement.mismatches.append(f"{name}[{i}] event_timestamp: feast {ta} vs feastline {tb}")
    return agreement


# -- serving -----------------------------------------------------------------------------------------


@dataclass
class Served:
    server: str
    command: list[str]
    startup_s: float
    answers: dict[int, dict[str, Any]] = field(default_factory=dict)
    loads: dict[tuple[int, int], LoadResult] = field(default_factory=dict)
    cpu_ms: dict[tuple[int, int], float] = field(default_factory=dict)  # server CPU per request (warm-up included)


def serve_and_load(
    name: str, repo: Path, work: Path, reqs: dict[int, dict[str, Any]], args: argparse.Namespace
) -> Served:
    env = child_env(FEASTLINE_NOW=NOW) if name == "feastline" else child_env()
    log = work / f"serve_{name.replace(' ', '_')}.log"
    with serving(name, repo, log, reqs[1], env) as server:
        served = Served(name, server.command, server.startup_s)
        print(f"-- {name}: ready in {server.startup_s:.1f} s (pid {server.pid})", flush=True)
        url = f"{server.base}/get-online-features"
        for batch, body in reqs.items():
            answer = httpx.post(url, json=body, timeout=30)
            if answer.status_code != 200:
                raise RuntimeError(f"{name} batch {batch}: HTTP {answer.status_code}: {answer.text[:500]}")
            served.answers[batch] = answer.json()
            raw = json.dumps(body).encode()
            for concurrency, max_requests, max_seconds in (
                (args.concurrency, args.requests, args.seconds),
                (1, args.sequential_requests, args.sequential_seconds),
            ):
                cpu0 = group_cpu_seconds(server.pid)
                warm, result = run_load(url, raw, concurrency, args.warmup, max_requests, max_seconds)
                cpu = group_cpu_seconds(server.pid) - cpu0
                served.loads[batch, concurrency] = result
                served.cpu_ms[batch, concurrency] = cpu * 1000 / (warm.requests + result.requests)
                print(
                    f"   batch {batch:>3}, concurrency {concurrency}: {result.requests:,} requests in "
                    f"{result.elapsed_s:.1f} s, p50 {result.percentile(50):.2f} ms, "
                    f"p99 {result.percentile(99):.2f} ms, "
                    f"{result.rps:,.0f} req/s, errors {dict(result.errors) or 0}",
                    flush=True,
                )
    return served


# -- report ----------------------------------------------------------------------------------------


def _display(cmd: list[str], repo_marker: dict[str, str]) -> str:
    text = shlex.join(os.path.relpath(c, ROOT) if c.startswith(str(VENV_BIN)) else c for c in cmd)
    for path, label in repo_marker.items():
        text = text.replace(path, label)
    return text


def load_table(served: dict[str, Served], batch: int, concurrencies: list[int]) -> list[str]:
    lines = [
        "| server | concurrency | requests | p50 ms | p99 ms | req/s | errors | server CPU ms/req |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for concurrency in concurrencies:
        for name in SERVERS:
            r = served[name].loads[batch, concurrency]
            errors = ", ".join(f"{k}: {v}" for k, v in r.errors.items()) or "0"
            lines.append(
                f"| {name} | {concurrency} | {r.requests:,} | {r.percentile(50):.2f} | {r.percentile(99):.2f} "
                f"| {r.rps:,.0f} | {errors} | {served[name].cpu_ms[batch, concurrency]:.2f} |"
            )
    return lines


def ratio_lines(served: dict[str, Served], concurrency: int) -> list[str]:
    lines = []
    for batch, limit in TARGET_P99.items():
        ours = served["feastline"].loads[batch, concurrency].percentile(99)
        theirs = served["feast serve"].loads[batch, concurrency].percentile(99)
        ratio = ours / theirs
        verdict = "met" if ratio <= limit else "**NOT met**"
        lines.append(
            f"- batch {batch}, concurrency {concurrency}: feastline p99 ≤ {limit:g}× feast serve: "
            f"{ours:.2f} ms / {theirs:.2f} ms = **{ratio:.3f}×** → {verdict}"
        )
    return lines


def informative_ratios(served: dict[str, Served], concurrencies: list[int]) -> list[str]:
    lines = []
    for batch in TARGET_P99:
        for concurrency in concurrencies:
            ours, theirs = (
                served["feastline"].loads[batch, concurrency],
                served["feast serve"].loads[batch, concurrency],
            )
            lines.append(
                f"- batch {batch}, concurrency {concurrency}: p50 {ours.percentile(50) / theirs.percentile(50):.3f}×, "
                f"p99 {ours.percentile(99) / theirs.percentile(99):.3f}×, req/s {ours.rps / theirs.rps:.2f}×"
            )
    return lines


def write_section(results: Path, section: str) -> None:
    """Replace the text between the markers, or append the block if the markers are not there."""
    text = results.read_text() if results.exists() else ""
    block = f"{MARK_START}\n{section.strip()}\n{MARK_END}\n"
    if MARK_START in text and MARK_END in text:
        head, rest = text.split(MARK_START, 1)
        tail = rest.split(MARK_END, 1)[1].lstrip("\n")
        text = head + block + (("\n" + tail) if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block if text.strip() else block
    results.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=ROOT / "feature_repo", help="repo whose data/ is built")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=200, help="requests discarded before each measurement")
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per (server, batch)")
    parser.add_argument("--seconds", type=float, default=20, help="measurement cap per (server, batch), seconds")
    parser.add_argument("--sequential-requests", type=int, default=500)
    parser.add_argument("--sequential-seconds", type=float, default=10)
    parser.add_argument("--results", type=Path, default=BENCH / "RESULTS.md")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup (finally blocks) on SIGTERM
    command = invocation(__file__)
    src = args.repo.resolve()
    began = time.monotonic()
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    reqs = bodies(src / "data")
    window_rows = rows_in_window(src / "data")

    with tempfile.TemporaryDirectory(prefix="feastline-online-") as tmp:
        work = Path(tmp)
        t0 = time.monotonic()
        repo = prepare_repo(src, work / "repo_serve", work)
        apply_s = time.monotonic() - t0
        once_s = materialize_in_process(repo, work)
        print(f"-- serve repo applied ({apply_s:.1f} s) and materialized once ({once_s:.1f} s): {repo}", flush=True)
        load_before = os.getloadavg()[0]
        served = {name: serve_and_load(name, repo, work, reqs, args) for name in SERVERS}
        load_after = os.getloadavg()[0]
        agreements = {
            batch: compare_answers(served["feast serve"].answers[batch], served["feastline"].answers[batch])
            for batch in reqs
        }
        serve_store = online_rows(repo / "data" / "online_store.db")
        timing = time_materialization(src, work)
        engines = time_engines(src, work)
        stores = {tool: online_rows(t["db"]) for tool, t in timing.items()}
        markers = {str(repo): "<copy>"} | {str(t["repo"]): "<fresh copy>" for t in timing.values()}
    total_s = time.monotonic() - began

    info = machine()
    rows_total = sum(window_rows.values())
    concurrencies = [args.concurrency, 1]
    mat_lines = command_table(timing, rows_total)
    engine_lines = engine_table(engines, rows_total)
    feast_rate = rows_total / timing["feast materialize"]["wall_s"]
    ours_rate = rows_total / timing["feastline materialize"]["wall_s"]
    mat_ratio = ours_rate / feast_rate
    mat_verdict = "met" if mat_ratio >= TARGET_MATERIALIZE else "**NOT met**"
    served_lines = [
        f"- `{name}`: `{_display(s.command, markers)}` — ready after {s.startup_s:.1f} s" for name, s in served.items()
    ]
    section = "\n".join(
        [
            "# Online serving and materialization: feastline vs feast serve",
            "",
            "Written by `bench/online.py`; every number below was measured by the run it describes.",
            "",
            f"- command: `{command}` (from the project root)",
            f"- date: {when}; whole run {total_s:.0f} s",
            f"- machine: {info['nproc']} CPUs (`nproc`), {info['memory']} RAM, {info['cpu']}",
            f"- versions: Python {info['python']}, Feast {info['feast']}, DuckDB {info['duckdb']}, "
            f"pandas {info['pandas']}",
            f"- setup: a temporary copy of `feature_repo/` (definitions, `.feastignore`, `schemas.py`, `data/` without "
            f"its online store and registry), `feast apply` ({apply_s:.1f} s), then "
            f"`FeatureStore(copy).materialize({START}Z, {NOW})` once with cwd = the copy ({once_s:.1f} s); both "
            "servers read that same SQLite online store file (`service.online.stores.sqlite.OrderedSqliteOnlineStore`)",
            "- servers, one at a time, 1 worker each, loopback (feastline with "
            f"`FEASTLINE_NOW={NOW}`, so TTLs are evaluated in the replay); access logs on for both (their defaults):",
            *served_lines,
            f"- requests: `POST /get-online-features`, feature service `{SERVICE}` "
            "(origin_weather + carrier_daily_stats, "
            "12 features); batch 1 = EWR/UA; batch 100 = 100 rows cycling EWR/JFK/LGA × the 16 carriers; "
            "identical JSON bytes for both servers",
            "- load: closed loop from a separate client process (`bench/online_load.py`: uvloop streams, one "
            "pre-encoded HTTP/1.1 request, keep-alive, its GC frozen and off while measuring; the same client for "
            "both servers), "
            f"{args.warmup} warm-up "
            f"requests discarded, then {args.requests:,} requests or {args.seconds:g} s, whichever first, at "
            f"concurrency {args.concurrency}; then sequential (concurrency 1): {args.sequential_requests:,} requests "
            f"or {args.sequential_seconds:g} s; latency = client-side, request sent to body received; "
            "p50/p99 = nearest rank; req/s = 200 answers / measurement wall time; server CPU ms/req = user + "
            "system CPU of the server's process group over warm-up + measurement, per request. Client and server "
            f"share the machine's CPUs; 1-min load average before the serving phase {load_before:.2f}, after "
            f"{load_after:.2f} (other sessions may run on this machine).",
            *(
                f"- answers, batch {b}: {a.summary()}; statuses feast serve {a.statuses.get('feast serve')}, "
                f"feastline {a.statuses.get('feastline')}"
                for b, a in agreements.items()
            ),
            "",
            "## Batch 1",
            "",
            *load_table(served, 1, concurrencies),
            "",
            "## Batch 100",
            "",
            *load_table(served, 100, concurrencies),
            "",
            "## Targets (ratios to feast serve)",
            "",
            *ratio_lines(served, args.concurrency),
            f"- materialization: feastline rows/s ≥ {TARGET_MATERIALIZE:g}× feast: "
            f"{ours_rate:,.0f} / {feast_rate:,.0f} "
            f"rows/s = **{mat_ratio:.2f}×** → {mat_verdict}",
            "",
            "All ratios, feastline / feast serve (informative):",
            "",
            *informative_ratios(served, concurrencies),
            "",
            "## Materialization",
            "",
            f"Each command on its own fresh applied copy (empty online store), cwd = the copy, window "
            f"[{START}Z, {END}Z); wall s = the whole command (process start, imports, registry, read, write). "
            "Source rows in window = rows of the Parquet files of the online views with "
            "`start <= event_timestamp < end`: " + ", ".join(f"{v} {n:,}" for v, n in window_rows.items()) + ".",
            "",
            *mat_lines,
            "",
            *(f"- `{tool}`: `{_display(t['command'], markers)}`" for tool, t in timing.items()),
            "- online store after `feastline materialize` vs after `feast materialize` (entity key, feature, value, "
            f"event ts): {store_difference(stores['feast materialize'], stores['feastline materialize'])}",
            "- online store served above (`FeatureStore.materialize` up to the replay clock, "
            f"{NOW}) vs after `feast materialize` (up to {END}Z; rows of the last day differ by design): "
            f"{store_difference(serve_store, stores['feast materialize'])}",
            "- online store after `feast materialize` with stock Feast stores vs after `feastline materialize`: "
            f"{store_difference(stores['feast materialize (stock Feast stores)'], stores['feastline materialize'])}",
            "",
            "The same window, each engine timed inside a fresh process of its own (`bench/materialize_inproc.py`, "
            "fresh applied copy, cwd = the copy): what the commands above spend beyond start-up. Stock Feast stores "
            "= `offline_store: file`, `online_store: sqlite` (Feast's defaults); this repo's stores = feastline's "
            "offline store plug-in (which hands materialization reads to Feast's DuckDB store) and its ordered "
            "SQLite online store.",
            "",
            *engine_lines,
        ]
    )
    write_section(args.results, section)
    print()
    print(section)
    print(f"\nwrote the online section of {args.results} ({total_s:.0f} s)")
    errors = sum(sum(r.errors.values()) for s in served.values() for r in s.loads.values())
    if errors:
        sys.exit(f"{errors} requests failed")


if __name__ == "__main__":
    main()
