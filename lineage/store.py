"""Persistence of the lineage graph, with its history, in SQLite or PostgreSQL (SQLAlchemy Core).

The schema is managed by Alembic (:mod:`lineage.migrations`, run on construction). Tables, names
optionally prefixed so tests can isolate themselves in one database::

    lineage_nodes(id PK "kind:name", kind, name, definition_hash, attributes JSON, updated_at, registry)
    lineage_edges(source, target, relation, registry; PK (source, target, relation))   -- the current graph
    lineage_changes(seq PK, at)                 -- one row per committed write; max(seq) is the change token
    lineage_node_history(id, definition_hash, attributes, from_seq, to_seq)   -- valid for from <= s < to
    lineage_edge_history(source, target, relation, from_seq, to_seq)
    lineage_versions(number PK, seq, created_at, source, node_count, edge_count, diff JSON)

The current tables answer current reads; the history tables answer ``as_of`` reads. ``registry`` marks
what the last :meth:`LineageStore.record_version` (``feastline apply``) recorded; only those nodes and
edges can be ended by a later version. Nodes saved otherwise (training sets, models, pipeline runs,
materialization attributes) are recorded in the history with the change that wrote them.

Writers are serialised (PostgreSQL: an ``EXCLUSIVE`` lock on the changes table; SQLite: ``BEGIN
IMMEDIATE`` with a 30 s busy timeout), so concurrent writes with overlapping nodes and edges lose
nothing, duplicate nothing, and cannot jointly close a cycle. Readers are not blocked on PostgreSQL.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Self

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    Text,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from lineage import migrations
from lineage.errors import NodeNotFound
from lineage.graph import LineageGraph
from lineage.model import Edge, Node, NodeKind, NodeRef, Relation
from lineage.versions import GraphDiff, Version, VersionNotFound, diff_graphs

_WRITE_OPTION = "lineage_write"
_PAST_GRAPHS_KEPT = 8


@dataclass(frozen=True)
class _Write:
    """An open write transaction and the change number / time it records."""

    conn: Connection
    seq: int
    now: datetime


class LineageStore:
    """The lineage graph and its history in a SQL database.

    Args:
        url: a SQLAlchemy URL, ``sqlite:///path.db`` or ``postgresql+psycopg://user@host:port/db``.
        table_prefix: prepended to every table name (``"t1_"`` -> ``t1_lineage_nodes``).

    The schema is migrated to the newest revision on construction (``alembic upgrade head``, idempotent).
    Call :meth:`dispose` (or use ``with``) when done.
    """

    def __init__(self, url: str, *, table_prefix: str = "") -> None:
        self.table_prefix = table_prefix
        is_sqlite = url.startswith("sqlite")
        self._engine = create_engine(url, connect_args={"timeout": 30} if is_sqlite else {})
        if is_sqlite:
            _use_explicit_sqlite_transactions(self._engine)
        self._metadata = MetaData()
        p = table_prefix
        self._nodes = Table(
            f"{p}lineage_nodes",
            self._metadata,
            Column("id", Text, primary_key=True),
            Column("kind", Text, nullable=False),
            Column("name", Text, nullable=False),
            Column("definition_hash", Text, nullable=True),
            Column("attributes", Text, nullable=False),
            Column("updated_at", DateTime(timezone=True), nullable=False),
            Column("registry", Boolean, nullable=False),
        )
        nodes_id = f"{self._nodes.name}.id"
        self._edges = Table(
            f"{p}lineage_edges",
            self._metadata,
            Column("source", Text, ForeignKey(nodes_id), primary_key=True),
            Column("target", Text, ForeignKey(nodes_id), primary_key=True),
            Column("relation", Text, primary_key=True),
            Column("registry", Boolean, nullable=False),
        )
        self._changes = Table(
            f"{p}lineage_changes",
            self._metadata,
            Column("seq", Integer, primary_key=True, autoincrement=False),
            Column("at", DateTime(timezone=True), nullable=False),
        )
        self._node_history = Table(
            f"{p}lineage_node_history",
            self._metadata,
            Column("id", Text, nullable=False),
            Column("definition_hash", Text),
            Column("attributes", Text, nullable=False),
            Column("from_seq", Integer, nullable=False),
            Column("to_seq", Integer),
        )
        self._edge_history = Table(
            f"{p}lineage_edge_history",
            self._metadata,
            Column("source", Text, nullable=False),
            Column("target", Text, nullable=False),
            Column("relation", Text, nullable=False),
            Column("from_seq", Integer, nullable=False),
            Column("to_seq", Integer),
        )
        self._versions = Table(
            f"{p}lineage_versions",
            self._metadata,
            Column("number", Integer, primary_key=True, autoincrement=False),
            Column("seq", Integer, nullable=False),
            Column("created_at", DateTime(timezone=True), nullable=False),
            Column("source", Text, nullable=False),
            Column("node_count", Integer, nullable=False),
            Column("edge_count", Integer, nullable=False),
            Column("diff", Text, nullable=False),
        )
        Table(migrations.version_table(p), self._metadata, Column("version_num", String(32), primary_key=True))
        self._cache_lock = threading.Lock()
        self._current: tuple[int, LineageGraph] | None = None
        self._past: OrderedDict[int, LineageGraph] = OrderedDict()
        self.create_all()

    # -- lifecycle --------------------------------------------------------------------------------

    def create_all(self) -> None:
        """Create or migrate the tables to the newest revision (``alembic upgrade head``; idempotent)."""
        with self._engine.connect() as conn:
            conn.execution_options(**{_WRITE_OPTION: True})
            sqlite = conn.dialect.name == "sqlite"
            raw = conn.connection.dbapi_connection if sqlite else None
            if raw is not None:  # batch migrations recreate tables; SQLite lifts FK checks only outside a transaction
                raw.execute("PRAGMA foreign_keys = OFF")
            try:
                with conn.begin():
                    migrations.upgrade(conn, self.table_prefix)
            finally:
                if raw is not None:
                    raw.execute("PRAGMA foreign_keys = ON")

    def drop_all(self) -> None:
        """Drop every table of this prefix and everything in them (for tests and teardown)."""
        self._metadata.drop_all(self._engine)
        with self._cache_lock:
            self._current = None
            self._past.clear()

    def dispose(self) -> None:
        """Close every pooled connection; the store must not be used afterwards."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.dispose()

    # -- writing ----------------------------------------------------------------------------------

    def save(self, nodes: Iterable[Node], edges: Iterable[Edge]) -> None:
        """Upsert ``nodes`` and add ``edges``, all in one transaction: everything or nothing is written.

        A node whose ref is already stored has its hash and attributes replaced; an edge already stored
        is left alone. Edges may name nodes saved earlier or in this same call. Changes are recorded in
        the history; nothing is ever ended by ``save``.

        Raises:
            NodeNotFound: an edge names a node that is neither stored nor in ``nodes``.
            CycleRefused: the stored graph plus these edges would contain a cycle.
        """
        by_ref = {node.ref: node for node in nodes}  # the last of duplicate refs wins
        new_edges = sorted(set(edges))
        with self._writing() as w:
            graph = self._read_graph(w.conn)
            known = {node.ref: node for node in graph.nodes()}
            stored_edges = set(graph.edges())
            for node in by_ref.values():
                graph.add_node(node)
            for edge in new_edges:
                graph.add_edge(edge)
            self._put_nodes(w, [n for n in by_ref.values() if known.get(n.ref) != n], known, registry=None)
            self._put_edges(w, [e for e in new_edges if e not in stored_edges], stored_edges, registry=False)

    def record_version(self, nodes: Iterable[Node], edges: Iterable[Edge], source: str = "feast apply") -> Version:
        """Record the registry-derived graph as a new version, in one transaction.

        ``nodes`` and ``edges`` are the whole registry-derived graph (what ``feastline apply`` builds).
        They are upserted and marked as registry-derived; registry nodes and edges of the previous
        version that are absent now are ended (they stay in the history, readable with ``as_of``), and
        so is every other edge touching an ended node.

        Returns:
            the new :class:`Version`, numbered one past the last, with its diff against the previous
            version (changed = same ref, different ``definition_hash``).

        Raises:
            NodeNotFound: an edge names a node that is neither stored (and kept) nor in ``nodes``.
            CycleRefused: the resulting graph would contain a cycle. Nothing is written on error.
        """
        by_ref = {node.ref: node for node in nodes}
        new_edges = set(edges)
        with self._writing() as w:
            conn = w.conn
            graph = self._read_graph(conn)
            known = {node.ref: node for node in graph.nodes()}
            stored_edges = set(graph.edges())
            registry_refs = [
                NodeRef.parse(i) for i in conn.scalars(select(self._nodes.c.id).where(self._nodes.c.registry))
            ]
            registry_edges = {
                _edge_from_row(r) for r in conn.execute(select(self._edges).where(self._edges.c.registry))
            }
            diff = diff_graphs(
                {r: known[r].definition_hash for r in registry_refs}, registry_edges, by_ref.values(), new_edges
            )
            gone = set(diff.removed_nodes)
            ended_edges = {e for e in stored_edges if e.source in gone or e.target in gone} | set(diff.removed_edges)
            kept_nodes = [n for n in graph.nodes() if n.ref not in gone and n.ref not in by_ref]
            result = LineageGraph.of([*kept_nodes, *by_ref.values()], (stored_edges - ended_edges) | new_edges)
            self._end_edges(w, sorted(ended_edges - new_edges))
            self._end_nodes(w, sorted(gone))
            self._put_nodes(w, list(by_ref.values()), known, registry=True)
            self._put_edges(w, sorted(new_edges), stored_edges - ended_edges, registry=True)
            number = conn.execute(select(func.coalesce(func.max(self._versions.c.number), 0))).scalar_one() + 1
            version = Version(number, w.now, source, len(result), len(result.edges()), diff)
            conn.execute(
                insert(self._versions).values(
                    number=number,
                    seq=w.seq,
                    created_at=w.now,
                    source=source,
                    node_count=version.node_count,
                    edge_count=version.edge_count,
                    diff=json.dumps(diff.to_dict(), sort_keys=True),
                )
            )
        return version

    def update_attributes(self, ref: NodeRef, **attrs: Any) -> Node:
        """Merge ``attrs`` into the stored node's attributes (top-level keys replaced; history recorded).

        Returns:
            the node as now stored.

        Raises:
            NodeNotFound: ``ref`` is not stored.
            TypeError / ValueError: a value is not JSON-serialisable.
        """
        with self._writing() as w:
            row = w.conn.execute(select(self._nodes).where(self._nodes.c.id == str(ref))).one_or_none()
            if row is None:
                raise NodeNotFound(ref)
            before = _node_from_row(row)
            node = Node(ref, row.definition_hash, {**before.attributes, **attrs})
            self._put_nodes(w, [node], {ref: before}, registry=None)
        return node

    # -- reading ----------------------------------------------------------------------------------

    def load_graph(self, as_of: int | datetime | None = None) -> LineageGraph:
        """The graph (a consistent snapshot, freshly read, yours to modify).

        Args:
            as_of: None for the current graph; a version number for the graph right after that
                version was recorded; a datetime (naive = UTC) for the graph as it was at that time.

        Raises:
            VersionNotFound: ``as_of`` is a version number never recorded.
        """
        with self._reading() as conn:
            if as_of is None:
                return self._read_graph(conn)
            return self._read_graph_at(conn, self._seq_of(conn, as_of))

    def current_graph(self) -> LineageGraph:
        """The current graph, cached until the next write (by any process): one cheap query when unchanged.

        The graph returned is shared between callers: query it, do not modify it.
        """
        with self._reading() as conn:
            token = self._token(conn)
            cached = self._current
            if cached is not None and cached[0] == token:
                return cached[1]
            graph = self._read_graph(conn)
        with self._cache_lock:
            self._current = (token, graph)
        return graph

    def graph_as_of(self, as_of: int | datetime | None) -> LineageGraph:
        """Like :meth:`load_graph` but cached and shared (do not modify): past states never change.

        Raises:
            VersionNotFound: ``as_of`` is a version number never recorded.
        """
        if as_of is None:
            return self.current_graph()
        with self._reading() as conn:
            seq = self._seq_of(conn, as_of)
            with self._cache_lock:
                if seq in self._past:
                    self._past.move_to_end(seq)
                    return self._past[seq]
            graph = self._read_graph_at(conn, seq)
        with self._cache_lock:
            self._past[seq] = graph
            while len(self._past) > _PAST_GRAPHS_KEPT:
                self._past.popitem(last=False)
        return graph

    def get_node(self, ref: NodeRef) -> Node:
        """The stored (current) node with this ref. Raises NodeNotFound."""
        with self._engine.connect() as conn:
            row = conn.execute(select(self._nodes).where(self._nodes.c.id == str(ref))).one_or_none()
        if row is None:
            raise NodeNotFound(ref)
        return _node_from_row(row)

    def change_token(self) -> int:
        """A number that grows with every committed write (0 for an empty store)."""
        with self._reading() as conn:
            return self._token(conn)

    def list_versions(self) -> list[Version]:
        """Every recorded version, oldest first."""
        with self._reading() as conn:
            rows = conn.execute(select(self._versions).order_by(self._versions.c.number))
            return [_version_from_row(row) for row in rows]

    def get_version(self, number: int) -> Version:
        """The version with this number, with its diff. Raises VersionNotFound."""
        with self._reading() as conn:
            row = conn.execute(select(self._versions).where(self._versions.c.number == number)).one_or_none()
        if row is None:
            raise VersionNotFound(number)
        return _version_from_row(row)

    # -- internals: transactions ------------------------------------------------------------------

    @contextmanager
    def _writing(self) -> Iterator[_Write]:
        """A write transaction holding the writers' lock, with its change recorded; committed on exit."""
        with self._engine.connect() as conn:
            conn.execution_options(**{_WRITE_OPTION: True})
            with conn.begin():
                if self._engine.dialect.name == "postgresql":
                    table = self._engine.dialect.identifier_preparer.format_table(self._changes)
                    conn.execute(text(f"LOCK TABLE {table} IN EXCLUSIVE MODE"))
                seq = self._token(conn) + 1
                now = datetime.now(UTC)
                conn.execute(insert(self._changes).values(seq=seq, at=now))
                yield _Write(conn, seq, now)

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        """A read transaction seeing one snapshot (REPEATABLE READ on PostgreSQL)."""
        with self._engine.connect() as conn:
            if self._engine.dialect.name == "postgresql":
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    def _token(self, conn: Connection) -> int:
        return int(conn.execute(select(func.coalesce(func.max(self._changes.c.seq), 0))).scalar_one())

    def _seq_of(self, conn: Connection, as_of: int | datetime) -> int:
        """The change number that ``as_of`` (version number or time) designates."""
        if isinstance(as_of, datetime):
            at = as_of.astimezone(UTC) if as_of.tzinfo else as_of.replace(tzinfo=UTC)
            query = select(func.coalesce(func.max(self._changes.c.seq), 0)).where(self._changes.c.at <= at)
            return int(conn.execute(query).scalar_one())
        seq = conn.execute(select(self._versions.c.seq).where(self._versions.c.number == as_of)).scalar_one_or_none()
        if seq is None:
            raise VersionNotFound(as_of)
        return int(seq)

    def _insert(self, table: Table) -> Any:
        """A dialect insert supporting ``on_conflict_do_*`` (SQLite and PostgreSQL share the API)."""
        if self._engine.dialect.name == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    # -- internals: reading -----------------------------------------------------------------------

    def _read_graph(self, conn: Connection) -> LineageGraph:
        nodes = [_node_from_row(row) for row in conn.execute(select(self._nodes))]
        edges = [_edge_from_row(row) for row in conn.execute(select(self._edges))]
        return LineageGraph.of(nodes, edges)

    def _read_graph_at(self, conn: Connection, seq: int) -> LineageGraph:
        nh, eh = self._node_history, self._edge_history
        node_rows = conn.execute(select(nh).where(nh.c.from_seq <= seq, or_(nh.c.to_seq.is_(None), nh.c.to_seq > seq)))
        edge_rows = conn.execute(select(eh).where(eh.c.from_seq <= seq, or_(eh.c.to_seq.is_(None), eh.c.to_seq > seq)))
        nodes = [Node(NodeRef.parse(r.id), r.definition_hash, json.loads(r.attributes)) for r in node_rows]
        return LineageGraph.of(nodes, [_edge_from_row(r) for r in edge_rows])

    # -- internals: writing -----------------------------------------------------------------------

    def _put_nodes(self, w: _Write, nodes: list[Node], known: Mapping[NodeRef, Node], *, registry: bool | None) -> None:
        """Upsert current rows (``registry`` None: keep the flag, new rows False); history for changed ones."""
        if not nodes:
            return
        stmt = self._insert(self._nodes)
        changes = {
            "definition_hash": stmt.excluded.definition_hash,
            "attributes": stmt.excluded.attributes,
            "updated_at": stmt.excluded.updated_at,
        }
        if registry is not None:
            changes["registry"] = stmt.excluded.registry
        stmt = stmt.on_conflict_do_update(index_elements=[self._nodes.c.id], set_=changes)
        w.conn.execute(stmt, [_node_row(node, w.now, bool(registry)) for node in nodes])
        changed = [node for node in nodes if known.get(node.ref) != node]
        self._close_node_history(w, [node.ref for node in changed if node.ref in known])
        if changed:
            w.conn.execute(
                insert(self._node_history),
                [
                    {
                        "id": str(n.ref),
                        "definition_hash": n.definition_hash,
                        "attributes": _dump(n.attributes),
                        "from_seq": w.seq,
                        "to_seq": None,
                    }
                    for n in changed
                ],
            )

    def _put_edges(self, w: _Write, edges: list[Edge], stored: set[Edge], *, registry: bool) -> None:
        """Insert (or, with ``registry``, mark) current rows; history for the edges not stored yet."""
        if not edges:
            return
        stmt = self._insert(self._edges)
        if registry:
            stmt = stmt.on_conflict_do_update(
                index_elements=[self._edges.c.source, self._edges.c.target, self._edges.c.relation],
                set_={"registry": stmt.excluded.registry},
            )
        else:
            stmt = stmt.on_conflict_do_nothing()
        w.conn.execute(stmt, [{**_edge_key(e), "registry": registry} for e in edges])
        fresh = [e for e in edges if e not in stored]
        if fresh:
            w.conn.execute(
                insert(self._edge_history), [{**_edge_key(e), "from_seq": w.seq, "to_seq": None} for e in fresh]
            )

    def _end_edges(self, w: _Write, edges: list[Edge]) -> None:
        if not edges:
            return
        e, eh = self._edges, self._edge_history
        keys = [{"b_source": str(x.source), "b_target": str(x.target), "b_relation": str(x.relation)} for x in edges]
        match = and_(
            e.c.source == bindparam("b_source"),
            e.c.target == bindparam("b_target"),
            e.c.relation == bindparam("b_relation"),
        )
        w.conn.execute(delete(e).where(match), keys)
        open_match = and_(
            eh.c.source == bindparam("b_source"),
            eh.c.target == bindparam("b_target"),
            eh.c.relation == bindparam("b_relation"),
            eh.c.to_seq.is_(None),
        )
        w.conn.execute(update(eh).where(open_match).values(to_seq=w.seq), keys)

    def _end_nodes(self, w: _Write, refs: list[NodeRef]) -> None:
        if not refs:
            return
        keys = [{"b_id": str(ref)} for ref in refs]
        w.conn.execute(delete(self._nodes).where(self._nodes.c.id == bindparam("b_id")), keys)
        self._close_node_history(w, refs)

    def _close_node_history(self, w: _Write, refs: list[NodeRef]) -> None:
        if not refs:
            return
        nh = self._node_history
        stmt = update(nh).where(nh.c.id == bindparam("b_id"), nh.c.to_seq.is_(None)).values(to_seq=w.seq)
        w.conn.execute(stmt, [{"b_id": str(ref)} for ref in refs])


