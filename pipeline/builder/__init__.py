"""Builder: a checkout becomes an image in the project's registry, with its digest.

BuildKit runs through the Docker CLI (python-on-whales builds the command line and does
login/inspect; the build itself is streamed line by line so logs arrive live and the process
can be stopped). Build secrets go in as BuildKit secrets from 0600 files that are deleted
afterwards, never as build-args, and their values are redacted from every log line.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.builder._engine import Engine, pick_engine
from pipeline.builder._process import LineSink, run_streaming
from pipeline.builder._tags import render_args, render_tags, sanitize_tag, template_values
from pipeline.errors import BuildError, EngineError, RegistryAuthError, RegistryError

__all__ = [
    "BuildSpec",
    "Built",
    "Engine",
    "build_and_push",
    "pick_engine",
    "render_args",
    "render_tags",
    "resolve_inside",
    "sanitize_tag",
    "template_values",
]

_PUSH_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64}) size: (\d+)")
_STEP = re.compile(r"^#\d+ (\[[^\]]+\] .*)$")
_ENGINE_DOWN = ("Cannot connect to the Docker daemon", "connection refused", "no such host")


@dataclass(frozen=True)
class BuildSpec:
    """Everything the build needs, already resolved and validated by the caller."""

    context_dir: Path
    dockerfile: Path
    refs: list[str]
    target: str | None = None
    args: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)  # id -> value
    network: str | None = None
    timeout: float = 3600
    registry: str = ""
    credentials: tuple[str, str] | None = None
    no_cache: bool = False
    pull: bool = False
    cache_from: list[str] = field(default_factory=list)
    platforms: list[str] = field(default_factory=list)
    provenance: bool = False

    @property
    def buildx_push(self) -> bool:
        """A multi-platform index or attestations cannot be loaded into an engine: buildx pushes them."""
        return bool(self.platforms) or self.provenance


@dataclass(frozen=True)
class Built:
    digest: str
    size: int
    image_id: str
    refs: list[str]
    steps_total: int
    steps_cached: int
    loaded: bool = True  # False when buildx pushed straight to the registry


class _StepCounter:
    """Counts Dockerfile steps and the ones BuildKit answered from cache, from plain progress."""

    _VERTEX = re.compile(r"^#(\d+) \[(?!internal\])[^\]]*\d+/\d+\] ")
    _CACHED = re.compile(r"^#(\d+) CACHED$")

    def __init__(self, sink: LineSink) -> None:
        self.sink = sink
        self.steps: set[str] = set()
        self.cached: set[str] = set()

    def __call__(self, line: str) -> None:
        if match := self._VERTEX.match(line):
            self.steps.add(match[1])
        elif match := self._CACHED.match(line):
            self.cached.add(match[1])
        self.sink(line)

    @property
    def counts(self) -> tuple[int, int]:
        return len(self.steps), len(self.cached & self.steps)


def resolve_inside(root: Path, relative: str, what: str) -> Path:
    """``root/relative``, refusing anything (``..``, symlinks) that lands outside ``root``."""
    root = root.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise BuildError(f"{what} {relative!r} points outside the repository checkout")
    if not path.exists():
        raise BuildError(f"{what} {relative!r} does not exist in the commit")
    return path


def _mode_flags(engine: Engine, spec: BuildSpec, metadata: Path) -> list[str]:
    if engine.mode != "buildx":
        if spec.buildx_push:
            raise BuildError(f"platforms and provenance need docker buildx; engine {engine.name} only has "
                             "the built-in BuildKit (install the buildx plugin on the builder)")
        return ["build"]
    if not spec.buildx_push:
        return ["buildx", "build", "--load"]
    flags = ["buildx", "build", "--push", "--metadata-file", str(metadata)]
    if spec.platforms:
        flags += ["--platform", ",".join(spec.platforms)]
    if spec.provenance:
        flags.append("--provenance=mode=max")
    return flags


def _build_command(engine: Engine, spec: BuildSpec, iidfile: Path, secret_files: dict[str, Path],
                   config_dir: str) -> list[str]:
    cmd = [str(part) for part in engine.client(config_dir).docker_cmd]
    cmd += _mode_flags(engine, spec, iidfile.with_name("metadata.json"))
    cmd += ["--progress=plain", "--iidfile", str(iidfile), "--file", str(spec.dockerfile)]
    if spec.target:
        cmd += ["--target", spec.target]
    if spec.no_cache:
        cmd.append("--no-cache")
    if spec.pull:
        cmd.append("--pull")
    for ref in spec.cache_from:
        cmd += ["--cache-from", ref]
    if engine.mode == "buildx" and spec.refs:
        # buildx exports every stage's cache (mode=max) next to the image, not only the final layers
        cache = spec.refs[0].rsplit(":", 1)[0] + ":buildcache"
        cmd += ["--cache-from", f"type=registry,ref={cache}", "--cache-to", f"type=registry,ref={cache},mode=max"]
    # inline cache metadata lets a fresh engine reuse this image's layers via --cache-from
    cmd += ["--build-arg", "BUILDKIT_INLINE_CACHE=1"]
    if spec.network:
        cmd += ["--network", spec.network]
    for key, value in spec.args.items():
        cmd += ["--build-arg", f"{key}={value}"]
    for key, value in spec.labels.items():
        cmd += ["--label", f"{key}={value}"]
    for secret_id, path in secret_files.items():
        cmd += ["--secret", f"id={secret_id},src={path}"]
    for ref in spec.refs:
        cmd += ["--tag", ref]
    return [*cmd, "--", str(spec.context_dir)]


def _failure(tail: list[str], returncode: int) -> str:
    steps = [m[1] for line in tail if (m := _STEP.match(line))]
    where = f" at step {steps[-1]}" if steps else ""
    last = "\n".join(tail[-15:])
    return f"docker build exited {returncode}{where}:\n{last}"


def _write_secrets(tmp: Path, secrets: dict[str, str]) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for secret_id, value in secrets.items():
        path = tmp / f"secret-{secret_id}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(value)
        files[secret_id] = path
    return files


def _login(engine: Engine, config_dir: str, registry: str, credentials: tuple[str, str]) -> None:
    """``docker login`` into this build's own config dir, the password on stdin only."""
    user, password = credentials
    cmd = [str(p) for p in engine.client(config_dir).docker_cmd]
    done = subprocess.run([*cmd, "login", "--username", user, "--password-stdin", "--", registry],
                          input=password, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode == 0:
        return
    detail = done.stderr.strip().replace(password, "***") or f"exit code {done.returncode}"
    error = RegistryAuthError if "401" in detail or "unauthorized" in detail.lower() else RegistryError
    raise error(f"login to {registry} as {user} failed: {detail}")


def _push(engine: Engine, ref: str, config_dir: str, on_line: LineSink,
          should_stop: Callable[[], bool]) -> tuple[str, int]:
    cmd = [str(p) for p in engine.client(config_dir).docker_cmd] + ["push", "--", ref]
    seen: list[tuple[str, int]] = []

    def sink(line: str) -> None:
        if found := _PUSH_DIGEST.search(line):
            seen.append((found[1], int(found[2])))
        on_line(line)

    done = run_streaming(cmd, on_line=sink, should_stop=should_stop, timeout=1800)
    if done.stopped:
        raise BuildError(f"push of {ref} {done.stopped}")
    if done.returncode != 0 or not seen:
        detail = "\n".join(done.tail[-8:])
        raise RegistryError(f"push of {ref} failed (exit {done.returncode}):\n{detail}")
    return seen[-1]


def _pushed_by_buildx(metadata: Path, spec: BuildSpec, steps: int, cached: int) -> Built:
    """What ``buildx build --push --metadata-file`` reports: the index or manifest digest."""
    try:
        data = json.loads(metadata.read_text())
        digest = data["containerimage.digest"]
    except (OSError, ValueError, KeyError) as exc:
        raise RegistryError(f"buildx pushed but wrote no image digest to its metadata file ({exc})") from None
    image_id = str(data.get("containerimage.config.digest") or digest)
    return Built(digest=digest, size=0, image_id=image_id, refs=list(spec.refs), steps_total=steps,
                 steps_cached=cached, loaded=False)


def build_and_push(engine: Engine, spec: BuildSpec, on_line: LineSink, scratch: Path,
                   should_stop: Callable[[], bool] = lambda: False) -> Built:
    """Build ``spec`` on ``engine``, push every ref, and return the digest the push reported.

    ``scratch`` holds the login config and secret files for the duration; it should live in
    the build's work directory so that a crashed worker's leftovers are found and removed.
    """
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="build-", dir=scratch) as tmp_name:
        tmp = Path(tmp_name)
        config_dir = str(tmp / "docker-config")
        os.makedirs(config_dir, mode=0o700)
        if spec.credentials:
            _login(engine, config_dir, spec.registry, spec.credentials)
        secret_files = _write_secrets(tmp, spec.secrets)
        iidfile = tmp / "iid"
        cmd = _build_command(engine, spec, iidfile, secret_files, config_dir)
        on_line(f"$ docker {'buildx build' if engine.mode == 'buildx' else 'build'} on {engine.name} "
                f"({engine.mode}) -> {', '.join(spec.refs)}")
        counter = _StepCounter(on_line)
        done = run_streaming(cmd, on_line=counter, should_stop=should_stop, timeout=spec.timeout,
                             secrets=list(spec.secrets.values()))
        if done.stopped == "timeout":
            raise BuildError(f"build exceeded its timeout of {spec.timeout:.0f} s")
        if done.stopped:
            raise BuildError("build was stopped: " + done.stopped)
        if done.returncode != 0:
            if any(marker in line for line in done.tail for marker in _ENGINE_DOWN):
                raise EngineError(f"engine {engine.name} failed during the build: {done.tail[-1]}")
            raise BuildError(_failure(done.tail, done.returncode))
        steps, cached = counter.counts
        if spec.buildx_push:
            return _pushed_by_buildx(iidfile.with_name("metadata.json"), spec, steps, cached)
        image_id = iidfile.read_text().strip()
        pushed = {ref: _push(engine, ref, config_dir, on_line, should_stop) for ref in spec.refs}
    digests = {digest for digest, _ in pushed.values()}
    if len(digests) != 1:
        raise RegistryError(f"tags of one build were pushed with different digests: {pushed}")
    digest, size = next(iter(pushed.values()))
    return Built(digest=digest, size=size, image_id=image_id, refs=list(spec.refs),
                 steps_total=steps, steps_cached=cached)
