"""What the online worker pool costs an online read: in process, and over HTTP, before and after.

The online read used to run on the event loop, for latency (a thread hand-off per request cost more
than the read); it now runs on the bounded ``online`` pool (service/workers.py), so that a frozen store
cannot stall the loop. For each code tree (this one, and with ``--before REV`` that commit's
``service/``, ``lineage/`` and ``feature_repo/``, run through ``PYTHONPATH``), on a copy of the repo
(SQLite online store, ``FEASTLINE_NOW`` pinned), batch 1 and batch 100 (the bodies of ``bench/online.py``):

- in process: a child builds ``create_app``, runs its lifespan and calls the app with
  ``POST /get-online-features`` ASGI messages on a uvloop loop (as ``uvicorn`` runs it), no sockets,
  concurrency 1, after a warm-up; latency = app called to last body message sent. (At concurrency > 1
  in process, a read on the loop hides the others' waiting: they cannot even start. The HTTP rows
  measure that.)
- over HTTP: ``feastline serve`` (one process) and ``bench/online_load.py`` (closed loop, keep-alive,
  concurrency 8 and 1), as ``bench/online.py`` measures it.

Writes the ``online-pool`` section of ``bench/RESULTS.md``.
"""

import argparse
import asyncio
import datetime as dt
import gc
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent))  # after the tree measured: bench/lineage.py is no package
from health_under_load import tree_of, write_section_between  # noqa: E402
from online import bodies  # noqa: E402
from online_load import run_load  # noqa: E402
from online_servers import child_env, group_cpu_seconds, serving  # noqa: E402
from repos import copy_repo  # noqa: E402

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
NOW = "2013-12-31T00:00:00Z"
MARKS = ("<!-- online-pool:start -->", "<!-- online-pool:end -->")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


async def _call(app: Any, body: bytes) -> tuple[int, bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/get-online-features",
        "raw_path": b"/get-online-features",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"bench"),
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    sent = False
    status, chunks = 0, []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # no disconnect
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


async def _phase(app: Any, body: bytes, concurrency: int, requests: int) -> list[float]:
    latencies: list[float] = []
    issued = 0

    async def client() -> None:
        nonlocal issued
        while issued < requests:
            issued += 1
            start = time.perf_counter()
            status, _ = await _call(app, body)
            latencies.append((time.perf_counter() - start) * 1000)
            assert status == 200, status

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies


async def _measure(repo: Path, requests: int, warmup: int) -> dict[str, Any]:
    from service.app import create_app
    from service.settings import Settings

    app = create_app(Settings(repo=repo, now=NOW))
    out: dict[str, Any] = {}
    async with app.router.lifespan_context(app):
        for batch, req in bodies(repo / "data").items():
            body = json.dumps(req).encode()
            status, answer = await _call(app, body)
            assert status == 200, answer[:300]
            for concurrency in (1,):  # see the module docstring: > 1 in process hides the waiting
                await _phase(app, body, concurrency, warmup)
                gc.collect()
                cpu = time.process_time()
                wall = time.perf_counter()
                latencies = await _phase(app, body, concurrency, requests)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                out[f"{batch}/{concurrency}"] = {
                    "requests": len(latencies),
                    "p50": percentile(latencies, 50),
                    "p99": percentile(latencies, 99),
                    "rps": len(latencies) / wall,
                    "cpu_ms": cpu / len(latencies) * 1000,
                }
    return out


def run_child(tree: Path, repo: Path, requests: int, warmup: int) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEASTLINE_")} | {"PYTHONPATH": str(tree)}
    cmd = [sys.executable, "-P", __file__, "--measure", str(repo), str(requests), str(warmup)]  # -P: no bench/ first
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def run_http(tree: Path, repo: Path, work: Path, label: str, args: argparse.Namespace) -> dict[str, Any]:
    """``feastline serve`` from ``tree`` on ``repo``, loaded by ``bench/online_load.py``: per batch/concurrency."""
    env = child_env(FEASTLINE_NOW=NOW, PYTHONPATH=str(tree))
    out: dict[str, Any] = {}
    log = work / f"serve-{abs(hash(label))}-{time.monotonic_ns()}.log"
    with serving("feastline", repo, log, {}, env) as server:
        for batch, req in bodies(repo / "data").items():
            body = json.dumps(req).encode()
            for concurrency in (8, 1):
                before = group_cpu_seconds(server.pid)
                _, measured = run_load(
                    f"{server.base}/get-online-features", body, concurrency, args.warmup, args.requests, 30
                )
                assert not measured.errors, measured.errors
                out[f"{batch}/{concurrency}"] = {
                    "requests": measured.requests,
                    "p50": measured.percentile(50),
                    "p99": measured.percentile(99),
                    "rps": measured.rps,
                    "cpu_ms": (group_cpu_seconds(server.pid) - before) / (measured.requests + args.warmup) * 1000,
                }
    return out


