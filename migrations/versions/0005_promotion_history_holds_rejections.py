"""promotion history: trigger, rollback chain, copy report, steps; environment holds; rejected digests

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("promotions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("trigger", sa.String(length=20), server_default="manual", nullable=False))
        batch_op.add_column(sa.Column("previous_digest", sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column("rollback_to_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("restores_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("copy_report", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("steps", sa.JSON(), server_default="[]", nullable=False))
        batch_op.create_index(batch_op.f("ix_promotions_digest"), ["digest"], unique=False)

    op.create_table(
        "environment_holds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project", sa.String(length=63), nullable=False),
        sa.Column("environment", sa.String(length=63), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("promotion_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("released_by", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(["project"], ["projects.name"], name=op.f("fk_environment_holds_project_projects")),
        sa.ForeignKeyConstraint(
            ["promotion_id"], ["promotions.id"], name=op.f("fk_environment_holds_promotion_id_promotions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_environment_holds")),
    )
    op.create_index(
        op.f("ix_environment_holds_project_environment_released_at"),
        "environment_holds",
        ["project", "environment", "released_at"],
        unique=False,
    )
    op.create_table(
        "rejected_digests",
        sa.Column("digest", sa.String(length=80), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_rejected_digests")),
    )


def downgrade() -> None:
    op.drop_table("rejected_digests")
    op.drop_index(op.f("ix_environment_holds_project_environment_released_at"), table_name="environment_holds")
    op.drop_table("environment_holds")
    with op.batch_alter_table("promotions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_promotions_digest"))
        for column in ("steps", "copy_report", "restores_id", "rollback_to_id", "previous_digest", "trigger"):
            batch_op.drop_column(column)
