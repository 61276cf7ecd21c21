"""``GET /health`` latency while online reads hit a frozen online store: feastline now vs before its worker pools.

Setup: a private ``redis-server`` on a free loopback port, a copy of ``feature_repo/`` on feastline's
ordered Redis store (``feast apply``, then ``feastline materialize`` up to the replay clock). For each
code tree (this one, and with ``--before REV`` that commit's ``service/``, ``lineage/`` and
``feature_repo/``, run through ``PYTHONPATH``), one ``feastline serve`` process, then two phases of
``--seconds`` each:

- ``store up``: online load (``bench/online_load.py``: closed loop, ``--concurrency`` clients, batch 1,
  the same body as ``bench/online.py``) and a ``/health`` prober;
- ``store frozen``: the same, with Redis stopped by ``SIGSTOP`` for the whole phase (``SIGCONT`` after).

The prober is a process of its own: ``GET /health`` on one keep-alive connection, one request every
``--interval`` seconds (the next one leaves when the previous answer arrived and the interval passed),
a client timeout of 30 s; latency = request sent to answer received, p50/p99 = nearest rank. Writes
the ``health`` section of ``bench/RESULTS.md``. Target: p99 ≤ 100 ms with the store frozen.
"""

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.append(str(Path(__file__).resolve().parent))  # after the code trees: bench/lineage.py is no package
from online import bodies  # noqa: E402
from online_load import run_load  # noqa: E402
from online_servers import child_env, free_port, prepare_repo, run_logged, serving  # noqa: E402

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
NOW = "2013-12-31T00:00:00Z"
TARGET_P99_MS = 100.0
MARKS = ("<!-- health:start -->", "<!-- health:end -->")
PHASES = ("store up", "store frozen")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] if ordered else math.nan


def probe(url: str, seconds: float, interval: float) -> dict[str, Any]:
    """The prober's body (run as ``--probe``): latencies (ms) and errors of sequential ``GET /health``."""
    latencies, errors = [], Counter[str]()
    deadline = time.perf_counter() + seconds
    with httpx.Client(timeout=30) as client:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            try:
                status = client.get(f"{url}/health").status_code
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            latencies.append((time.perf_counter() - start) * 1000)
            if status != 200:
                errors[str(status)] += 1
            time.sleep(max(0.0, interval - (time.perf_counter() - start)))
    return {"latencies_ms": latencies, "errors": dict(errors)}


def run_probe(url: str, seconds: float, interval: float, env: dict[str, str]) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--probe", url, str(seconds), str(interval)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=seconds + 120, check=True)
    return dict(json.loads(done.stdout))


def start_redis(port: int, log: Path) -> subprocess.Popen[bytes]:
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("redis-server is not installed")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 10
    while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout.strip() != b"PONG":
        if time.monotonic() > deadline:
            raise RuntimeError("redis-server did not start")
        time.sleep(0.05)
    return proc


def redis_repo(src: Path, dst: Path, port: int, log_dir: Path) -> Path:
    """A copy of the repo on the ordered Redis store (a project of its own), applied and materialized."""
    online = {"type": "service.online.stores.redis.OrderedRedisOnlineStore", "connection_string": f"127.0.0.1:{port}"}
    stores = {"project": f"bench_{uuid.uuid4().hex[:8]}", "online_store": online}
    repo = prepare_repo(src, dst, log_dir, stores)
    config = yaml.safe_load((repo / "feature_store.yaml").read_text())
    assert config["online_store"]["connection_string"] == f"127.0.0.1:{port}"
    feastline = [str(Path(sys.executable).parent / "feastline"), "materialize", "--repo", str(repo)]
    run_logged(feastline, log_dir / "materialize.log", repo, 300, env=child_env(FEASTLINE_NOW=NOW))
    return repo


def tree_of(rev: str, dst: Path) -> Path:
    """``service/``, ``lineage/`` and ``feature_repo/`` of commit ``rev``, extracted to ``dst``."""
    dst.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "service", "lineage", "feature_repo"], capture_output=True, check=True
    ).stdout
    archive_path = dst / "tree.tar"
    archive_path.write_bytes(archive)
    with tarfile.open(archive_path) as tar:
        tar.extractall(dst, filter="data")
    archive_path.unlink()
    return dst


def measure(
    label: str, tree: Path, repo: Path, redis: subprocess.Popen[bytes], args: argparse.Namespace, work: Path
) -> dict[str, Any]:
    env = child_env(FEASTLINE_NOW=NOW, PYTHONPATH=str(tree))
    body = json.dumps(bodies(repo / "data")[1]).encode()
    phases: dict[str, Any] = {}
    log = work / f"serve_{label.replace(' ', '_')}.log"
    with serving("feastline", repo, log, {}, env) as server:
        for phase in PHASES:
            load: dict[str, Any] = {}

            def run(load: dict[str, Any] = load) -> None:
                _, measured = run_load(
                    f"{server.base}/get-online-features", body, args.concurrency, 0, 10**9, args.seconds
                )
                load["statuses"] = dict(Counter({"200": measured.ok}) + measured.errors)
                load["requests"] = measured.requests

            loader = threading.Thread(target=run)
            loader.start()
            time.sleep(1.0)  # the load is on before the prober starts
            if phase == "store frozen":
                os.kill(redis.pid, signal.SIGSTOP)
            try:
                probed = run_probe(server.base, args.seconds - 2, args.interval, env)
            finally:
                if phase == "store frozen":
                    os.kill(redis.pid, signal.SIGCONT)
                loader.join()
            phases[phase] = {"probe": probed, "load": load}
            print(f"-- {label}, {phase}: health p99 {percentile(probed['latencies_ms'], 99):.1f} ms", flush=True)
            time.sleep(3)  # let timed-out reads come back before the next phase
    return phases


