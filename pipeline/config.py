"""The config file: one pydantic schema, loaded once at start.

A typo in the config must stop the service at start with the key's full path, not surface
as a puzzling failure on the first push, so every model forbids unknown keys and every
error names where it is. ``PIPELINE_CONFIG`` picks the file and ``PIPELINE_DATABASE_URL``
overrides the database, so one file serves laptops and production alike.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from pipeline.errors import ConfigError, NotFound, SigningError

__all__ = [
    "ApiConfig",
    "ENVIRONMENT_TAG_FIELDS",
    "TEMPLATE_FIELDS",
    "BuildConfig",
    "BuildOverride",
    "Config",
    "DockerConfig",
    "EnvironmentConfig",
    "GitConfig",
    "ImageConfig",
    "PathFilter",
    "ProjectConfig",
    "RegistryConfig",
    "SigningConfig",
    "WorkerConfig",
    "load_config",
    "parse_config",
]

_NAME = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
_REPOSITORY = r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$"
TEMPLATE_FIELDS = frozenset({
    "branch", "tag", "sha", "short_sha", "build_id", "timestamp", "project",
    "version", "semver", "semver_minor", "semver_major",
})
_SECRET_NAME = re.compile(r"(?i)secret|token|passw(?:or)?d|api_?key|private_?key|credential|auth")


def _check_placeholders(template: str, what: str) -> None:
    unknown = set(re.findall(r"{([^}]*)}", template)) - TEMPLATE_FIELDS
    if unknown:
        raise ValueError(f"{what} {template!r} uses {sorted(unknown)}; known: {sorted(TEMPLATE_FIELDS)}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegistryConfig(_Model):
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


class SecretConfig(_Model):
    """A BuildKit secret: given to RUN --mount=type=secret, never a build-arg."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    env: str | None = None
    file: Path | None = None

    @model_validator(mode="after")
    def _one_source(self) -> SecretConfig:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of 'env' or 'file'")
        return self


def _inside_checkout(value: str | None) -> str | None:
    if value is not None:
        path = PurePosixPath(value)
        if path.is_absolute() or ".." in path.parts:
            raise ValueError(f"{value!r} must be a relative path inside the repository (no '..')")
    return value


def _no_secret_args(args: dict[str, str] | None) -> dict[str, str] | None:
    for name, value in (args or {}).items():
        if _SECRET_NAME.search(name):
            secret_id = name.lower()
            raise ValueError(
                f"build arg {name} looks like a secret: build-args stay readable in the image history. "
                f"Pass it as a BuildKit secret instead: build.secrets: [{{id: {secret_id}, env: {name}}}] "
                f"and RUN --mount=type=secret,id={secret_id} in the Dockerfile"
            )
        _check_placeholders(value, f"build arg {name}")
    return args


class BuildConfig(_Model):
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

    _paths = field_validator("context", "dockerfile")(_inside_checkout)
    _args = field_validator("args")(_no_secret_args)


class BuildOverride(_Model):
    """Per-branch changes to the project's build; unset fields keep the project's value."""

    context: str | None = None
    dockerfile: str | None = None
    target: str | None = None
    args: dict[str, str] | None = None
    network: str | None = None
    timeout_seconds: int | None = Field(default=None, gt=0)
    no_cache: bool | None = None
    pull: bool | None = None

    _paths = field_validator("context", "dockerfile")(_inside_checkout)
    _args = field_validator("args")(_no_secret_args)


class ImageConfig(_Model):
    registry: str
    repository: str = Field(pattern=_REPOSITORY)


class GitConfig(_Model):
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


class PullRequestConfig(_Model):
    """Write-back through a pull request on the Git host instead of a push to the branch."""

    provider: Literal["github"] = "github"
    repository: str = Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")  # owner/name on the host
    api_url: str = "https://api.github.com"
    token_env: str  # a token allowed to open pull requests; read when needed, never stored

    def token(self) -> str:
        value = os.environ.get(self.token_env)
        if not value:
            raise ConfigError(f"gitops.pull_request.token_env: {self.token_env} is not set")
        return value


class GitOpsConfig(_Model):
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

    _path = field_validator("path")(_inside_checkout)

    @model_validator(mode="after")
    def _one_target(self) -> GitOpsConfig:
        given = [name for name in ("key", "kustomize_image", "container") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError(f"name exactly one of key (Helm values), kustomize_image or container; got {given or 'none'}")
        if (self.resource_kind or self.resource_name) and not self.container:
            raise ValueError("resource_kind and resource_name narrow a container; set container too")
        return self


ENVIRONMENT_TAG_FIELDS = frozenset({"environment", "project", "sha", "short_sha", "branch", "build_id"})


class EnvironmentConfig(_Model):
    """A stage images are promoted into: where the digest goes and what must hold first."""

    name: Annotated[str, Field(pattern=_NAME)]
    registry: str
    repository: str = Field(pattern=_REPOSITORY)
    tag: str = "{environment}"
    auto: bool = False  # promote every successful build (first stage) or arrival upstream (later ones)
    requires: str | None = None  # the environment a digest must have reached first
    sign: bool = False
    verify: list[Path] = Field(default_factory=list)
    gitops: GitOpsConfig | None = None

    @field_validator("tag")
    @classmethod
    def _tag_placeholders(cls, tag: str) -> str:
        unknown = set(re.findall(r"{([^}]*)}", tag)) - ENVIRONMENT_TAG_FIELDS
        if unknown:
            raise ValueError(f"tag template {tag!r} uses {sorted(unknown)}; known: {sorted(ENVIRONMENT_TAG_FIELDS)}")
        return tag


class PathFilter(_Model):
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


def _interval(value: object) -> object:
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+)\s*([smh]?)\s*", value)
        if not match:
            raise ValueError(f"expected an interval such as 90, '30s', '5m' or '1h', got {value!r}")
        return int(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600}[match[2]]
    return value


