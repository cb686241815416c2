"""The config file: one pydantic schema (split by subject in `_base`, `_build`, `_source`,
`_promotion`), loaded once at start.

A typo in the config must stop the service at start with the key's full path, not surface
as a puzzling failure on the first push, so every model forbids unknown keys and every
error names where it is. ``PIPELINE_CONFIG`` picks the file and ``PIPELINE_DATABASE_URL``
overrides the database, so one file serves laptops and production alike.
"""

from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BeforeValidator,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from pipeline.config._base import NAME, TEMPLATE_FIELDS, Model, check_placeholders
from pipeline.config._build import BuildConfig, BuilderConfig, BuildOverride, ImageConfig, SecretConfig
from pipeline.config._cleanup import CleanupConfig, LogRetention, PruneConfig, RetentionPolicy
from pipeline.config._intake import IntakeConfig, unverifiable_projects
from pipeline.config._live import ConfigChange, LiveConfig, fingerprint
from pipeline.config._notify import EVENTS, NotificationsConfig, NotificationTarget, StatusConfig
from pipeline.config._promotion import (
    ENVIRONMENT_TAG_FIELDS,
    EnvironmentConfig,
    GitOpsConfig,
    PullRequestConfig,
    SigningConfig,
)
from pipeline.config._source import GitConfig, PathFilter, interval
from pipeline.config._verification import ProbeConfig, SmokeRunConfig, SmokeTestConfig, VerifyAfterConfig
from pipeline.errors import ConfigError, NotFound

__all__ = [
    "ENVIRONMENT_TAG_FIELDS",
    "EVENTS",
    "TEMPLATE_FIELDS",
    "ApiConfig",
    "BuildConfig",
    "BuildOverride",
    "BuilderConfig",
    "CleanupConfig",
    "Config",
    "ConfigChange",
    "DockerConfig",
    "EnvironmentConfig",
    "GitConfig",
    "GitOpsConfig",
    "ImageConfig",
    "IntakeConfig",
    "LiveConfig",
    "LogRetention",
    "NotificationTarget",
    "NotificationsConfig",
    "PathFilter",
    "ProbeConfig",
    "ProjectConfig",
    "PruneConfig",
    "PullRequestConfig",
    "RegistryConfig",
    "RetentionPolicy",
    "SecretConfig",
    "SigningConfig",
    "SmokeRunConfig",
    "SmokeTestConfig",
    "StatusConfig",
    "VerifyAfterConfig",
    "WorkerConfig",
    "config_file",
    "fingerprint",
    "load_config",
    "parse_config",
    "unverifiable_projects",
]


class RegistryConfig(Model):
    """A registry images are pushed to or promoted into."""

    url: str
    insecure: bool = False
    ca_file: Path | None = None
    username_env: str | None = None
    password_env: str | None = None
    docker_config: Path | None = None  # a DOCKER_CONFIG directory to take credentials from
    requests_per_second: float | None = Field(default=None, gt=0)
    chunk_size_mb: int | None = Field(default=None, ge=1, le=1024)  # upload in PATCH chunks

    @field_validator("url")
    @classmethod
    def _url_has_host(cls, value: str) -> str:
        host = re.sub(r"^https?://", "", value).rstrip("/")
        if not host or "/" in host or " " in host:
            raise ValueError(f"expected a registry host such as 'registry.example.com:5000', got {value!r}")
        return value

    @property
    def host(self) -> str:
        """The host[:port] used in image references."""
        return re.sub(r"^https?://", "", self.url).rstrip("/")

    def credentials(self) -> tuple[str, str] | None:
        """Username and password from the environment, read when needed (never stored)."""
        if not self.username_env:
            return None
        user = os.environ.get(self.username_env)
        password = os.environ.get(self.password_env or "")
        if user is None or password is None:
            raise ConfigError(
                f"registry {self.host}: set the environment variables {self.username_env} and "
                f"{self.password_env} (credentials are read from the environment)"
            )
        return user, password


