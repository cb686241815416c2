"""notifications: the outbox of commit statuses, deployment reports and notifications (issue 19)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    when = sa.DateTime(timezone=True)
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("target", sa.String(length=100), nullable=False),
        sa.Column("subject", sa.String(length=100), nullable=False),
        sa.Column("event", sa.String(length=50), nullable=False),
        sa.Column("project", sa.String(length=63), nullable=False),
        sa.Column("environment", sa.String(length=63), nullable=True),
        sa.Column("build_id", sa.Integer(), nullable=True),
        sa.Column("promotion_id", sa.Integer(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("response_code", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.Integer(), server_default="0", nullable=False),
        sa.Column("not_before", when, nullable=True),
        sa.Column("worker", sa.String(length=255), nullable=True),
        sa.Column("lease_expires_at", when, nullable=True),
        sa.Column("heartbeat_at", when, nullable=True),
        sa.Column("created_at", when, nullable=False),
        sa.Column("started_at", when, nullable=True),
        sa.Column("finished_at", when, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
    )
    op.create_index(op.f("ix_notifications_status_id"), "notifications", ["status", "id"])
    op.create_index(op.f("ix_notifications_target_subject_id"), "notifications", ["target", "subject", "id"])
    op.create_index(op.f("ix_notifications_build_id"), "notifications", ["build_id"])
    op.create_index(op.f("ix_notifications_promotion_id"), "notifications", ["promotion_id"])
    if op.get_bind().dialect.name == "postgresql":  # wake delivery workers as 0013 wakes the others
        op.execute(
            "CREATE TRIGGER notifications_notify AFTER INSERT OR UPDATE OF status ON notifications "
            "FOR EACH STATEMENT EXECUTE FUNCTION pipeline_notify_jobs()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS notifications_notify ON notifications")
    op.drop_table("notifications")
