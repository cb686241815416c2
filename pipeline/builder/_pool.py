"""Builds rotate over the configured builders; one that cannot take a build is skipped, with why.

A builder is skipped when it does not answer, failed a build moments ago, is at its
``max_parallel``, lacks a platform the build asks for, or cannot export what the build needs
(an engine's BuildKit cannot push a multi-platform index). Probes are remembered for a few
seconds per process, so a worker, ``/readyz`` and ``doctor`` do not dial every builder each time.
When the builder itself fails mid-build (the daemon died, the engine went away) the build moves
on to the next healthy builder at once; only when none is left does the worker's retry with
backoff take over.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from pipeline.builder._command import BuildSpec
from pipeline.builder._engine import Engine, source_docker_config
from pipeline.builder._probe import BuilderStatus, probe
from pipeline.builder._process import LineSink
from pipeline.builder._run import Built, build_and_push
from pipeline.config import BuilderConfig, Config
from pipeline.errors import BuildError, EngineError, RegistryError

__all__ = ["BuilderPool"]

PROBE_SECONDS = 5.0  # how long a probe's answer is trusted
FAILED_SECONDS = 30.0  # how long a builder that failed a build is passed over
_lock = threading.Lock()
_probes: dict[tuple[str, str, str], tuple[float, BuilderStatus]] = {}
_failed: dict[str, tuple[float, str]] = {}
_running: Counter[str] = Counter()


class _Skip(Exception):
    def __init__(self, reason: str, *, transient: bool, busy: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.transient, self.busy = reason, transient, busy


def _covers(offered: tuple[str, ...], wanted: str) -> bool:
    """``linux/arm64`` is covered by ``linux/arm64`` or ``linux/arm64/v8`` (and the other way round)."""
    return any(p == wanted or p.startswith(wanted + "/") or wanted.startswith(p + "/") for p in offered)


class BuilderPool:
    """The builders of a config, as one worker process sees them."""

    def __init__(self, builders: list[BuilderConfig], cli: str | None, state_dir: Path) -> None:
        self.builders, self.cli, self.state_dir = list(builders), cli, state_dir

    @classmethod
    def from_config(cls, config: Config) -> BuilderPool:
        """The pool of ``builders`` (or ``docker.hosts``); the service's buildx builders go in data_dir."""
        return cls(config.builder_pool, config.docker.cli, config.data_dir / "buildx")

    def status(self, builder: BuilderConfig, *, fresh: bool = False) -> BuilderStatus:
        """The builder's probe, at most ``PROBE_SECONDS`` old unless ``fresh``."""
        key = (builder.model_dump_json(), self.cli or "", f"{self.state_dir}\0{source_docker_config()}")
        with _lock:
            cached = _probes.get(key)
        if cached and not fresh and time.monotonic() - cached[0] < PROBE_SECONDS:
            return cached[1]
        found = probe(builder, self.cli, self.state_dir)
        with _lock:
            _probes[key] = (time.monotonic(), found)
        return found

    def statuses(self, *, fresh: bool = False) -> list[BuilderStatus]:
        return [self.status(builder, fresh=fresh) for builder in self.builders]

    def _usable(self, builder: BuilderConfig, spec: BuildSpec | None) -> Engine:
        with _lock:
            failed = _failed.get(builder.name)
            running = _running[builder.name]
        if failed and time.monotonic() < failed[0]:
            raise _Skip(f"failed a build moments ago ({failed[1]})", transient=True)
        if builder.max_parallel is not None and running >= builder.max_parallel:
            raise _Skip(
                f"busy: {running} builds running (max_parallel {builder.max_parallel})", transient=True, busy=True
            )
        status = self.status(builder)
        if not status.healthy or status.engine is None:
            raise _Skip(status.detail, transient=not status.permanent)
        engine = status.engine
        if spec is not None and spec.needs_export and not engine.can_export:
            raise _Skip(f"{engine.describe} cannot push multi-platform images or provenance", transient=False)
        missing = [p for p in spec.platforms if not _covers(engine.platforms, p)] if spec else []
        if missing:
            raise _Skip(
                f"lacks platform {', '.join(missing)} (has {', '.join(engine.platforms) or 'none'}; "
                "declare emulated ones in the builder's platforms)",
                transient=False,
            )
        return engine

    def pick(
        self, spec: BuildSpec | None = None, spread: int = 0, exclude: frozenset[str] = frozenset()
    ) -> tuple[Engine, list[str]]:
        """The first builder from ``spread`` on that can take ``spec``, and those skipped with why.

        Raises ``EngineError`` (retryable) when a skipped builder may recover, ``BuildError``
        when none ever could (wrong certificates, unknown names, missing platforms).
        """
        if not self.builders:
            raise EngineError("no builders are configured")
        start = spread % len(self.builders)
        skipped: list[str] = []
        reasons: dict[str, _Skip] = {}
        for builder in self.builders[start:] + self.builders[:start]:
            if builder.name in exclude:
                continue
            try:
                return self._usable(builder, spec), skipped
            except _Skip as skip:
                skipped.append(f"builder {builder.name} skipped: {skip.reason}")
                reasons[builder.name] = skip
        if reasons and all(r.busy for r in reasons.values()):
            raise _AllBusy("; ".join(skipped))
        message = "no builder can take this build: " + "; ".join(
            f"builder {name}: {skip.reason}" for name, skip in reasons.items()
        )
        if not reasons or any(r.transient for r in reasons.values()):
            raise EngineError(message)
        raise BuildError(message)

    def _pick_waiting(
        self, spec: BuildSpec, spread: int, exclude: frozenset[str], should_stop: Callable[[], bool]
    ) -> tuple[Engine, list[str]]:
        """``pick``, waiting while every builder that could take it is at its ``max_parallel``."""
        while True:
            try:
                return self.pick(spec, spread, exclude)
            except _AllBusy:
                if should_stop():
                    raise BuildError("build was stopped: cancelled") from None
                time.sleep(0.5)

    def build(
        self,
        spec: BuildSpec,
        on_line: LineSink,
        scratch: Path,
        *,
        spread: int = 0,
        should_stop: Callable[[], bool] = lambda: False,
        on_start: Callable[[Engine], None] = lambda engine: None,
    ) -> Built:
        """Build on the first usable builder; if that builder fails, on the next one.

        ``on_start`` is told each builder as the build starts on it (to record where it runs).
        """
        tried: set[str] = set()
        skipped: list[str] = []
        while True:
            engine, passed = self._pick_waiting(spec, spread, frozenset(tried), should_stop)
            for line in passed:
                on_line(line)
            skipped += passed
            try:
                with _slot(engine.name):  # taken before anyone hears it started: max_parallel holds
                    on_start(engine)
                    built = _build_pushing_again_once(engine, spec, on_line, scratch, should_stop)
                return replace(built, skipped=tuple(skipped))
            except EngineError as exc:
                _mark_failed(engine.name, exc.message)
                tried.add(engine.name)
                skipped.append(f"builder {engine.name} failed: {exc.message}")
                if len(tried) >= len(self.builders):
                    raise
                on_line(f"builder {engine.name} failed; trying the next builder: {exc.message}")


