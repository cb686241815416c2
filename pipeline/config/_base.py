"""What every part of the config schema shares: the strict base model and name rules."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from pydantic import (
    BaseModel,
    ConfigDict,
)

__all__ = ["NAME", "REPOSITORY", "SECRET_NAME", "TEMPLATE_FIELDS", "Model", "check_placeholders", "inside_checkout"]

NAME = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
REPOSITORY = r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$"
TEMPLATE_FIELDS = frozenset(
    {
        "branch",
        "tag",
        "sha",
        "short_sha",
        "build_id",
        "timestamp",
        "project",
        "version",
        "semver",
        "semver_minor",
        "semver_major",
    }
)
SECRET_NAME = re.compile(r"(?i)secret|token|passw(?:or)?d|api_?key|private_?key|credential|auth")


def check_placeholders(template: str, what: str) -> None:
    unknown = set(re.findall(r"{([^}]*)}", template)) - TEMPLATE_FIELDS
    if unknown:
        raise ValueError(f"{what} {template!r} uses {sorted(unknown)}; known: {sorted(TEMPLATE_FIELDS)}")


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def inside_checkout(value: str | None) -> str | None:
    if value is not None:
        path = PurePosixPath(value)
        if path.is_absolute() or ".." in path.parts:
            raise ValueError(f"{value!r} must be a relative path inside the repository (no '..')")
    return value
