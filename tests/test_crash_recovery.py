"""The fault test: ``kill -9`` the server in the middle of training sets, pushes and materializations,
restart it, and check that nothing is half-done.

Each round serves a private copy of the built repo (a real ``feastline serve`` subprocess) with
``FEASTLINE_CRASH_AT`` naming one crash point (:func:`service.storage.crash_point`: the process SIGKILLs
itself there, the N-th time it gets there) while three clients keep it busy at once: training sets,
pushes ``to: online_and_offline`` (each with a quarantined row and its own ``Idempotency-Key``) and
materializations. The crash cuts the write at that point and the others wherever they happen to be.
The next round's start runs the recovery pass; after the last round a clean start is checked:

- no temporary, empty or orphan file in the training-sets folder, and no temporary file next to the
  source files;
- catalog = lineage = files: the same training-set ids in the catalog, among the lineage nodes and on
  disk (both files, readable), and every set answered 201 is among them;
- every OpenLineage run has its end event;
- no materialization job is left queued or running, none failed but by being interrupted, and each
  view's ``last_materialization`` is the registry's last interval;
- every acknowledged push is readable, exactly once offline (pushes not acknowledged are resent with
  their key first: the answer comes from the receipt or the push is written then), and online the
  newest pushed value per airport is served.

One more round kills the server from outside (SIGKILL) after a random delay (seeded; the seed is
printed). The three clients run at once, a materialization job included: requests read the registry
from an immutable snapshot while a job records its intervals.

``FEASTLINE_CRASH_ROUNDS`` sets how many of the ten crash points run (default 4: each kind of write
at least once, about 40 s on 2 cores; 10 for all).
"""

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pyarrow.parquet as pq
import pytest
from feast import FeatureStore

from service.settings import Settings
from service.storage import is_temp
from tests.conftest import REPLAY_NOW, copy_repo
from tests.live_server import free_port, wait_for_health

POINTS = [
    "training_set.renamed:2",
    "push.renaming:3",
    "materialize.view_registered:2",
    "push.offline_prepared:2",
    "training_set.files_written:2",
    "materialize.view_written:1",
    "training_set.started:3",
    "push.online_written:2",
    "training_set.committed:2",
    "push.offline_written:3",
]
ROUNDS = POINTS[: int(os.environ.get("FEASTLINE_CRASH_ROUNDS", 4))]
ROUND_SECONDS = 45
ROWS = [{"origin": "EWR", "carrier": "UA", "event_timestamp": "2013-05-01T13:00:00Z", "label_delayed": 1}]
WEATHER = dict(dewp=40.0, humid=60.0, wind_dir=180.0, wind_speed=10.0, precip=0.0, pressure=1010.0, visib=10.0)
VIEWS = ["origin_weather", "origin_weather_fresh"]


def utc(value: Any) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_convert("UTC") if ts.tz is not None else ts.tz_localize("UTC")


