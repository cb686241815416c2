"""timings: how long each step of a build took (issue 18, for the API, CLI and page)

``builds.timings`` is ``{"checkout": s, "build": s, "push": s, "record": s, "insight": s}``
in seconds, written as each step ends (a failed build keeps the steps it got through). Queue
wait needs no column: it is ``started_at - created_at``. A promotion's step durations are in
its ``steps`` JSON already (``started_at``/``finished_at``, now with ``seconds``).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("builds") as batch_op:
        batch_op.add_column(sa.Column("timings", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("builds") as batch_op:
        batch_op.drop_column("timings")
