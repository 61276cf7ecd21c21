"""``/docs`` (Swagger UI) and ``/redoc`` render without internet: their assets are served by feastline
itself (the pinned ``fastapi-offline`` package ships them), never fetched from a CDN.

In process: the pages reference only same-origin assets, and each is served. In headless Chromium
(as ``tests/test_lineage_view.py`` drives it; skipped without Chromium unless
``FEASTLINE_REQUIRE_SERVICES=1``), with every host but the loopback made unresolvable: the rendered
DOM shows the API's operations.
"""

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.live_server import live_server
from tests.test_lineage_view import chromium, require_chromium

OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"  # no CDN could be reached


class Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        url = a.get("src") if tag == "script" else a.get("href") if tag == "link" else None
        if url:
            self.urls.append(url)


@pytest.mark.parametrize(("page", "kinds"), [("/docs", {"javascript", "css"}), ("/redoc", {"javascript"})])
def test_doc_pages_use_only_assets_served_here(client: TestClient, page: str, kinds: set[str]) -> None:
    response = client.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert not re.search(r"https?://", response.text), "a doc page names an outside URL"
    parser = Assets()
    parser.feed(response.text)
    served = set()
    for url in parser.urls:
        assert url.startswith("/"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        served |= {k for k in ("javascript", "css", "png") if k in asset.headers["content-type"]}
    assert kinds <= served


@pytest.fixture
def docs_url(built_repo: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    require_chromium()
    log = tmp_path / "server.log"
    with live_server(built_repo, log) as url:
        yield url
    assert "GET /static-offline-docs/swagger-ui-bundle.js" in log.read_text()


@pytest.mark.slow
def test_docs_and_redoc_render_offline_in_headless_chromium(docs_url: str, tmp_path: Path) -> None:
    profile = tmp_path / "chromium-profile"
    swagger = chromium(profile, OFFLINE, "--virtual-time-budget=15000", "--dump-dom", f"{docs_url}/docs")
    assert 'class="swagger-ui"' in swagger.stdout, f"Swagger UI did not render:\n{swagger.stdout[:2000]}"
    assert "/training-sets" in swagger.stdout and "opblock" in swagger.stdout  # the operations are drawn
    redoc = chromium(profile, OFFLINE, "--virtual-time-budget=15000", "--dump-dom", f"{docs_url}/redoc")
    assert "/get-online-features" in redoc.stdout, f"ReDoc did not render:\n{redoc.stdout[:2000]}"
    assert "Build, audit and store a training set" in redoc.stdout  # an operation's description, drawn by ReDoc
