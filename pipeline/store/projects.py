"""Projects mirror the config so that history keeps its project after the config changes."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.orm import Session

from pipeline.config import ProjectConfig
from pipeline.store.tables import Project, utcnow

__all__ = ["sync_projects"]


def sync_projects(session: Session, projects: Mapping[str, ProjectConfig]) -> None:
    """Insert new projects and refresh changed repository URLs; never deletes history."""
    for name, project in projects.items():
        row = session.get(Project, name)
        if row is None:
            session.add(Project(name=name, repo=project.repo))
        elif row.repo != project.repo:
            row.repo = project.repo
            row.updated_at = utcnow()
    session.flush()
