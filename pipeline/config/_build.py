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

__all__ = ["PLATFORM", "BuildConfig", "BuildOverride", "BuilderConfig", "ImageConfig", "SecretConfig"]

PLATFORM = r"^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$"  # os/arch[/variant], as BuildKit spells it
Platform = Annotated[str, Field(pattern=PLATFORM)]


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
    platforms: list[Platform] = Field(default_factory=list)  # an OCI index: e.g. [linux/amd64, linux/arm64]
    provenance: bool = False  # BuildKit's own SLSA provenance (mode=max), pushed inside the image index
    cache_ref: str | None = Field(default=None, pattern=r"^[^\s@]+:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
    # where a BuildKit daemon keeps this project's registry cache; default <registry>/<repository>:buildcache

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


_ENDPOINT = r"^((unix|tcp|ssh|npipe)://\S+|default)$"


class BuilderConfig(Model):
    """One place builds run: a Docker engine, a BuildKit daemon, or a buildx builder made elsewhere.

    Exactly one of ``docker``, ``buildkit`` or ``buildx`` says which; the TLS files belong to a
    BuildKit daemon reached over TCP (a Docker engine's TLS comes from ``DOCKER_CERT_PATH``).
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/@+-]{0,127}$")
    docker: str | None = Field(default=None, pattern=_ENDPOINT)  # or "default": DOCKER_HOST, else the local one
    buildkit: str | None = Field(default=None, pattern=r"^(unix|tcp)://\S+$")
    buildx: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    platforms: list[Platform] = Field(default_factory=list)  # what it builds, when it says less (emulation)
    max_parallel: int | None = Field(default=None, ge=1)  # builds at a time on it, per worker process

    @property
    def kind(self) -> str:
        """``docker``, ``buildkit`` or ``buildx``."""
        return "docker" if self.docker is not None else "buildkit" if self.buildkit is not None else "buildx"

    @property
    def endpoint(self) -> str:
        return self.docker or self.buildkit or self.buildx or ""

    @model_validator(mode="after")
    def _one_kind(self) -> BuilderConfig:
        given = [key for key in ("docker", "buildkit", "buildx") if getattr(self, key) is not None]
        if len(given) != 1:
            raise ValueError(
                f"builder {self.name!r}: give exactly one of 'docker', 'buildkit' or 'buildx' (got {given or 'none'})"
            )
        tls = [key for key in ("ca_file", "cert_file", "key_file") if getattr(self, key) is not None]
        if tls and self.buildkit is None:
            raise ValueError(f"builder {self.name!r}: {', '.join(tls)} apply to a 'buildkit' daemon only")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError(f"builder {self.name!r}: give cert_file and key_file together (the client certificate)")
        for key in tls:
            path = getattr(self, key)
            if not path.is_file():
                raise ValueError(f"builder {self.name!r}: {key} {path} is not a readable file")
        return self