class _AllBusy(Exception):
    pass


def _build_pushing_again_once(
    engine: Engine, spec: BuildSpec, on_line: LineSink, scratch: Path, should_stop: Callable[[], bool]
) -> Built:
    """``build_and_push``, run once more when the registry lost a blob BuildKit had just pushed
    (an intermittent "blob unknown to registry" on the manifest); the second run comes from the
    daemon's cache in moments, where a worker's retry would wait its backoff."""
    try:
        return build_and_push(engine, spec, on_line, scratch, should_stop)
    except RegistryError as exc:
        if not (engine.push_direct and "blob unknown" in exc.message.lower()):
            raise
        on_line(f"the registry lost a blob while BuildKit pushed; pushing again: {exc.message.splitlines()[-1]}")
        return build_and_push(engine, spec, on_line, scratch, should_stop)


def _mark_failed(name: str, detail: str) -> None:
    with _lock:
        _failed[name] = (time.monotonic() + FAILED_SECONDS, detail.splitlines()[0][:300])
        for key in [k for k in _probes if f'"name":"{name}"' in k[0]]:
            del _probes[key]


@contextmanager
def _slot(name: str) -> Iterator[None]:
    with _lock:
        _running[name] += 1
    try:
        yield
    finally:
        with _lock:
            _running[name] -= 1
