"""``run_keys`` on current nodes: the attribute keys written by runs, which a re-apply keeps.

``LineageStore.update_attributes`` (a materialization's ``last_materialization``) records the keys it
writes; ``record_version`` (apply) replaces a node's other attributes and keeps those. Before this
revision the only attribute written by runs was ``last_materialization``: nodes holding it get it as
their run key, so the next apply keeps it.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import context, op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

PREFIX: str = context.config.attributes.get("table_prefix", "")
NODES = f"{PREFIX}lineage_nodes"
RUN_WRITTEN_BEFORE = "last_materialization"


def upgrade() -> None:
    with op.batch_alter_table(NODES) as batch:
        batch.add_column(sa.Column("run_keys", sa.Text, nullable=False, server_default="[]"))
    nodes = sa.table(NODES, sa.column("id"), sa.column("attributes"), sa.column("run_keys"))
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(nodes.c.id, nodes.c.attributes).where(nodes.c.attributes.contains(RUN_WRITTEN_BEFORE))
    )
    ids = [{"b_id": row.id} for row in rows if RUN_WRITTEN_BEFORE in json.loads(row.attributes)]
    if ids:
        stmt = (
            nodes.update().where(nodes.c.id == sa.bindparam("b_id")).values(run_keys=json.dumps([RUN_WRITTEN_BEFORE]))
        )
        bind.execute(stmt, ids)


def downgrade() -> None:
    with op.batch_alter_table(NODES) as batch:
        batch.drop_column("run_keys")
