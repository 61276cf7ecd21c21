"""A real ``feastline serve`` subprocess for tests that need HTTP over a socket (notebook, browser).

It serves the built repo under the 2013 replay clock (as ``make serve`` does), with the access log on,
and on exit asserts that no request was answered with a 5xx.
"""

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPLAY_NOW

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


@contextmanager
def live_server(repo: Path, log: Path, now: datetime = REPLAY_NOW) -> Iterator[str]:
    """Serve ``repo`` on a free loopback port under the clock ``now``; yields the base URL; the server's
    output goes to ``log``."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    feastline = Path(sys.executable).parent / "feastline"
    command = [str(feastline), "serve", "--repo", str(repo), "--host", "127.0.0.1", "--port", str(port), "--access-log"]
    with log.open("wb") as out:
        server = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "FEASTLINE_NOW": now.isoformat()}
        )
    try:
        wait_for_health(url, server, log)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    served = log.read_text()
    errors = [line for line in served.splitlines() if SERVER_ERROR.search(line)]
    assert not errors, "5xx served:\n" + "\n".join(errors) + f"\n--- server output ---\n{served}"
