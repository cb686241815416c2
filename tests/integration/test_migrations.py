"""The schema comes only from migrations, and they match the ORM tables exactly."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from pipeline.store import Database, current_revision, head_revision
from pipeline.store.tables import Base


def test_migrations_match_the_tables(db: Database) -> None:
    assert current_revision(db) == head_revision()
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
