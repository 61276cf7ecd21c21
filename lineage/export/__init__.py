"""Exporters of the lineage graph: node-link JSON, GraphML and an SVG picture (pure functions, no HTTP)."""

from lineage.export.formats import graphml, node_link
from lineage.export.svg import svg

__all__ = ["graphml", "node_link", "svg"]
