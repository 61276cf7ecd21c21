"""Interchange formats of a lineage graph or subgraph: node-link JSON and GraphML.

Both describe a directed multigraph (two nodes may be linked by several relations); each edge's key is
its relation, so ``networkx.node_link_graph(data, edges="edges")`` and ``networkx.read_graphml`` give a
``MultiDiGraph`` whose node ids are the lineage ids (``"kind:name"``).
"""

from __future__ import annotations

import json
from typing import Any

import networkx as nx  # type: ignore[import-untyped]  # no stubs in the venv

from lineage.graph import LineageGraph, Subgraph
from lineage.model import Edge, Node

Graphish = LineageGraph | Subgraph


def _parts(graph: Graphish) -> tuple[list[Node], list[Edge]]:
    if isinstance(graph, LineageGraph):
        return graph.nodes(), graph.edges()
    return list(graph.nodes), list(graph.edges)


def node_link(graph: Graphish) -> dict[str, Any]:
    """The ``networkx.node_link_data`` shape (networkx >= 3.4 key names) of ``graph``.

    Returns:
        ``{"directed": True, "multigraph": True, "graph": {}, "nodes": [Node.to_dict(), ...],
        "edges": [{"source": id, "target": id, "relation": str, "key": relation}, ...]}``;
        nodes sorted by ref, edges by (source, target, relation). JSON-serialisable.
    """
    nodes, edges = _parts(graph)
    return {
        "directed": True,
        "multigraph": True,
        "graph": {},
        "nodes": [node.to_dict() for node in nodes],
        "edges": [{**edge.to_dict(), "key": str(edge.relation)} for edge in edges],
    }


def _graphml_attrs(node: Node) -> dict[str, str]:
    """Node attributes as GraphML-legal scalars: ``attributes`` JSON-encoded, a missing hash left out."""
    attrs = {"kind": str(node.ref.kind), "name": node.ref.name, "attributes": json.dumps(dict(node.attributes))}
    if node.definition_hash is not None:
        attrs["definition_hash"] = node.definition_hash
    return attrs


def graphml(graph: Graphish) -> str:
    """``graph`` as a GraphML document (a ``str``, UTF-8 XML).

    Node ids are lineage ids; node data keys ``kind``, ``name``, ``definition_hash`` (absent when None)
    and ``attributes`` (the JSON text of ``Node.attributes``); edge data key ``relation`` (also the edge id).
    """
    nodes, edges = _parts(graph)
    g = nx.MultiDiGraph()
    for node in nodes:
        g.add_node(node.id, **_graphml_attrs(node))
    for edge in edges:
        g.add_edge(str(edge.source), str(edge.target), key=str(edge.relation), relation=str(edge.relation))
    return "\n".join(nx.generate_graphml(g, encoding="utf-8", prettyprint=True))
