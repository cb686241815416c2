"""One build on one builder: credentials, secrets, the streamed build, then the digest.

On an engine the image is pushed with ``docker push`` afterwards and the digest is what the
push reported; a BuildKit daemon pushes by itself and writes the digest to its metadata file.
The login goes into a config directory of this build only (deleted afterwards), with the CLI
plugins of the service's own ``DOCKER_CONFIG`` linked in so ``docker buildx`` still resolves.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pipeline.builder._command import BuildSpec, build_command, cache_ref
from pipeline.builder._engine import Engine, source_docker_config
from pipeline.builder._process import LineSink, run_streaming
from pipeline.errors import BuildError, EngineError, RegistryAuthError, RegistryError

__all__ = ["Built", "build_and_push"]

_PUSH_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64}) size: (\d+)")
_STEP = re.compile(r"^#\d+ (\[[^\]]+\] .*)$")
# what the CLI prints when the engine or daemon itself went away (its gRPC stream broke) ...
_BUILDER_GONE = (
    "Cannot connect to the Docker daemon",
    "code = Unavailable",
    "error reading from server",
    "transport is closing",
    "failed to dial",
    "ERROR: no builder",
)
# ... when BuildKit could not reach a registry (the builder is fine: not another builder's job) ...
_REGISTRY_DOWN = (
    "failed to push",
    "failed to do request",
    "failed to resolve source metadata",
    "failed to fetch",
    "failed to authorize",
)
# ... and connection trouble that names neither
_CONNECTION = ("connection refused", "no such host", "connection reset by peer", "broken pipe")
_AUTH_REFUSED = ("401 Unauthorized", "unauthorized: ", "authorization failed", "no basic auth credentials")


@dataclass(frozen=True)
class Built:
    digest: str
    size: int
    image_id: str
    refs: list[str]
    steps_total: int
    steps_cached: int
    loaded: bool = True  # False when BuildKit pushed straight to the registry (no engine holds it)
    engine: Engine | None = None  # the builder it ran on
    cache_exported: bool | None = None  # registry cache written (None: this builder has none)
    buildkit_provenance: dict[str, Any] | None = None  # BuildKit's own SLSA provenance (mode=max)
    skipped: tuple[str, ...] = ()  # builders passed over, each with why


class _Progress:
    """Reads plain progress as it passes: Dockerfile steps, cached ones, and a refused cache export."""

    _VERTEX = re.compile(r"^#(\d+) \[(?!internal\])[^\]]*\d+/\d+\] ")
    _CACHED = re.compile(r"^#(\d+) CACHED$")
    _CACHE_EXPORT = re.compile(r"^#(\d+) exporting cache to registry$")
    _ERROR = re.compile(r"^#(\d+) ERROR: (.*)$")

    def __init__(self, sink: LineSink) -> None:
        self.sink = sink
        self.steps: set[str] = set()
        self.cached: set[str] = set()
        self.cache_vertex: set[str] = set()
        self.cache_error: str | None = None

    def __call__(self, line: str) -> None:
        if match := self._VERTEX.match(line):
            self.steps.add(match[1])
        elif match := self._CACHED.match(line):
            self.cached.add(match[1])
        elif match := self._CACHE_EXPORT.match(line):
            self.cache_vertex.add(match[1])
        elif (match := self._ERROR.match(line)) and match[1] in self.cache_vertex:
            self.cache_error = match[2]
        self.sink(line)

    @property
    def counts(self) -> tuple[int, int]:
        return len(self.steps), len(self.cached & self.steps)


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


def _config_dir(tmp: Path) -> str:
    """This build's DOCKER_CONFIG, with the service's CLI plugins (docker-buildx) linked in."""
    config_dir = tmp / "docker-config"
    os.makedirs(config_dir, mode=0o700)
    plugins = source_docker_config() / "cli-plugins"
    if plugins.is_dir():
        (config_dir / "cli-plugins").symlink_to(plugins.resolve())
    return str(config_dir)


def _login(engine: Engine, config_dir: str, registry: str, credentials: tuple[str, str]) -> None:
    """Credentials for this build only. An engine checks them with ``docker login`` (password on
    stdin); BuildKit reads ``config.json`` as the session's auth provider, checked at push."""
    user, password = credentials
    if engine.push_direct:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        path = Path(config_dir) / "config.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"auths": {registry: {"auth": token}}}, handle)
        return
    done = subprocess.run(
        [*engine.command(), "login", "--username", user, "--password-stdin", "--", registry],
        input=password,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **engine.env(config_dir)},
    )
    if done.returncode == 0:
        return
    detail = done.stderr.strip().replace(password, "***") or f"exit code {done.returncode}"
    error = RegistryAuthError if "401" in detail or "unauthorized" in detail.lower() else RegistryError
    raise error(f"login to {registry} as {user} failed: {detail}")


def _push(
    engine: Engine, ref: str, config_dir: str, on_line: LineSink, should_stop: Callable[[], bool]
) -> tuple[str, int]:
    seen: list[tuple[str, int]] = []

    def sink(line: str) -> None:
        if found := _PUSH_DIGEST.search(line):
            seen.append((found[1], int(found[2])))
        on_line(line)

    done = run_streaming(
        [*engine.command(), "push", "--", ref],
        env=engine.env(config_dir),
        on_line=sink,
        should_stop=should_stop,
        timeout=1800,
    )
    if done.stopped:
        raise BuildError(f"push of {ref} {done.stopped}")
    if done.returncode != 0 or not seen:
        detail = "\n".join(done.tail[-8:])
        raise RegistryError(f"push of {ref} failed (exit {done.returncode}):\n{detail}")
    return seen[-1]


