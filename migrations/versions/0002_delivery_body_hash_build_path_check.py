"""delivery body hash, build path check

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("builds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("before_commit", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("check_paths", sa.Boolean(), server_default=sa.false(), nullable=False))

    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("body_sha256", sa.String(length=64), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_webhook_deliveries_project_body_sha256"), ["project", "body_sha256"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_deliveries_project_body_sha256"))
        batch_op.drop_column("body_sha256")

    with op.batch_alter_table("builds", schema=None) as batch_op:
        batch_op.drop_column("check_paths")
        batch_op.drop_column("before_commit")
