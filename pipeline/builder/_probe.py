"""Is a builder usable, and what is it: kind, version, platforms, driver.

A Docker engine answers ``docker version``; a BuildKit daemon or a buildx builder answers
``docker buildx inspect --bootstrap`` (which dials the daemon, TLS handshake included). For a
BuildKit daemon the service first defines its own buildx ``remote`` builder, named after the
config entry and a hash of its endpoint and certificates, in a directory the service owns, so
a changed config never reuses a stale definition and nothing of the user's is touched.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import socket
import ssl
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from pipeline.builder._engine import Engine, choose_cli, source_docker_config
from pipeline.config import BuilderConfig

__all__ = ["BuilderStatus", "probe", "resolve"]

_TIMEOUT = 20.0
_BUILDKIT_VERSION = re.compile(r"v\d+\.\d+\.\d+\S*")


@dataclass(frozen=True)
class BuilderStatus:
    """What a probe found. ``permanent`` problems (a wrong certificate, an unknown builder name)
    need a human; the others (a daemon that is down) may pass."""

    name: str
    kind: str
    endpoint: str
    healthy: bool
    detail: str
    version: str = ""
    platforms: tuple[str, ...] = ()
    driver: str = ""
    permanent: bool = False
    engine: Engine | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "kind": self.kind,
            "endpoint": self.endpoint,
            "healthy": self.healthy,
            "version": self.version,
            "platforms": list(self.platforms),
            "driver": self.driver,
            "detail": self.detail,
        }


def _remote_name(config: BuilderConfig) -> str:
    """``pipeline-<name>-<hash>``: a new definition whenever the endpoint or a certificate changes."""
    files = (config.ca_file, config.cert_file, config.key_file)
    material = "\0".join([config.endpoint, *(str(p or "") for p in files)])
    for path in files:
        if path is not None:
            material += hashlib.sha256(path.read_bytes()).hexdigest()
    safe = re.sub(r"[^A-Za-z0-9_-]+", "-", config.name).strip("-")[:40] or "builder"
    return f"pipeline-{safe}-{hashlib.sha256(material.encode()).hexdigest()[:10]}"


def _user_buildx_config() -> str:
    return os.environ.get("BUILDX_CONFIG") or str(source_docker_config() / "buildx")


def resolve(config: BuilderConfig, cli: str | None, state_dir: Path) -> Engine:
    """The ``Engine`` for a config entry, before anything is asked of it."""
    if config.kind == "docker":
        chosen, mode = choose_cli(cli)
        host = None if config.docker == "default" else config.docker
        return Engine(
            chosen,
            mode,
            host,
            name=config.name,
            kind="docker",
            driver="docker" if mode == "buildx" else "",
            buildx_config=str(state_dir) if mode == "buildx" else None,
        )
    chosen, mode = choose_cli(cli, need_buildx=True)
    if config.kind == "buildkit":
        return Engine(
            chosen,
            mode,
            None,
            name=config.name,
            kind="buildkit",
            driver="remote",
            builder=_remote_name(config),
            buildx_config=str(state_dir),
        )
    return Engine(
        chosen, mode, None, name=config.name, kind="buildx", builder=config.buildx, buildx_config=_user_buildx_config()
    )


def _docker_answer(engine: Engine) -> tuple[str, tuple[str, ...]]:
    cmd = [*engine.command(), "version", "--format", "{{.Server.Version}} {{.Server.Os}}/{{.Server.Arch}}"]
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=_TIMEOUT, check=False, env={**os.environ, **engine.env()}
    )
    if done.returncode != 0:
        lines = (done.stderr.strip() or f"exit code {done.returncode}").splitlines()
        raise _Unhealthy(f"the engine does not answer: {lines[-1]}")
    version, _, platform = done.stdout.strip().partition(" ")
    return f"Docker Engine {version}", (platform,) if platform else ()


class _Unhealthy(Exception):
    def __init__(self, detail: str, permanent: bool = False) -> None:
        super().__init__(detail)
        self.detail, self.permanent = detail, permanent


def _define_remote(engine: Engine, config: BuilderConfig, client: DockerClient) -> None:
    """``docker buildx create --driver remote`` once per definition; a concurrent twin is fine."""
    assert engine.buildx_config is not None
    if (Path(engine.buildx_config) / "instances" / engine.builder).exists():  # type: ignore[operator]
        return
    Path(engine.buildx_config).mkdir(parents=True, exist_ok=True)
    options = {
        option: str(path.resolve())
        for option, path in (("cacert", config.ca_file), ("cert", config.cert_file), ("key", config.key_file))
        if path is not None
    }
    try:
        client.buildx.create(
            context_or_endpoint=config.buildkit, driver="remote", driver_options=options, name=engine.builder
        )
    except DockerException as exc:
        if "existing instance" not in str(exc.stderr or ""):
            raise _Unhealthy(f"cannot define a buildx remote builder for it: {_last_line(exc)}", True) from None


def _last_line(exc: DockerException) -> str:
    text = (exc.stderr or exc.stdout or str(exc)).strip()
    lines = [line.removeprefix("ERROR: ") for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else f"exit code {exc.return_code}"


def _why(kind: str, message: str) -> _Unhealthy:
    """A user's reading of buildx's error: wrong certificates and unknown names are permanent."""
    lowered = message.lower()
    if "no builder" in lowered:
        return _Unhealthy(f"no buildx builder by that name: {message} (see `docker buildx ls`)", True)
    if any(marker in lowered for marker in ("certificate", "tls:", "x509", "handshake")):
        return _Unhealthy(
            f"the TLS handshake with the daemon failed (check ca_file, cert_file and key_file): {message}", True
        )
    return _Unhealthy(f"the {'BuildKit daemon' if kind == 'buildkit' else 'builder'} does not answer: {message}")


def _tls_context(config: BuilderConfig) -> ssl.SSLContext | None:
    if not (config.ca_file or config.cert_file):
        return None
    context = ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)
    if config.cert_file and config.key_file:
        try:
            context.load_cert_chain(str(config.cert_file), str(config.key_file))
        except (ssl.SSLError, OSError) as exc:
            raise _Unhealthy(
                f"cannot use cert_file {config.cert_file} with key_file {config.key_file}: {exc}", True
            ) from None
    return context


def _no_tls_expected(raw: socket.socket) -> None:
    """A daemon that completes a TLS handshake wants TLS, which the config does not give."""
    probe_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    probe_context.check_hostname, probe_context.verify_mode = False, ssl.CERT_NONE
    raw.settimeout(2)
    try:
        with probe_context.wrap_socket(raw):
            pass
    except (ssl.SSLError, OSError):
        return  # not TLS (or not now): let buildx say what it finds
    raise _Unhealthy("the daemon speaks TLS: set ca_file, cert_file and key_file for it", True)


def _dial(config: BuilderConfig) -> None:
    """Connect (and shake TLS hands) ourselves first: gRPC would only say "context deadline exceeded"."""
    url = urlsplit(config.buildkit or "")
    if url.scheme != "tcp" or not url.hostname or not url.port:
        return
    try:
        raw = socket.create_connection((url.hostname, url.port), timeout=5)
    except OSError as exc:
        raise _Unhealthy(
            f"the BuildKit daemon does not answer at {url.hostname}:{url.port}: {exc.strerror or exc}"
        ) from None
    context = _tls_context(config)
    with raw:
        if context is None:
            _no_tls_expected(raw)
            return
        try:
            with context.wrap_socket(raw, server_hostname=url.hostname) as tls:
                tls.settimeout(2)
                # TLS 1.3 sends a refused client certificate's alert after the handshake
                with contextlib.suppress(TimeoutError):  # socket.timeout is TimeoutError
                    tls.recv(1)
        except ssl.SSLCertVerificationError as exc:
            raise _Unhealthy(
                f"the daemon's certificate does not verify against ca_file {config.ca_file}: {exc.verify_message}", True
            ) from None
        except ssl.SSLError as exc:
            reason = exc.reason or str(exc)
            hint = (
                "the daemon asks for a client certificate: set cert_file and key_file"
                if "CERTIFICATE_REQUIRED" in reason and not config.cert_file
                else "the daemon refused our client certificate (cert_file/key_file not issued by its CA?)"
                if "CERTIFICATE" in reason or "UNKNOWN_CA" in reason
                else "the TLS handshake failed"
            )
            raise _Unhealthy(f"{hint}: {reason}", True) from None
        except OSError as exc:
            raise _Unhealthy(f"the TLS connection to the daemon failed: {exc}", True) from None


def _buildx_answer(engine: Engine, config: BuilderConfig) -> tuple[str, tuple[str, ...], str]:
    client = engine.client()
    if engine.kind == "buildkit":
        _dial(config)
        _define_remote(engine, config, client)
    try:
        found = client.buildx.inspect(engine.builder, bootstrap=True)
        nodes = found.nodes or []
        driver = found.driver or ""
    except DockerException as exc:
        raise _why(engine.kind, _last_line(exc)) from None
    except ValueError as exc:  # python-on-whales found no such builder in `buildx ls`
        raise _why(engine.kind, f"no builder {engine.builder!r}: {exc}") from None
    if not nodes:
        raise _Unhealthy(f"builder {engine.builder} has no nodes", True)
    node = nodes[0]
    if (node.status or "running") != "running":
        raise _Unhealthy(f"its node {node.name} is {node.status}")
    match = _BUILDKIT_VERSION.search(node.version or "")
    version = f"BuildKit {match[0] if match else node.version or 'unknown version'}"
    return version, tuple(node.platforms or ()), driver


def probe(config: BuilderConfig, cli: str | None, state_dir: Path) -> BuilderStatus:
    """Ask the builder what it is; never raises (a problem is an unhealthy status that says why)."""
    status = functools.partial(BuilderStatus, config.name, config.kind, config.endpoint)
    try:
        engine = resolve(config, cli, state_dir)
        if engine.kind == "docker":
            version, platforms = _docker_answer(engine)
            driver = engine.driver
        else:
            version, platforms, driver = _buildx_answer(engine, config)
    except _Unhealthy as problem:
        return status(healthy=False, detail=problem.detail, permanent=problem.permanent)
    except subprocess.TimeoutExpired:
        return status(healthy=False, detail=f"no answer within {_TIMEOUT:.0f} s")
    except Exception as exc:  # a CLI that is missing or broken: say so, never crash the caller
        detail = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        return status(healthy=False, detail=detail, permanent=True)
    if config.platforms:  # what it is declared to build (emulation, cross-compiling stages)
        platforms = tuple(config.platforms)
    engine = Engine(
        engine.cli,
        engine.mode,
        engine.host,
        name=engine.name,
        kind=engine.kind,
        driver=driver,
        builder=engine.builder,
        buildx_config=engine.buildx_config,
        version=version,
        platforms=platforms,
    )
    detail = f"{version}, {', '.join(platforms) or 'no platforms reported'}; {engine.describe}"
    return status(healthy=True, detail=detail, version=version, platforms=platforms, driver=driver, engine=engine)
