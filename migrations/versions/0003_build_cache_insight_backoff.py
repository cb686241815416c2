"""build cache stats, image insight, retry backoff

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("builds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("steps_total", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("steps_cached", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("cache_from", sa.JSON(), server_default="[]", nullable=False))
        batch_op.add_column(sa.Column("image_size", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("layers", sa.JSON(), server_default="[]", nullable=False))
        batch_op.add_column(sa.Column("insight", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("advice", sa.JSON(), server_default="[]", nullable=False))

    with op.batch_alter_table("promotions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("promotions", schema=None) as batch_op:
        batch_op.drop_column("not_before")

    with op.batch_alter_table("builds", schema=None) as batch_op:
        batch_op.drop_column("advice")
        batch_op.drop_column("insight")
        batch_op.drop_column("layers")
        batch_op.drop_column("image_size")
        batch_op.drop_column("cache_from")
        batch_op.drop_column("steps_cached")
        batch_op.drop_column("steps_total")
        batch_op.drop_column("not_before")
