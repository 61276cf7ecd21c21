"""``GET /monitoring/view?drift=ID``: the drift report drawn as SVG, with parity and freshness tables.

The SVG is read back with an HTML parser: one histogram per feature of the report, each with one bar
per bin for both sides, bar heights proportional to the report's counts (each side's share of its own
values, one axis for both); the PSI chart's bars are the report's PSIs. The page is then rendered by a
real headless Chromium, and the screenshot (decoded here with zlib: no imaging library) must hold the
two series' colours and the verdict colours, not a blank page. ``FEASTLINE_VIEW_SCREENSHOT=<path>``
keeps a copy of it.
"""

import os
import shutil
import struct
import zlib
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from service.monitoring.page import BASELINE_COLOUR, TARGET_COLOUR, VERDICT_COLOURS, render_page
from service.monitoring.reports import DriftReports
from service.settings import Settings
from tests.conftest import REPLAY_NOW, copy_repo
from tests.monitoring.conftest import app_client
from tests.test_lineage_view import chromium, require_chromium

FEATURES = ["temp", "dewp", "humid", "wind_speed", "precip", "pressure", "origin", "label_delayed"]


class Svg(HTMLParser):
    """Histograms (``data-feature`` -> series -> bar heights), PSI bars and table rows of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.histograms: dict[str, dict[str, list[float]]] = {}
        self.histogram_order: list[str] = []
        self.psi: dict[str, float] = {}
        self.thresholds = 0
        self.tables: dict[str, list[list[str]]] = {}
        self._hist: str | None = None
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        classes = a.get("class", "").split()
        if tag == "svg" and "histogram" in classes:
            self._hist = a["data-feature"]
            self.histogram_order.append(self._hist)
            self.histograms.setdefault(self._hist, {})
        elif tag == "rect" and "bar" in classes and self._hist is not None:
            (series,) = [c for c in classes if c != "bar"]
            self.histograms[self._hist].setdefault(series, []).append(float(a["height"]))
        elif tag == "rect" and "psi-bar" in classes:
            self.psi[a["data-feature"]] = float(a["data-psi"])
        elif tag == "line" and "threshold" in classes:
            self.thresholds += 1
        elif tag == "table":
            self._table = a.get("id")
            self.tables[self._table or ""] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._hist = None
        elif tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parse(html: str) -> Svg:
    page = Svg()
    page.feed(html)
    return page


@pytest.fixture(scope="module")
def viewed(seasons_repo: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A drift report of the October-December sample against January-September (8 columns, numeric,
    degenerate ``precip``, categorical ``origin`` and ``label_delayed``), a parity report of
    ``live_weather`` and the page, fetched from an app over a private copy of the repo."""
    repo = tmp_path_factory.mktemp("view") / "repo"
    copy_repo(seasons_repo["repo"], repo)
    with app_client(repo, REPLAY_NOW) as client:
        body = {
            "baseline": {"model": {"name": "season_model", "version": "1"}},
            "target": {"training_set_id": seasons_repo["oct_dec"]},
            "features": FEATURES,
        }
        made = client.post("/monitoring/drift", json=body)
        assert made.status_code == 201, made.text
        served = client.post(
            "/get-online-features", json={"feature_service": "live_weather", "entities": {"origin": ["EWR", "JFK"]}}
        )
        assert served.status_code == 200, served.text
        client.app.state.online_log.flush()
        window = {"start": REPLAY_NOW.isoformat(), "end": (REPLAY_NOW + timedelta(seconds=1)).isoformat()}
        parity = client.post("/monitoring/parity", json={"feature_service": "live_weather", "window": window})
        assert parity.status_code == 200, parity.text
        page = client.get("/monitoring/view", params={"drift": made.json()["id"]})
        freshness = client.get("/monitoring/freshness").json()
        missing = client.get("/monitoring/view", params={"drift": "drift-nope"})
    stored = DriftReports(Settings(repo=repo).lineage_database_url)
    try:
        report = stored.get(made.json()["id"])  # with its bins
    finally:
        stored.dispose()
    return {
        "page": page,
        "report": report,
        "parity": parity.json(),
        "freshness": freshness,
        "missing": missing,
        "repo": repo,
    }