class ProjectConfig(_Model):
    repo: str
    webhook_secret_env: str | None = None
    webhook_secret_file: Path | None = None
    allow_unsigned: bool = False
    branches: list[str] = Field(default_factory=lambda: ["main"])
    git_tags: list[str] = Field(default_factory=list)
    paths: PathFilter = Field(default_factory=PathFilter)
    supersede_running: bool = False
    poll: Annotated[int, BeforeValidator(_interval), Field(ge=10)] | None = None
    git: GitConfig = Field(default_factory=GitConfig)
    default_branch: str = "main"
    concurrency: int | None = Field(default=None, ge=1)
    build: BuildConfig = Field(default_factory=BuildConfig)
    branch_overrides: dict[str, BuildOverride] = Field(default_factory=dict)
    image: ImageConfig
    tags: list[str] = Field(default_factory=lambda: ["{branch}-{short_sha}"], min_length=1)
    environments: list[EnvironmentConfig] = Field(default_factory=list)

    @field_validator("tags")
    @classmethod
    def _known_placeholders(cls, tags: list[str]) -> list[str]:
        for tag in tags:
            _check_placeholders(tag, "tag template")
        return tags

    @field_validator("environments")
    @classmethod
    def _stages_form_a_chain(cls, environments: list[EnvironmentConfig]) -> list[EnvironmentConfig]:
        seen: set[str] = set()
        for env in environments:
            if env.name in seen:
                raise ValueError(f"environment {env.name!r} is defined twice")
            if env.requires is not None and env.requires not in seen:
                raise ValueError(f"environment {env.name!r} requires {env.requires!r}, which must be "
                                 f"defined before it (defined so far: {sorted(seen)})")
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


class DockerConfig(_Model):
    hosts: list[str] = Field(default_factory=list)
    cli: str | None = None


class WorkerConfig(_Model):
    lease_seconds: int = Field(default=60, ge=2)
    poll_seconds: float = Field(default=1.0, gt=0)
    reap_seconds: int = Field(default=15, ge=1)
    max_attempts: int = Field(default=3, ge=1)
    retry_seconds: float = Field(default=5.0, gt=0)  # first retry after a transient failure; doubles each time
    merge_check_seconds: int = Field(default=30, ge=1)  # how often pull-request-mode promotions ask the host


class SigningConfig(_Model):
    """The cosign key pair environments with ``sign: true`` sign with; the password is read
    from ``password_env`` when a promotion signs (never stored)."""

    key_file: Path
    password_env: str = "COSIGN_PASSWORD"

    def password(self) -> bytes:
        value = os.environ.get(self.password_env)
        if value is None:
            raise SigningError(f"signing.password_env: {self.password_env} is not set; export the password of "
                               f"{self.key_file} ({self.password_env}= for a key without one)")
        return value.encode("utf-8")


class ApiConfig(_Model):
    """Access to the REST API. Webhooks are always authenticated by their signatures instead."""

    auth: bool = True  # false: no tokens at all, everyone is admin (a trusted laptop only)
    anonymous_read: bool = False  # true: GET endpoints and the web page need no token


class Config(_Model):
    data_dir: Path = Path("./data")
    api: ApiConfig = Field(default_factory=ApiConfig)
    database_url: str | None = None
    docker: DockerConfig = Field(default_factory=DockerConfig)
    registries: dict[str, RegistryConfig] = Field(default_factory=dict)
    projects: dict[Annotated[str, Field(pattern=_NAME)], ProjectConfig] = Field(default_factory=dict)
    worker: WorkerConfig = Field(default_factory=WorkerConfig)
    signing: SigningConfig | None = None

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
                        f"projects.{name}.environments.{env.name}.registry: no registry named "
                        f"{env.registry!r}"
                    )
                if env.sign and self.signing is None:
                    raise ValueError(
                        f"projects.{name}.environments.{env.name}.sign: signing needs a key; add "
                        f"signing: {{key_file: cosign.key}} at the top level"
                    )
                for index, key in enumerate(env.verify):
                    if not key.is_file():
                        raise ValueError(
                            f"projects.{name}.environments.{env.name}.verify.{index}: no public key file at {key}"
                        )
        signs = any(env.sign for p in self.projects.values() for env in p.environments)
        if self.signing is not None and signs and not self.signing.key_file.is_file():
            raise ValueError(f"signing.key_file: no key file at {self.signing.key_file}")
        return self

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir.resolve() / 'pipeline.db'}"

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


def load_config(path: str | Path | None = None) -> Config:
    """Read the config named by ``path`` or ``PIPELINE_CONFIG`` (the environment wins)."""
    chosen = os.environ.get("PIPELINE_CONFIG") or path
    if not chosen:
        raise ConfigError("no config file: pass --config FILE or set PIPELINE_CONFIG")
    file = Path(chosen)
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
