"""Answers to "what runs where, from which commit, promoted by whom, and what was before it"."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from pipeline.config import Config
from pipeline.errors import NotFound
from pipeline.store import Build, EnvironmentHold, Promotion, builds, promotions

__all__ = ["EnvironmentState", "ImageLineage", "environment_matrix", "image_lineage"]


@dataclass(frozen=True)
class EnvironmentState:
    project: str
    environment: str
    registry: str
    repository: str
    current: Promotion | None
    build: Build | None
    previous: Promotion | None  # what a rollback would restore
    hold: EnvironmentHold | None
    waiting: int


def environment_matrix(session: Session, config: Config, project: str | None = None) -> list[EnvironmentState]:
    """One entry per configured project and environment, in config order."""
    names = [project] if project else list(config.projects)
    states = []
    for name in names:
        project_config = config.project(name)
        for env in project_config.environments:
            current = promotions.current(session, name, env.name)
            build = builds.get_build(session, current.build_id) if current and current.build_id else None
            previous = (promotions.get_promotion(session, current.rollback_to_id)
                        if current and current.rollback_to_id else None)
            states.append(EnvironmentState(
                name, env.name, config.registries[env.registry].host, env.repository, current, build, previous,
                promotions.active_hold(session, name, env.name), promotions.count_waiting(session, name, env.name)))
    return states


@dataclass(frozen=True)
class ImageLineage:
    digest: str
    builds: list[Build]
    promotions: list[Promotion]
    rejection: Any
    environments: list[str]  # project/environment pairs that run it now


def image_lineage(session: Session, config: Config, digest: str) -> ImageLineage:
    """The build that made a digest and every environment it has been in."""
    made = builds.list_builds(session, builds.BuildFilter(digest=digest), limit=100, before_id=None)
    moved = promotions.promotions_of_digest(session, digest)
    if not made and not moved:
        raise NotFound(f"no build or promotion knows {digest}")
    running = [
        f"{state.project}/{state.environment}" for state in environment_matrix(session, config)
        if state.current is not None and state.current.digest == digest
    ]
    return ImageLineage(digest, list(reversed(made)), moved, promotions.rejection(session, digest), running)