def table(runs: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines = [
        "| code | batch | concurrency | p50 ms | p99 ms | req/s | CPU ms/req |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, results in runs.items():
        for key in results[0]:
            best = min((r[key] for r in results), key=lambda m: m["p99"])
            batch, concurrency = key.split("/")
            lines.append(
                f"| {label} | {batch} | {concurrency} | {best['p50']:.3f} | {best['p99']:.3f} | {best['rps']:,.0f} | "
                f"{best['cpu_ms']:.3f} |"
            )
    return lines


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--measure":
        import uvloop

        result = uvloop.run(_measure(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=ROOT / "feature_repo", help="built, applied, materialized")
    parser.add_argument("--before", help="also measure this commit's code")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2, help="alternate the trees this many times; best p99 kept")
    parser.add_argument("--results", type=Path, default=BENCH / "RESULTS.md")
    args = parser.parse_args()
    command = shlex.join([os.path.relpath(sys.executable, ROOT), os.path.relpath(__file__, ROOT), *sys.argv[1:]])
    began = time.monotonic()
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="feastline-pool-") as tmp:
        work = Path(tmp)
        trees = {"this tree (online pool)": ROOT}
        if args.before:
            trees[f"before (`{args.before}`, read on the loop)"] = tree_of(args.before, work / "before")
        inproc: dict[str, list[dict[str, Any]]] = {label: [] for label in trees}
        http: dict[str, list[dict[str, Any]]] = {label: [] for label in trees}
        for r in range(args.rounds):
            for i, (label, tree) in enumerate(trees.items()):
                repo = copy_repo(args.repo.resolve(), work / f"repo-{r}-{i}")
                inproc[label].append(run_child(tree, repo, args.requests, args.warmup))
                http[label].append(run_http(tree, repo, work, label, args))
                print(f"-- {label} round {r + 1}: {inproc[label][-1]} {http[label][-1]}", flush=True)
    wall = time.monotonic() - began
    lines = [
        "# Online reads: what the worker pool's hand-off costs",
        "",
        "Written by `bench/online_pool.py`; every number below was measured by the run it describes.",
        "",
        f"- command: `{command}` (from the project root)",
        f"- date: {date}; whole run {wall:.0f} s; 1-min load average before {load_before:.2f}, after "
        f"{os.getloadavg()[0]:.2f} (other sessions may share the machine); {os.cpu_count()} CPUs",
        "- a copy of `feature_repo/` (its SQLite online store as materialized), `FEASTLINE_NOW` pinned; bodies: "
        "`delay_model_v1`, batch 1 = EWR/UA, batch 100 = the 100 rows of `bench/online.py`; "
        f"{args.requests:,} measured requests per row after {args.warmup:,} warm-up ones; each tree run "
        f"{args.rounds} times, alternating, on a fresh repo copy; each row is the run with the lower p99",
        "",
        "## In process (the ASGI app called directly, uvloop, no sockets, concurrency 1)",
        "",
        "CPU ms/req = the child's process time over the measurement / requests.",
        "",
        *table(inproc),
        "",
        "## Over HTTP (`feastline serve`, `bench/online_load.py` closed loop, keep-alive)",
        "",
        "CPU ms/req = the server's user + system CPU over warm-up + measurement / those requests.",
        "",
        *table(http),
    ]
    text = "\n".join(lines)
    write_section_between(args.results, text, MARKS)
    print(text)


if __name__ == "__main__":
    main()
