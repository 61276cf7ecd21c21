"""Schemathesis over the OpenAPI document of a live ``feastline serve``: the document matches behaviour.

A copy of the built demo repo is served (the runs push, materialize and create training sets); the
document is fetched from the server, so every route there is tested, whichever branch added it. The
checks are schemathesis' own (all of them but the authentication ones, the service has no auth):

- no 5xx (also read from the server's access log by :func:`tests.live_server.live_server`);
- status codes, content types, response headers and bodies as documented (``response_schema_conformance``);
- requests valid per the document are accepted (2xx, or 404/409 for names and ids that do not exist or
  were taken), invalid ones refused with a 4xx; ``Allow`` of a 405 lists the methods of the path.

Where a rule cannot be JSON Schema (it depends on the registry or on two fields at once), the route's
description states it and ``tests/schemathesis_hooks.py`` keeps the valid requests valid by it.

Budget: phases examples, coverage (every boundary the schema defines, one request each) and fuzzing
(``FEASTLINE_SCHEMATHESIS_EXAMPLES`` cases per operation and generation mode, default 10), one worker,
a fixed seed (``FEASTLINE_SCHEMATHESIS_SEED``), no shrinking. ``POST /training-sets`` is left out of the
coverage phase (its ~160 boundary cases each build a training set, ~0.4-1 s apiece today); it still
gets its examples and fuzzing cases. About 60 s on 2 cores.
"""

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.conftest import copy_repo
from tests.live_server import live_server

PROJECT = Path(__file__).resolve().parents[1]
EXAMPLES = int(os.environ.get("FEASTLINE_SCHEMATHESIS_EXAMPLES", "10"))
SEED = int(os.environ.get("FEASTLINE_SCHEMATHESIS_SEED", "20131231"))
TIMEOUT_SECONDS = 600
CHECKS_LEFT_OUT = "ignored_auth,object_level_authorization"  # no authentication in feastline
ENTITY_ROW = {"origin": "EWR", "carrier": "UA", "event_timestamp": "2013-05-01T13:00:00Z", "label_delayed": 1}


def seed_data(url: str) -> dict[str, list[str]]:
    """Real ids for the generator to draw from (half of the time): a training set, a model trained on it,
    a materialization job, node ids of every kind, push and quarantine sources, a lineage version."""
    with httpx.Client(base_url=url, timeout=120) as api:
        ts = api.post("/training-sets", json={"feature_service": "delay_model_v1", "entity_rows": [ENTITY_ROW]})
        ts_id = ts.raise_for_status().json()["id"]
        model = {"name": "conformance", "version": "1", "training_set_id": ts_id, "metrics": {"auc": 0.5}}
        api.post("/models", json=model).raise_for_status()
        window = {"start": "2013-12-30T00:00:00Z", "end": "2013-12-31T00:00:00Z", "feature_views": ["origin_weather"]}
        job_id = api.post("/materialize", json=window).raise_for_status().json()["id"]
        deadline = time.monotonic() + 60
        while api.get(f"/jobs/{job_id}").json()["status"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.2)
        nodes = api.get("/lineage/export/node-link").raise_for_status().json()["nodes"]
    by_kind: dict[str, list[str]] = {}
    for node in nodes:
        by_kind.setdefault(node["kind"], []).append(node["id"])
    node_ids = sorted({ids[i] for ids in by_kind.values() for i in range(min(3, len(ids)))})
    return {
        "ts_ids": [ts_id],
        "job_ids": [job_id],
        "node_ids": node_ids,
        "model_names": ["conformance"],
        "model_versions": ["1"],
        "quarantine_sources": ["weather_push", "origin_weather"],
        "push_sources": ["weather_push"],
        "feature_services": ["delay_model_v1", "delay_model_v2"],
        "versions": ["1"],
    }


BINDINGS = {  # parameter -> dictionary
    "path.node_id": "node_ids",
    "query.node": "node_ids",
    "query.source": "node_ids",
    "query.target": "node_ids",
    "query.as_of": "versions",
    "path.ts_id": "ts_ids",
    "body.training_set_id": "ts_ids",
    "path.job_id": "job_ids",
    "path.name": "model_names",
    "path.version": "model_versions",
    "path.source": "quarantine_sources",
    "body.push_source_name": "push_sources",
}


def write_config(path: Path, dictionaries: dict[str, list[str]]) -> Path:
    """``schemathesis.toml``: the hooks, the dictionaries of real ids and what each parameter draws from."""
    lines = [
        'hooks = "tests.schemathesis_hooks"',
        "",
        "[[operations]]",
        'include-path = "/training-sets"',
        'include-method = "POST"',
        "phases.coverage.enabled = false",
        "",
    ]
    for name, values in dictionaries.items():
        lines += [f"[dictionaries.{name}]", f"values = {json.dumps(values)}", ""]
    lines.append("[parameters]")
    lines += [f'"{key}" = {{ dictionary = "{name}", probability = 0.5 }}' for key, name in BINDINGS.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow
def test_openapi_document_matches_behaviour(built_repo: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    copy_repo(built_repo, repo, ignore=("training_sets",))
    log = tmp_path / "server.log"
    with live_server(repo, log) as url:
        config = write_config(tmp_path / "schemathesis.toml", seed_data(url))
        command = [
            str(Path(sys.executable).parent / "st"),
            "--no-color",
            "--config-file",
            str(config),
            "run",
            f"{url}/openapi.json",
            "--checks",
            "all",
            "--exclude-checks",
            CHECKS_LEFT_OUT,
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            str(EXAMPLES),
            "--seed",
            str(SEED),
            "--no-shrink",
            "--workers",
            "1",
            "--request-timeout",
            "60",
            "--generation-database",
            "none",
            "--warnings",
            "off",
        ]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT), os.environ.get("PYTHONPATH", "")])}
        started = time.monotonic()
        run = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False
        )
        elapsed = time.monotonic() - started
    assert run.returncode == 0, f"schemathesis found mismatches ({elapsed:.0f} s):\n{run.stdout}\n{run.stderr}"
    assert " passed" in run.stdout[-4000:], run.stdout
    served = served_statuses(log.read_text())
    by_status = Counter(key.rsplit(" ", 1)[1] for key in served.elements())
    print(
        f"schemathesis: {elapsed:.0f} s, {sum(served.values())} requests, by status {dict(sorted(by_status.items()))}"
    )
    for route, status in REACHED:  # the valid requests got past validation into the work itself
        assert served.get(f"{route} {status}", 0) > 0, (route, status, served)


REACHED = [
    ("POST /training-sets", 201),
    ("POST /get-online-features", 200),
    ("POST /push", 200),
    ("POST /materialize", 202),
    ("POST /materialize-incremental", 202),
    ("POST /models", 201),
    ("GET /training-sets/{id}/data", 200),
]
ACCESS = re.compile(r'"(?P<method>[A-Z]+) (?P<path>[^ ?"]*)[^"]*" (?P<status>\d{3})')


def served_statuses(log: str) -> Counter[str]:
    """``"POST /push 200" -> count`` from uvicorn's access log (training-set ids as ``{id}``)."""
    counts: Counter[str] = Counter()
    for m in ACCESS.finditer(log):
        path = re.sub(r"^/training-sets/[^/]+", "/training-sets/{id}", m["path"])
        counts[f"{m['method']} {path} {m['status']}"] += 1
    return counts
