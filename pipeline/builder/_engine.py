"""Which Docker CLI drives which builder, and how: built-in BuildKit, or buildx with a driver.

A production engine (Docker 23+) builds through buildx, whose ``docker`` driver runs on the
engine's own BuildKit; a BuildKit daemon is reached through a buildx ``remote`` builder; Debian's
20.10 engine has BuildKit built in and no buildx. What a build may ask for (registry cache
export, multi-platform, attestations, push straight from BuildKit) depends on that, so the
choice is made per builder and recorded on the build.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from python_on_whales import DockerClient

from pipeline.errors import EngineError

__all__ = ["Engine", "choose_cli", "pick_engine", "source_docker_config"]


def source_docker_config() -> Path:
    """The DOCKER_CONFIG the service was started with: where CLI plugins and buildx builders live."""
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")


@dataclass(frozen=True)
class Engine:
    """One builder, resolved: the CLI that drives it and what it is.

    ``mode`` is how the CLI builds (``buildx`` or built-in ``buildkit``); ``driver`` the buildx
    driver (``docker``, ``remote``, ``docker-container``, ``kubernetes``; empty for built-in
    BuildKit); ``builder`` the buildx builder's name and ``buildx_config`` the directory that
    defines it (the service's own for builders it creates, the user's for ``buildx: NAME``).
    """

    cli: str
    mode: str
    host: str | None
    name: str = ""
    kind: str = "docker"
    driver: str = ""
    builder: str | None = None
    buildx_config: str | None = None
    version: str = ""
    platforms: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.host or "default")

    @property
    def push_direct(self) -> bool:
        """True when BuildKit pushes the image itself: no engine holds it afterwards."""
        return self.mode == "buildx" and self.driver not in ("", "docker")

    @property
    def can_export(self) -> bool:
        """Registry cache export, multi-platform indexes and attestations: not on an engine's BuildKit."""
        return self.push_direct

    @property
    def describe(self) -> str:
        """``buildkit tcp://…`` with how it builds, for logs and doctor."""
        how = f"buildx {self.driver} driver" if self.mode == "buildx" else "built-in BuildKit"
        return f"{self.kind} {self.host or self.builder or 'default'} ({how})"

    def env(self, config_dir: str | None = None) -> dict[str, str]:
        """Environment for the CLI: its config dir and where its buildx builders are defined."""
        env: dict[str, str] = {}
        if self.mode != "buildx":
            env["DOCKER_BUILDKIT"] = "1"
        if self.buildx_config:
            env["BUILDX_CONFIG"] = self.buildx_config
        if config_dir:
            env["DOCKER_CONFIG"] = config_dir
        return env

    def client(self, config_dir: str | None = None) -> DockerClient:
        call = ["env", *(f"{k}={v}" for k, v in self.env().items()), self.cli]
        return DockerClient(client_call=call, host=self.host, config=config_dir)

    def command(self) -> list[str]:
        """The CLI's argv prefix (``--host`` included), without the environment."""
        return [self.cli, *(["--host", self.host] if self.host else [])]


def _quiet(cmd: list[str], timeout: float = 15) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


@functools.cache
def _cli_mode(cli: str, docker_config: str) -> str | None:
    """``buildx`` if the plugin answers, ``buildkit`` for a pre-23 CLI, else ``None``."""
    env = {**os.environ, "DOCKER_CONFIG": docker_config}
    try:
        plugin = subprocess.run(
            [cli, "buildx", "version"], capture_output=True, text=True, timeout=15, check=False, env=env
        )
        if plugin.returncode == 0:
            return "buildx"
        version = _quiet([cli, "--version"]).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    major = re.search(r"version (\d+)\.", version)
    return "buildkit" if major and int(major[1]) < 23 else None


def _candidates(cli: str | None) -> list[str]:
    if cli:
        return [cli]
    found = [shutil.which("docker"), "/usr/bin/docker"]
    return list(dict.fromkeys(c for c in found if c and shutil.which(c)))


def choose_cli(cli: str | None, *, need_buildx: bool = False) -> tuple[str, str]:
    """The CLI to build with and its mode: buildx where the plugin is installed, else built-in BuildKit."""
    options = _candidates(cli)
    config = str(source_docker_config())
    modes = {c: _cli_mode(c, config) for c in options}
    for wanted in ("buildx",) if need_buildx else ("buildx", "buildkit"):
        for candidate, mode in modes.items():
            if mode == wanted:
                return candidate, mode
    if need_buildx:
        raise EngineError(
            f"no Docker CLI with the buildx plugin among {options or ['docker (not on PATH)']}: install "
            f"docker-buildx into {config}/cli-plugins (or a system cli-plugins directory)"
        )
    raise EngineError(
        f"no Docker CLI that can build with BuildKit among {options or ['docker (not on PATH)']}: "
        "install the buildx plugin, or a Docker CLI older than 23 (Debian's docker.io)"
    )


def _answers(cli: str, host: str | None) -> str | None:
    cmd = [cli, *(["--host", host] if host else []), "version", "--format", "{{.Server.Version}}"]
    try:
        result = _quiet(cmd, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return None if result.returncode == 0 else (result.stderr.strip() or "no answer")


def pick_engine(hosts: list[str], cli: str | None, spread: int = 0) -> Engine:
    """The first Docker engine that answers, starting at ``spread`` (the older, engine-only API;
    ``BuilderPool`` is what builds use)."""
    chosen_cli, mode = choose_cli(cli)
    pool: list[str | None] = list(hosts) or [None]
    start = spread % len(pool)
    problems: list[str] = []
    for host in pool[start:] + pool[:start]:
        problem = _answers(chosen_cli, host)
        if problem is None:
            return Engine(chosen_cli, mode, host, driver="docker" if mode == "buildx" else "")
        problems.append(f"{host or 'default engine'}: {problem.splitlines()[-1]}")
    raise EngineError("no Docker engine answers: " + "; ".join(problems))