def _pushed_by_buildkit(metadata: Path, spec: BuildSpec, steps: int, cached: int) -> Built:
    """What ``buildx build --push --metadata-file`` reports: the index or manifest digest."""
    try:
        data = json.loads(metadata.read_text())
        digest = data["containerimage.digest"]
    except (OSError, ValueError, KeyError) as exc:
        raise RegistryError(f"buildx pushed but wrote no image digest to its metadata file ({exc})") from None
    image_id = str(data.get("containerimage.config.digest") or digest)
    size = int((data.get("containerimage.descriptor") or {}).get("size") or 0)
    provenance = data.get("buildx.build.provenance") if spec.provenance else None
    return Built(
        digest=digest,
        size=size,
        image_id=image_id,
        refs=list(spec.refs),
        steps_total=steps,
        steps_cached=cached,
        loaded=False,
        buildkit_provenance=provenance,
    )


_pushed_by_buildx = _pushed_by_buildkit  # the earlier name


def _raise_for(engine: Engine, spec: BuildSpec, tail: list[str], returncode: int) -> None:
    # the CLI's own lines only: "#7 0.31 curl: connection refused" is the Dockerfile's problem
    own = [line for line in tail if not line.startswith("#")]

    def found(markers: tuple[str, ...]) -> str | None:
        return next((line for line in reversed(own) if any(marker in line for marker in markers)), None)

    if line := found(_BUILDER_GONE):
        raise EngineError(f"builder {engine.name} ({engine.describe}) failed during the build: {line}")
    if spec.credentials and found(_AUTH_REFUSED):
        raise RegistryAuthError(
            f"login to {spec.registry} as {spec.credentials[0]} failed: the registry refused "
            f"the credentials: {found(_AUTH_REFUSED)}"
        )
    if line := found(_REGISTRY_DOWN):
        rest = own[own.index(line) :][:6]  # a registry's own "errors:" list follows on the next lines
        detail = "\n".join(part.removeprefix("ERROR: ") for part in rest if part.strip())
        raise RegistryError(f"builder {engine.name} could not push to or pull from the registry: {detail}")
    if line := found(_CONNECTION):
        raise EngineError(f"builder {engine.name} ({engine.describe}) failed during the build: {line}")
    raise BuildError(_failure(tail, returncode))


def _cache_note(engine: Engine, spec: BuildSpec, progress: _Progress, on_line: LineSink) -> bool | None:
    if not engine.push_direct or cache_ref(spec) is None:
        return None
    if progress.cache_error is None:
        return True
    on_line(
        f"warning: the build cache was not exported to {cache_ref(spec)} (the image is pushed; the next "
        f"build on a fresh builder starts without it): {progress.cache_error}"
    )
    return False


def build_and_push(
    engine: Engine, spec: BuildSpec, on_line: LineSink, scratch: Path, should_stop: Callable[[], bool] = lambda: False
) -> Built:
    """Build ``spec`` on ``engine``, push every ref, and return the digest the registry got.

    ``scratch`` holds the login config and secret files for the duration; it should live in
    the build's work directory so that a crashed worker's leftovers are found and removed.
    """
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="build-", dir=scratch) as tmp_name:
        tmp = Path(tmp_name)
        config_dir = _config_dir(tmp)
        if spec.credentials:
            _login(engine, config_dir, spec.registry, spec.credentials)
        iidfile = tmp / "iid"
        cmd = build_command(engine, spec, iidfile, _write_secrets(tmp, spec.secrets))
        on_line(
            f"$ docker {'buildx build' if engine.mode == 'buildx' else 'build'} on builder {engine.name}: "
            f"{engine.describe} -> {', '.join(spec.refs)}"
        )
        progress = _Progress(on_line)
        env = engine.env(config_dir) | ({"BUILDX_METADATA_PROVENANCE": "max"} if spec.provenance else {})
        done = run_streaming(
            cmd,
            env=env,
            on_line=progress,
            should_stop=should_stop,
            timeout=spec.timeout,
            secrets=list(spec.secrets.values()),
        )
        if done.stopped == "timeout":
            raise BuildError(f"build exceeded its timeout of {spec.timeout:.0f} s")
        if done.stopped:
            raise BuildError("build was stopped: " + done.stopped)
        if done.returncode != 0:
            _raise_for(engine, spec, done.tail, done.returncode)
        steps, cached = progress.counts
        if engine.push_direct:
            built = _pushed_by_buildkit(iidfile.with_name("metadata.json"), spec, steps, cached)
            return replace(built, engine=engine, cache_exported=_cache_note(engine, spec, progress, on_line))
        image_id = iidfile.read_text().strip()
        pushed = {ref: _push(engine, ref, config_dir, on_line, should_stop) for ref in spec.refs}
    digests = {digest for digest, _ in pushed.values()}
    if len(digests) != 1:
        raise RegistryError(f"tags of one build were pushed with different digests: {pushed}")
    digest, size = next(iter(pushed.values()))
    return Built(
        digest=digest,
        size=size,
        image_id=image_id,
        refs=list(spec.refs),
        steps_total=steps,
        steps_cached=cached,
        engine=engine,
    )
