"""Run an image on a builder engine for a while, and look at it: the smoke test's capability.

The image is pulled by digest (so the engine runs exactly the bytes under test) into a config
directory of this run only (credentials by ``docker login`` on stdin), started detached with a
name and labels that say which promotion it belongs to, and always removed when the block ends,
whatever ended it. Where the engine has no bridge network (engines started ``--bridge=none``,
as every test engine here is), the container shares the host's network and is asked on its own
port; otherwise the engine publishes the port on a free host port it picks itself (on loopback
when the engine is local), read back from the container.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from pipeline.builder._engine import Engine
from pipeline.builder._process import run_streaming
from pipeline.errors import EngineError, RegistryAuthError, RegistryError

__all__ = ["RunningContainer", "publish_args", "remove_labelled", "running_container"]

_GONE = ("Cannot connect to the Docker daemon", "connection refused", "error during connect")


@dataclass(frozen=True)
class RunningContainer:
    """A started container: where its port answers (``None`` without a port) and how to look."""

    engine: Engine
    client: DockerClient
    id: str
    network: str  # "host" or "published"
    address: tuple[str, int] | None

    def state(self) -> tuple[bool, int | None]:
        """(running, exit code once it stopped)."""
        found = self.client.container.inspect(self.id).state
        return bool(found.running), None if found.running else found.exit_code

    def logs(self, tail: int = 200) -> list[str]:
        """The last ``tail`` lines of its output (stdout and stderr)."""
        try:
            text = self.client.container.logs(self.id, tail=tail)
        except DockerException as exc:
            return [f"(no log: {_why(exc)})"]
        return str(text).splitlines()[-tail:]

    def execute(self, command: Sequence[str], timeout: float) -> tuple[int, str]:
        """Run ``command`` inside it: (exit code, last output); 124 when it ran out of time."""
        argv = [*self.engine.command(), "exec", self.id, *command]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return 124, f"still running after {timeout:g} s"
        return done.returncode, (done.stdout + done.stderr).strip()[-500:]


def _why(exc: DockerException) -> str:
    return (exc.stderr or exc.stdout or str(exc)).strip().splitlines()[-1] if (exc.stderr or exc.stdout) else str(exc)


def _engine_error(exc: DockerException, doing: str) -> Exception:
    text = _why(exc)
    if any(marker in text for marker in _GONE):
        return EngineError(f"engine {exc.__class__.__name__}: cannot {doing}: {text}")
    return EngineError(f"cannot {doing}: {text}")


def _engine_host(engine: Engine) -> str:
    """Where a port of the engine's host is reached from here."""
    if not engine.host or engine.host.startswith(("unix://", "npipe://")):
        return "127.0.0.1"
    return urlsplit(engine.host).hostname or "127.0.0.1"


def _login(engine: Engine, config_dir: str, registry: str, credentials: tuple[str, str] | None) -> None:
    if credentials is None:
        return
    user, password = credentials
    done = subprocess.run(
        [*engine.command(), "login", "--username", user, "--password-stdin", "--", registry],
        input=password,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**engine.env(config_dir)},
    )
    if done.returncode != 0:
        raise RegistryAuthError(f"docker login to {registry} for the smoke test failed: {done.stderr.strip()[-300:]}")


def _pull(engine: Engine, config_dir: str, image: str, timeout: float, should_stop: Callable[[], bool]) -> None:
    tail: list[str] = []
    done = run_streaming(
        [*engine.command(), "pull", "--", image],
        env=engine.env(config_dir),
        on_line=tail.append,
        should_stop=should_stop,
        timeout=timeout,
    )
    if done.stopped == "cancelled":
        raise EngineError(f"pulling {image} on {engine.describe} was stopped: the job is no longer ours")
    if done.stopped == "timeout":
        raise RegistryError(f"pulling {image} on {engine.describe} took longer than {timeout:g} s")
    if done.returncode != 0:
        text = "\n".join(done.tail[-5:])
        if any(marker in text for marker in _GONE):
            raise EngineError(f"{engine.describe} does not answer: {text}")
        raise RegistryError(f"pulling {image} on {engine.describe} failed: {text}")


def _published(client: DockerClient, container_id: str, port: int) -> int:
    ports = client.container.inspect(container_id).network_settings.ports or {}
    for binding in ports.get(f"{port}/tcp") or []:
        if binding.get("HostPort"):
            return int(binding["HostPort"])
    raise EngineError(f"the engine published no host port for port {port} of container {container_id[:12]}")


def publish_args(port: int | None, *, bridgeless: bool, local: bool) -> list[tuple[str | int]]:
    """``-p`` values: none on the host network; else a free host port the engine picks, bound
    to loopback when the engine is on this machine (nothing else needs to reach it)."""
    if port is None or bridgeless:
        return []
    return [(f"127.0.0.1::{port}",)] if local else [(port,)]


def remove_labelled(engine: Engine, label: str, value: str) -> int:
    """Remove containers a run of the same job left behind (a worker that died mid-test)."""
    client = engine.client()
    try:
        found = client.container.list(all=True, filters=[("label", f"{label}={value}")])
        for container in found:
            client.container.remove(container, force=True, volumes=True)
    except DockerException as exc:
        raise _engine_error(exc, "look for leftover containers") from None
    return len(found)


@contextlib.contextmanager
def running_container(
    engine: Engine,
    image: str,
    *,
    name: str,
    labels: Mapping[str, str],
    env: Mapping[str, str],
    command: Sequence[str],
    port: int | None,
    registry: str,
    credentials: tuple[str, str] | None,
    pull_timeout: float,
    docker_config: str | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> Iterator[RunningContainer]:
    """Pull ``image`` (by digest), start it detached, yield it; removed however the block ends.
    ``docker_config``: the registry's own credentials directory, used instead of a login."""
    with tempfile.TemporaryDirectory(prefix="pipeline-smoke-") as scratch:
        config_dir = docker_config if docker_config and credentials is None else scratch
        _login(engine, config_dir, registry, credentials)
        _pull(engine, config_dir, image, pull_timeout, should_stop)
        client = engine.client(config_dir)
        try:
            bridgeless = "bridge" not in {network.name for network in client.network.list()}
        except DockerException as exc:
            raise _engine_error(exc, "list the engine's networks") from None
        publish = publish_args(port, bridgeless=bridgeless, local=_engine_host(engine) == "127.0.0.1")
        container_id = ""
        try:
            try:
                started = client.run(
                    image,
                    list(command),
                    detach=True,
                    name=name,
                    labels=dict(labels),
                    envs=dict(env),
                    networks=["host"] if bridgeless else [],
                    publish=publish,
                    pull="never",
                )
            except DockerException as exc:
                raise _engine_error(exc, f"start {image}") from None
            container_id = str(started.id)
            address = None
            if port is not None:
                host_port = port if bridgeless else _published(client, container_id, port)
                address = (_engine_host(engine), host_port)
            yield RunningContainer(engine, client, container_id, "host" if bridgeless else "published", address)
        finally:
            with contextlib.suppress(DockerException):
                client.container.remove(container_id or name, force=True, volumes=True)
