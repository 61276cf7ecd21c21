"""Build lineage nodes and edges from a Feast registry and from the data pipeline's run record.

Edges point downstream along the data flow:
``raw_table -reads-> transform -writes-> data_source -reads-> feature_view -defines-> feature
-includes-> feature_service``; ``entity -keys-> feature_view``; an on-demand view's features are
derived from the features (``derives``) of its source views.

At column grain (``column:<table>.<col>`` for raw columns, ``column:<data_source>.<col>`` for source
columns and request fields) columns connect to columns only: ``raw_table -defines-> column
-derives-> column -derives-> feature``, one ``derives`` edge from each raw column to each source
column a pipeline step declares it computes (``column_lineage``), and ``data_source -defines->
column``; so a column's lineage never merges with its neighbours' in the transform node, which stays
upstream of every feature through its data source. A request field ``-derives->`` each on-demand
feature using it. A feature reads the source column its name maps from (``FileSource.field_mapping``:
source column -> feature column).
"""

import hashlib
from collections.abc import Iterable
from typing import Any

from feast import FeatureStore
from feast.data_source import DataSource, PushSource, RequestSource
from feast.feature_view import DUMMY_ENTITY_ID, DUMMY_ENTITY_NAME

from lineage.model import Edge, Node, NodeKind, NodeRef, Relation, definition_hash

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


def column_ref(table: str, column: str) -> NodeRef:
    """``column:<table>.<column>``; ``table`` is a raw table (``nycflights13.weather``) or a data source name."""
    return _ref(NodeKind.COLUMN, f"{table}.{column}")


def _column_node(table: str, column: str, **attrs: Any) -> Node:
    """A column node; its definition hash covers the table, the column name and its dtype (if known)."""
    spec = {"table": table, "column": column, **({"dtype": attrs["dtype"]} if "dtype" in attrs else {})}
    return Node(column_ref(table, column), definition_hash(spec), {"table": table, "column": column, **attrs})


def _source_column(ds: DataSource, feature: str) -> str:
    """The source column a feature named ``feature`` reads (``field_mapping`` maps source -> feature)."""
    inverse = {v: k for k, v in (ds.field_mapping or {}).items()}
    return inverse.get(feature, feature)


