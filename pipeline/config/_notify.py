"""Who hears about builds and promotions: the Git host's commit statuses (per project) and the
team's notification targets (top level).

Every URL a delivery is sent to comes from here, never from a payload: a status goes to the
project's ``status.api_url``, a webhook to its target's ``url``, a Slack message to the URL in
``url_env`` whose host must be one of the target's ``allowed_hosts``. Tokens and secrets are
named by environment variable and read at the moment of delivery, never stored.
"""

from __future__ import annotations

import fnmatch
import os
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from pipeline.config._base import NAME, Model
from pipeline.errors import ConfigError

__all__ = [
    "EVENTS",
    "STATUS_PROVIDERS",
    "NotificationTarget",
    "NotificationsConfig",
    "StatusConfig",
    "StatusProvider",
    "http_origin",
]

StatusProvider = Literal["github", "gitlab", "gitea", "forgejo", "bitbucket", "bitbucket-dc"]
STATUS_PROVIDERS: tuple[str, ...] = ("github", "gitlab", "gitea", "forgejo", "bitbucket", "bitbucket-dc")

# What a notification target can subscribe to. ``verification.failed`` is emitted by the
# post-promotion verification (issue 21) through ``pipeline.notify.report_event``.
EVENTS: tuple[str, ...] = (
    "build.succeeded",
    "build.failed",
    "promotion.succeeded",
    "promotion.failed",
    "promotion.rejected",
    "rollback",
    "hold",
    "release",
    "verification.failed",
)


def http_origin(url: str, what: str) -> str:
    """``url`` without a trailing slash, after checking it is an absolute http(s) URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} must be an absolute http:// or https:// URL, got {url!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{what} must have no query, fragment or credentials (tokens go in *_env), got {url!r}")
    return url.rstrip("/")


class StatusConfig(Model):
    """Commit statuses (and, on GitHub, deployments) on the project's Git host.

    ``provider`` defaults to the host whose webhook queued the build; ``api_url`` to the
    public host's API (``https://api.github.com``, ``https://gitlab.com``,
    ``https://api.bitbucket.org``); Gitea, Forgejo and Bitbucket Data Center are self-hosted
    and need it. ``repository`` (owner/name, GitLab's path or numeric id, Bitbucket's
    workspace/repo) defaults to the path of the project's ``repo`` URL.
    """

    provider: StatusProvider | None = None
    api_url: str | None = None
    token_env: str
    repository: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.~-]+(/[A-Za-z0-9_.~-]+)*$")
    context: str = Field(default="pipeline/build", min_length=1, max_length=100)
    deployments: bool = True  # report promotions (GitHub: Deployments API; others: a status per environment)

    @field_validator("api_url")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        return None if value is None else http_origin(value, "api_url")

    def token(self, where: str) -> str:
        value = os.environ.get(self.token_env)
        if not value:
            raise ConfigError(f"{where}.status.token_env: the environment variable {self.token_env} is not set")
        return value


class NotificationTarget(Model):
    """One place the team hears from: a ``webhook`` (CloudEvents 1.0, HMAC-signed) or a
    ``slack`` incoming webhook; the filters narrow what it hears (empty: everything)."""

    name: str = Field(pattern=NAME)
    kind: Literal["webhook", "slack"]
    url: str | None = None  # webhook: where to POST
    secret_env: str | None = None  # webhook: the HMAC key of X-Pipeline-Signature
    url_env: str | None = None  # slack: the incoming-webhook URL (a secret itself)
    allowed_hosts: list[str] = Field(default_factory=lambda: ["hooks.slack.com"])  # slack: where url_env may point
    projects: list[str] = Field(default_factory=list)  # globs
    environments: list[str] = Field(default_factory=list)  # globs; set: events without one do not match
    events: list[str] = Field(default_factory=list)

    @field_validator("events")
    @classmethod
    def _known_events(cls, events: list[str]) -> list[str]:
        unknown = sorted(set(events) - set(EVENTS))
        if unknown:
            raise ValueError(f"unknown events {unknown}; known: {list(EVENTS)}")
        return events

    @field_validator("url")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        return None if value is None else http_origin(value, "url")

    @model_validator(mode="after")
    def _fits_kind(self) -> NotificationTarget:
        if self.kind == "webhook" and (not self.url or self.url_env):
            raise ValueError("a webhook target needs url (and secret_env to sign), not url_env")
        if self.kind == "slack" and (not self.url_env or self.url or self.secret_env):
            raise ValueError(
                "a slack target needs url_env (the incoming-webhook URL is a secret), not url or secret_env"
            )
        return self

    def wants(self, event: str, project: str, environment: str | None) -> bool:
        """Do the target's filters let this event through?"""
        if self.events and event not in self.events:
            return False
        if self.projects and not any(fnmatch.fnmatchcase(project, glob) for glob in self.projects):
            return False
        if self.environments:
            return environment is not None and any(fnmatch.fnmatchcase(environment, g) for g in self.environments)
        return True

    def secret(self) -> bytes | None:
        if not self.secret_env:
            return None
        value = os.environ.get(self.secret_env)
        if not value:
            raise ConfigError(f"notifications.targets.{self.name}.secret_env: {self.secret_env} is not set")
        return value.encode()

    def slack_url(self) -> str:
        """The incoming-webhook URL from the environment, refused unless its host is allowed."""
        value = os.environ.get(self.url_env or "")
        where = f"notifications.targets.{self.name}"
        if not value:
            raise ConfigError(f"{where}.url_env: the environment variable {self.url_env} is not set")
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or parts.hostname not in self.allowed_hosts:
            raise ConfigError(
                f"{where}: the URL in {self.url_env} points at host {parts.hostname!r}, "
                f"which is not in allowed_hosts {self.allowed_hosts}"
            )
        return value


class NotificationsConfig(Model):
    """Targets, and how deliveries are retried: ``max_attempts`` tries with exponential backoff
    from ``retry_seconds`` (or the receiver's ``Retry-After``), then a dead letter."""

    base_url: str | None = None  # this service as users reach it: statuses link to its builds
    targets: list[NotificationTarget] = Field(default_factory=list)
    max_attempts: int = Field(default=8, ge=1, le=100)
    retry_seconds: float = Field(default=5.0, gt=0)
    max_retry_seconds: float = Field(default=600.0, gt=0)
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)

    @field_validator("base_url")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        return None if value is None else http_origin(value, "base_url")

    @field_validator("targets")
    @classmethod
    def _names_unique(cls, targets: list[NotificationTarget]) -> list[NotificationTarget]:
        names = [t.name for t in targets]
        if twice := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"targets {twice} are defined twice")
        return targets

    def target(self, name: str) -> NotificationTarget | None:
        return next((t for t in self.targets if t.name == name), None)
