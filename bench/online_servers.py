"""Repo copies, materialization and HTTP servers (``feast serve``, ``feastline serve``) for ``bench/online.py``.

Every child runs in its own process group, so stopping it (SIGTERM, then SIGKILL) takes its workers
down too: gunicorn's arbiter and worker for ``feast serve``, uvicorn for ``feastline serve``.
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

VENV_BIN = Path(sys.executable).parent
REPO_FILES = ("feature_store.yaml", "definitions.py", ".feastignore", "schemas.py")
SKIPPED_DATA = ("training_sets", "online_store.db", "registry.db")  # a fresh online store and registry per copy
MATERIALIZE_ONCE = """
import contextlib, sys
from datetime import UTC, datetime
from feast import FeatureStore
with contextlib.chdir(sys.argv[1]):  # Feast 0.67 resolves relative Parquet paths against the cwd
    # up to the replay clock feastline serves at, so both servers hold the same "as of" values
    FeatureStore(repo_path=".").materialize(datetime(2012, 12, 1, tzinfo=UTC), datetime(2013, 12, 31, tzinfo=UTC))
"""


def child_env(**extra: str) -> dict[str, str]:
    """This environment without any ``FEASTLINE_*`` setting (the bench sets what it means), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEASTLINE_")}
    return env | extra


def run_logged(cmd: list[str], log: Path, cwd: Path, timeout: float, env: dict[str, str] | None = None) -> float:
    """Run ``cmd`` in its own process group; return its wall seconds; raise with the log's tail on failure."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env or child_env(), start_new_session=True
        )
    start = time.perf_counter()
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        code = None
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    wall = time.perf_counter() - start
    if code is None or code != 0:
        tail = log.read_text(errors="replace")[-1500:]
        how = f"timed out after {timeout:.0f} s" if code is None else f"exit status {code}"
        raise RuntimeError(f"{' '.join(cmd[:4])} ... {how}; log {log}:\n{tail}")
    return wall


#: Feast as it comes: its default offline store (``file``) and its own SQLite online store
STOCK_FEAST_STORES = {
    "offline_store": {"type": "file"},
    "online_store": {"type": "sqlite", "path": "data/online_store.db"},
}


def prepare_repo(src: Path, dst: Path, log_dir: Path, stores: dict[str, dict[str, str]] | None = None) -> Path:
    """Copy the repo's definitions and ``data/`` (no online store, registry, training sets), then ``feast apply``.

    ``stores`` replaces those sections of the copy's ``feature_store.yaml`` first (e.g. ``STOCK_FEAST_STORES``).
    """
    dst.mkdir(parents=True)
    for name in REPO_FILES:
        shutil.copy2(src / name, dst / name)
    shutil.copytree(src / "data", dst / "data", ignore=lambda _dir, names: [n for n in names if n in SKIPPED_DATA])
    if stores:
        config = yaml.safe_load((dst / "feature_store.yaml").read_text())
        (dst / "feature_store.yaml").write_text(yaml.safe_dump(config | stores, sort_keys=False))
    run_logged([str(VENV_BIN / "feast"), "-c", str(dst), "apply"], log_dir / f"apply_{dst.name}.log", dst, 240)
    return dst


def materialize_in_process(repo: Path, log_dir: Path) -> float:
    """``FeatureStore(repo).materialize(2012-12-01Z, 2013-12-31Z)`` in a child with cwd = repo; wall seconds."""
    return run_logged([sys.executable, "-c", MATERIALIZE_ONCE, str(repo)], log_dir / "materialize_once.log", repo, 240)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Server:
    name: str
    base: str
    pid: int
    command: list[str]
    startup_s: float


def _ready(name: str, base: str, probe: bytes) -> bool:
    """True once the server answers 200; a 4xx means the probe itself is wrong: raise rather than wait."""
    with contextlib.suppress(httpx.HTTPError):
        if name == "feast serve":
            headers = {"content-type": "application/json"}
            answer = httpx.post(f"{base}/get-online-features", content=probe, headers=headers, timeout=5)
        else:
            answer = httpx.get(f"{base}/health", timeout=5)
        if 400 <= answer.status_code < 500:
            raise RuntimeError(f"{name} readiness probe answered {answer.status_code}: {answer.text[:300]}")
        return answer.status_code == 200
    return False


def server_command(name: str, repo: Path, port: int) -> list[str]:
    """The command line of one server, 1 worker, on ``127.0.0.1:port``."""
    if name == "feast serve":
        # --max-requests 0: gunicorn would otherwise restart the only worker after ~1,000 requests,
        # mid-measurement (seconds without a worker); turning that off can only help feast serve.
        return [
            str(VENV_BIN / "feast"),
            "-c",
            str(repo),
            "serve",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "--workers",
            "1",
            "--max-requests",
            "0",
        ]
    return [str(VENV_BIN / "feastline"), "serve", "--repo", str(repo), "--host", "127.0.0.1", "--port", str(port)]


@contextlib.contextmanager
def serving(
    name: str, repo: Path, log: Path, probe: dict, env: dict[str, str], timeout: float = 120
) -> Iterator[Server]:
    """Start server ``name`` on a free loopback port; yield once ready; stop its process group however we leave."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = server_command(name, repo, port)
    probe_body = json.dumps(probe).encode()
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=repo, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    started = time.perf_counter()
    try:
        while not _ready(name, base, probe_body):
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; log {log}:\n{log.read_text()[-1500:]}")
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"{name} not ready after {timeout:.0f} s; log {log}:\n{log.read_text()[-1500:]}")
            time.sleep(0.25)
        yield Server(name, base, proc.pid, cmd, time.perf_counter() - started)
    finally:
        stop_group(proc)


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the child's process group, SIGKILL it after 10 s; reap the child."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        # the leader is gone; make sure no worker of the group outlives it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds consumed so far by the live processes of process group ``pgid``."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:  # fields: state, ppid, pgrp, ..., utime (11), stime (12)
                total += int(fields[11]) + int(fields[12])
    return total / tick
