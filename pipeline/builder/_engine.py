"""Which Docker CLI talks to which engine, and whether it builds with buildx or built-in BuildKit.

A production engine (Docker 23+) ships buildx, which brings registry cache export,
multi-platform and provenance. Debian's 20.10 engine has BuildKit built in but no buildx,
and a 23+ CLI without the buildx plugin cannot use BuildKit at all; so the mode is chosen
per CLI, and recorded on the build.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from dataclasses import dataclass

from python_on_whales import DockerClient

from pipeline.errors import EngineError

__all__ = ["Engine", "pick_engine"]


@dataclass(frozen=True)
class Engine:
    cli: str
    mode: str  # "buildx" or "buildkit"
    host: str | None

    def client(self, config_dir: str | None = None) -> DockerClient:
        call = [self.cli] if self.mode == "buildx" else ["env", "DOCKER_BUILDKIT=1", self.cli]
        return DockerClient(client_call=call, host=self.host, config=config_dir)

    @property
    def name(self) -> str:
        return self.host or "default"


def _quiet(cmd: list[str], timeout: float = 15) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


@functools.cache
def _cli_mode(cli: str) -> str | None:
    """``buildx`` if the plugin answers, ``buildkit`` for a pre-23 CLI, else ``None``."""
    try:
        if _quiet([cli, "buildx", "version"]).returncode == 0:
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


def _choose_cli(cli: str | None) -> tuple[str, str]:
    options = _candidates(cli)
    modes = {c: _cli_mode(c) for c in options}
    for wanted in ("buildx", "buildkit"):
        for candidate, mode in modes.items():
            if mode == wanted:
                return candidate, mode
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
    """The first engine that answers, starting at ``spread`` so builds rotate over the pool."""
    chosen_cli, mode = _choose_cli(cli)
    pool: list[str | None] = list(hosts) or [None]
    start = spread % len(pool)
    problems: list[str] = []
    for host in pool[start:] + pool[:start]:
        problem = _answers(chosen_cli, host)
        if problem is None:
            return Engine(chosen_cli, mode, host)
        problems.append(f"{host or 'default engine'}: {problem.splitlines()[-1]}")
    raise EngineError("no Docker engine answers: " + "; ".join(problems))
