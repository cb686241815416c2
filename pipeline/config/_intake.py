"""How intake keeps its delivery log, and the check that every project can verify its webhooks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated

from pydantic import BeforeValidator, Field

from pipeline.config._base import Model
from pipeline.config._source import interval

if TYPE_CHECKING:
    from pipeline.config import ProjectConfig

__all__ = ["IntakeConfig", "unverifiable_projects"]


class IntakeConfig(Model):
    """``intake:``: the dedupe window for deliveries without an id, and how long the log keeps what."""

    # a delivery without an id (a generic sender without X-Pipeline-Delivery) is a duplicate of
    # an equal body only within this window: the same bytes later are a new push
    dedupe_window: Annotated[int, BeforeValidator(interval), Field(ge=1, le=7 * 86400)] = 600
    keep_bodies_days: int = Field(default=7, ge=0, le=365)  # accepted bodies, for Redeliver
    keep_deliveries_days: int = Field(default=30, ge=1, le=3650)  # every row of the log


def unverifiable_projects(projects: Mapping[str, ProjectConfig]) -> list[str]:
    """One line per project that would refuse every push: its webhook secret is not set.

    Checked when the config is loaded (serve, reload, doctor) so the error names the project and
    the variable, instead of a 401 on the first push that sends people to the Git host.
    """
    problems = []
    for name, project in projects.items():
        if project.allow_unsigned or project.webhook_secret() is not None:
            continue
        if project.webhook_secret_file is not None:
            where = f"webhook_secret_file {project.webhook_secret_file} is missing or empty"
        elif project.webhook_secret_env:
            where = f"environment variable {project.webhook_secret_env} (webhook_secret_env) is not set"
        else:
            where = "no webhook_secret_env or webhook_secret_file is configured"
        problems.append(f"projects.{name}: {where}; every push would be refused (set it, or allow_unsigned: true)")
    return problems