class ProjectConfig(Model):
    repo: str
    webhook_secret_env: str | None = None
    webhook_secret_file: Path | None = None
    allow_unsigned: bool = False
    branches: list[str] = Field(default_factory=lambda: ["main"])
    git_tags: list[str] = Field(default_factory=list)
    paths: PathFilter = Field(default_factory=PathFilter)
    supersede_running: bool = False
    poll: Annotated[int, BeforeValidator(interval), Field(ge=10)] | None = None
    git: GitConfig = Field(default_factory=GitConfig)
    default_branch: str = "main"
    concurrency: int | None = Field(default=None, ge=1)
    build: BuildConfig = Field(default_factory=BuildConfig)
    branch_overrides: dict[str, BuildOverride] = Field(default_factory=dict)
    image: ImageConfig
    tags: list[str] = Field(default_factory=lambda: ["{branch}-{short_sha}"], min_length=1)
    environments: list[EnvironmentConfig] = Field(default_factory=list)
    cleanup: RetentionPolicy | None = None  # this project's registry cleanup; else cleanup.registry
    status: StatusConfig | None = None  # commit statuses and deployments on the Git host (issue 19)

    @field_validator("tags")
    @classmethod
    def _known_placeholders(cls, tags: list[str]) -> list[str]:
        for tag in tags:
            check_placeholders(tag, "tag template")
        return tags

    @field_validator("environments")
    @classmethod
    def _stages_form_a_chain(cls, environments: list[EnvironmentConfig]) -> list[EnvironmentConfig]:
        seen: set[str] = set()
        for env in environments:
            if env.name in seen:
                raise ValueError(f"environment {env.name!r} is defined twice")
            if env.requires is not None and env.requires not in seen:
                raise ValueError(
                    f"environment {env.name!r} requires {env.requires!r}, which must be "
                    f"defined before it (defined so far: {sorted(seen)})"
                )
            seen.add(env.name)
        return environments

    def environment(self, name: str) -> EnvironmentConfig:
        for env in self.environments:
            if env.name == name:
                return env
        raise NotFound(f"project has no environment {name!r} (defined: {[e.name for e in self.environments]})")

    def build_for(self, branch: str | None) -> BuildConfig:
        """The project's build with the first matching branch override applied."""
        for glob, override in self.branch_overrides.items():
            if branch is not None and fnmatch.fnmatchcase(branch, glob):
                changes = override.model_dump(exclude_none=True)
                if "args" in changes:
                    changes["args"] = {**self.build.args, **changes["args"]}
                return self.build.model_copy(update=changes)
        return self.build

    @model_validator(mode="after")
    def _one_secret_source(self) -> ProjectConfig:
        if self.webhook_secret_env and self.webhook_secret_file:
            raise ValueError("give webhook_secret_env or webhook_secret_file, not both")
        return self

    def webhook_secret(self) -> bytes | None:
        """The secret, read from the environment or file at the moment it is needed."""
        if self.webhook_secret_file is not None:
            try:
                value = self.webhook_secret_file.read_text().strip()
            except OSError:
                return None
        else:
            value = os.environ.get(self.webhook_secret_env or "", "")
        return value.encode() if value else None


class DockerConfig(Model):
    """The Docker CLI to build with; ``hosts`` is the older spelling of ``builders`` (one
    ``docker:`` builder per engine, named after its host)."""

    hosts: list[str] = Field(default_factory=list)
    cli: str | None = None


class WorkerConfig(Model):
    lease_seconds: int = Field(default=60, ge=2)
    poll_seconds: float = Field(default=1.0, gt=0)
    reap_seconds: int = Field(default=15, ge=1)
    max_attempts: int = Field(default=3, ge=1)
    retry_seconds: float = Field(default=5.0, gt=0)  # first retry after a transient failure; doubles each time
    merge_check_seconds: int = Field(default=30, ge=1)  # how often pull-request-mode promotions ask the host


class ApiConfig(Model):
    """Access to the REST API. Webhooks are always authenticated by their signatures instead."""

    auth: bool = True  # false: no tokens at all, everyone is admin (a trusted laptop only)
    anonymous_read: bool = False  # true: GET endpoints and the web page need no token