class Workload:
    """What the clients did: sets answered 201, pushes sent and acknowledged (by key)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sets: set[str] = set()
        self.pushes: dict[str, dict[str, Any]] = {}  # key -> body
        self.acknowledged: set[str] = set()
        self.history: dict[str, list[str]] = {}  # key -> what each attempt got (for a failure's message)
        self.bad: list[str] = []
        self.n = 0
        self.round = ""
        self.sets_before: set[str] = set()
        self.quarantined_before = 0

    def push_body(self) -> tuple[str, dict[str, Any]]:
        with self.lock:
            self.n += 1
            n = self.n
        # within the view's 3 h TTL of the replay clock, one second apart: the newest is served online
        stamp = (pd.Timestamp("2013-12-30T22:00:00Z") + pd.Timedelta(seconds=n)).isoformat().replace("+00:00", "Z")
        df: dict[str, list[Any]] = {"origin": ["EWR", "JFK", "LGA"], "event_timestamp": [stamp] * 3}
        temp = 20.0 + (n % 100) / 2  # inside the push schema's range (the push source's pandera checks)
        df |= {"temp": [temp, temp + 0.25, 1.0]} | {k: [v] * 3 for k, v in WEATHER.items()}
        df["wind_speed"] = [10.0, 10.0, 1048.0]  # LGA's row is quarantined
        key = f"crash-{os.getpid()}-{n}"
        body = {"push_source_name": "weather_push", "df": df, "to": "online_and_offline"}
        with self.lock:
            self.pushes[key] = body
        return key, body

    def record(self, what: str, response: httpx.Response, ok: int) -> None:
        """A response of the live server: anything but ``ok`` is a failure of the test (a 5xx, a 4xx)."""
        if response.status_code != ok:
            with self.lock:
                self.bad.append(f"{what}: {response.status_code} {response.text[:300]}")


def serve(repo: Path, log: Path, crash_at: str | None) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "FEASTLINE_NOW": REPLAY_NOW.isoformat(), "PYTHONFAULTHANDLER": "1"}
    env.pop("FEASTLINE_CRASH_AT", None)
    if crash_at:
        env["FEASTLINE_CRASH_AT"] = crash_at
    feastline = Path(sys.executable).parent / "feastline"
    command = [str(feastline), "serve", "--repo", str(repo), "--host", "127.0.0.1", "--port", str(port), "--access-log"]
    with log.open("ab") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    wait_for_health(url, server, log)
    return server, url


def drive(url: str, work: Workload, server: subprocess.Popen[bytes], until: Callable[[], bool]) -> None:
    """Three clients at once until the server is gone (or ``until()``); connection errors end a client."""

    def loop(step: Callable[[httpx.Client], None]) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            while server.poll() is None and not until():
                try:
                    step(client)
                except httpx.TransportError:
                    return

    def training_set(client: httpx.Client) -> None:
        response = client.post("/training-sets", json={"feature_service": "delay_model_v1", "entity_rows": ROWS})
        work.record("training set", response, 201)
        if response.status_code == 201:
            with work.lock:
                work.sets.add(response.json()["id"])

    def push(client: httpx.Client) -> None:
        key, body = work.push_body()
        work.history[key] = [f"sent in round {work.round}"]
        try:
            response = client.post("/push", json=body, headers={"Idempotency-Key": key})
        except httpx.TransportError as exc:
            work.history[key].append(type(exc).__name__)
            raise
        work.history[key].append(str(response.status_code))
        work.record("push", response, 200)
        if response.status_code == 200 and response.json()["rows_accepted"] != 2:
            work.bad.append(f"push {key}: {response.text[:300]}")
        if response.status_code == 200:
            with work.lock:
                work.acknowledged.add(key)

    def materialize(client: httpx.Client) -> None:
        with work.lock:
            work.n += 1
            end = REPLAY_NOW - pd.Timedelta(seconds=work.n)  # each job its own window, told apart in the registry
        body = {"start": "2013-12-28T00:00:00Z", "end": end.isoformat(), "feature_views": VIEWS}
        response = client.post("/materialize", json=body)
        work.record("materialize", response, 202)
        if response.status_code != 202:
            return
        job = response.json()["id"]
        while server.poll() is None and not until():
            if client.get(f"/jobs/{job}").json()["status"] in ("completed", "failed"):
                break
            time.sleep(0.05)

    threads = [threading.Thread(target=loop, args=(step,)) for step in (training_set, push, materialize)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def resend_unacknowledged(url: str, work: Workload) -> None:
    """Every push not acknowledged, again with its key: the receipt's answer, or written now."""
    with httpx.Client(base_url=url, timeout=30) as client:
        for key, body in sorted(work.pushes.items()):
            if key in work.acknowledged:
                continue
            response = client.post("/push", json=body, headers={"Idempotency-Key": key})
            work.history.setdefault(key, []).append(f"resent: {response.status_code} {response.json().get('replayed')}")
            work.record("resent push", response, 200)
            work.acknowledged.add(key)


