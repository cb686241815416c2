"""Projects mirror the config so that history keeps its project after the config changes."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from pipeline.config import ProjectConfig
from pipeline.store.tables import Project, utcnow

__all__ = ["sync_projects"]


def sync_projects(session: Session, projects: Mapping[str, ProjectConfig]) -> None:
    """Insert new projects and refresh changed repository URLs; never deletes history.

    Processes that start together (workers, the API) all sync: an insert that another process
    made first is not an error (``ON CONFLICT DO NOTHING``), so none of them fails to start.
    """
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    now = utcnow()
    for name, project in projects.items():
        session.execute(
            insert(Project)
            .values(name=name, repo=project.repo, created_at=now, updated_at=now)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        session.execute(
            update(Project)
            .where(Project.name == name, Project.repo != project.repo)
            .values(repo=project.repo, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    session.flush()