class Config(Model):
    data_dir: Path = Path("./data")
    api: ApiConfig = Field(default_factory=ApiConfig)
    database_url: str | None = None
    docker: DockerConfig = Field(default_factory=DockerConfig)
    builders: list[BuilderConfig] = Field(default_factory=list)
    registries: dict[str, RegistryConfig] = Field(default_factory=dict)
    projects: dict[Annotated[str, Field(pattern=NAME)], ProjectConfig] = Field(default_factory=dict)
    worker: WorkerConfig = Field(default_factory=WorkerConfig)
    signing: SigningConfig | None = None
    cleanup: CleanupConfig = Field(default_factory=CleanupConfig)
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)
    intake: IntakeConfig = Field(default_factory=IntakeConfig)

    @field_validator("builders")
    @classmethod
    def _builder_names_unique(cls, builders: list[BuilderConfig]) -> list[BuilderConfig]:
        seen: set[str] = set()
        for builder in builders:
            if builder.name in seen:
                raise ValueError(f"builder {builder.name!r} is defined twice")
            seen.add(builder.name)
        return builders

    @model_validator(mode="after")
    def _one_builder_list(self) -> Config:
        if self.builders and self.docker.hosts:
            raise ValueError(
                "builders: give either builders or docker.hosts (its older spelling), not both; "
                "move each host to builders as {name: NAME, docker: HOST}"
            )
        return self

    @property
    def builder_pool(self) -> list[BuilderConfig]:
        """The builders builds rotate over: ``builders``, else one per ``docker.hosts`` entry
        (named after the host, as engines were recorded before), else the local engine."""
        if self.builders:
            return list(self.builders)
        return [BuilderConfig(name=host, docker=host) for host in self.docker.hosts or ["default"]]

    @model_validator(mode="after")
    def _references_resolve(self) -> Config:
        for name, project in self.projects.items():
            if project.image.registry not in self.registries:
                raise ValueError(
                    f"projects.{name}.image.registry: no registry named {project.image.registry!r} "
                    f"(defined: {sorted(self.registries)})"
                )
            for env in project.environments:
                if env.registry not in self.registries:
                    raise ValueError(
                        f"projects.{name}.environments.{env.name}.registry: no registry named {env.registry!r}"
                    )
                if env.sign and self.signing is None:
                    raise ValueError(
                        f"projects.{name}.environments.{env.name}.sign: signing needs a key; add "
                        f"signing: {{key_file: cosign.key}} at the top level"
                    )
                if env.smoke_test is not None:
                    self._smoke_engine(f"projects.{name}.environments.{env.name}.smoke_test.engine", env.smoke_test)
                for index, key in enumerate(env.verify):
                    if not key.is_file():
                        raise ValueError(
                            f"projects.{name}.environments.{env.name}.verify.{index}: no public key file at {key}"
                        )
        signs = any(env.sign for p in self.projects.values() for env in p.environments)
        if self.signing is not None and signs and not self.signing.key_file.is_file():
            raise ValueError(f"signing.key_file: no key file at {self.signing.key_file}")
        return self

    def _smoke_engine(self, where: str, smoke: SmokeTestConfig) -> None:
        docker = [b.name for b in self.builder_pool if b.kind == "docker"]
        if smoke.engine is None and not docker:
            raise ValueError(f"{where}: a smoke test runs on a docker builder, and none is configured")
        if smoke.engine is not None and smoke.engine not in docker:
            raise ValueError(
                f"{where}: no docker builder named {smoke.engine!r} (a smoke test runs containers; docker builders: "
                f"{docker or 'none'})"
            )

    def smoke_builder(self, smoke: SmokeTestConfig) -> BuilderConfig:
        """The docker builder a smoke test runs on: the one it names, else the first."""
        return next(b for b in self.builder_pool if b.kind == "docker" and smoke.engine in (None, b.name))

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir.resolve() / 'pipeline.db'}"

    def retention(self, name: str) -> RetentionPolicy:
        """The registry cleanup policy of project ``name``: its own, else ``cleanup.registry``."""
        return self.project(name).cleanup or self.cleanup.registry

    def project(self, name: str) -> ProjectConfig:
        try:
            return self.projects[name]
        except KeyError:
            raise NotFound(f"no project named {name!r} in the config") from None


def _describe(error: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid configuration"]
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            lines.append(f"  {where}: unknown key")
        else:
            lines.append(f"  {where}: {item['msg'].removeprefix('Value error, ')}")
    return "\n".join(lines)


def parse_config(data: Any, source: str = "config") -> Config:
    """Validate already-parsed YAML, applying ``PIPELINE_DATABASE_URL``."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, got {type(data).__name__}")
    override = os.environ.get("PIPELINE_DATABASE_URL")
    if override:
        data = {**data, "database_url": override}
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None


def config_file(path: str | Path | None = None) -> Path:
    """The config file named by ``path`` or ``PIPELINE_CONFIG`` (the environment wins)."""
    chosen = os.environ.get("PIPELINE_CONFIG") or path
    if not chosen:
        raise ConfigError("no config file: pass --config FILE or set PIPELINE_CONFIG")
    return Path(chosen)


def load_config(path: str | Path | None = None) -> Config:
    """Read the config named by ``path`` or ``PIPELINE_CONFIG`` (the environment wins)."""
    file = config_file(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the config file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from None
    config = parse_config(data, str(file))
    if not config.data_dir.is_absolute():
        config = config.model_copy(update={"data_dir": (file.parent / config.data_dir).resolve()})
    return config
