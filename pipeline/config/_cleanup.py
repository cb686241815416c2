"""Retention: what the registry cleanup keeps of a project's images, and how the service keeps
its own disk bounded (build logs, Git mirrors, builder caches).

Every default keeps more than it deletes: an image is deleted only when no rule keeps it, and
nothing at all is deleted unless ``cleanup`` runs (on its ``schedule`` or by hand).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from pipeline.config._base import Model
from pipeline.config._source import interval

__all__ = ["CleanupConfig", "LogRetention", "PruneConfig", "RetentionPolicy"]

Interval = Annotated[int, BeforeValidator(interval), Field(ge=60)]
_SIZE = re.compile(r"\s*(\d+)\s*(b|kb|mb|gb|tb)?\s*", re.IGNORECASE)


class RetentionPolicy(Model):
    """Which images of the build repository are kept (werf's cleanup by Git history).

    Kept: the images of the last ``keep_commits`` commits of every branch still in Git, of
    every Git tag, of anything built in the last ``keep_days`` days, and whatever runs or ran
    within the last ``keep_promotions`` promotions of any environment. A branch deleted in Git
    keeps nothing, so its images go once they are older than ``keep_days``. Environment
    repositories are never cleaned: what ran there is the record of what ran.
    """

    enabled: bool = True
    keep_commits: int = Field(default=10, ge=0)
    keep_git_tags: bool = True
    keep_days: int = Field(default=7, ge=0)
    keep_promotions: int = Field(default=10, ge=1)


class LogRetention(Model):
    """Build logs older than ``keep_days``: ``archive`` writes them gzip-compressed under
    ``data_dir/logs`` and keeps one line in the database saying where; ``delete`` drops them."""

    keep_days: int = Field(default=90, ge=1)
    action: Literal["archive", "delete"] = "archive"


def size_bytes(value: object) -> object:
    """``10gb`` -> bytes; a plain number is bytes already."""
    if isinstance(value, str):
        match = _SIZE.fullmatch(value)
        if not match:
            raise ValueError(f"expected a size such as '500mb' or '10gb', got {value!r}")
        unit = (match[2] or "b").lower()
        return int(match[1]) * {"b": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, "tb": 1 << 40}[unit]
    return value


class PruneConfig(Model):
    """Optional pruning of what the builders the service owns keep: images on each ``docker``
    builder engine older than ``docker_images_older_than`` (``docker image prune --filter
    until=…``) and BuildKit caches above ``buildkit_keep_storage`` (``buildctl prune
    --keep-storage``). Both off unless set: on a shared engine they remove others' images."""

    docker_images_older_than: Interval | None = None
    buildkit_keep_storage: Annotated[int, BeforeValidator(size_bytes), Field(ge=0)] | None = None


class CleanupConfig(Model):
    """``cleanup:``, the retention duty: ``schedule`` (e.g. ``1d``) runs it in the scheduler;
    without one it runs only when asked (``pipeline cleanup``, ``POST /api/v1/cleanup``)."""

    schedule: Interval | None = None
    registry: RetentionPolicy = Field(default_factory=RetentionPolicy)
    logs: LogRetention | None = None
    git_gc: bool = True  # git gc the mirrors under data_dir/mirrors on each scheduled run
    prune: PruneConfig = Field(default_factory=PruneConfig)
