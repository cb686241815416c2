"""delivery dedupe by unique index

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a race under the old look-then-insert dedupe could leave equal bodies twice: keep the hash
    # on the first, so the unique index can be built without losing any delivery row
    op.execute(
        "UPDATE webhook_deliveries SET body_sha256 = NULL WHERE body_sha256 IS NOT NULL AND id NOT IN "
        "(SELECT min(id) FROM webhook_deliveries WHERE body_sha256 IS NOT NULL GROUP BY project, body_sha256)"
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_deliveries_project_body_sha256"))
        batch_op.create_index(
            batch_op.f("ix_webhook_deliveries_project_body_sha256"), ["project", "body_sha256"], unique=True
        )
        batch_op.drop_column("build_ids")


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("build_ids", sa.JSON(), server_default="[]", nullable=False))
        batch_op.drop_index(batch_op.f("ix_webhook_deliveries_project_body_sha256"))
        batch_op.create_index(
            batch_op.f("ix_webhook_deliveries_project_body_sha256"), ["project", "body_sha256"], unique=False
        )
