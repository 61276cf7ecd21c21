"""Validation cost of pushes and entity rows as the number of rejected rows grows (linear, not N²).

Runs ``POST /push`` (quarantine policy: every row rejected, so every row is reported and quarantined)
and ``POST /training-sets`` (every entity row invalid: a 422 listing the rows) in process, on a
temporary copy of the built repo, and prints the wall time per size. No Feast comparison: Feast's
push has no validation gate. Usage::

    .venv/bin/python bench/validation.py [--sizes 1000,16000,400000] [--repo feature_repo]
"""

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.repos import copy_repo  # noqa: E402
from service.app import create_app  # noqa: E402
from service.settings import Settings  # noqa: E402

NOW = datetime(2013, 12, 31, tzinfo=UTC)
START = datetime(2013, 1, 1, tzinfo=UTC)  # rows 30 s apart: 400,000 rows end in mid-2013
WEATHER = {"temp": 50.0, "dewp": 40.0, "humid": 60.0, "wind_dir": 180.0, "wind_speed": 10.0, "precip": 0.0}
WEATHER |= {"pressure": 1010.0, "visib": 10.0}  # a valid reading; each row then breaks one thing


def push_body(n: int, kind: str) -> dict:
    """``n`` rows, each rejected: ``type`` a string temperature (the type check), ``range`` a 1048 mph
    wind (the pandera range check)."""
    df: dict[str, list] = {
        "origin": ["EWR"] * n,
        "event_timestamp": [f"{START + timedelta(seconds=30 * i):%Y-%m-%dT%H:%M:%S}Z" for i in range(n)],
        **{f: [v] * n for f, v in WEATHER.items()},
    }
    if kind == "type":
        df["temp"] = ["warm"] * n
    else:
        df["wind_speed"] = [1048.4] * n
    return {"push_source_name": "weather_push", "to": "online", "df": df}


def entity_body(n: int) -> dict:
    rows = [{"origin": 7, "carrier": "UA", "event_timestamp": "2013-05-01T13:00:00Z"} for _ in range(n)]
    return {"feature_service": "delay_model_v1", "entity_rows": rows}


def timed(client: TestClient, path: str, body: dict) -> tuple[float, dict, int]:
    payload = json.dumps(body)
    started = time.perf_counter()
    response = client.post(path, content=payload, headers={"content-type": "application/json"})
    return time.perf_counter() - started, response.json(), response.status_code


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,16000,100000,400000")
    parser.add_argument("--repo", type=Path, default=Path("feature_repo"))
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        repo = copy_repo(args.repo.resolve(), Path(tmp) / "repo")
        shutil.copy2(args.repo / "schemas.py", repo / "schemas.py")
        with TestClient(create_app(Settings(repo=repo, now=NOW))) as client:
            print("| what | rows rejected | status | seconds | rows listed in the answer |")
            print("|---|---:|---:|---:|---:|")
            for n in sizes:
                for kind in ("type", "range"):
                    seconds, body, status = timed(client, "/push", push_body(n, kind))
                    listed = len(body.get("quarantined", []))
                    assert body.get("rows_quarantined") == n, body
                    print(f"| push, {kind} check | {n:,} | {status} | {seconds:.2f} | {listed:,} |", flush=True)
                seconds, body, status = timed(client, "/training-sets", entity_body(n))
                listed = len(body.get("problems", []))
                print(f"| entity rows, join key type | {n:,} | {status} | {seconds:.2f} | {listed:,} |", flush=True)


if __name__ == "__main__":
    main()
