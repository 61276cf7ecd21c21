"""Persistence of the lineage graph, with its history, in SQLite or PostgreSQL (SQLAlchemy Core).

The schema is managed by Alembic (:mod:`lineage.migrations`, run on construction); the tables are
described in :mod:`lineage.tables`. The current tables answer current reads; the history tables
(:mod:`lineage.history`) answer ``as_of`` reads. ``registry`` marks what the last
:meth:`LineageStore.record_version` (``feastline apply``) recorded; only those nodes and edges can be
ended by a later version. Nodes saved otherwise (training sets, models, pipeline runs, materialization
attributes) are recorded in the history with the change that wrote them.

Attributes have one of two writers. The apply writes a node's definition and replaces, on each
version, the attributes it writes. Runs (a materialization's ``last_materialization``) write through
:meth:`LineageStore.update_attributes`; the store remembers those keys (``run_keys``) and a re-apply keeps
them, unless the apply now writes the same key itself.

Writers are serialised (PostgreSQL: an ``EXCLUSIVE`` lock on the changes table; SQLite: WAL, ``BEGIN
IMMEDIATE`` with a 30 s busy timeout, see :mod:`lineage.database`), so concurrent writes with
overlapping nodes and edges lose nothing, duplicate nothing, and cannot jointly close a cycle; a check
made inside a write (a model version already registered) holds until it commits; a write that finds
the database busy is retried. Readers are not blocked. :meth:`LineageStore.write` runs several writes,
and the caller's own rows in other tables of the same database, in one transaction.

Past ~400 lines on purpose: every write path shares one transaction and lock helper here, and
splitting the writers across modules would hide which writes are serialised together; the tables,
history and graph cache already live in their own modules.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Self, TypeVar, overload

from sqlalchemy import Connection, Table, and_, bindparam, delete, func, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite

from lineage import history, migrations, neighbourhood
from lineage.database import WRITE_OPTION, create_db_engine, retrying, write_connection
from lineage.errors import ModelVersionConflict, NodeDeleted, NodeInUse, NodeNotFound
from lineage.graph import LineageGraph
from lineage.graph_cache import GraphCache
from lineage.model import Edge, Node, NodeKind, NodeRef, Relation
from lineage.tables import (
    LineageTables,
    edge_from_row,
    edge_key,
    node_from_row,
    node_row,
    run_keys_from_row,
    version_from_row,
)
from lineage.versions import Version, VersionNotFound, diff_graphs

DELETED_AT = "deleted_at"  # attribute of a node marked deleted (mark_deleted)
_PAST_GRAPHS_KEPT = 8
T = TypeVar("T")


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
        self.url = url
        self._engine = create_db_engine(url)
        self._t = LineageTables.named(table_prefix)
        self._cache = GraphCache(_PAST_GRAPHS_KEPT)
        self.create_all()

    # -- lifecycle --------------------------------------------------------------------------------

    def create_all(self) -> None:
        """Create or migrate the tables to the newest revision (``alembic upgrade head``; idempotent)."""
        with self._engine.connect() as conn:
            conn.execution_options(**{WRITE_OPTION: True})
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
        self._t.metadata.drop_all(self._engine)
        self._cache.clear()

    def dispose(self) -> None:
        """Close every pooled connection; the store must not be used afterwards."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.dispose()

    # -- writing ----------------------------------------------------------------------------------

    def write(self, work: Callable[[LineageWrite], T]) -> T:
        """``work(writer)`` in one write transaction, committed when it returns (nothing written if it
        raises): the writes it makes through ``writer`` (:meth:`LineageWrite.save`,
        :meth:`LineageWrite.register_model`, :meth:`LineageWrite.update_attributes`) and the caller's
        own statements on ``writer.connection`` (rows of other tables in this database: a catalog row,
        an event) commit together. Retried while the database is busy, so ``work`` must only touch the
        database (it may run more than once).
        """

        def attempt() -> T:
            with self._writing() as w:
                return work(LineageWrite(self, w))

        return retrying(attempt)

    def save(self, nodes: Iterable[Node], edges: Iterable[Edge]) -> None:
        """Upsert ``nodes`` and add ``edges``, all in one transaction: see :meth:`LineageWrite.save`."""
        nodes, edges = list(nodes), list(edges)
        self.write(lambda w: w.save(nodes, edges))

    def register_model(self, model: Node, training_set: NodeRef) -> Node:
        """Register ``model`` trained on ``training_set``, once: see :meth:`LineageWrite.register_model`."""
        return self.write(lambda w: w.register_model(model, training_set))

    def mark_deleted(self, ref: NodeRef, at: datetime, *, refuse_if_used_by: NodeKind | None = None) -> Node:
        """Mark ``ref`` deleted: ``deleted: true`` and ``deleted_at`` (ISO UTC) among its attributes, in
        one write under the writers' lock. The node and its edges stay in the graph (marked), and its
        earlier states stay in the history, so ``as_of`` a time before shows it as it was. Marking a
        node already marked keeps its first ``deleted_at``.

        Args:
            refuse_if_used_by: refuse while a node of this kind is directly downstream (a training
                set's models): checked in the same transaction, so a concurrent registration either
                lands first (refused here) or finds the node deleted (:meth:`register_model`).

        Raises:
            NodeNotFound: ``ref`` is not stored.
            NodeInUse: a node of ``refuse_if_used_by`` depends on it (nothing written).
        """
        return retrying(lambda: self._mark_deleted(ref, at, refuse_if_used_by))

    def _mark_deleted(self, ref: NodeRef, at: datetime, refuse_if_used_by: NodeKind | None) -> Node:
        nodes, e = self._t.nodes, self._t.edges
        with self._writing() as w:
            row = w.conn.execute(select(nodes).where(nodes.c.id == str(ref))).one_or_none()
            if row is None:
                raise NodeNotFound(ref)
            before = node_from_row(row)
            if refuse_if_used_by is not None:
                targets = w.conn.scalars(select(e.c.target).where(e.c.source == str(ref)).order_by(e.c.target))
                users = [t for t in map(NodeRef.parse, targets) if t.kind is refuse_if_used_by]
                if users:
                    raise NodeInUse(ref, users)
            if before.attributes.get(DELETED_AT):
                return before
            when = at.astimezone(UTC).isoformat().replace("+00:00", "Z")
            node = Node(ref, before.definition_hash, {**before.attributes, "deleted": True, DELETED_AT: when})
            run_keys = {ref: [*run_keys_from_row(row), "deleted", DELETED_AT]}
            self._put_nodes(w, [node], {ref: before}, registry=None, run_keys=run_keys)
        return node

    @overload
    def record_version(
        self,
        nodes: Iterable[Node],
        edges: Iterable[Edge],
        source: str = ...,
        *,
        skip_if_unchanged: Literal[False] = ...,
    ) -> Version: ...

    @overload
    def record_version(
        self, nodes: Iterable[Node], edges: Iterable[Edge], source: str = ..., *, skip_if_unchanged: bool
    ) -> Version | None: ...

    def record_version(
        self,
        nodes: Iterable[Node],
        edges: Iterable[Edge],
        source: str = "feast apply",
        *,
        skip_if_unchanged: bool = False,
    ) -> Version | None:
        """Record the registry-derived graph as a new version, in one transaction.

        With ``skip_if_unchanged``, a graph whose diff against the last version is empty (same
        registry nodes, hashes and edges) records no version: None is returned, and only the
        attributes that differ (e.g. a new pipeline run's row counts) are saved, in the history.

        ``nodes`` and ``edges`` are the whole registry-derived graph (what ``feastline apply`` builds).
        They are upserted and marked as registry-derived; registry nodes and edges of the previous
        version that are absent now are ended (they stay in the history, readable with ``as_of``), and
        so is every other edge touching an ended node. A node's attributes are replaced by the ones
        given, except those written by runs (:meth:`update_attributes`) under keys not given: those are
        kept (a view's ``last_materialization`` survives a re-apply, even of a changed definition).

        Returns:
            the new :class:`Version`, numbered one past the last, with its diff against the previous
            version (changed = same ref, different ``definition_hash``).

        Raises:
            NodeNotFound: an edge names a node that is neither stored (and kept) nor in ``nodes``.
            CycleRefused: the resulting graph would contain a cycle. Nothing is written on error.
        """
        given = {node.ref: node for node in nodes}
        new_edges = set(edges)
        return retrying(lambda: self._record_version(given, new_edges, source, skip_if_unchanged))

    def _record_version(
        self, given: dict[NodeRef, Node], new_edges: set[Edge], source: str, skip_if_unchanged: bool
    ) -> Version | None:
        t = self._t
        with self._writing() as w:
            conn = w.conn
            graph = self._read_graph(conn)
            known = {node.ref: node for node in graph.nodes()}
            stored_edges = set(graph.edges())
            registry_refs = [NodeRef.parse(i) for i in conn.scalars(select(t.nodes.c.id).where(t.nodes.c.registry))]
            registry_edges = {edge_from_row(r) for r in conn.execute(select(t.edges).where(t.edges.c.registry))}
            diff = diff_graphs(
                {r: known[r].definition_hash for r in registry_refs}, registry_edges, given.values(), new_edges
            )
            gone = set(diff.removed_nodes)
            run_keys = self._run_keys(conn)
            by_ref, kept_keys = _keep_run_attributes(given, known, run_keys)
            if skip_if_unchanged and diff.empty and registry_refs:
                changed = [n for n in by_ref.values() if known.get(n.ref) != n]
                self._put_nodes(w, changed, known, registry=True, run_keys=kept_keys)
                return None
            ended_edges = {e for e in stored_edges if e.source in gone or e.target in gone} | set(diff.removed_edges)
            kept_nodes = [n for n in graph.nodes() if n.ref not in gone and n.ref not in by_ref]
            result = LineageGraph.of([*kept_nodes, *by_ref.values()], (stored_edges - ended_edges) | new_edges)
            self._end_edges(w, sorted(ended_edges - new_edges))
            self._end_nodes(w, sorted(gone))
            self._put_nodes(w, list(by_ref.values()), known, registry=True, run_keys=kept_keys)
            self._put_edges(w, sorted(new_edges), stored_edges - ended_edges, registry=True)
            number = conn.execute(select(func.coalesce(func.max(t.versions.c.number), 0))).scalar_one() + 1
            version = Version(number, w.now, source, len(result), len(result.edges()), diff)
            conn.execute(
                insert(t.versions).values(
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
        """Merge ``attrs`` into the stored node's attributes: see :meth:`LineageWrite.update_attributes`."""
        return self.write(lambda w: w.update_attributes(ref, **attrs))

    def update_attributes_of(self, updates: Mapping[NodeRef, Mapping[str, Any]]) -> list[Node]:
        """:meth:`update_attributes` for several nodes in one transaction: all are updated or none.

        Returns:
            the nodes as now stored, in the order of ``updates``.

        Raises:
            NodeNotFound: a ref is not stored (nothing is written).
            TypeError / ValueError: a value is not JSON-serialisable.
        """
        if not updates:
            return []
        with self._writing() as w:
            ids = [str(ref) for ref in updates]
            rows = {r.id: r for r in w.conn.execute(select(self._t.nodes).where(self._t.nodes.c.id.in_(ids)))}
            before: dict[NodeRef, Node] = {}
            nodes, run_keys = [], {}
            for ref, attrs in updates.items():
                row = rows.get(str(ref))
                if row is None:
                    raise NodeNotFound(ref)
                before[ref] = node_from_row(row)
                nodes.append(Node(ref, row.definition_hash, {**before[ref].attributes, **attrs}))
                run_keys[ref] = list(dict.fromkeys([*run_keys_from_row(row), *attrs]))
            self._put_nodes(w, nodes, before, registry=None, run_keys=run_keys)
        return nodes

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
            return history.read_graph_at(conn, self._t, history.seq_of(conn, self._t, as_of))

    def current_graph(self) -> LineageGraph:
        """The current graph, cached until the next write (by any process): one cheap query when unchanged.

        The graph returned is shared between callers: query it, do not modify it.
        """
        with self._reading() as conn:
            token = history.change_token(conn, self._t)
            cached = self._cache.current(token)
            if cached is not None:
                return cached
            graph = self._read_graph(conn)
        self._cache.keep_current(token, graph)
        return graph

    def graph_as_of(self, as_of: int | datetime | None) -> LineageGraph:
        """Like :meth:`load_graph` but cached and shared (do not modify): past states never change.

        Raises:
            VersionNotFound: ``as_of`` is a version number never recorded.
        """
        if as_of is None:
            return self.current_graph()
        with self._reading() as conn:
            seq = history.seq_of(conn, self._t, as_of)
            cached = self._cache.past(seq)
            if cached is not None:
                return cached
            graph = history.read_graph_at(conn, self._t, seq)
        self._cache.keep_past(seq, graph)
        return graph

    def get_node(self, ref: NodeRef) -> Node:
        """The stored (current) node with this ref. Raises NodeNotFound."""
        with self._engine.connect() as conn:
            row = conn.execute(select(self._t.nodes).where(self._t.nodes.c.id == str(ref))).one_or_none()
        if row is None:
            raise NodeNotFound(ref)
        return node_from_row(row)

    def change_token(self) -> int:
        """A number that grows with every committed write (0 for an empty store)."""
        with self._reading() as conn:
            return history.change_token(conn, self._t)

    def list_versions(self) -> list[Version]:
        """Every recorded version, oldest first."""
        with self._reading() as conn:
            rows = conn.execute(select(self._t.versions).order_by(self._t.versions.c.number))
            return [version_from_row(row) for row in rows]

    def first_version(self) -> Version | None:
        """The oldest recorded version, or None when none is recorded."""
        versions = self._t.versions
        with self._reading() as conn:
            row = conn.execute(select(versions).order_by(versions.c.number).limit(1)).one_or_none()
        return None if row is None else version_from_row(row)

    def get_version(self, number: int) -> Version:
        """The version with this number, with its diff. Raises VersionNotFound."""
        versions = self._t.versions
        with self._reading() as conn:
            row = conn.execute(select(versions).where(versions.c.number == number)).one_or_none()
        if row is None:
            raise VersionNotFound(number)
        return version_from_row(row)

    # -- internals: transactions ------------------------------------------------------------------

    @contextmanager
    def _writing(self) -> Iterator[_Write]:
        """A write transaction holding the writers' lock, with its change recorded; committed on exit."""
        with write_connection(self._engine) as conn:
            if self._engine.dialect.name == "postgresql":
                table = self._engine.dialect.identifier_preparer.format_table(self._t.changes)
                conn.execute(text(f"LOCK TABLE {table} IN EXCLUSIVE MODE"))
            seq = history.change_token(conn, self._t) + 1
            now = datetime.now(UTC)
            conn.execute(insert(self._t.changes).values(seq=seq, at=now))
            yield _Write(conn, seq, now)

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        """A read transaction seeing one snapshot (REPEATABLE READ on PostgreSQL)."""
        with self._engine.connect() as conn:
            if self._engine.dialect.name == "postgresql":
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    def _insert(self, table: Table) -> Any:
        """A dialect insert supporting ``on_conflict_do_*`` (SQLite and PostgreSQL share the API)."""
        if self._engine.dialect.name == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    # -- internals: current tables ----------------------------------------------------------------

    def _read_graph(self, conn: Connection) -> LineageGraph:
        nodes = [node_from_row(row) for row in conn.execute(select(self._t.nodes))]
        edges = [edge_from_row(row) for row in conn.execute(select(self._t.edges))]
        return LineageGraph.of(nodes, edges)

    def _run_keys(self, conn: Connection) -> dict[NodeRef, list[str]]:
        """The attribute keys written by runs, for each node that has any."""
        n = self._t.nodes
        rows = conn.execute(select(n.c.id, n.c.run_keys).where(n.c.run_keys != "[]"))
        return {NodeRef.parse(row.id): run_keys_from_row(row) for row in rows}

    def _save(self, w: _Write, nodes: Iterable[Node], edges: Iterable[Edge]) -> None:
        """:meth:`save` inside the open write ``w``: reads only the neighbourhood the save touches
        (:mod:`lineage.neighbourhood`), not the whole stored graph."""
        by_ref = {node.ref: node for node in nodes}  # the last of duplicate refs wins
        new_edges = sorted(set(edges))
        endpoints = {ref for edge in new_edges for ref in (edge.source, edge.target)}
        known = neighbourhood.stored_nodes(w.conn, self._t, by_ref.keys())  # to tell new or changed ones
        # the other ends of the edges only need to exist: their ids, not their rows (a feature's are large)
        present = known.keys() | neighbourhood.stored_refs(w.conn, self._t, endpoints - by_ref.keys())
        # an edge stored has both ends stored (foreign keys): only those can be, so only those are looked up
        stored_edges = neighbourhood.stored_among(
            w.conn, self._t, [e for e in new_edges if e.source in present and e.target in present]
        )
        neighbourhood.check_edges(w.conn, self._t, new_edges, by_ref.keys() | present, stored_edges)
        added = [e for e in new_edges if e not in stored_edges]
        self._put_nodes(w, [n for n in by_ref.values() if known.get(n.ref) != n], known, registry=None)
        self._put_edges(w, added, stored_edges, registry=False)

    def _put_nodes(
        self,
        w: _Write,
        nodes: list[Node],
        known: Mapping[NodeRef, Node],
        *,
        registry: bool | None,
        run_keys: Mapping[NodeRef, Sequence[str]] | None = None,
    ) -> None:
        """Upsert current rows (``registry`` None: keep the flag, new rows False; ``run_keys`` per node,
        default none); history for the changed ones."""
        if not nodes:
            return
        stmt = self._insert(self._t.nodes)
        changes = {
            "definition_hash": stmt.excluded.definition_hash,
            "attributes": stmt.excluded.attributes,
            "updated_at": stmt.excluded.updated_at,
            "run_keys": stmt.excluded.run_keys,
        }
        if registry is not None:
            changes["registry"] = stmt.excluded.registry
        stmt = stmt.on_conflict_do_update(index_elements=[self._t.nodes.c.id], set_=changes)
        keys = run_keys or {}
        w.conn.execute(stmt, [node_row(node, w.now, bool(registry), keys.get(node.ref, ())) for node in nodes])
        changed = [node for node in nodes if known.get(node.ref) != node]
        history.close_node_states(w.conn, self._t, w.seq, [node.ref for node in changed if node.ref in known])
        history.open_node_states(w.conn, self._t, w.seq, changed)

    def _put_edges(self, w: _Write, edges: list[Edge], stored: set[Edge], *, registry: bool) -> None:
        """Insert (or, with ``registry``, mark) current rows; history for the edges not stored yet."""
        if not edges:
            return
        e = self._t.edges
        stmt = self._insert(e)
        if registry:
            stmt = stmt.on_conflict_do_update(
                index_elements=[e.c.source, e.c.target, e.c.relation], set_={"registry": stmt.excluded.registry}
            )
        else:
            stmt = stmt.on_conflict_do_nothing()
        w.conn.execute(stmt, [{**edge_key(edge), "registry": registry} for edge in edges])
        history.open_edge_states(w.conn, self._t, w.seq, [edge for edge in edges if edge not in stored])

    def _end_edges(self, w: _Write, edges: list[Edge]) -> None:
        if not edges:
            return
        e = self._t.edges
        keys = [{"b_source": str(x.source), "b_target": str(x.target), "b_relation": str(x.relation)} for x in edges]
        match = and_(
            e.c.source == bindparam("b_source"),
            e.c.target == bindparam("b_target"),
            e.c.relation == bindparam("b_relation"),
        )
        w.conn.execute(delete(e).where(match), keys)
        history.close_edge_states(w.conn, self._t, w.seq, edges)

    def _end_nodes(self, w: _Write, refs: list[NodeRef]) -> None:
        if not refs:
            return
        keys = [{"b_id": str(ref)} for ref in refs]
        w.conn.execute(delete(self._t.nodes).where(self._t.nodes.c.id == bindparam("b_id")), keys)
        history.close_node_states(w.conn, self._t, w.seq, refs)


def _keep_run_attributes(
    given: Mapping[NodeRef, Node], stored: Mapping[NodeRef, Node], run_keys: Mapping[NodeRef, Sequence[str]]
) -> tuple[dict[NodeRef, Node], dict[NodeRef, list[str]]]:
    """The apply's nodes, each with the stored attributes that runs wrote under keys the apply does not
    set added back; and, per node, those keys (they stay the runs')."""
    nodes, kept_keys = dict(given), {}
    for ref, node in given.items():
        before = stored.get(ref)
        if before is None:
            continue
        kept = {k: before.attributes[k] for k in run_keys.get(ref, ()) if k in before.attributes}
        kept = {k: v for k, v in kept.items() if k not in node.attributes}
        if kept:
            nodes[ref] = Node(ref, node.definition_hash, {**node.attributes, **kept})
            kept_keys[ref] = sorted(kept)
    return nodes, kept_keys


class LineageWrite:
    """The writes of one open transaction of :meth:`LineageStore.write` (use it only inside ``work``).

    ``connection`` is the transaction's connection: statements on other tables of the same database
    commit (or roll back) with the lineage writes.
    """

    def __init__(self, store: LineageStore, w: _Write) -> None:
        self._store, self._w = store, w

    @property
    def connection(self) -> Connection:
        return self._w.conn

    def node(self, ref: NodeRef) -> Node | None:
        """The node stored under ``ref`` (as this transaction sees it), or None."""
        n = self._store._t.nodes
        row = self._w.conn.execute(select(n).where(n.c.id == str(ref))).one_or_none()
        return None if row is None else node_from_row(row)

    def save(self, nodes: Iterable[Node], edges: Iterable[Edge]) -> None:
        """Upsert ``nodes`` and add ``edges``.

        A node whose ref is already stored has its hash and attributes replaced; an edge already stored
        is left alone. Edges may name nodes saved earlier or in this same call. Changes are recorded in
        the history; nothing is ever ended by ``save``.

        Raises:
            NodeNotFound: an edge names a node that is neither stored nor in ``nodes``.
            CycleRefused: the stored graph plus these edges would contain a cycle.
        """
        self._store._save(self._w, nodes, edges)

    def register_model(self, model: Node, training_set: NodeRef) -> Node:
        """Save ``model`` with a ``trained_on`` edge from ``training_set``, unless ``model.ref`` is already
        registered: checked and written in this transaction, under the writers' lock, so of concurrent
        registrations of one ref exactly one succeeds. A ``name@version`` is registered once, whatever
        the training set or attributes of a later attempt (nothing is replaced).

        Returns:
            ``model``, as now stored.

        Raises:
            ModelVersionConflict: ``model.ref`` is already stored (``registered_on`` names the training
                set it is trained on; the message says when it was registered); nothing is written.
            NodeDeleted: ``training_set`` is marked deleted (:meth:`LineageStore.mark_deleted`); nothing
                is written.
            NodeNotFound: ``training_set`` is not stored.
        """
        t, w = self._store._t, self._w
        e, n = t.edges, t.nodes
        stored = w.conn.execute(select(n).where(n.c.id == str(model.ref))).one_or_none()
        if stored is not None:
            trained_on = select(e.c.source).where(
                e.c.target == str(model.ref), e.c.relation == str(Relation.TRAINED_ON)
            )
            source = w.conn.scalars(trained_on.order_by(e.c.source).limit(1)).one_or_none()
            existing = node_from_row(stored)
            on = NodeRef.parse(source).name if source else str(existing.attributes.get("training_set_id", ""))
            when = existing.attributes.get("registered_at")
            raise ModelVersionConflict(model.ref, on, training_set.name, str(when) if when else None)
        row = w.conn.execute(select(n).where(n.c.id == str(training_set))).one_or_none()
        if row is not None and (deleted := node_from_row(row).attributes.get(DELETED_AT)):
            raise NodeDeleted(training_set, str(deleted))
        self._store._save(w, [model], [Edge(training_set, model.ref, Relation.TRAINED_ON)])
        return model

    def update_attributes(self, ref: NodeRef, **attrs: Any) -> Node:
        """Merge ``attrs`` into the stored node's attributes (top-level keys replaced; history recorded).

        This is how runs write (a materialization's ``last_materialization``): the keys are remembered
        as the run's, and a later :meth:`LineageStore.record_version` keeps them.

        Returns:
            the node as now stored.

        Raises:
            NodeNotFound: ``ref`` is not stored.
            TypeError / ValueError: a value is not JSON-serialisable.
        """
        t, w = self._store._t, self._w
        row = w.conn.execute(select(t.nodes).where(t.nodes.c.id == str(ref))).one_or_none()
        if row is None:
            raise NodeNotFound(ref)
        before = node_from_row(row)
        node = Node(ref, row.definition_hash, {**before.attributes, **attrs})
        run_keys = {ref: [*run_keys_from_row(row), *attrs]}
        self._store._put_nodes(w, [node], {ref: before}, registry=None, run_keys=run_keys)
        return node

    def remove(self, refs: Iterable[NodeRef]) -> None:
        """End the nodes ``refs`` and every edge touching them (they stay in the history, readable with
        ``as_of``); refs not stored are ignored. For what a crashed write left half-done."""
        t, w = self._store._t, self._w
        ids = sorted({str(r) for r in refs})
        if not ids:
            return
        stored = [NodeRef.parse(i) for i in w.conn.scalars(select(t.nodes.c.id).where(t.nodes.c.id.in_(ids)))]
        touching = select(t.edges).where(t.edges.c.source.in_(ids) | t.edges.c.target.in_(ids))
        self._store._end_edges(w, sorted(edge_from_row(r) for r in w.conn.execute(touching)))
        self._store._end_nodes(w, sorted(stored))
