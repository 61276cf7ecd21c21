"""Build lineage nodes and edges from a Feast registry and from the data pipeline's run record.

Edges point downstream along the data flow:
``raw_table -reads-> transform -writes-> data_source -reads-> feature_view -defines-> feature
-includes-> feature_service``; ``entity -keys-> feature_view``; an on-demand view's features are
derived from the features (``derives``) of its source views.
"""

import hashlib
from collections.abc import Iterable
from typing import Any

from feast import FeatureStore
from feast.data_source import DataSource, PushSource

from lineage.model import Edge, Node, NodeKind, NodeRef, Relation

Graph = tuple[list[Node], list[Edge]]


def _ref(kind: NodeKind, name: str) -> NodeRef:
    return NodeRef(kind, name)


def _strip_volatile(message: Any) -> None:
    """Clear what changes without the definition changing: registry ``meta`` (timestamps,
    materialization intervals) anywhere inside, and pickled UDF bytes (``body``; the UDF's source
    text ``body_text`` stays and is hashed)."""
    for field, value in message.ListFields():
        if field.name == "meta" or (field.name == "body" and field.type == field.TYPE_BYTES):
            message.ClearField(field.name)
        elif field.type == field.TYPE_MESSAGE:
            if field.message_type.GetOptions().map_entry:
                for item in value.values():
                    if hasattr(item, "ListFields"):
                        _strip_volatile(item)
            elif getattr(field, "is_repeated", False) or isinstance(value, Iterable):
                for item in value:
                    _strip_volatile(item)
            else:
                _strip_volatile(value)


def spec_hash(obj: Any) -> str:
    """sha256 of a Feast object's spec proto, deterministic and free of registry timestamps."""
    proto = obj.to_proto()
    spec = getattr(proto, "spec", proto)
    _strip_volatile(spec)
    return hashlib.sha256(spec.SerializeToString(deterministic=True)).hexdigest()


def _source_node(ds: DataSource) -> Node:
    attrs: dict[str, Any] = {"type": type(ds).__name__, "description": ds.description or ""}
    path = getattr(ds, "path", None)
    if path:
        attrs["path"] = path
    if ds.timestamp_field:
        attrs["timestamp_field"] = ds.timestamp_field
    if ds.created_timestamp_column:
        attrs["created_timestamp_column"] = ds.created_timestamp_column
    return Node(_ref(NodeKind.DATA_SOURCE, ds.name), spec_hash(ds), attrs)


def from_registry(store: FeatureStore) -> Graph:
    """Nodes and edges for every entity, data source, feature view, feature and feature service."""
    nodes: dict[NodeRef, Node] = {}
    edges: set[Edge] = set()

    def add(node: Node) -> NodeRef:
        nodes[node.ref] = node
        return node.ref

    for ds in store.list_data_sources():
        add(_source_node(ds))
        if isinstance(ds, PushSource) and ds.batch_source is not None:
            batch = add(_source_node(ds.batch_source))
            edges.add(Edge(_ref(NodeKind.DATA_SOURCE, ds.name), batch, Relation.WRITES))
    for ent in store.list_entities():
        add(
            Node(
                _ref(NodeKind.ENTITY, ent.name),
                spec_hash(ent),
                {
                    "join_keys": [ent.join_key],
                    "value_type": ent.value_type.name,
                    "owner": ent.owner,
                    "description": ent.description,
                },
            )
        )
    for fv in store.list_feature_views():
        view = add(
            Node(
                _ref(NodeKind.FEATURE_VIEW, fv.name),
                spec_hash(fv),
                {
                    "ttl_seconds": fv.ttl.total_seconds() if fv.ttl else 0,
                    "schema": {f.name: str(f.dtype) for f in fv.features},
                    "join_keys": list(fv.join_keys),
                    "owner": fv.owner,
                    "tags": dict(fv.tags),
                    "description": fv.description,
                    "online": fv.online,
                },
            )
        )
        sources = [fv.stream_source, fv.batch_source] if fv.stream_source else [fv.batch_source]
        for ds in sources:
            if ds is not None:
                edges.add(Edge(add(_source_node(ds)), view, Relation.READS))
        for name in fv.entities:
            edges.add(Edge(_ref(NodeKind.ENTITY, name), view, Relation.KEYS))
        for f in fv.features:
            feat = add(
                Node(
                    _ref(NodeKind.FEATURE, f"{fv.name}.{f.name}"),
                    None,
                    {"dtype": str(f.dtype), "description": f.description, "view": fv.name},
                )
            )
            edges.add(Edge(view, feat, Relation.DEFINES))
    for odfv in store.list_on_demand_feature_views():
        view = add(
            Node(
                _ref(NodeKind.ON_DEMAND_FEATURE_VIEW, odfv.name),
                spec_hash(odfv),
                {
                    "schema": {f.name: str(f.dtype) for f in odfv.features},
                    "owner": odfv.owner,
                    "description": odfv.description,
                    "mode": odfv.mode,
                    "request_fields": [f.name for rs in odfv.source_request_sources.values() for f in rs.schema],
                },
            )
        )
        inputs = [
            _ref(NodeKind.FEATURE, f"{p.name}.{f.name}")
            for p in odfv.source_feature_view_projections.values()
            for f in p.features
        ]
        for p in odfv.source_feature_view_projections.values():
            edges.add(Edge(_ref(NodeKind.FEATURE_VIEW, p.name), view, Relation.READS))
        for f in odfv.features:
            feat = add(
                Node(
                    _ref(NodeKind.FEATURE, f"{odfv.name}.{f.name}"),
                    None,
                    {"dtype": str(f.dtype), "view": odfv.name, "on_demand": True},
                )
            )
            edges.add(Edge(view, feat, Relation.DEFINES))
            edges.update(Edge(i, feat, Relation.DERIVES) for i in inputs)
    for fs in store.list_feature_services():
        service = add(
            Node(
                _ref(NodeKind.FEATURE_SERVICE, fs.name),
                spec_hash(fs),
                {"owner": fs.owner, "description": fs.description, "tags": dict(fs.tags)},
            )
        )
        for p in fs.feature_view_projections:
            for f in p.features:
                edges.add(Edge(_ref(NodeKind.FEATURE, f"{p.name_to_use()}.{f.name}"), service, Relation.INCLUDES))
    return list(nodes.values()), sorted(edges)


