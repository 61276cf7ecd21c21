"""The lineage history: every state a node or edge held, with the range of changes it held in.

Each committed write to the store is one change, numbered ``seq`` 1, 2, ... (``lineage_changes``). A
state row is valid for ``from_seq <= seq < to_seq`` (``to_seq`` NULL while current), so the graph "as
of" change ``s`` is the rows valid at ``s``. A version number or a time designates such a change. These
functions run inside the caller's transaction; see :class:`lineage.store.LineageStore`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import Connection, and_, bindparam, func, insert, or_, select, update

from lineage.graph import LineageGraph
from lineage.model import Edge, Node, NodeRef
from lineage.tables import LineageTables, dump, edge_from_row, edge_key
from lineage.versions import VersionNotFound


def change_token(conn: Connection, t: LineageTables) -> int:
    """The number of the last committed change (0 for an empty store)."""
    return int(conn.execute(select(func.coalesce(func.max(t.changes.c.seq), 0))).scalar_one())


def seq_of(conn: Connection, t: LineageTables, as_of: int | datetime) -> int:
    """The change number that ``as_of`` designates: a version number's change, or the last change made
    at or before a time (naive = UTC; 0 before any). Raises VersionNotFound for an unrecorded version."""
    if isinstance(as_of, datetime):
        at = as_of.astimezone(UTC) if as_of.tzinfo else as_of.replace(tzinfo=UTC)
        query = select(func.coalesce(func.max(t.changes.c.seq), 0)).where(t.changes.c.at <= at)
        return int(conn.execute(query).scalar_one())
    seq = conn.execute(select(t.versions.c.seq).where(t.versions.c.number == as_of)).scalar_one_or_none()
    if seq is None:
        raise VersionNotFound(as_of)
    return int(seq)


def read_graph_at(conn: Connection, t: LineageTables, seq: int) -> LineageGraph:
    """The graph of the node and edge states valid at change ``seq``."""
    nh, eh = t.node_history, t.edge_history
    node_rows = conn.execute(select(nh).where(nh.c.from_seq <= seq, or_(nh.c.to_seq.is_(None), nh.c.to_seq > seq)))
    edge_rows = conn.execute(select(eh).where(eh.c.from_seq <= seq, or_(eh.c.to_seq.is_(None), eh.c.to_seq > seq)))
    nodes = [Node(NodeRef.parse(r.id), r.definition_hash, json.loads(r.attributes)) for r in node_rows]
    return LineageGraph.of(nodes, [edge_from_row(r) for r in edge_rows])


def open_node_states(conn: Connection, t: LineageTables, seq: int, nodes: Sequence[Node]) -> None:
    """Record ``nodes`` as states starting at change ``seq`` (the caller closes their previous ones)."""
    if nodes:
        rows = [
            {"id": str(n.ref), "definition_hash": n.definition_hash, "attributes": dump(n.attributes), "from_seq": seq}
            for n in nodes
        ]
        conn.execute(insert(t.node_history), [{**row, "to_seq": None} for row in rows])


def close_node_states(conn: Connection, t: LineageTables, seq: int, refs: Sequence[NodeRef]) -> None:
    """End the current state of each of ``refs`` at change ``seq``."""
    if refs:
        nh = t.node_history
        stmt = update(nh).where(nh.c.id == bindparam("b_id"), nh.c.to_seq.is_(None)).values(to_seq=seq)
        conn.execute(stmt, [{"b_id": str(ref)} for ref in refs])


def open_edge_states(conn: Connection, t: LineageTables, seq: int, edges: Sequence[Edge]) -> None:
    """Record ``edges`` (not current until now) as starting at change ``seq``."""
    if edges:
        conn.execute(insert(t.edge_history), [{**edge_key(e), "from_seq": seq, "to_seq": None} for e in edges])


def close_edge_states(conn: Connection, t: LineageTables, seq: int, edges: Sequence[Edge]) -> None:
    """End the current state of each of ``edges`` at change ``seq``."""
    if edges:
        eh = t.edge_history
        open_match = and_(
            eh.c.source == bindparam("b_source"),
            eh.c.target == bindparam("b_target"),
            eh.c.relation == bindparam("b_relation"),
            eh.c.to_seq.is_(None),
        )
        keys = [{"b_source": str(e.source), "b_target": str(e.target), "b_relation": str(e.relation)} for e in edges]
        conn.execute(update(eh).where(open_match).values(to_seq=seq), keys)
