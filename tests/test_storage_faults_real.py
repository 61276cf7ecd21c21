"""Real storage faults around a served repo: its data folder and its training-sets folder (a 128 KiB
tmpfs) read-only, then writable again while it serves, then the tmpfs full. The server (``feastline
serve``) runs in a mount namespace of its own (``unshare -m``), so the mounts exist for it alone and
end with it; ``nsenter`` flips them while it runs (a folder can be made writable under a running
server, not read-only: Linux refuses that while files are open for writing, so it starts read-only).
The lineage database lives outside the data folder here (``FEASTLINE_LINEAGE_URL``); its own faults
are the in-process tests'. Skipped where mount namespaces cannot be made (not root).

Checked: each fault answers a 503 problem saying what is wrong (``Retry-After`` only for the full
disk), with no SQL and no absolute path in the body; nothing half-written stays; ``/health/ready`` is
503 while a folder cannot be written and 200 again once the fault is cleared, by itself.
"""

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.conftest import REPLAY_NOW, copy_repo
from tests.live_server import free_port, wait_for_health
from tests.test_storage_faults import ROWS, assert_clean_problem, push_body


def namespaces_work() -> bool:
    if shutil.which("unshare") is None or shutil.which("nsenter") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True)
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(not namespaces_work(), reason="needs mount namespaces (unshare -m, as root)")


@pytest.fixture
def served(built_repo: Path, tmp_path: Path) -> Iterator[tuple[Path, str, int]]:
    """(repo, url, server pid): the repo's ``data`` bind-mounted read-only and ``data/training_sets`` a
    read-only 128 KiB tmpfs, in the server's own mount namespace; the lineage database in ``tmp_path``."""
    repo = tmp_path / "repo"
    copy_repo(built_repo, repo, ignore=("training_sets",))
    data, sets = repo / "data", repo / "data" / "training_sets"
    sets.mkdir()
    shutil.copy(data / "lineage.db", tmp_path / "lineage.db")
    port = free_port()
    feastline = Path(sys.executable).parent / "feastline"
    script = (
        f"mount --bind {data} {data} && mount -o remount,ro,bind {data} && "
        f"mount -t tmpfs -o size=128k,ro tmpfs {sets} && "
        f"exec {feastline} serve --repo {repo} --host 127.0.0.1 --port {port}"
    )
    log = tmp_path / "server.log"
    env = {
        **os.environ,
        "FEASTLINE_NOW": REPLAY_NOW.isoformat(),
        "FEASTLINE_LINEAGE_URL": f"sqlite:///{tmp_path / 'lineage.db'}",
    }
    with log.open("wb") as out:
        command = ["unshare", "-m", "--propagation", "private", "sh", "-c", script]
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, server, log)
        yield repo, url, server.pid
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def inside(pid: int, *command: str) -> None:
    """Run ``command`` in the server's mount namespace."""
    subprocess.run(["nsenter", "-t", str(pid), "-m", *command], check=True, capture_output=True)


def post_set(client: httpx.Client, rows: int = 1) -> httpx.Response:
    """A training set of ``rows`` rows, each at its own time (17 minutes apart: the data differ row by row)."""
    start = pd.Timestamp("2013-01-02T00:00:00Z")
    stamps = [(start + pd.Timedelta(minutes=17 * i)).isoformat().replace("+00:00", "Z") for i in range(rows)]
    entity_rows = [{**ROWS[0], "event_timestamp": stamp} for stamp in stamps]
    return client.post("/training-sets", json={"feature_service": "delay_model_v1", "entity_rows": entity_rows})


def listing(pid: int, folder: Path) -> list[str]:
    """The files in ``folder`` as the server sees it (its mounts are not visible from here)."""
    out = subprocess.run(["nsenter", "-t", str(pid), "-m", "ls", "-A", str(folder)], capture_output=True, text=True)
    return sorted(out.stdout.split())


def test_read_only_then_full_folders_are_503s_that_clear_by_themselves(served):
    repo, url, pid = served
    data, sets = repo / "data", repo / "data" / "training_sets"
    with httpx.Client(base_url=url, timeout=60) as client:
        # -- both folders read-only
        ready = client.get("/health/ready")
        problem = assert_clean_problem(ready, 503, roots=(repo,))
        assert problem["field"] == "training_sets_dir" and "read-only file system" in problem["detail"]
        assert "retry-after" not in ready.headers  # someone has to act
        assert client.get("/health").status_code == 200
        refused = post_set(client)
        problem = assert_clean_problem(refused, 503, roots=(repo,))
        assert "training-sets directory" in problem["detail"] and "read-only file system" in problem["detail"]
        assert "retry-after" not in refused.headers
        offline = client.post("/push", json=push_body("offline", 3))
        problem = assert_clean_problem(offline, 503, roots=(repo,))
        assert problem["written"] == {"offline": False} and "read-only file system" in problem["detail"]
        assert listing(pid, sets) == [] and [n for n in listing(pid, data) if n.endswith(".tmp")] == []

        # -- the training-sets folder writable again: sets work, the data folder still is not ready
        inside(pid, "mount", "-o", "remount,rw", str(sets))
        assert post_set(client).status_code == 201
        still = assert_clean_problem(client.get("/health/ready"), 503, roots=(repo,))
        assert still["field"] == "data_dir"
        inside(pid, "mount", "-o", "remount,rw,bind", str(data))
        assert client.get("/health/ready").status_code == 200
        assert client.post("/push", json=push_body("offline", 3)).status_code == 200

        # -- the training-sets folder fills up: a set too big for it, then a full disk
        before = listing(pid, sets)
        big = post_set(client, rows=20_000)
        problem = assert_clean_problem(big, 503, roots=(repo,))
        assert "no space left on the device" in problem["detail"] and "training-sets directory" in problem["detail"]
        assert int(big.headers["retry-after"]) > 0  # it may clear by itself (here it did at once)
        assert listing(pid, sets) == before  # nothing half-written is left
        assert post_set(client).status_code == 201
        inside(pid, "sh", "-c", f"head -c 1048576 /dev/zero > {sets}/filler; true")
        full = client.get("/health/ready")
        problem = assert_clean_problem(full, 503, roots=(repo,))
        assert problem["field"] == "training_sets_dir" and "no space left" in problem["detail"]
        assert int(full.headers["retry-after"]) > 0
        inside(pid, "rm", f"{sets}/filler")
        assert client.get("/health/ready").status_code == 200
        assert post_set(client).status_code == 201
