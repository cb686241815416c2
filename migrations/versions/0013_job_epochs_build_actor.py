"""jobs: a fencing epoch that grows with every claim, the actor of every build, and a
notification when work becomes claimable (PostgreSQL)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# One statement-level trigger per queue table: any insert, or any update that sets a status
# (queued, released, finished: a finished promotion frees its environment for the next one),
# wakes the idle workers that LISTEN on the channel. Statement-level and with a constant
# payload, so a burst of rows costs one notification, and PostgreSQL folds repeats in a
# transaction into one.
_NOTIFY_FUNCTION = """
CREATE OR REPLACE FUNCTION pipeline_notify_jobs() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('pipeline_jobs', TG_TABLE_NAME);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    with op.batch_alter_table("builds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("epoch", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("actor", sa.String(length=255), server_default="", nullable=False))
    with op.batch_alter_table("promotions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("epoch", sa.Integer(), server_default="0", nullable=False))
    # builds queued before this revision had their actor in ``trigger``
    op.execute("UPDATE builds SET actor = trigger, epoch = attempts")
    op.execute("UPDATE promotions SET epoch = attempts")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_NOTIFY_FUNCTION)
        for table in ("builds", "promotions"):
            op.execute(
                f"CREATE TRIGGER {table}_notify AFTER INSERT OR UPDATE OF status ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION pipeline_notify_jobs()"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in ("builds", "promotions"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_notify ON {table}")
        op.execute("DROP FUNCTION IF EXISTS pipeline_notify_jobs()")
    with op.batch_alter_table("promotions", schema=None) as batch_op:
        batch_op.drop_column("epoch")
    with op.batch_alter_table("builds", schema=None) as batch_op:
        batch_op.drop_column("actor")
        batch_op.drop_column("epoch")
