"""One benchmark variant, run alone in a fresh process (so its peak RSS is its own).

    python bench/variants.py VARIANT --repo REPO --entities IN.parquet --out OUT.parquet --result R.json

VARIANT is ``feastline`` (the engine in process), ``http`` (``feastline serve`` + one Parquet
request), ``feast_duckdb`` or ``feast_file`` (Feast's ``get_historical_features`` on REPO, whose
``feature_store.yaml`` selects the store). The entity table is loaded before the clock starts. The
joined frame goes to OUT, the measurements to R (JSON): wall seconds of the retrieval, peak RSS
(MiB) of the process doing the work, rows out, and what the wall time includes.
"""

import argparse
import contextlib
import io
import json
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

SERVICE = "delay_model_v1"
PARQUET = "application/vnd.apache.parquet"
VENV_BIN = Path(sys.executable).parent


class VariantFailed(Exception):
    """The product refused or failed; ``diagnostic`` holds what could still be measured."""

    def __init__(self, message: str, diagnostic: dict[str, Any]):
        super().__init__(message)
        self.diagnostic = diagnostic


def self_peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _feastline(repo: Path, entity_df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    from feast import FeatureStore

    from service.training.offline import engine
    from service.training.offline.engine import JoinOptions, get_training_frame
    from service.training.offline.views import plan_retrieval, service_references

    store = FeatureStore(repo_path=str(repo))
    start = time.perf_counter()
    plan = plan_retrieval(store, service_references(store, SERVICE))
    planned = time.perf_counter()
    try:
        frame = get_training_frame(entity_df, plan, JoinOptions()).frame
    except Exception as exc:
        failed = time.perf_counter()
        t0 = time.perf_counter()
        engine.join_views(entity_df, plan.views, True)
        t1 = time.perf_counter()
        raise VariantFailed(
            f"{type(exc).__name__}: {exc}",
            {
                "time to the failure (plan + get_training_frame)": failed - start,
                "join_views alone (rerun, the join without audit and assembly)": t1 - t0,
                "peak RSS MiB of the process": self_peak_rss_mib(),
            },
        ) from exc
    done = time.perf_counter()
    rss = self_peak_rss_mib()
    # where the time goes: the same work again, section by section (after the measurement)
    t0 = time.perf_counter()
    joined = engine.join_views(entity_df, plan.views, True)
    t1 = time.perf_counter()
    engine.audit_join(entity_df[engine.TS], joined, plan.views, True)
    t2 = time.perf_counter()
    return frame, {
        "wall_s": done - start,
        "peak_rss_mib": rss,
        "includes": "plan_retrieval + get_training_frame (DuckDB ASOF join of both views, leakage audit, "
        "frame assembly)",
        "sections_s": {
            "plan_retrieval": planned - start,
            "get_training_frame": done - planned,
            "join_views (rerun)": t1 - t0,
            "audit_join (rerun)": t2 - t1,
        },
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _vm_hwm_mib(pid: int) -> float | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


@contextlib.contextmanager
def _server(repo: Path, log: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``feastline serve`` on a free loopback port; stopped (terminate, then kill) however the block ends."""
    import httpx

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [str(VENV_BIN / "feastline"), "serve", "--repo", str(repo), "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"feastline serve exited with {proc.returncode}; see {log}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"feastline serve not healthy after 90 s; see {log}")
            time.sleep(0.2)
        yield proc, base
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _http(repo: Path, entity_df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    import httpx

    buf = io.BytesIO()
    entity_df.to_parquet(buf, index=False)
    body = buf.getvalue()
    with _server(repo, repo / "serve.log") as (proc, base):
        rss_before = _vm_hwm_mib(proc.pid)
        start = time.perf_counter()
        answer = httpx.post(
            f"{base}/training-sets",
            params={"feature_service": SERVICE},
            content=body,
            headers={"content-type": PARQUET, "accept": PARQUET},
            timeout=600,
        )
        done = time.perf_counter()
        rss = _vm_hwm_mib(proc.pid)
    if answer.status_code != 201:
        try:
            problem = answer.json().get("detail") or answer.text
        except ValueError:
            problem = answer.text
        raise VariantFailed(
            f"POST /training-sets answered {answer.status_code}: {str(problem)[:300]}",
            {"time to the error answer (client)": done - start, "server peak RSS MiB (VmHWM)": rss},
        )
    decode_start = time.perf_counter()
    frame = pd.read_parquet(io.BytesIO(answer.content))
    decoded = time.perf_counter()
    return frame, {
        "wall_s": done - start,
        "peak_rss_mib": rss,
        "includes": "client-side POST /training-sets (Parquet in and out) until the body is received: "
        "upload, parse + validation, join, audit, storing the set (Parquet, catalog, lineage), encoding",
        "sections_s": {"decode answer (not in wall)": decoded - decode_start},
        "server_rss_after_startup_mib": rss_before,
        "request_mb": len(body) / 2**20,
        "answer_mb": len(answer.content) / 2**20,
        "rss_of": "server process (VmHWM)",
    }


def _feast(repo: Path, entity_df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    from feast import FeatureStore

    with contextlib.chdir(repo):  # Feast 0.67 resolves relative FileSource paths against the cwd
        store = FeatureStore(repo_path=".")
        service = store.get_feature_service(SERVICE)
        start = time.perf_counter()
        frame = store.get_historical_features(entity_df=entity_df, features=service).to_df()
        done = time.perf_counter()
    return frame, {
        "wall_s": done - start,
        "peak_rss_mib": self_peak_rss_mib(),
        "includes": "get_historical_features(...).to_df()",
    }


VARIANTS: dict[str, Callable[[Path, pd.DataFrame], tuple[pd.DataFrame, dict[str, Any]]]] = {
    "feastline": _feastline,
    "http": _http,
    "feast_duckdb": _feast,
    "feast_file": _feast,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant", choices=sorted(VARIANTS))
    parser.add_argument("--repo", type=Path, required=True)
    parser.add_argument("--entities", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args()
    sys.path.insert(0, os.getcwd())  # the project root, for `service`
    entity_df = pd.read_parquet(args.entities)
    try:
        frame, result = VARIANTS[args.variant](args.repo.resolve(), entity_df)
    except VariantFailed as exc:
        args.result.write_text(json.dumps({"error": str(exc), "diagnostic": exc.diagnostic}, indent=2))
        raise
    result.setdefault("rss_of", "this process (ru_maxrss)")
    result |= {"variant": args.variant, "entity_rows": len(entity_df), "rows_out": len(frame)}
    frame.to_parquet(args.out, index=False)
    args.result.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
