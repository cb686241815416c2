"""intake delivery log: delivery identity, the log of every delivery, reused builds, annotated tags

A delivery is now identified by its ``dedupe_key`` (the host's delivery id with the hook it came
through, or the body's hash within a window when the host sends no id) instead of the unique
(project, body sha256) index, which collapsed different pushes whose bytes were equal. Refused
and duplicate deliveries are logged too (their key is NULL). Builds record the build they reused
and the inputs they were built with, and an annotated tag's object.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dedupe_key", sa.String(length=400), nullable=True))
        batch_op.add_column(sa.Column("status_code", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("size", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("remote_addr", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("body", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("headers", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("redelivery_of", sa.Integer(), nullable=True))
        batch_op.drop_constraint(batch_op.f("uq_webhook_deliveries_provider_hook_id_delivery_id"), type_="unique")
        batch_op.drop_index(batch_op.f("ix_webhook_deliveries_project_body_sha256"))
        batch_op.create_index(batch_op.f("ix_webhook_deliveries_project_body_sha256"), ["project", "body_sha256"])
        batch_op.create_index(batch_op.f("ix_webhook_deliveries_received_at_id"), ["received_at", "id"])
    # the rows so far keep their identity: (provider, hook, delivery id) was unique
    op.execute(
        "UPDATE webhook_deliveries SET dedupe_key = provider || '/' || hook_id || '/' || delivery_id, "
        "status_code = CASE WHEN outcome = 'queued' THEN 202 ELSE 200 END"
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_webhook_deliveries_dedupe_key"), ["dedupe_key"], unique=True)
    with op.batch_alter_table("builds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reused_from", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("inputs_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("tag_object", sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("builds", schema=None) as batch_op:
        batch_op.drop_column("tag_object")
        batch_op.drop_column("inputs_sha256")
        batch_op.drop_column("reused_from")
    # refusals and duplicates did not exist before: the old unique indexes could not hold them
    op.execute(
        "DELETE FROM webhook_deliveries WHERE dedupe_key IS NULL AND id NOT IN "
        "(SELECT delivery_id FROM builds WHERE delivery_id IS NOT NULL)"
    )
    op.execute(
        "UPDATE webhook_deliveries SET body_sha256 = NULL WHERE body_sha256 IS NOT NULL AND id NOT IN "
        "(SELECT min(id) FROM webhook_deliveries WHERE body_sha256 IS NOT NULL GROUP BY project, body_sha256)"
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_deliveries_dedupe_key"))
        batch_op.drop_index(batch_op.f("ix_webhook_deliveries_received_at_id"))
        batch_op.drop_index(batch_op.f("ix_webhook_deliveries_project_body_sha256"))
        batch_op.create_index(
            batch_op.f("ix_webhook_deliveries_project_body_sha256"), ["project", "body_sha256"], unique=True
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_webhook_deliveries_provider_hook_id_delivery_id"), ["provider", "hook_id", "delivery_id"]
        )
        batch_op.drop_column("redelivery_of")
        batch_op.drop_column("headers")
        batch_op.drop_column("body")
        batch_op.drop_column("remote_addr")
        batch_op.drop_column("size")
        batch_op.drop_column("status_code")
        batch_op.drop_column("dedupe_key")
