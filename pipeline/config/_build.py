"""How a project's checkout becomes an image: build options, BuildKit secrets, the image name."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from pipeline.config._base import (
    REPOSITORY,
    SECRET_NAME,
    Model,
    check_placeholders,
    inside_checkout,
)

__all__ = ["BuildConfig", "BuildOverride", "ImageConfig", "SecretConfig"]


class SecretConfig(Model):
    """A BuildKit secret: given to RUN --mount=type=secret, never a build-arg."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    env: str | None = None
    file: Path | None = None

    @model_validator(mode="after")
    def _one_source(self) -> SecretConfig:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of 'env' or 'file'")
        return self


def _no_secret_args(args: dict[str, str] | None) -> dict[str, str] | None:
    for name, value in (args or {}).items():
        if SECRET_NAME.search(name):
            secret_id = name.lower()
            raise ValueError(
                f"build arg {name} looks like a secret: build-args stay readable in the image history. "
                f"Pass it as a BuildKit secret instead: build.secrets: [{{id: {secret_id}, env: {name}}}] "
                f"and RUN --mount=type=secret,id={secret_id} in the Dockerfile"
            )
        check_placeholders(value, f"build arg {name}")
    return args


class BuildConfig(Model):
    """How a project's checkout becomes an image."""

    context: str = "."
    dockerfile: str = "Dockerfile"
    target: str | None = None
    args: dict[str, str] = Field(default_factory=dict)
    secrets: list[SecretConfig] = Field(default_factory=list)
    network: str | None = None
    timeout_seconds: int = Field(default=3600, gt=0)
    no_cache: bool = False
    pull: bool = False
    cache_from_last: bool = True
    insight: bool = True
    platforms: list[Annotated[str, Field(pattern=r"^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$")]] = Field(
        default_factory=list)  # needs buildx: e.g. [linux/amd64, linux/arm64]
    provenance: bool = False  # SLSA provenance attestation by buildx

    _paths = field_validator("context", "dockerfile")(inside_checkout)
    _args = field_validator("args")(_no_secret_args)


class BuildOverride(Model):
    """Per-branch changes to the project's build; unset fields keep the project's value."""

    context: str | None = None
    dockerfile: str | None = None
    target: str | None = None
    args: dict[str, str] | None = None
    network: str | None = None
    timeout_seconds: int | None = Field(default=None, gt=0)
    no_cache: bool | None = None
    pull: bool | None = None

    _paths = field_validator("context", "dockerfile")(inside_checkout)
    _args = field_validator("args")(_no_secret_args)


class ImageConfig(Model):
    registry: str
    repository: str = Field(pattern=REPOSITORY)
