"""``GET /quarantine/{source}`` is paged: ``limit``/``offset`` honoured, the total counted, every row reachable."""

from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from tests.conftest import REPLAY_NOW, copy_repo

WEATHER = {"temp": 50.0, "dewp": 40.0, "humid": 60.0, "wind_dir": 180.0, "wind_speed": 10.0, "precip": 0.0}
WEATHER |= {"pressure": 1010.0, "visib": 10.0}
ROWS = 1500  # more than the 1,000 rows the route used to cut at


@pytest.fixture(scope="module")
def client(built_repo: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    repo = tmp_path_factory.mktemp("quarantine") / "repo"
    copy_repo(built_repo, repo, ignore=("training_sets",))
    with TestClient(create_app(Settings(repo=repo, now=REPLAY_NOW))) as c:
        start = REPLAY_NOW - timedelta(days=2)
        stamps = [(start + timedelta(minutes=i)).isoformat().replace("+00:00", "Z") for i in range(ROWS)]
        df = {"origin": ["EWR"] * ROWS, "event_timestamp": stamps, **{f: [v] * ROWS for f, v in WEATHER.items()}}
        df["visib"] = [-float(i + 1) for i in range(ROWS)]  # every row out of range, each told apart by its value
        answer = c.post("/push", json={"push_source_name": "weather_push", "df": df})
        assert answer.status_code == 200 and answer.json()["rows_quarantined"] == ROWS, answer.text
        yield c


def visib(page: dict) -> list[float]:
    return [r["values"]["visib"] for r in page["rows"]]


def test_a_page_is_the_rows_asked_for_with_the_total(client: TestClient) -> None:
    response = client.get("/quarantine/weather_push", params={"limit": 3, "offset": 2})
    assert response.status_code == 200, response.text
    page = response.json()
    assert (page["kind"], page["total"], page["limit"], page["offset"], page["next_offset"]) == ("push", ROWS, 3, 2, 5)
    # newest first: the last row kept is row 1499 (visib -1500); skip two, take three
    assert [r["row"] for r in page["rows"]] == [1497, 1496, 1495]
    assert visib(page) == [-1498.0, -1497.0, -1496.0]
    link = response.headers["link"]
    assert link.endswith('>; rel="next"')
    assert parse_qs(urlsplit(link[1 : link.index(">")]).query) == {"limit": ["3"], "offset": ["5"]}


def test_paging_through_reaches_every_row_once(client: TestClient) -> None:
    seen, offset = [], 0
    while offset is not None:
        page = client.get("/quarantine/weather_push", params={"limit": 1000, "offset": offset}).json()
        assert page["total"] == ROWS
        seen += [r["row"] for r in page["rows"]]
        offset = page["next_offset"]
    assert sorted(seen) == list(range(ROWS)) and len(seen) == ROWS
    last = client.get("/quarantine/weather_push", params={"limit": 1000, "offset": 1000})
    assert len(last.json()["rows"]) == 500 and "link" not in last.headers


def test_past_the_end_is_an_empty_page(client: TestClient) -> None:
    page = client.get("/quarantine/weather_push", params={"offset": ROWS}).json()
    assert page["rows"] == [] and page["total"] == ROWS and page["next_offset"] is None


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 10_001}, {"offset": -1}, {"limit": "ten"}])
def test_a_bad_limit_or_offset_is_a_422(client: TestClient, params: dict) -> None:
    response = client.get("/quarantine/weather_push", params=params)
    assert response.status_code == 422 and response.json()["field"] == f"query.{next(iter(params))}"


def test_a_pipeline_table_is_paged_the_same_way(client: TestClient, built_repo: Path) -> None:
    kept = pd.read_parquet(built_repo / "data" / "quarantine" / "origin_weather.parquet")
    page = client.get("/quarantine/origin_weather", params={"limit": 1, "offset": 0}).json()
    assert page["kind"] == "pipeline" and page["total"] == len(kept) and len(page["rows"]) == min(1, len(kept))
    assert page["rows"][0]["quarantine_reason"] == kept["quarantine_reason"].iloc[0]
    beyond = client.get("/quarantine/origin_weather", params={"offset": len(kept)}).json()
    assert beyond["rows"] == [] and beyond["next_offset"] is None
