"""Where a digest lives: the project's build repository and each environment's repository."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.config import Config, EnvironmentConfig, ProjectConfig, RegistryConfig
from pipeline.errors import ConfigError
from pipeline.store import Build

__all__ = ["Location", "build_location", "environment_location", "environment_tag"]

_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


@dataclass(frozen=True)
class Location:
    registry: RegistryConfig
    repository: str

    @property
    def name(self) -> str:
        return f"{self.registry.host}/{self.repository}"

    def ref(self, digest: str, tag: str | None = None) -> str:
        """``host/repo:tag@digest``: readable, and still exact."""
        return f"{self.name}{':' + tag if tag else ''}@{digest}"


def build_location(config: Config, project: ProjectConfig) -> Location:
    return Location(config.registries[project.image.registry], project.image.repository)


def environment_location(config: Config, env: EnvironmentConfig) -> Location:
    return Location(config.registries[env.registry], env.repository)


def environment_tag(env: EnvironmentConfig, project: str, build: Build) -> str:
    """The environment's tag template filled in from the build that made the digest."""
    values = {
        "environment": env.name,
        "project": project,
        "sha": build.commit,
        "short_sha": build.commit[:7],
        "branch": (build.branch or "").replace("/", "-"),
        "build_id": str(build.id),
    }
    tag = env.tag.format(**values)
    if not _TAG.fullmatch(tag):
        raise ConfigError(
            f"projects.{project}.environments.{env.name}.tag: {env.tag!r} gives {tag!r} for build "
            f"{build.id}, which is not a valid tag (letters, digits, _ . -, at most 128)"
        )
    return tag
