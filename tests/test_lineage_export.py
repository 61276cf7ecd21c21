"""Exports of the lineage graph: node-link JSON, GraphML and SVG (pure functions and over HTTP)."""

import io
import xml.etree.ElementTree as ET

import networkx as nx

from lineage import Edge, LineageGraph, Node, NodeKind, NodeRef, Relation
from lineage.export import graphml, node_link, svg
from lineage.export.svg import layers

RAW, T, SRC, FV = (
    NodeRef(NodeKind.RAW_TABLE, "nyc.weather"),
    NodeRef(NodeKind.TRANSFORM, "weather"),
    NodeRef(NodeKind.DATA_SOURCE, "weather_src"),
    NodeRef(NodeKind.FEATURE_VIEW, "origin_weather"),
)
SVG_NS = "{http://www.w3.org/2000/svg}"


def chain() -> LineageGraph:
    nodes = [
        Node(RAW, "h1", {"rows": 3, "schema": {"temp": "float64"}}),
        Node(T, None, {"tags": ["a", "b"]}),
        Node(SRC, "h3", {}),
        Node(FV, "h4", {"owner": "x & <y>"}),
    ]
    edges = [
        Edge(RAW, T, Relation.READS),
        Edge(T, SRC, Relation.WRITES),
        Edge(SRC, FV, Relation.READS),
        Edge(RAW, FV, Relation.READS),  # a shortcut: FV is two layers, not one, after RAW
    ]
    return LineageGraph.of(nodes, edges)


def test_node_link_round_trips():
    graph = chain()
    data = node_link(graph)
    g = nx.node_link_graph(data, edges="edges")
    assert set(g.nodes) == {str(n.ref) for n in graph.nodes()}
    assert g.nodes[str(RAW)]["attributes"] == {"rows": 3, "schema": {"temp": "float64"}}
    assert {(s, t, d["relation"]) for s, t, d in g.edges(data=True)} == {
        (str(e.source), str(e.target), str(e.relation)) for e in graph.edges()
    }
    assert node_link(graph.upstream_of(SRC, depth=1))["nodes"] == [graph.node(SRC).to_dict(), graph.node(T).to_dict()]


def test_graphml_parses_and_keeps_attributes():
    g = nx.read_graphml(io.BytesIO(graphml(chain()).encode()))
    assert g.nodes[str(FV)]["kind"] == "feature_view" and g.nodes[str(FV)]["definition_hash"] == "h4"
    assert "definition_hash" not in g.nodes[str(T)]
    assert g.nodes[str(T)]["attributes"] == '{"tags": ["a", "b"]}'
    assert g.number_of_edges() == 4 and g.has_edge(str(RAW), str(FV))


def test_layers_follow_the_longest_path():
    graph = chain()
    assert layers([n.ref for n in graph.nodes()], [(e.source, e.target) for e in graph.edges()]) == [
        [RAW],
        [T],
        [SRC],
        [FV],
    ]


def test_svg_is_well_formed_with_ids_and_links():
    picture = svg(chain(), href="/lineage/nodes/{id}")
    root = ET.fromstring(picture)
    texts = [t.text for t in root.iter(f"{SVG_NS}text")]
    assert all(str(ref) in texts for ref in (RAW, T, SRC, FV))
    assert {"reads", "writes"} <= set(texts)
    links = [a.get("href") for a in root.iter(f"{SVG_NS}a")]
    assert "/lineage/nodes/feature_view:origin_weather" in links and len(links) == 4
    assert ET.fromstring(svg(LineageGraph())).tag == f"{SVG_NS}svg"  # empty graph


def test_http_exports(client):
    whole = client.get("/lineage/export/node-link").json()
    g = nx.node_link_graph(whole, edges="edges")
    assert g.number_of_nodes() > 5
    node = "feature_view:origin_weather"
    up = client.get("/lineage/export/node-link", params={"node": node, "direction": "upstream"}).json()
    assert node in {n["id"] for n in up["nodes"]} and any(n["kind"] == "raw_table" for n in up["nodes"])
    assert not any(n["kind"] == "feature_service" for n in up["nodes"])
    both = client.get("/lineage/export/node-link", params={"node": node, "depth": 1}).json()
    assert {n["kind"] for n in both["nodes"]} >= {"data_source", "feature"}

    response = client.get("/lineage/export/graphml", params={"node": node, "depth": 2})
    assert response.headers["content-type"].startswith("application/graphml+xml")
    assert node in nx.read_graphml(io.BytesIO(response.content)).nodes

    response = client.get("/lineage/export/svg", params={"node": node, "depth": 1})
    assert response.headers["content-type"].startswith("image/svg+xml")
    root = ET.fromstring(response.content)
    texts = {t.text for t in root.iter(f"{SVG_NS}text")}
    assert {n["id"] for n in both["nodes"]} <= texts


def test_unknown_node_is_404(client):
    for kind in ("node-link", "graphml", "svg"):
        response = client.get(f"/lineage/export/{kind}", params={"node": "feature_view:nope"})
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")
