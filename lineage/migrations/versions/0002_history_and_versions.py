"""History and versions: every node / edge state with the change range it held in, and apply versions.

- ``lineage_changes(seq PK, at)``: one row per committed write; ``max(seq)`` is the change token.
- ``lineage_node_history`` / ``lineage_edge_history``: one row per state, valid for
  ``from_seq <= seq < to_seq`` (``to_seq`` NULL while current).
- ``lineage_versions(number PK, seq, created_at, source, node_count, edge_count, diff JSON)``.
- ``registry`` flag on current nodes and edges: recorded by the last ``record_version`` (apply).

Existing current rows are copied into the history as of change 0.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

PREFIX: str = context.config.attributes.get("table_prefix", "")
NODES = f"{PREFIX}lineage_nodes"
EDGES = f"{PREFIX}lineage_edges"
CHANGES = f"{PREFIX}lineage_changes"
NODE_HISTORY = f"{PREFIX}lineage_node_history"
EDGE_HISTORY = f"{PREFIX}lineage_edge_history"
VERSIONS = f"{PREFIX}lineage_versions"


def upgrade() -> None:
    for table in (NODES, EDGES):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("registry", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_table(
        CHANGES,
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(f"ix_{CHANGES}_at", CHANGES, ["at"])
    node_history = op.create_table(
        NODE_HISTORY,
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("definition_hash", sa.Text, nullable=True),
        sa.Column("attributes", sa.Text, nullable=False),
        sa.Column("from_seq", sa.Integer, nullable=False),
        sa.Column("to_seq", sa.Integer, nullable=True),
    )
    op.create_index(f"ix_{NODE_HISTORY}_id", NODE_HISTORY, ["id", "to_seq"])
    op.create_index(f"ix_{NODE_HISTORY}_from", NODE_HISTORY, ["from_seq"])
    edge_history = op.create_table(
        EDGE_HISTORY,
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("relation", sa.Text, nullable=False),
        sa.Column("from_seq", sa.Integer, nullable=False),
        sa.Column("to_seq", sa.Integer, nullable=True),
    )
    op.create_index(f"ix_{EDGE_HISTORY}_key", EDGE_HISTORY, ["source", "target", "relation", "to_seq"])
    op.create_index(f"ix_{EDGE_HISTORY}_from", EDGE_HISTORY, ["from_seq"])
    op.create_table(
        VERSIONS,
        sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("node_count", sa.Integer, nullable=False),
        sa.Column("edge_count", sa.Integer, nullable=False),
        sa.Column("diff", sa.Text, nullable=False),
    )
    nodes = sa.table(NODES, sa.column("id"), sa.column("definition_hash"), sa.column("attributes"))
    edges = sa.table(EDGES, sa.column("source"), sa.column("target"), sa.column("relation"))
    zero = sa.literal(0, sa.Integer)
    op.execute(
        node_history.insert().from_select(
            ["id", "definition_hash", "attributes", "from_seq"],
            sa.select(nodes.c.id, nodes.c.definition_hash, nodes.c.attributes, zero),
        )
    )
    op.execute(
        edge_history.insert().from_select(
            ["source", "target", "relation", "from_seq"],
            sa.select(edges.c.source, edges.c.target, edges.c.relation, zero),
        )
    )


def downgrade() -> None:
    for table in (VERSIONS, EDGE_HISTORY, NODE_HISTORY, CHANGES):
        op.drop_table(table)
    for table in (EDGES, NODES):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("registry")
