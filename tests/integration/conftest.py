"""Builders for the integration tests: Debian's Docker 20.10 engine (built-in BuildKit) and a
buildkitd v0.32 daemon on 127.0.0.1 over mutual TLS, reached through buildx's remote driver.

A test that takes ``builder`` runs once on each; ``with_builder`` points a config at it. One
daemon serves the session per registry implementation (its ``buildkitd.toml`` trusts that
implementation's TLS registry); buildx comes from a DOCKER_CONFIG of the session whose
``cli-plugins`` holds the pinned ``docker-buildx``, set only while a BuildKit test runs, so the
engine tests keep the built-in BuildKit of a 20.10 CLI.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.buildkit_service import BuildkitDaemon, CertificateAuthority
from tests.services import DockerEngine, Registry
from tests.tools import BUILDX_DOCKER_CONFIG, tool


@dataclass(frozen=True)
class BuilderUnderTest:
    """One builder as a config entry, plus what a test needs to look at its results."""

    kind: str  # "engine" or "buildkit"
    entry: dict[str, Any]
    daemon: BuildkitDaemon | None = None

    @property
    def name(self) -> str:
        return str(self.entry["name"])

    @property
    def push_direct(self) -> bool:
        return self.kind == "buildkit"


def with_builder(
    data: dict[str, Any], builder: BuilderUnderTest, *more: BuilderUnderTest | dict[str, Any]
) -> dict[str, Any]:
    """``data`` (a config as ``tests.project.config_data`` makes it) building on ``builder`` (then ``more``)."""
    entries = [builder.entry, *(m.entry if isinstance(m, BuilderUnderTest) else m for m in more)]
    return {**{k: v for k, v in data.items() if k != "docker"}, "builders": entries}


def buildkit_entry(name: str, daemon: BuildkitDaemon, **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "buildkit": daemon.address}
    if daemon.client is not None:
        entry |= {
            "ca_file": str(daemon.client.ca_file),
            "cert_file": str(daemon.client.cert_file),
            "key_file": str(daemon.client.key_file),
        }
    return entry | extra


@pytest.fixture(scope="session")
def buildx_config(service_root: Path) -> Path:
    """A DOCKER_CONFIG with the pinned buildx plugin (and room for buildx's own state)."""
    tool("buildx")
    path = service_root / "docker-config"
    path.mkdir(exist_ok=True)
    plugins = path / "cli-plugins"
    if not plugins.exists():
        plugins.symlink_to(BUILDX_DOCKER_CONFIG / "cli-plugins")
    return path


@pytest.fixture(scope="session")
def certificate_authority(service_root: Path) -> CertificateAuthority:
    return CertificateAuthority(service_root / "buildkit-ca")


def start_buildkitd(base: Path, registries: list[Registry], ca: CertificateAuthority | None) -> BuildkitDaemon:
    """A started daemon that trusts the TLS registries among ``registries`` by their CA."""
    daemon = BuildkitDaemon(base, registries={r.host: r.ca_file for r in registries if r.ca_file}, ca=ca)
    daemon.start()
    return daemon


@pytest.fixture(scope="session")
def buildkitd(
    service_root: Path, registry_impl: str, secure_registry: Registry, certificate_authority: CertificateAuthority
) -> Iterator[BuildkitDaemon]:
    """The session's BuildKit daemon: TCP on 127.0.0.1 with mutual TLS, as a build farm runs it."""
    daemon = start_buildkitd(service_root / f"buildkitd-{registry_impl}", [secure_registry], certificate_authority)
    yield daemon
    daemon.stop()


@pytest.fixture
def uses_buildkit(monkeypatch: pytest.MonkeyPatch, buildx_config: Path, buildkitd: BuildkitDaemon) -> BuilderUnderTest:
    """The session's buildkitd as a `buildkit:` builder (buildx on DOCKER_CONFIG for this test)."""
    monkeypatch.setenv("DOCKER_CONFIG", str(buildx_config))
    return BuilderUnderTest("buildkit", buildkit_entry("buildkitd", buildkitd), buildkitd)


@pytest.fixture(params=["engine", "buildkit"])
def builder(request: pytest.FixtureRequest) -> BuilderUnderTest:
    """The test runs on Debian's 20.10 engine and again on the buildkitd v0.32 daemon."""
    if request.param == "engine":
        engine: DockerEngine = request.getfixturevalue("engine")
        return BuilderUnderTest("engine", {"name": engine.host, "docker": engine.host})
    return request.getfixturevalue("uses_buildkit")  # type: ignore[no-any-return]


def pull(engine: DockerEngine, ref: str) -> str:
    """Bring an image a BuildKit daemon pushed into the engine, to run or inspect it there."""
    engine.docker("pull", ref)
    return ref
