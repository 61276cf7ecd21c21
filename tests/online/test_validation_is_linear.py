"""Validation of pushes and entity rows costs time linear in the rows, and its report is exact.

No timed assertion: the cost is counted as the Python lines executed (``sys.settrace`` line events,
which fire once per loop iteration too, so an N² scan shows as N² events) for ``N`` and ``4N``
rejected rows; linear work grows about 4×, a quadratic scan 16×. The report is checked against
counts computed here: every rejected row counted and quarantined, the first ``MAX_LISTED`` listed in
row order, each with the problem its row was built to have. Timings are in ``bench/validation.py``.
"""

import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from feast import FeatureStore

from service.intents import Intents
from service.online.push import MAX_LISTED, PushGate, PushRejected, PushRequest
from service.online.quarantine import QuarantineStore
from service.online.receipts import Receipts
from service.training.entity_rows import entity_frame, entity_frame_from_table
from service.training.offline.errors import EntityRowsInvalid
from service.training.training_sets import TrainingSetOptions, resolve
from tests.conftest import REPLAY_NOW

N = 400
GROWTH_LIMIT = 6.0  # lines executed for 4N rows over those for N: ~4 when linear, ~16 when quadratic
WEATHER = {"temp": 50.0, "dewp": 40.0, "humid": 60.0, "wind_dir": 180.0, "wind_speed": 10.0, "precip": 0.0}
WEATHER |= {"pressure": 1010.0, "visib": 10.0}  # a valid reading; each row then breaks one thing
START = REPLAY_NOW - timedelta(days=30)


