"""The current graph: ``lineage_nodes`` and ``lineage_edges`` (the schema before Alembic).

Databases created before the migrations existed already hold these tables; they are kept as they are.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

PREFIX: str = context.config.attributes.get("table_prefix", "")
NODES = f"{PREFIX}lineage_nodes"
EDGES = f"{PREFIX}lineage_edges"


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if NODES not in existing:
        op.create_table(
            NODES,
            sa.Column("id", sa.Text, primary_key=True),
            sa.Column("kind", sa.Text, nullable=False),
            sa.Column("name", sa.Text, nullable=False),
            sa.Column("definition_hash", sa.Text, nullable=True),
            sa.Column("attributes", sa.Text, nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        )
    if EDGES not in existing:
        op.create_table(
            EDGES,
            sa.Column("source", sa.Text, sa.ForeignKey(f"{NODES}.id"), primary_key=True),
            sa.Column("target", sa.Text, sa.ForeignKey(f"{NODES}.id"), primary_key=True),
            sa.Column("relation", sa.Text, primary_key=True),
        )


def downgrade() -> None:
    op.drop_table(EDGES)
    op.drop_table(NODES)