@pytest.fixture
def repo(built_repo: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "repo"
    copy_repo(built_repo, copy, ignore=("training_sets",))
    return copy


@pytest.mark.slow
def test_kill_9_at_any_point_leaves_nothing_half_done(repo: Path, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    work = Workload()
    db = sqlite3.connect(repo / "data" / "lineage.db")
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "training_sets" in tables:  # the copy's own sets (their files were not copied)
        work.sets_before = {r[0] for r in db.execute("SELECT id FROM training_sets")}
    if "push_quarantine" in tables:
        work.quarantined_before = db.execute("SELECT count(*) FROM push_quarantine").fetchone()[0]
    db.close()
    for point in ROUNDS:
        work.round = point
        began = time.monotonic()
        server, url = serve(repo, log, point)
        print(f"{point}: served in {time.monotonic() - began:.1f} s", flush=True)
        deadline = time.monotonic() + ROUND_SECONDS
        drive(url, work, server, lambda deadline=deadline: time.monotonic() > deadline)
        try:
            code = server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            probes = []
            for path in ("/health", "/health/ready", "/models"):
                try:
                    probes.append(f"{path}: {httpx.get(url + path, timeout=5).status_code}")
                except httpx.HTTPError as exc:
                    probes.append(f"{path}: {type(exc).__name__}")
            work.bad.append("probes of the stuck server: " + ", ".join(probes))
            server.send_signal(signal.SIGABRT)  # PYTHONFAULTHANDLER: every thread's stack into the log
            server.wait()
            failures = "\n".join(work.bad[-10:])
            pytest.fail(
                f"crash point {point} was never reached in {ROUND_SECONDS} s; last failures:\n{failures}\n"
                f"--- server log ---\n{log.read_text()[-6000:]}"
            )
        assert code == -signal.SIGKILL, f"{point}: exited with {code}\n{log.read_text()[-3000:]}"
        print(f"{point}: killed after {time.monotonic() - began:.1f} s", flush=True)
    seed = random.randrange(1 << 30)
    print(f"random kill seed {seed}")
    work.round = "random kill"
    server, url = serve(repo, log, None)
    delay = random.Random(seed).uniform(1.0, 4.0)
    threading.Timer(delay, lambda: server.send_signal(signal.SIGKILL)).start()
    drive(url, work, server, lambda: False)
    server.wait(timeout=30)

    server, url = serve(repo, log, None)
    try:
        resend_unacknowledged(url, work)
        check_consistent(repo, url, work)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert work.bad == [], "\n".join(work.bad)


def check_consistent(repo: Path, url: str, work: Workload) -> None:
    settings = Settings(repo=repo)
    root = settings.training_sets_path
    files = sorted(root.iterdir())
    assert [f.name for f in files if is_temp(f) or f.stat().st_size == 0] == []
    data = repo / "data"
    assert [f.name for f in data.iterdir() if is_temp(f) or f.name.endswith(".pin")] == []

    db = sqlite3.connect(str(data / "lineage.db"))

    def ids(query: str) -> set[str]:
        return {r[0] for r in db.execute(query)}

    try:
        catalog = ids("SELECT id FROM training_sets")
        nodes = {
            i.removeprefix("training_set:") for i in ids("SELECT id FROM lineage_nodes WHERE kind = 'training_set'")
        }
        ended = ids("SELECT run_id FROM openlineage_events WHERE event_type IN ('COMPLETE', 'FAIL', 'ABORT')")
        started = ids("SELECT run_id FROM openlineage_events WHERE event_type = 'START'")
        open_jobs = ids("SELECT id FROM materialization_jobs WHERE status IN ('queued', 'running')")
        broken_jobs = ids(
            "SELECT error FROM materialization_jobs WHERE status = 'failed' AND error NOT LIKE 'interrupted:%'"
        )
        intents = ids("SELECT key FROM feastline_intents")
        lineage_views = dict(db.execute("SELECT name, attributes FROM lineage_nodes WHERE kind = 'feature_view'"))
        quarantined = db.execute("SELECT count(*) FROM push_quarantine").fetchone()[0]
    finally:
        db.close()
    on_disk = {
        f.name.removesuffix(".entities.parquet").removesuffix(".parquet").removesuffix(".profile.json") for f in files
    }
    catalog -= work.sets_before
    nodes -= work.sets_before
    assert catalog == nodes == on_disk, (catalog ^ nodes, catalog ^ on_disk)
    for ts in catalog:
        assert pq.read_table(root / f"{ts}.parquet").num_rows == len(ROWS)
        assert pq.read_table(root / f"{ts}.entities.parquet").num_rows == len(ROWS)
        assert (root / f"{ts}.profile.json").is_file()  # written with the set (service.monitoring.profiles)
    assert work.sets <= catalog, work.sets - catalog
    assert started - ended == set(), "runs without an end event"
    assert open_jobs == set() and intents == set()
    assert broken_jobs == set()  # a job fails only by being interrupted
    assert len(catalog) > 0 and len(work.acknowledged) > 0

    store = FeatureStore(repo_path=str(repo))
    for view in VIEWS:  # the registry's last interval is the one the lineage node records
        last = json.loads(lineage_views[view])["last_materialization"]
        start, end = store.registry.get_feature_view(view, store.project).materialization_intervals[-1]
        assert (utc(last["start"]), utc(last["end"])) == (utc(start), utc(end)), view

    offline = pd.read_parquet(data / "origin_weather_fresh.parquet")
    pushed = offline[offline.origin.isin(["EWR", "JFK"])]
    counts = pushed.groupby(["origin", "event_timestamp"]).size()
    assert (counts == 1).all(), counts[counts != 1]
    for key in work.acknowledged:
        body = work.pushes[key]
        ts = pd.Timestamp(body["df"]["event_timestamp"][0])
        for origin, temp in zip(body["df"]["origin"][:2], body["df"]["temp"][:2], strict=True):
            row = pushed[(pushed.origin == origin) & (pushed.event_timestamp == ts)]
            assert row.temp.tolist() == [temp], (key, origin, work.history.get(key))
    assert len(pushed) == 2 * len(work.acknowledged)
    newest = max(work.acknowledged, key=lambda k: work.pushes[k]["df"]["event_timestamp"][0])
    online = httpx.post(
        f"{url}/get-online-features",
        json={"features": ["origin_weather_fresh:temp"], "entities": {"origin": ["EWR", "JFK"]}},
        timeout=30,
    ).json()
    assert online["results"][1]["values"] == work.pushes[newest]["df"]["temp"][:2]
    # one rejected row per acknowledged push, once
    assert quarantined - work.quarantined_before == len(work.acknowledged)
