"""history queries: builds by branch and project (bench/history_queries.py)

builds (branch, project, id): a branch filter had to read every build of the project. Branch
first, so that the intake's superseding (project, ref, id < n) is never planned on it.

At 1M builds a rare branch of a busy project took 435 ms (p99) and 3.4 ms with it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("builds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_builds_branch_project_id"), ["branch", "project", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("builds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_builds_branch_project_id"))
