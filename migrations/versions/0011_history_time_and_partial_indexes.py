"""history at scale: time-range listings, promotions by actor, and what the matrix asks

- builds and promotions (created_at, id): a listing with since/until is ordered by time and
  served by these (store.pages); ordered by id it walked the primary key down from the newest
  row: a week a year back took 473 ms (builds, p99) and 1.6 s (promotions) at 1M/5M; and
  promotions (project, environment, created_at, id) for "what went to prod last week" (67 ms
  with the time index alone, a bitmap AND of two indexes).
- promotions (actor, id): an actor who promoted nothing for months scanned the table.
- promotions partial indexes, per project and environment: the unfinished ones (the matrix's
  waiting count, the claim's "is the environment busy") and the arrivals by finished_at (lead
  time): both read an environment's whole history before.

On PostgreSQL the indexes are built CONCURRENTLY, so a large history stays writable meanwhile.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

WAITING_SQL = "status IN ('pending', 'running', 'awaiting_merge')"
ARRIVED_SQL = "status = 'succeeded'"

INDEXES = [
    ("ix_builds_created_at_id", "builds", ["created_at", "id"], None),
    ("ix_promotions_created_at_id", "promotions", ["created_at", "id"], None),
    (
        "ix_promotions_project_environment_created_at_id",
        "promotions",
        ["project", "environment", "created_at", "id"],
        None,
    ),
    ("ix_promotions_actor_id", "promotions", ["actor", "id"], None),
    ("ix_promotions_waiting", "promotions", ["project", "environment"], WAITING_SQL),
    ("ix_promotions_arrivals", "promotions", ["project", "environment", "finished_at"], ARRIVED_SQL),
]


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if not postgres:
        for name, table, columns, where in INDEXES:
            op.create_index(name, table, columns, sqlite_where=sa.text(where) if where else None)
        return
    with op.get_context().autocommit_block():
        for name, table, columns, where in INDEXES:
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")  # an interrupted build leaves it invalid
            op.create_index(
                name, table, columns, postgresql_concurrently=True, postgresql_where=sa.text(where) if where else None
            )


def downgrade() -> None:
    for name, table, _, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
