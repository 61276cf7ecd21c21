"""The walkthrough notebook runs top to bottom against a live ``feastline serve`` over the built repo.

The notebook's own ``assert`` cells check the product; this test adds that the server answered no
request with a 5xx (read from uvicorn's access log).
"""

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import nbclient
import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

from tests.conftest import REPLAY_NOW

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks_demo"
WALKTHROUGH = NOTEBOOKS / "walkthrough.ipynb"
STARTUP_SECONDS = 60
SERVER_ERROR = re.compile(r'HTTP/[\d.]+" 5\d\d ')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_health(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    """Poll ``GET /health`` until it answers 200; fail with the server's output if it never does."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"feastline serve exited with {server.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    pytest.fail(f"GET /health not 200 within {STARTUP_SECONDS} s; server output:\n{log.read_text()}")


@pytest.mark.slow
def test_walkthrough_runs_against_a_live_server(
    built_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    feastline = Path(sys.executable).parent / "feastline"
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [
                str(feastline),
                "serve",
                "--repo",
                str(built_repo),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--access-log",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "FEASTLINE_NOW": REPLAY_NOW.isoformat()},  # the 2013 replay, as `make serve`
        )
    try:
        wait_for_health(url, server, log)
        monkeypatch.setenv("FEASTLINE_URL", url)
        monkeypatch.setenv("FEASTLINE_REPO", str(built_repo))
        nb = nbformat.read(WALKTHROUGH, as_version=4)
        client = nbclient.NotebookClient(
            nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
        )
        try:
            client.execute()
        except CellExecutionError as err:
            pytest.fail(f"{err}\n--- server output ---\n{log.read_text()}")
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

    served = log.read_text()
    assert "POST /training-sets" in served, f"no training set was requested:\n{served}"
    errors = [line for line in served.splitlines() if SERVER_ERROR.search(line)]
    assert not errors, "5xx served:\n" + "\n".join(errors) + f"\n--- server output ---\n{served}"
