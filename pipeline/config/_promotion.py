"""Environments a digest is promoted through, their write-back to Git, and the signing key."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from pipeline.config._base import (
    NAME,
    REPOSITORY,
    Model,
    inside_checkout,
)
from pipeline.config._source import GitConfig
from pipeline.config._verification import SmokeTestConfig, VerifyAfterConfig
from pipeline.errors import ConfigError, SigningError
from pipeline.types import GitHost

__all__ = ["ENVIRONMENT_TAG_FIELDS", "EnvironmentConfig", "GitOpsConfig", "PullRequestConfig", "SigningConfig"]


class PullRequestConfig(Model):
    """Write-back through a pull request on the Git host instead of a push to the branch."""

    provider: GitHost = "github"
    repository: str = Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")  # owner/name on the host
    api_url: str = "https://api.github.com"
    token_env: str  # a token allowed to open pull requests; read when needed, never stored

    @field_validator("provider")
    @classmethod
    def _implemented(cls, provider: str) -> str:
        if provider != "github":
            raise ValueError(
                f"pull requests are opened on github (and GitHub Enterprise) only, not {provider}; "
                "use a plain push (no pull_request) on this host"
            )
        return provider

    def token(self) -> str:
        value = os.environ.get(self.token_env)
        if not value:
            raise ConfigError(f"gitops.pull_request.token_env: {self.token_env} is not set")
        return value


class GitOpsConfig(Model):
    """Where a promotion is written back: one file on one branch of the environment's deploy
    repository, and which value in it names the image (exactly one of ``key``,
    ``kustomize_image`` or ``container``)."""

    repo: str
    branch: str = Field(default="main", pattern=r"^[A-Za-z0-9._/-]{1,200}$")
    path: str
    key: str | None = None  # Helm values key path, e.g. image.digest, image.tag or image
    kustomize_image: str | None = None  # the `name` of an entry in kustomization.yaml's images:
    container: str | None = None  # a container in a plain manifest (Deployment, CronJob, Pod ...)
    resource_kind: str | None = None  # with container: only in resources of this kind ...
    resource_name: str | None = None  # ... and this name
    git: GitConfig = Field(default_factory=GitConfig)
    pull_request: PullRequestConfig | None = None  # set: the edit goes to a branch and a pull request
    author_name: str = "pipeline"
    author_email: str = "pipeline@localhost"

    _path = field_validator("path")(inside_checkout)

    @model_validator(mode="after")
    def _one_target(self) -> GitOpsConfig:
        given = [name for name in ("key", "kustomize_image", "container") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError(
                f"name exactly one of key (Helm values), kustomize_image or container; got {given or 'none'}"
            )
        if (self.resource_kind or self.resource_name) and not self.container:
            raise ValueError("resource_kind and resource_name narrow a container; set container too")
        return self


ENVIRONMENT_TAG_FIELDS = frozenset({"environment", "project", "sha", "short_sha", "branch", "build_id"})


class EnvironmentConfig(Model):
    """A stage images are promoted into: where the digest goes and what must hold first."""

    name: Annotated[str, Field(pattern=NAME)]
    registry: str
    repository: str = Field(pattern=REPOSITORY)
    tag: str = "{environment}"
    auto: bool = False  # promote every successful build (first stage) or arrival upstream (later ones)
    requires: str | None = None  # the environment a digest must have reached first
    sign: bool = False
    verify: list[Path] = Field(default_factory=list)
    gitops: GitOpsConfig | None = None
    smoke_test: SmokeTestConfig | None = None  # run the digest and probe it before the tag moves
    verify_after: VerifyAfterConfig | None = None  # ask the environment once the tag moved

    @field_validator("tag")
    @classmethod
    def _tag_placeholders(cls, tag: str) -> str:
        unknown = set(re.findall(r"{([^}]*)}", tag)) - ENVIRONMENT_TAG_FIELDS
        if unknown:
            raise ValueError(f"tag template {tag!r} uses {sorted(unknown)}; known: {sorted(ENVIRONMENT_TAG_FIELDS)}")
        return tag


class SigningConfig(Model):
    """The cosign key pair environments with ``sign: true`` sign with; the password is read
    from ``password_env`` when a promotion signs (never stored)."""

    key_file: Path
    password_env: str = "COSIGN_PASSWORD"

    def password(self) -> bytes:
        value = os.environ.get(self.password_env)
        if value is None:
            raise SigningError(
                f"signing.password_env: {self.password_env} is not set; export the password of "
                f"{self.key_file} ({self.password_env}= for a key without one)"
            )
        return value.encode("utf-8")
