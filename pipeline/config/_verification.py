"""How an environment checks a candidate: a smoke test of the exact digest before its tag moves
(``smoke_test``), and a check of what the environment serves once it moved (``verify_after``).

Durations take seconds or ``'500ms'``, ``'30s'``, ``'10m'``, ``'1h'``, so tests can keep them
short and production can say ``10m``; templates name only fields every promotion has.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator, Field, field_validator, model_validator

from pipeline.config._base import Model

__all__ = ["VERIFY_FIELDS", "ProbeConfig", "SmokeRunConfig", "SmokeTestConfig", "VerifyAfterConfig", "duration"]

# what verify_after's templates may name (the promotion's, its build's and its digest's)
VERIFY_FIELDS = frozenset({"environment", "project", "sha", "short_sha", "branch", "build_id", "digest"})
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def duration(value: object) -> object:
    """``90``, ``1.5``, ``'500ms'``, ``'30s'``, ``'10m'``, ``'1h'`` -> seconds (a float)."""
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", value)
        if not match:
            raise ValueError(f"expected a duration such as 90, '500ms', '30s', '10m' or '1h', got {value!r}")
        return float(match[1]) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[match[2]]
    return value


Seconds = Annotated[float, BeforeValidator(duration), Field(gt=0, le=24 * 3600)]


def _check_fields(template: str, what: str) -> str:
    unknown = set(re.findall(r"{([^}]*)}", template)) - VERIFY_FIELDS
    if unknown:
        raise ValueError(f"{what} {template!r} uses {sorted(unknown)}; known: {sorted(VERIFY_FIELDS)}")
    return template


class SmokeRunConfig(Model):
    """How the candidate is started: its environment, its command (the image's own when empty),
    and the port it listens on inside the container."""

    env: dict[str, str] = Field(default_factory=dict)
    command: list[str] = Field(default_factory=list)
    port: int | None = Field(default=None, ge=1, le=65535)

    @field_validator("env")
    @classmethod
    def _names(cls, env: dict[str, str]) -> dict[str, str]:
        for name in env:
            if not _ENV_NAME.match(name):
                raise ValueError(f"environment variable name {name!r} is not a valid name (letters, digits, _)")
        return env


class ProbeConfig(Model):
    """What counts as alive: an HTTP answer on the run's port, or a command run inside it."""

    http: str | None = None  # a path such as /healthz, asked on the run's port
    expect_status: int = Field(default=200, ge=100, le=599)
    expect_body: str | None = None  # the body must contain this
    exec: list[str] | None = Field(default=None, min_length=1)  # exit 0 inside the container
    interval: Seconds = 0.5

    @field_validator("http")
    @classmethod
    def _path(cls, path: str | None) -> str | None:
        if path is not None and (not path.startswith("/") or any(c.isspace() for c in path)):
            raise ValueError(f"http is a path on the container's port such as /healthz, got {path!r}")
        return path

    @model_validator(mode="after")
    def _one_kind(self) -> ProbeConfig:
        if (self.http is None) == (self.exec is None):
            raise ValueError("give exactly one of http (a path to ask) or exec (a command to run in the container)")
        if self.exec is not None and self.expect_body is not None:
            raise ValueError("expect_body applies to an http probe; an exec probe passes when the command exits 0")
        return self


class SmokeTestConfig(Model):
    """Run the exact digest from the target registry and probe it before its tag moves."""

    run: SmokeRunConfig = Field(default_factory=SmokeRunConfig)
    probe: ProbeConfig
    timeout: Seconds = 60.0  # from the container's start until the probe must have passed
    pull_timeout: Seconds = 300.0
    engine: str | None = None  # a docker builder's name; default the first docker builder

    @model_validator(mode="after")
    def _port_for_http(self) -> SmokeTestConfig:
        if self.probe.http is not None and self.run.port is None:
            raise ValueError("an http probe needs run.port: the port the container listens on")
        return self


class VerifyAfterConfig(Model):
    """Ask what the environment serves once the tag moved, until it answers the new version."""

    http: str  # a URL template, e.g. https://{environment}.example.com/version
    expect_status: int = Field(default=200, ge=100, le=599)
    expect_body_contains: str | None = None  # a template, e.g. {short_sha}
    interval: Seconds = 10.0
    timeout: Seconds = 600.0
    auto_rollback: bool = False  # on failure: roll back and hold the environment

    @field_validator("http")
    @classmethod
    def _url(cls, url: str) -> str:
        if not re.match(r"^https?://[^\s/]+", url):
            raise ValueError(f"http must be an http:// or https:// URL, got {url!r}")
        return _check_fields(url, "http")

    @field_validator("expect_body_contains")
    @classmethod
    def _body(cls, text: str | None) -> str | None:
        return None if text is None else _check_fields(text, "expect_body_contains")

    @model_validator(mode="after")
    def _interval_within(self) -> VerifyAfterConfig:
        if self.interval > self.timeout:
            raise ValueError(f"interval ({self.interval:g} s) is longer than timeout ({self.timeout:g} s)")
        return self
