"""``as_of`` on ``/lineage/export/*`` and ``/lineage/view``: the graph as it was at a version or a time.

A copy of the built repo gets a known history after its first apply: version 2 adds ``entity:probe``
(keying ``feature_view:origin_weather``), then a training set ``training_set:probe`` is saved. The
expected answers are what the endpoints said *before* those writes (captured without ``as_of``),
plus or minus the nodes the test itself added.
"""

import io
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import networkx as nx
import pytest

from lineage import Edge, LineageStore, Node, NodeKind, NodeRef, Relation
from service.app import create_app
from service.settings import Settings
from tests.conftest import REPLAY_NOW, NoServerErrorClient, copy_repo
from tests.test_lineage_view import parse

PROBE = NodeRef(NodeKind.ENTITY, "probe")
VIEW = NodeRef(NodeKind.FEATURE_VIEW, "origin_weather")
PROBE_EDGE = Edge(PROBE, VIEW, Relation.KEYS)
SERVICE = NodeRef(NodeKind.FEATURE_SERVICE, "delay_model_v1")
TRAINING = NodeRef(NodeKind.TRAINING_SET, "probe")
SVG_NS = "{http://www.w3.org/2000/svg}"
EXPORTS = ("node-link", "graphml", "svg")
SERVICE_DOWN = {"node": str(SERVICE), "direction": "downstream", "depth": 1}


def ids(node_link: dict[str, Any]) -> set[str]:
    return {n["id"] for n in node_link["nodes"]}


def edges(node_link: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(e["source"], e["target"], e["relation"]) for e in node_link["edges"]}


def as_tuple(edge: Edge) -> tuple[str, str, str]:
    return str(edge.source), str(edge.target), str(edge.relation)


def linked(html: str) -> dict[str, dict[str, list[str]]]:
    """node id -> the query of its link on a view page."""
    out = {}
    for href in parse(html).links:
        parts = urlsplit(href)
        assert parts.path == "/lineage/view", href
        query = parse_qs(parts.query)
        out[query["node"][0]] = query
    return out