def _use_explicit_sqlite_transactions(engine: Any) -> None:
    """Let SQLAlchemy, not pysqlite, issue BEGIN; writers take the write lock up front (IMMEDIATE).

    Upgrading a deferred read transaction to a write one can fail with "database is locked" without
    waiting on the busy timeout; ``BEGIN IMMEDIATE`` waits for the lock instead.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA foreign_keys = ON")

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _dump(attributes: Mapping[str, Any]) -> str:
    return json.dumps(dict(attributes), sort_keys=True, allow_nan=False)


def _node_row(node: Node, now: datetime, registry: bool) -> dict[str, Any]:
    return {
        "id": str(node.ref),
        "kind": str(node.ref.kind),
        "name": node.ref.name,
        "definition_hash": node.definition_hash,
        "attributes": _dump(node.attributes),
        "updated_at": now,
        "registry": registry,
    }


def _edge_key(edge: Edge) -> dict[str, str]:
    return {"source": str(edge.source), "target": str(edge.target), "relation": str(edge.relation)}


def _node_from_row(row: Row[Any]) -> Node:
    return Node(NodeRef(NodeKind(row.kind), row.name), row.definition_hash, json.loads(row.attributes))


def _edge_from_row(row: Row[Any]) -> Edge:
    return Edge(NodeRef.parse(row.source), NodeRef.parse(row.target), Relation(row.relation))


def _version_from_row(row: Row[Any]) -> Version:
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    diff = GraphDiff.from_dict(json.loads(row.diff))
    return Version(row.number, created, row.source, row.node_count, row.edge_count, diff)