def from_pipeline_run(record: dict[str, Any]) -> Graph:
    """Raw tables and transform nodes from a pipeline run record (``feature_repo/pipeline/run.py``).

    Each transform node carries its code sha256, its row counts (in, out, quarantined), its
    quality result (every failed check with its row and value) and where its quarantine file is.
    """
    nodes: dict[NodeRef, Node] = {}
    edges: set[Edge] = set()
    for step in record["steps"]:
        transform = _ref(NodeKind.TRANSFORM, step["step"])
        nodes[transform] = Node(
            transform,
            step["code_sha256"],
            {
                "code_sha256": step["code_sha256"],
                "run_id": record["run_id"],
                "status": step["status"],
                "rows_in": step["rows_in"],
                "rows_out": step["rows_out"],
                "rows_quarantined": step["rows_quarantined"],
                "quarantine_path": step["quarantine_path"],
                "quality": step["quality"],
                "output": step["output"],
                "column_lineage": step["column_lineage"],
                "started_at": step["started_at"],
                "finished_at": step["finished_at"],
            },
        )
        for table in step["inputs"]:
            raw = _ref(NodeKind.RAW_TABLE, table["table"])
            nodes[raw] = Node(
                raw,
                table["sha256"],
                {"path": table["path"], "rows": table["rows"], "content_sha256": table["sha256"]},
            )
            edges.add(Edge(raw, transform, Relation.READS))
        if step.get("data_source"):
            edges.add(Edge(transform, _ref(NodeKind.DATA_SOURCE, step["data_source"]), Relation.WRITES))
    return list(nodes.values()), sorted(edges)


def merge(*graphs: Graph) -> Graph:
    nodes: dict[NodeRef, Node] = {}
    edges: set[Edge] = set()
    for ns, es in graphs:
        nodes.update((n.ref, n) for n in ns)
        edges.update(es)
    return list(nodes.values()), sorted(edges)


def training_set_graph(
    ts_id: str, features: Iterable[str], feature_service: str | None, attributes: dict[str, Any]
) -> Graph:
    """A ``training_set:<id>`` node with ``trained_on`` edges from every feature (and the service)."""
    node = Node(_ref(NodeKind.TRAINING_SET, ts_id), attributes.get("fingerprint"), attributes)
    edges = {Edge(_ref(NodeKind.FEATURE, ref.replace(":", ".", 1)), node.ref, Relation.TRAINED_ON) for ref in features}
    if feature_service:
        edges.add(Edge(_ref(NodeKind.FEATURE_SERVICE, feature_service), node.ref, Relation.TRAINED_ON))
    return [node], sorted(edges)