@pytest.fixture(scope="module")
def history(built_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    repo = tmp_path_factory.mktemp("as_of") / "repo"
    copy_repo(built_repo, repo, ignore=("training_sets",))
    settings = Settings(repo=repo, now=REPLAY_NOW)
    with NoServerErrorClient(create_app(settings)) as client:
        before = client.get("/lineage/export/node-link").json()
        before_view = client.get("/lineage/view", params={"node": str(SERVICE), "depth": 1}).text
        before_down = client.get("/lineage/export/node-link", params=SERVICE_DOWN).json()
        time.sleep(0.05)
        t0 = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        time.sleep(0.05)
        with LineageStore(settings.lineage_database_url) as store:
            first = store.load_graph(as_of=1)  # what the first apply recorded: the registry graph
            version = store.record_version(
                [*first.nodes(), Node(PROBE, "p" * 64, {"join_keys": ["probe"]})],
                [*first.edges(), PROBE_EDGE],
                source="test",
            )
            store.save([Node(TRAINING, "t" * 64, {"row_count": 1})], [Edge(SERVICE, TRAINING, Relation.TRAINED_ON)])
        assert version.number == 2
        yield {"client": client, "before": before, "before_view": before_view, "before_down": before_down, "t0": t0}


def test_node_link_as_of_a_time_is_the_graph_answered_then(history: Any) -> None:
    client, before = history["client"], history["before"]
    assert client.get("/lineage/export/node-link", params={"as_of": history["t0"]}).json() == before
    now = client.get("/lineage/export/node-link").json()
    assert {str(PROBE), str(TRAINING)} <= ids(now)  # the writes happened


def test_node_link_as_of_a_version(history: Any) -> None:
    client, before = history["client"], history["before"]
    v2 = client.get("/lineage/export/node-link", params={"as_of": "2"}).json()
    assert ids(v2) == ids(before) | {str(PROBE)}
    assert edges(v2) == edges(before) | {as_tuple(PROBE_EDGE)}
    g = nx.node_link_graph(v2, edges="edges")
    assert g.nodes[str(PROBE)]["attributes"] == {"join_keys": ["probe"]}


def test_neighbourhood_exports_as_of(history: Any) -> None:
    client, before = history["client"], history["before_down"]
    now = client.get("/lineage/export/node-link", params=SERVICE_DOWN).json()
    assert ids(now) == ids(before) | {str(TRAINING)}
    then = client.get("/lineage/export/node-link", params={**SERVICE_DOWN, "as_of": "2"}).json()
    assert then == before  # version 2 added nothing downstream of the service; the training set came later
    probe = {"node": str(PROBE), "depth": 1}
    for kind in EXPORTS:  # the probe did not exist at t0
        response = client.get(f"/lineage/export/{kind}", params={**probe, "as_of": history["t0"]})
        assert response.status_code == 404, kind
        assert response.headers["content-type"] == "application/problem+json"


def test_graphml_and_svg_as_of(history: Any) -> None:
    client, before = history["client"], history["before"]
    response = client.get("/lineage/export/graphml", params={"as_of": history["t0"]})
    assert set(nx.read_graphml(io.BytesIO(response.content)).nodes) == ids(before)

    response = client.get("/lineage/export/svg", params={"node": str(PROBE), "depth": 1, "as_of": "2"})
    assert response.status_code == 200
    root = ET.fromstring(response.content)
    texts = {t.text for t in root.iter(f"{SVG_NS}text")}
    assert {str(PROBE), str(VIEW)} <= texts and str(TRAINING) not in texts
    links = {a.get("href") for a in root.iter(f"{SVG_NS}a")}
    assert f"/lineage/nodes/{PROBE}?as_of=2" in links  # the picture links to the nodes as they were


def test_view_as_of_draws_the_graph_then_and_its_links_keep_as_of(history: Any) -> None:
    client, t0 = history["client"], history["t0"]
    now = linked(client.get("/lineage/view", params={"node": str(SERVICE), "depth": 1}).text)
    assert str(TRAINING) in now and all("as_of" not in q for q in now.values())

    page = client.get("/lineage/view", params={"node": str(SERVICE), "depth": 1, "as_of": t0})
    assert page.status_code == 200
    then = linked(page.text)
    assert set(then) == set(linked(history["before_view"]))
    assert all(q["as_of"] == [t0] for q in then.values())
    assert f'href="/lineage/nodes/{SERVICE}?as_of={t0}"' in page.text  # the JSON link too

    assert client.get("/lineage/view", params={"node": str(PROBE), "as_of": t0}).status_code == 404
    probe = linked(client.get("/lineage/view", params={"node": str(PROBE), "as_of": "2"}).text)
    assert set(probe) >= {str(PROBE), str(VIEW)} and all(q["as_of"] == ["2"] for q in probe.values())


@pytest.mark.parametrize(
    ("as_of", "status"), [("yesterday", 422), ("0", 422), ("2024-01-01T00:00:00", 422), ("99", 404)]
)
def test_bad_as_of_is_the_same_problem_as_on_the_node_queries(history: Any, as_of: str, status: int) -> None:
    client = history["client"]
    reference = client.get(f"/lineage/nodes/{VIEW}/upstream", params={"as_of": as_of})
    assert reference.status_code == status
    expected = {k: reference.json()[k] for k in ("type", "title", "status", "field")}
    assert expected["field"] == "query.as_of"
    requests = [(f"/lineage/export/{kind}", {}) for kind in EXPORTS] + [("/lineage/view", {"node": str(VIEW)})]
    for url, params in requests:
        response = client.get(url, params={**params, "as_of": as_of})
        assert response.status_code == status, url
        assert response.headers["content-type"] == "application/problem+json", url
        assert {k: response.json()[k] for k in expected} == expected, url
        assert "as_of" in response.json()["detail"], url
