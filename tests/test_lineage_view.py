"""``GET /lineage/view``: the HTML lineage page, in-process and in a real headless Chromium.

The browser test runs ``feastline serve`` over the built repo and drives ``/usr/bin/chromium``: a
screenshot of the page, then the rendered DOM, whose node links are followed one by one. Without
Chromium it skips, unless ``FEASTLINE_REQUIRE_SERVICES=1`` (CI installs it), where it fails.
"""

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from tests.conftest import require_services
from tests.live_server import live_server

CHROMIUM = "/usr/bin/chromium"
FOCUS = "feature_service:delay_model_v1"
BROWSER_SECONDS = 90


class Page(HTMLParser):
    """The parts of a view page the tests look at: the node shown and the node links."""

    def __init__(self) -> None:
        super().__init__()
        self.node_id: str | None = None
        self.links: list[str] = []
        self.attribute_keys: list[str] = []
        self._in_table = self._in_th = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "h1" and a.get("id") == "node":
            self.node_id = a.get("data-node-id")
        elif tag == "a" and "node" in (a.get("class") or "").split():
            self.links.append(a.get("href") or "")
        elif tag == "table" and a.get("id") == "attributes":
            self._in_table = True
        elif tag == "th" and self._in_table:
            self._in_th = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_table = False
        elif tag == "th":
            self._in_th = False

    def handle_data(self, data: str) -> None:
        if self._in_th:
            self.attribute_keys.append(data)


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    return page


def node_of(href: str) -> str:
    parts = urlsplit(href)
    assert parts.path == "/lineage/view", href
    return parse_qs(parts.query)["node"][0]


# -- in process -------------------------------------------------------------------------------------


def test_view_draws_the_neighbourhood_with_links_and_attributes(client: TestClient) -> None:
    response = client.get("/lineage/view", params={"node": "transform:origin_weather"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = parse(response.text)
    assert page.node_id == "transform:origin_weather"
    linked = {node_of(h) for h in page.links}
    # depth 2 by default: raw table and source one hop away, the feature view two hops downstream
    assert {
        "transform:origin_weather",
        "raw_table:nycflights13.weather",
        "data_source:origin_weather_source",
        "feature_view:origin_weather",
    } <= linked
    assert not any(i.startswith(("feature_service:", "training_set:")) for i in linked)  # 3+ hops away
    assert {"definition_hash", "rows_in", "rows_out", "rows_quarantined", "quality"} <= set(page.attribute_keys)
    assert "1048" in response.text  # the quarantined wind reading, in the quality result
    assert "<script" not in response.text.lower() and "http://" not in response.text.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )


def test_depth_widens_the_view(client: TestClient) -> None:
    narrow = parse(client.get("/lineage/view", params={"node": FOCUS, "depth": 1}).text)
    wide = parse(client.get("/lineage/view", params={"node": FOCUS, "depth": 3}).text)
    narrow_ids, wide_ids = {node_of(h) for h in narrow.links}, {node_of(h) for h in wide.links}
    assert narrow_ids < wide_ids
    assert "feature_view:origin_weather" in wide_ids - narrow_ids


@pytest.mark.parametrize(
    ("node", "status"),
    [("feature_view:nope", 404), ("model:nope@1", 404), ("nokind", 422), ("feature_view:x&depth=0", 404)],
)
def test_unknown_or_malformed_node_is_a_problem(client: TestClient, node: str, status: int) -> None:
    response = client.get("/lineage/view", params={"node": node})
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")


def test_bad_depth_is_422(client: TestClient) -> None:
    assert client.get("/lineage/view", params={"node": FOCUS, "depth": 0}).status_code == 422
    assert client.get("/lineage/view", params={"node": FOCUS, "depth": 101}).status_code == 422


def test_depth_goes_to_100_as_on_every_lineage_route(client: TestClient) -> None:
    deepest = client.get("/lineage/view", params={"node": FOCUS, "depth": 100})
    assert deepest.status_code == 200, deepest.text
    # a graph shallower than 100 hops: the whole neighbourhood, as with no limit on the JSON routes
    whole = client.get(f"/lineage/nodes/{FOCUS}/upstream").json()
    assert {node_of(h) for h in parse(deepest.text).links} >= {n["id"] for n in whole["nodes"]} - {FOCUS}
    bounds = {
        (path, method): next((s.get("minimum"), s.get("maximum")) for s in schemas if s.get("type") == "integer")
        for path, ops in client.get("/openapi.json").json()["paths"].items()
        for method, op in ops.items()
        for p in op.get("parameters", [])
        if p["name"] == "depth"
        for schemas in [p["schema"].get("anyOf", [p["schema"]])]
    }
    assert ("/lineage/view", "get") in bounds and len(bounds) >= 4
    assert set(bounds.values()) == {(1, 100)}, bounds


def test_names_are_escaped(client: TestClient) -> None:
    html = client.get("/lineage/view", params={"node": "raw_table:nycflights13.weather"}).text
    assert "<h1" in html and "&lt;" not in html.split("<h1", 1)[1].split("</h1>", 1)[0]


# -- in a real browser ------------------------------------------------------------------------------


def chromium(user_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={user_dir}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=BROWSER_SECONDS, check=False)


def require_chromium() -> None:
    """Skip without Chromium, unless CI asks for every service (then fail)."""
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        if require_services():
            pytest.fail(f"{CHROMIUM} is missing and FEASTLINE_REQUIRE_SERVICES=1 (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")


@pytest.fixture
def live_url(built_repo: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    require_chromium()  # before the server starts: a skip must not leave a server log to assert on
    log = tmp_path / "server.log"
    with live_server(built_repo, log) as url:
        yield url
    assert "GET /lineage/view" in log.read_text()


@pytest.mark.slow
def test_view_in_headless_chromium(live_url: str, tmp_path: Path) -> None:
    user_dir = tmp_path / "chromium-profile"
    start = f"{live_url}/lineage/view?node={FOCUS}"

    shot = tmp_path / "shot.png"
    result = chromium(user_dir, f"--screenshot={shot}", "--window-size=1280,900", start)
    assert shot.exists(), f"no screenshot; chromium said:\n{result.stderr[-3000:]}"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 10_000, "screenshot is suspiciously small (blank page?)"

    dom = chromium(user_dir, "--dump-dom", start)
    page = parse(dom.stdout)
    assert page.node_id == FOCUS, f"unexpected DOM:\n{dom.stdout[:2000]}\n{dom.stderr[-2000:]}"
    by_kind: dict[str, str] = {}
    for href in page.links:
        node = node_of(href)
        by_kind.setdefault(node.split(":", 1)[0], href)
    assert {"feature_service", "feature", "feature_view"} <= set(by_kind), by_kind
    followed = [h for kind, h in sorted(by_kind.items()) if kind != "feature_service"][:4]
    for href in followed:
        target = chromium(user_dir, "--dump-dom", f"{live_url}{href}")
        shown = parse(target.stdout)
        assert shown.node_id == node_of(href), f"{href} rendered:\n{target.stdout[:2000]}"
        assert shown.links and "definition_hash" in shown.attribute_keys
        assert FOCUS in {node_of(h) for h in shown.links}  # every node here is within 2 hops of it
