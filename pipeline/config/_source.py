"""Where a project's source comes from and which pushes count: Git access, path filters, polling."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from pathlib import Path

from pydantic import (
    Field,
    model_validator,
)

from pipeline.config._base import (
    Model,
)

__all__ = ["GitConfig", "PathFilter", "interval"]


class GitConfig(Model):
    """How to reach a private repository; secrets come from the environment or files only."""

    token_env: str | None = None
    username: str = "x-access-token"
    ssh_key_file: Path | None = None
    known_hosts_file: Path | None = None
    submodules: bool = False
    lfs: bool = False
    timeout_seconds: int = Field(default=600, gt=0)

    @model_validator(mode="after")
    def _pinned_host_key(self) -> GitConfig:
        if self.ssh_key_file and not self.known_hosts_file:
            raise ValueError("ssh_key_file needs known_hosts_file: host keys are pinned, never trusted on first use")
        return self


class PathFilter(Model):
    """Build only when a changed file matches ``include`` (default: all) and not ``exclude``."""

    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)

    @property
    def active(self) -> bool:
        return bool(self.include or self.exclude)

    def matches(self, paths: Iterable[str]) -> bool:
        """True when at least one changed path is included and not excluded."""
        for path in paths:
            included = not self.include or any(_glob(path, p) for p in self.include)
            if included and not any(_glob(path, p) for p in self.exclude):
                return True
        return False


def _glob(path: str, pattern: str) -> bool:
    """``**`` spans directories, ``*`` stays in one; a pattern without ``/`` matches a file name anywhere."""
    if "/" not in pattern:
        return fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], pattern)
    regex = re.escape(pattern).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
    return re.fullmatch(regex.replace(r"\?", "[^/]"), path) is not None


def interval(value: object) -> object:
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", value)
        if not match:
            raise ValueError(f"expected an interval such as 90, '30s', '5m', '1h' or '1d', got {value!r}")
        return int(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]]
    return value