def section(results: dict[str, dict[str, Any]], args: argparse.Namespace, meta: dict[str, str]) -> str:
    lines = [
        "# `/health` while the online store is frozen",
        "",
        "Written by `bench/health_under_load.py`; every number below was measured by the run it describes.",
        "",
        f"- command: `{meta['command']}` (from the project root)",
        f"- date: {meta['date']}; whole run {meta['wall']}",
        f"- machine: {os.cpu_count()} CPUs (`nproc`); 1-min load average before {meta['load_before']}, after "
        f"{meta['load_after']} (other sessions may share the machine)",
        "- setup: a private `redis-server` on a free loopback port; a copy of `feature_repo/` on feastline's ordered "
        "Redis store, `feast apply`, `feastline materialize` up to the replay clock; one `feastline serve` process "
        f"per code tree, `FEASTLINE_NOW={NOW}`, every other setting at its default (store timeout 5 s, 8 online "
        "workers, 64 queued); Redis' client timeouts are feastline's (2 s)",
        f"- per phase, {args.seconds:g} s: online load (`bench/online_load.py`, closed loop, concurrency "
        f"{args.concurrency}, batch 1, `delay_model_v1`) started 1 s before a `/health` prober (its own process, one "
        f"keep-alive connection, one request every {args.interval * 1000:g} ms, client timeout 30 s); `store frozen`: "
        "Redis stopped with `SIGSTOP` while the prober runs, `SIGCONT` after; p50/p99 = nearest rank",
        "",
        "| code | phase | /health answers | p50 ms | p99 ms | max ms | /health errors | online answers |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]
    for label, phases in results.items():
        for phase, r in phases.items():
            lat = r["probe"]["latencies_ms"]
            statuses = ", ".join(f"{k}: {v:,}" for k, v in sorted(r["load"]["statuses"].items()))
            errors = ", ".join(f"{k}: {v}" for k, v in r["probe"]["errors"].items()) or "0"
            lines.append(
                f"| {label} | {phase} | {len(lat):,} | {percentile(lat, 50):.1f} | {percentile(lat, 99):.1f} | "
                f"{max(lat) if lat else math.nan:.1f} | {errors} | {statuses} |"
            )
    lines += ["", "## Target", ""]
    now = results["this tree"]["store frozen"]["probe"]
    p99 = percentile(now["latencies_ms"], 99)
    met = p99 <= TARGET_P99_MS and not now["errors"]
    lines.append(
        f"- `/health` p99 ≤ {TARGET_P99_MS:g} ms with the online store frozen (this tree): {p99:.1f} ms "
        f"→ {'met' if met else '**NOT met**'}"
    )
    lines += [
        "",
        "Online answers with the store frozen are 503 + `Retry-After` (`online-store-unavailable`) once the store "
        "timeout passes or Redis' client gives up (2 s socket timeout, one retry), or at once (`overloaded`) when "
        "the online pool is full. Before the worker pools the online read ran on the event loop, so every request, "
        "`/health` included, waited behind each read in progress: behind the Redis round trips when the store was "
        "up, behind the frozen reads when it was not (the prober's client gave up after 30 s).",
    ]
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--probe":
        print(json.dumps(probe(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=ROOT / "feature_repo", help="repo whose data/ is built")
    parser.add_argument("--before", help="also measure this commit's code (e.g. the commit before the worker pools)")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--interval", type=float, default=0.02)
    parser.add_argument("--results", type=Path, default=BENCH / "RESULTS.md")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    command = shlex.join([os.path.relpath(sys.executable, ROOT), os.path.relpath(__file__, ROOT), *sys.argv[1:]])
    began = time.monotonic()
    meta = {"command": command, "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")}
    meta["load_before"] = f"{os.getloadavg()[0]:.2f}"
    with tempfile.TemporaryDirectory(prefix="feastline-health-") as tmp:
        work = Path(tmp)
        port = free_port()
        redis = start_redis(port, work / "redis.log")
        try:
            repo = redis_repo(args.repo.resolve(), work / "repo", port, work)
            trees = {"this tree": ROOT}
            if args.before:
                trees[f"before (`{args.before}`)"] = tree_of(args.before, work / "before")
            results = {label: measure(label, tree, repo, redis, args, work) for label, tree in trees.items()}
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(redis.pid, signal.SIGCONT)
            redis.terminate()
            redis.wait(10)
    meta["load_after"] = f"{os.getloadavg()[0]:.2f}"
    meta["wall"] = f"{time.monotonic() - began:.0f} s"
    text = section(results, args, meta)
    write_section_between(args.results, text)
    print(text)


def write_section_between(results: Path, text: str, marks: tuple[str, str] = MARKS) -> None:
    """Replace the text between the ``marks`` (this bench's by default) in ``results``, or append the block."""
    start, end = marks
    current = results.read_text() if results.exists() else ""
    block = f"{start}\n{text.strip()}\n{end}\n"
    if start in current and end in current:
        head, rest = current.split(start, 1)
        tail = rest.split(end, 1)[1].lstrip("\n")
        current = head + block + (("\n" + tail) if tail else "")
    else:
        current = current.rstrip("\n") + "\n\n" + block if current.strip() else block
    results.write_text(current)


if __name__ == "__main__":
    main()
