"""Persistence of the lineage graph in SQLite or PostgreSQL (SQLAlchemy Core).

Two tables (names optionally prefixed, so tests can isolate themselves in one database)::

    lineage_nodes(id text PK "kind:name", kind, name, definition_hash, attributes JSON text,
                  updated_at timestamptz UTC)
    lineage_edges(source -> lineage_nodes.id, target -> lineage_nodes.id, relation,
                  PK (source, target, relation))

Writers are serialised (PostgreSQL: a ``SHARE ROW EXCLUSIVE`` lock on the edges table; SQLite:
``BEGIN IMMEDIATE`` with a 30 s busy timeout), so concurrent ``save`` calls with overlapping nodes and
edges lose nothing, duplicate nothing, and cannot jointly close a cycle. Readers are not blocked on
PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Self

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    ForeignKey,
    MetaData,
    Row,
    Table,
    Text,
    create_engine,
    event,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from lineage.errors import NodeNotFound
from lineage.graph import LineageGraph
from lineage.model import Edge, Node, NodeKind, NodeRef, Relation

_WRITE_OPTION = "lineage_write"


class LineageStore:
    """The lineage graph in a SQL database.

    Args:
        url: a SQLAlchemy URL, ``sqlite:///path.db`` or ``postgresql+psycopg://user@host:port/db``.
        table_prefix: prepended to both table names (``"t1_"`` -> ``t1_lineage_nodes``).

    The tables are created on construction if missing. Call :meth:`dispose` (or use ``with``) when done.
    """

    def __init__(self, url: str, *, table_prefix: str = "") -> None:
        self.table_prefix = table_prefix
        is_sqlite = url.startswith("sqlite")
        self._engine = create_engine(url, connect_args={"timeout": 30} if is_sqlite else {})
        if is_sqlite:
            _use_explicit_sqlite_transactions(self._engine)
        self._metadata = MetaData()
        self._nodes = Table(
            f"{table_prefix}lineage_nodes",
            self._metadata,
            Column("id", Text, primary_key=True),
            Column("kind", Text, nullable=False),
            Column("name", Text, nullable=False),
            Column("definition_hash", Text, nullable=True),
            Column("attributes", Text, nullable=False),
            Column("updated_at", DateTime(timezone=True), nullable=False),
        )
        nodes_id = f"{self._nodes.name}.id"
        self._edges = Table(
            f"{table_prefix}lineage_edges",
            self._metadata,
            Column("source", Text, ForeignKey(nodes_id), primary_key=True),
            Column("target", Text, ForeignKey(nodes_id), primary_key=True),
            Column("relation", Text, primary_key=True),
        )
        self.create_all()

    # -- lifecycle --------------------------------------------------------------------------------

    def create_all(self) -> None:
        """Create the two tables if they do not exist (idempotent)."""
        self._metadata.create_all(self._engine)

    def drop_all(self) -> None:
        """Drop the two tables and everything in them (for tests and teardown)."""
        self._metadata.drop_all(self._engine)

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
        is left alone. Edges may name nodes saved earlier or in this same call.

        Raises:
            NodeNotFound: an edge names a node that is neither stored nor in ``nodes``.
            CycleRefused: the stored graph plus these edges would contain a cycle.
        """
        by_ref = {node.ref: node for node in nodes}  # the last of duplicate refs wins
        new_edges = sorted(set(edges))
        with self._writing(lock_graph=True) as conn:
            graph = self._read_graph(conn)
            for node in by_ref.values():
                graph.add_node(node)
            for edge in new_edges:
                graph.add_edge(edge)
            now = datetime.now(UTC)
            if by_ref:
                stmt = self._insert(self._nodes)
                stmt = stmt.on_conflict_do_update(
                    index_elements=[self._nodes.c.id],
                    set_={
                        "definition_hash": stmt.excluded.definition_hash,
                        "attributes": stmt.excluded.attributes,
                        "updated_at": stmt.excluded.updated_at,
                    },
                )
                conn.execute(stmt, [_node_row(node, now) for node in by_ref.values()])
            if new_edges:
                conn.execute(
                    self._insert(self._edges).on_conflict_do_nothing(),
                    [
                        {"source": str(e.source), "target": str(e.target), "relation": str(e.relation)}
                        for e in new_edges
                    ],
                )

    def update_attributes(self, ref: NodeRef, **attrs: Any) -> Node:
        """Merge ``attrs`` into the stored node's attributes (top-level keys replaced).

        Returns:
            the node as now stored.

        Raises:
            NodeNotFound: ``ref`` is not stored.
            TypeError / ValueError: a value is not JSON-serialisable.
        """
        with self._writing(lock_graph=False) as conn:
            query = select(self._nodes).where(self._nodes.c.id == str(ref)).with_for_update()
            row = conn.execute(query).one_or_none()
            if row is None:
                raise NodeNotFound(ref)
            node = Node(ref, row.definition_hash, {**json.loads(row.attributes), **attrs})
            conn.execute(
                update(self._nodes)
                .where(self._nodes.c.id == str(ref))
                .values(attributes=_dump(node.attributes), updated_at=datetime.now(UTC))
            )
        return node

    # -- reading ----------------------------------------------------------------------------------

    def load_graph(self) -> LineageGraph:
        """Every stored node and edge, as a :class:`LineageGraph` (a consistent snapshot)."""
        with self._engine.connect() as conn, conn.begin():
            return self._read_graph(conn)

    def get_node(self, ref: NodeRef) -> Node:
        """The stored node with this ref. Raises NodeNotFound."""
        with self._engine.connect() as conn:
            row = conn.execute(select(self._nodes).where(self._nodes.c.id == str(ref))).one_or_none()
        if row is None:
            raise NodeNotFound(ref)
        return _node_from_row(row)

    # -- internals --------------------------------------------------------------------------------

    @contextmanager
    def _writing(self, *, lock_graph: bool) -> Iterator[Connection]:
        """A connection inside a write transaction, committed on exit, rolled back on error."""
        with self._engine.connect() as conn:
            conn.execution_options(**{_WRITE_OPTION: True})
            with conn.begin():
                if lock_graph and self._engine.dialect.name == "postgresql":
                    table = self._engine.dialect.identifier_preparer.format_table(self._edges)
                    conn.execute(text(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE"))
                yield conn

    def _insert(self, table: Table) -> Any:
        """A dialect insert supporting ``on_conflict_do_*`` (SQLite and PostgreSQL share the API)."""
        if self._engine.dialect.name == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    def _read_graph(self, conn: Connection) -> LineageGraph:
        nodes = [_node_from_row(row) for row in conn.execute(select(self._nodes))]
        edges = [
            Edge(NodeRef.parse(row.source), NodeRef.parse(row.target), Relation(row.relation))
            for row in conn.execute(select(self._edges))
        ]
        return LineageGraph.of(nodes, edges)


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


def _node_row(node: Node, now: datetime) -> dict[str, Any]:
    return {
        "id": str(node.ref),
        "kind": str(node.ref.kind),
        "name": node.ref.name,
        "definition_hash": node.definition_hash,
        "attributes": _dump(node.attributes),
        "updated_at": now,
    }


def _node_from_row(row: Row[Any]) -> Node:
    return Node(NodeRef(NodeKind(row.kind), row.name), row.definition_hash, json.loads(row.attributes))