def _source_node(ds: DataSource) -> Node:
    attrs: dict[str, Any] = {
        "type": type(ds).__name__,
        "description": ds.description or "",
        "owner": ds.owner or "",
        "tags": dict(ds.tags or {}),
    }
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

    def add_source_column(ds: DataSource, column: str, **attrs: Any) -> NodeRef:
        col = add(_column_node(ds.name, column, data_source=ds.name, **attrs))
        edges.add(Edge(_ref(NodeKind.DATA_SOURCE, ds.name), col, Relation.DEFINES))
        return col

    for ds in store.list_data_sources():
        add(_source_node(ds))
        if isinstance(ds, PushSource) and ds.batch_source is not None:
            pushed_to = add(_source_node(ds.batch_source))
            edges.add(Edge(_ref(NodeKind.DATA_SOURCE, ds.name), pushed_to, Relation.WRITES))
        for field in ds.schema if isinstance(ds, RequestSource) else []:
            add_source_column(ds, field.name, dtype=str(field.dtype), request_field=True)
    for ent in store.list_entities():
        add(
            Node(
                _ref(NodeKind.ENTITY, ent.name),
                spec_hash(ent),
                {
                    "join_keys": [ent.join_key],
                    "value_type": ent.value_type.name,
                    "owner": ent.owner,
                    "tags": dict(ent.tags),
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
        for source in sources:
            if source is not None:
                edges.add(Edge(add(_source_node(source)), view, Relation.READS))
        for name in fv.entities:
            if name != DUMMY_ENTITY_NAME:  # Feast's placeholder entity of a view without entities
                edges.add(Edge(_ref(NodeKind.ENTITY, name), view, Relation.KEYS))
        batch: DataSource | None = fv.batch_source
        if batch is not None:
            keys = [k for k in fv.join_keys if k != DUMMY_ENTITY_ID]
            for key_or_time in (batch.timestamp_field, batch.created_timestamp_column, *keys):
                if key_or_time:
                    add_source_column(batch, key_or_time)
        for f in fv.features:
            column = _source_column(batch, f.name) if batch is not None else None
            spec = {"view": fv.name, "name": f.name, "dtype": str(f.dtype), "source_column": column}
            if batch is not None:
                spec["data_source"] = batch.name
            feat = add(
                Node(
                    _ref(NodeKind.FEATURE, f"{fv.name}.{f.name}"),
                    definition_hash(spec),
                    {
                        "dtype": str(f.dtype),
                        "description": f.description,
                        "view": fv.name,
                        "owner": fv.owner,
                        "tags": dict(fv.tags),
                        **({"source_column": str(column_ref(batch.name, column))} if batch and column else {}),
                    },
                )
            )
            edges.add(Edge(view, feat, Relation.DEFINES))
            if batch is not None and column:
                edges.add(Edge(add_source_column(batch, column), feat, Relation.DERIVES))
    for odfv in store.list_on_demand_feature_views():
        view = add(
            Node(
                _ref(NodeKind.ON_DEMAND_FEATURE_VIEW, odfv.name),
                spec_hash(odfv),
                {
                    "schema": {f.name: str(f.dtype) for f in odfv.features},
                    "owner": odfv.owner,
                    "tags": dict(odfv.tags),
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
        request_fields = []
        for rs in odfv.source_request_sources.values():
            add(_source_node(rs))
            edges.add(Edge(_ref(NodeKind.DATA_SOURCE, rs.name), view, Relation.READS))
            request_fields += [add_source_column(rs, f.name, dtype=str(f.dtype), request_field=True) for f in rs.schema]
        for p in odfv.source_feature_view_projections.values():
            edges.add(Edge(_ref(NodeKind.FEATURE_VIEW, p.name), view, Relation.READS))
        odfv_hash = spec_hash(odfv)
        for f in odfv.features:
            feat = add(
                Node(
                    _ref(NodeKind.FEATURE, f"{odfv.name}.{f.name}"),
                    definition_hash({"view": odfv.name, "view_hash": odfv_hash, "name": f.name, "dtype": str(f.dtype)}),
                    {
                        "dtype": str(f.dtype),
                        "view": odfv.name,
                        "on_demand": True,
                        "owner": odfv.owner,
                        "tags": dict(odfv.tags),
                    },
                )
            )
            edges.add(Edge(view, feat, Relation.DEFINES))
            edges.update(Edge(i, feat, Relation.DERIVES) for i in inputs)
            edges.update(Edge(c, feat, Relation.DERIVES) for c in request_fields)
    for fs in store.list_feature_services():
        service = add(
            Node(
                _ref(NodeKind.FEATURE_SERVICE, fs.name),
                spec_hash(fs),
                {"owner": fs.owner, "description": fs.description, "tags": dict(fs.tags)},
            )
        )
        for p in fs.feature_view_projections:
            for f in p.features:  # a projection (with_name, with_join_key_map) includes the view's own feature
                edges.add(Edge(_ref(NodeKind.FEATURE, f"{p.name}.{f.name}"), service, Relation.INCLUDES))
    return list(nodes.values()), sorted(edges)


def from_pipeline_run(record: dict[str, Any]) -> Graph:
    """Raw tables, raw and source columns and transform nodes from a pipeline run record
    (:meth:`lineage.runs.PipelineRun.to_record`, written by ``feature_repo/pipeline/run.py``).

    Each transform node carries its code sha256, its parameters, its row counts (in, out, quarantined),
    its quality result (every failed check with its row and value), where its quarantine file is, its
    status and error, and its ``column_lineage`` (output column -> raw columns): the mappings behind the
    column edges below, which name no transform (edges carry no attributes).

    Table edges: ``raw_table -reads-> transform -writes-> data_source``. Column edges, none touching
    the transform: ``raw_table -defines-> column`` for each raw column the step's ``column_lineage``
    uses; for each output column of a step that feeds a data source, ``data_source -defines->
    column:<data_source>.<col>`` and ``column -derives->`` it from each raw column it is declared from.
    """
    nodes: dict[NodeRef, Node] = {}
    edges: set[Edge] = set()
    for step in record["steps"]:
        transform = _ref(NodeKind.TRANSFORM, step["step"])
        output = step.get("output") or {}
        lineage: dict[str, list[str]] = step.get("column_lineage") or {}
        nodes[transform] = Node(
            transform,
            step["code_sha256"],
            {
                "code_sha256": step["code_sha256"],
                "run_id": record["run_id"],
                "status": step["status"],
                "error": step.get("error"),
                "parameters": step.get("parameters", {}),
                "run_parameters": record.get("parameters", {}),
                "rows_in": step["rows_in"],
                "rows_out": step["rows_out"],
                "rows_quarantined": step["rows_quarantined"],
                "quarantine_path": step["quarantine_path"],
                "quality": step["quality"],
                "output": step["output"],
                "column_lineage": lineage,
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
        inputs = {t["table"] for t in step["inputs"]}
        raw_columns: set[NodeRef] = set()
        for qualified in sorted({c for cols in lineage.values() for c in cols}):
            table, _, column = qualified.rpartition(".")
            if table not in inputs:  # column_lineage names a table the step did not read: no raw node for it
                continue
            col = column_ref(table, column)
            nodes[col] = _column_node(table, column, raw_table=table)
            raw_columns.add(col)
            edges.add(Edge(_ref(NodeKind.RAW_TABLE, table), col, Relation.DEFINES))
        source = step.get("data_source")
        if source:
            source_ref = _ref(NodeKind.DATA_SOURCE, source)
            edges.add(Edge(transform, source_ref, Relation.WRITES))
            for column, dtype in (output.get("columns") or {}).items():
                col = column_ref(source, column)
                upstream = sorted(column_ref(*c.rpartition(".")[::2]) for c in lineage.get(column, []))
                nodes[col] = _column_node(
                    source,
                    column,
                    data_source=source,
                    dtype=dtype,
                    transform=step["step"],
                    derived_from=[str(raw) for raw in upstream],
                )
                edges.add(Edge(source_ref, col, Relation.DEFINES))
                edges.update(Edge(raw, col, Relation.DERIVES) for raw in upstream if raw in raw_columns)
    return list(nodes.values()), sorted(edges)


def merge(*graphs: Graph) -> Graph:
    """Union of graphs; a node present in several keeps the union of its attributes (later graphs win
    per key) and the last non-null definition hash."""
    nodes: dict[NodeRef, Node] = {}
    edges: set[Edge] = set()
    for ns, es in graphs:
        for n in ns:
            old = nodes.get(n.ref)
            if old is not None:
                n = Node(n.ref, n.definition_hash or old.definition_hash, {**old.attributes, **n.attributes})
            nodes[n.ref] = n
        edges.update(es)
    return list(nodes.values()), sorted(edges)


def training_set_graph(
    ts_id: str,
    features: Iterable[str],
    feature_service: str | None,
    attributes: dict[str, Any],
    view_names: dict[str, str] | None = None,
) -> Graph:
    """A ``training_set:<id>`` node with ``trained_on`` edges from every feature (and the service).

    ``features`` are ``view:feature`` references; ``view_names`` maps a projection's name (a feature
    service's ``fv.with_name("x")``: ``x``) to the view's own name, whose feature node the edge leaves from.
    """
    node = Node(_ref(NodeKind.TRAINING_SET, ts_id), attributes.get("fingerprint"), attributes)
    names = view_names or {}
    edges = set()
    for ref in features:
        view, _, feature = ref.partition(":")
        edges.add(Edge(_ref(NodeKind.FEATURE, f"{names.get(view, view)}.{feature}"), node.ref, Relation.TRAINED_ON))
    if feature_service:
        edges.add(Edge(_ref(NodeKind.FEATURE_SERVICE, feature_service), node.ref, Relation.TRAINED_ON))
    return [node], sorted(edges)