def lines_executed(work: Callable[[], Any]) -> int:
    """Python lines executed by ``work()`` (its exceptions are swallowed: a rejection is the point)."""
    count = 0

    def local(frame: Any, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return local

    sys.settrace(lambda frame, event, arg: local)
    try:
        work()
    except (PushRejected, EntityRowsInvalid):
        pass
    finally:
        sys.settrace(None)
    return count


def weather(n: int, bad: str) -> dict[str, Any]:
    """``n`` rows, each rejected: ``type`` a text temperature, ``range`` a 1048 mph wind (pandera), ``duplicate``
    every row the same origin and time (pandera's unique check)."""
    stamps = [(START + timedelta(seconds=30 * i)).isoformat().replace("+00:00", "Z") for i in range(n)]
    df: dict[str, list[Any]] = {
        "origin": ["EWR"] * n,
        "event_timestamp": stamps,
        **{f: [v] * n for f, v in WEATHER.items()},
    }
    if bad == "type":
        df["temp"] = ["warm"] * n
    elif bad == "range":
        df["wind_speed"] = [1048.4] * n
    else:
        df["event_timestamp"] = [stamps[0]] * n
    return {"push_source_name": "weather_push", "to": "online", "df": df}


EXPECTED = {  # bad kind -> the (field, check) of every row's problems
    "type": [("temp", "must be a finite number (Float64), got 'warm'")],
    "range": [("wind_speed", "fails in_range(0, 200) (value 1048.4)")],
    "duplicate": [
        ("origin", "fails multiple_fields_uniqueness"),
        ("event_timestamp", "fails multiple_fields_uniqueness"),
    ],
}


@pytest.fixture(scope="module")
def store(built_repo: Path) -> FeatureStore:
    return FeatureStore(repo_path=str(built_repo))


@pytest.fixture
def gate(store: FeatureStore, built_repo: Path, tmp_path: Path) -> PushGate:
    url = f"sqlite:///{tmp_path / 'push.db'}"
    return PushGate(store, QuarantineStore(url), built_repo, Intents(url), Receipts(url))


@pytest.mark.parametrize("bad", ["type", "range", "duplicate"])
def test_a_push_of_rejected_rows_is_linear_and_its_report_exact(gate: PushGate, bad: str) -> None:
    answers: dict[int, dict[str, Any]] = {}

    def run(n: int) -> None:
        answers[n] = gate.push(PushRequest(**weather(n, bad)), REPLAY_NOW)

    small, large = lines_executed(lambda: run(N)), lines_executed(lambda: run(4 * N))
    assert large / small < GROWTH_LIMIT, f"{bad}: {small} lines for {N} rows, {large} for {4 * N}"
    for n, answer in answers.items():
        assert (answer["rows_received"], answer["rows_accepted"], answer["rows_quarantined"]) == (n, 0, n)
        assert answer["quarantined_listed"] == MAX_LISTED == len(answer["quarantined"])
        assert [q["row"] for q in answer["quarantined"]] == list(range(MAX_LISTED))
        for listed in answer["quarantined"]:
            found = [(p["field"], p["problem"]) for p in listed["problems"]]
            assert [f for f, _ in found] == [f for f, _ in EXPECTED[bad]]
            assert all(p.startswith(want) for (_, p), (_, want) in zip(found, EXPECTED[bad], strict=True))
    kept = gate.quarantine
    assert kept.count("weather_push") == 5 * N  # both pushes, every row
    newest = kept.list("weather_push", limit=4 * N)
    assert sorted(r["row"] for r in newest) == list(range(4 * N))


def test_a_rejection_counts_every_problem_and_lists_the_first(gate: PushGate) -> None:
    body = weather(4 * N, "type")
    body["df"]["unknown"] = [1] * (4 * N)  # a problem not tied to a row: the push is refused whatever the policy
    with pytest.raises(PushRejected) as caught:
        gate.push(PushRequest(**body), REPLAY_NOW)
    details = caught.value.details()
    assert details["problem_count"] == 4 * N + 1
    assert len(details["problems"]) == 100 and details["problems"][0] == {
        "row": None,
        "field": "unknown",
        "problem": "is not a join key or feature of the views this source feeds",
    }
    assert [p["row"] for p in details["problems"][1:]] == list(range(99))
    assert gate.quarantine.count("weather_push") == 0  # refused: nothing quarantined


def entity_rows(n: int) -> list[dict[str, Any]]:
    """``n`` rows, each with an integer for the ``origin`` key (a string) and a naive timestamp."""
    return [{"origin": i, "carrier": "UA", "event_timestamp": "2013-05-01T13:00:00"} for i in range(n)]


def test_invalid_entity_rows_are_linear_and_counted(store: FeatureStore) -> None:
    _, plan = resolve(store, TrainingSetOptions(feature_service="delay_model_v1"))
    caught: dict[int, EntityRowsInvalid] = {}

    def run(n: int) -> None:
        try:
            entity_frame(entity_rows(n), plan)
        except EntityRowsInvalid as exc:
            caught[n] = exc
            raise

    small, large = lines_executed(lambda: run(N)), lines_executed(lambda: run(4 * N))
    assert large / small < GROWTH_LIMIT, f"{small} lines for {N} rows, {large} for {4 * N}"
    for n, exc in caught.items():
        details = exc.details()
        assert details["problem_count"] == 2 * n
        listed = details["problems"]
        assert len(listed) == EntityRowsInvalid.MAX_LISTED
        assert [(p["row"], p["field"]) for p in listed[:4]] == [
            (0, "event_timestamp"),
            (0, "origin"),
            (1, "event_timestamp"),
            (1, "origin"),
        ]
        assert listed[1]["problem"] == "must be a string, got 0"


def test_an_entity_table_of_invalid_rows_is_linear_and_counted(store: FeatureStore) -> None:
    _, plan = resolve(store, TrainingSetOptions(feature_service="delay_model_v1"))

    def table(n: int) -> pd.DataFrame:
        stamps = pd.Series(pd.Timestamp("2013-05-01T13:00:00Z"), index=range(n))
        stamps[::2] = pd.NaT  # every other row: a null timestamp
        return pd.DataFrame({"origin": ["EWR"] * n, "carrier": [b"UA"] * n, "event_timestamp": stamps})

    caught: dict[int, EntityRowsInvalid] = {}

    def run(n: int) -> None:
        try:
            entity_frame_from_table(table(n), plan)
        except EntityRowsInvalid as exc:
            caught[n] = exc
            raise

    small, large = lines_executed(lambda: run(N)), lines_executed(lambda: run(4 * N))
    assert large / small < GROWTH_LIMIT, f"{small} lines for {N} rows, {large} for {4 * N}"
    for n, exc in caught.items():
        assert exc.details()["problem_count"] == n // 2 + n  # null timestamps, and every carrier bytes