def test_one_histogram_per_feature_with_both_series_on_the_report_counts(viewed: dict[str, Any]) -> None:
    page, report = viewed["page"], viewed["report"]
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<script" not in page.text and "http://" not in page.text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    svg = parse(page.text)
    assert svg.histogram_order == FEATURES  # exactly one per feature of the report, in its order
    for f in report["features"]:
        bins = f["bins"]
        b, t = np.array(bins["baseline_counts"], float), np.array(bins["target_counts"], float)
        n = len(bins["edges"]) + 1 if "edges" in bins else len(bins["categories"])
        assert len(b) == len(t) == n, f["name"]
        drawn = svg.histograms[f["name"]]
        assert set(drawn) == {"baseline", "target"}, f["name"]
        assert len(drawn["baseline"]) == len(drawn["target"]) == n, f["name"]
        heights = np.array(drawn["baseline"] + drawn["target"])
        shares = np.concatenate([b / b.sum(), t / t.sum()])
        scale = heights.max() / shares.max()  # px per unit share: one axis for both sides
        assert scale > 0
        np.testing.assert_allclose(heights, shares * scale, atol=0.002, err_msg=f["name"])
    kinds = {f["name"]: f["kind"] for f in report["features"]}
    assert kinds["origin"] == kinds["label_delayed"] == "categorical" and kinds["temp"] == "numeric"


def test_psi_chart_and_tables_hold_the_reports_values(viewed: dict[str, Any]) -> None:
    svg, report = parse(viewed["page"].text), viewed["report"]
    features = {f["name"]: f for f in report["features"]}
    assert svg.psi == {n: f["psi"] for n, f in features.items() if f["psi"] is not None}
    assert svg.thresholds == 2 * len(features)  # warn and drift per feature
    assert features["temp"]["verdict"] == "drift" and features["humid"]["verdict"] == "ok"
    drift_rows = svg.tables["drift"][1:]
    assert [r[0] for r in drift_rows] == FEATURES
    for row in drift_rows:
        f = features[row[0]]
        assert row[2] == ("—" if f["psi"] is None else f"{f['psi']:.4f}") and row[-1] == f["verdict"]
    fresh = svg.tables["freshness"][1:]
    assert [(r[0], r[-1]) for r in fresh] == [(v["name"], v["status"]) for v in viewed["freshness"]["feature_views"]]
    parity = viewed["parity"]
    rows = svg.tables["parity-0"][1:]
    assert [r[0] for r in rows] == [f["name"] for f in parity["features"]] and len(rows) == 8
    assert [int(r[2].replace(",", "")) for r in rows] == [f["compared"] for f in parity["features"]]


def test_unknown_report_is_a_404_naming_drift(viewed: dict[str, Any]) -> None:
    missing = viewed["missing"]
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["field"] == "query.drift" and "drift-nope" in missing.json()["detail"]


def test_openapi_documents_the_page(viewed: dict[str, Any]) -> None:
    with app_client(viewed["repo"], REPLAY_NOW) as client:
        op = client.get("/openapi.json").json()["paths"]["/monitoring/view"]["get"]
    assert "text/html" in op["responses"]["200"]["content"]
    assert {"404", "422", "503"} <= set(op["responses"])
    assert op["responses"]["404"]["content"] == {
        "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
    }


def test_every_report_text_is_escaped() -> None:
    evil = "<script>alert(1)</script>"
    feature = {
        "name": evil,
        "kind": "categorical",
        "psi": 0.5,
        "js": 0.3,
        "test": "chi2",
        "p_value": 0.01,
        "null_rate_baseline": 0.0,
        "null_rate_target": 0.0,
        "verdict": "drift",
        "thresholds": {"warn": 0.1, "drift": 0.2, "source": "default"},
        "bins": {"categories": [evil, "other"], "baseline_counts": [3, 1], "target_counts": [1, 3]},
    }
    report = {
        "id": evil,
        "created_at": "2013-12-31T00:00:00Z",
        "verdict": "drift",
        "baseline": {"training_set_id": evil, "model": evil, "row_count": 4},
        "target": {"kind": evil, "row_count": 4},
        "features": [feature],
    }
    fresh = {"now": evil, "feature_views": []}
    html = render_page(report, [], fresh)
    assert "<script" not in html and "&lt;script&gt;" in html
    svg = parse(html)
    assert svg.histograms[evil]["baseline"] and len(svg.histograms[evil]["target"]) == 2


def test_an_all_null_baseline_draws_no_bars() -> None:
    feature = {
        "name": "empty",
        "kind": "numeric",
        "psi": None,
        "js": None,
        "test": None,
        "p_value": None,
        "null_rate_baseline": 1.0,
        "null_rate_target": 0.5,
        "verdict": "drift",
        "thresholds": {"warn": 0.1, "drift": 0.2, "source": "default"},
        "bins": {"edges": [], "baseline_counts": [], "target_counts": []},
    }
    report = {
        "id": "drift-x",
        "created_at": "2013-12-31T00:00:00Z",
        "verdict": "drift",
        "baseline": {"training_set_id": "ts-x", "model": None, "row_count": 4},
        "target": {"kind": "training_set", "row_count": 4},
        "features": [feature],
    }
    svg = parse(render_page(report))
    assert svg.histogram_order == ["empty"] and svg.histograms["empty"] == {} and svg.psi == {}
    assert "no bins: the baseline has no values" in render_page(report)


# -- in a real browser ------------------------------------------------------------------------------


def png_pixels(data: bytes) -> np.ndarray:
    """An 8-bit RGB or RGBA PNG (non-interlaced) decoded with zlib: ``(height, width, channels)`` uint8."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos : pos + 4]), data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert header is not None
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    out = np.zeros((height, stride), dtype=np.uint8)
    prior = np.zeros(stride, dtype=np.int32)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], np.frombuffer(raw, np.uint8, stride, y * (stride + 1) + 1).astype(np.int32)
        if kind == 0:
            row = line
        elif kind == 1:  # Sub: a running sum per channel
            row = np.concatenate([np.cumsum(line[c::bpp]) for c in range(bpp)])
            row = row.reshape(bpp, -1).T.reshape(-1) % 256
        elif kind == 2:
            row = (line + prior) % 256
        else:  # Average, Paeth: sequential
            recon = bytearray(stride)
            up = prior.tolist()
            vals = line.tolist()
            for i in range(stride):
                left = recon[i - bpp] if i >= bpp else 0
                if kind == 3:
                    recon[i] = (vals[i] + (left + up[i]) // 2) & 0xFF
                else:
                    upleft = up[i - bpp] if i >= bpp else 0
                    p = left + up[i] - upleft
                    pa, pb, pc = abs(p - left), abs(p - up[i]), abs(p - upleft)
                    pred = left if pa <= pb and pa <= pc else up[i] if pb <= pc else upleft
                    recon[i] = (vals[i] + pred) & 0xFF
            row = np.frombuffer(bytes(recon), np.uint8).astype(np.int32)
        out[y] = row
        prior = row.astype(np.int32)
    return out.reshape(height, width, bpp)[:, :, :3]


def near(pixels: np.ndarray, colour: str, tolerance: int = 4) -> int:
    """How many pixels are within ``tolerance`` (per channel) of ``#rrggbb``."""
    rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(pixels.astype(int) - rgb).max(axis=2) <= tolerance).sum())


@pytest.mark.slow
def test_page_renders_in_headless_chromium(viewed: dict[str, Any], tmp_path: Path) -> None:
    require_chromium()
    page = tmp_path / "view.html"
    page.write_text(viewed["page"].text, encoding="utf-8")
    shot = tmp_path / "view.png"
    result = chromium(tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,2000", page.as_uri())
    assert shot.exists(), f"no screenshot; chromium said:\n{result.stderr[-3000:]}"
    if keep := os.environ.get("FEASTLINE_VIEW_SCREENSHOT"):
        shutil.copy(shot, keep)
    pixels = png_pixels(shot.read_bytes())
    assert pixels.shape[:2] == (2000, 1200)
    distinct = len(np.unique(pixels.reshape(-1, 3), axis=0))
    assert distinct >= 50, f"{distinct} distinct colours: a blank page?"
    white = near(pixels, "#ffffff", 0)
    assert white < 0.95 * pixels.shape[0] * pixels.shape[1]
    # both series drawn as solid bars, and the verdict colours of drifting and calm features
    assert near(pixels, BASELINE_COLOUR) > 2000 and near(pixels, TARGET_COLOUR) > 2000
    assert near(pixels, VERDICT_COLOURS["drift"]) > 200 and near(pixels, VERDICT_COLOURS["ok"]) > 200
