"""The step contract, in Kargo's shape: what a step gets (``StepContext``), what it answers
(``StepResult``), and what the executor knows of it before running it (``StepInfo``).

A step reads and writes only through its context: registries through ``ctx.client``, the
database only through the claim's scope; it answers a result instead of raising for the
outcomes that are not failures (refused by policy, waiting for a merge, try again later).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Literal

from pipeline.claims import ClaimScope
from pipeline.config import Config, EnvironmentConfig, ProjectConfig
from pipeline.errors import ConfigError
from pipeline.promotion._locations import Location
from pipeline.registry import RegistryClient
from pipeline.store import Build, Database, Promotion

__all__ = ["StepContext", "StepInfo", "StepRegistry", "StepResult", "StepStatus"]

StepStatus = Literal["succeeded", "refused", "awaiting_merge", "retry"]


@dataclass
class StepContext:
    """What a step may use; steps talk to registries only through ``client()``."""

    scope: ClaimScope
    config: Config
    project: ProjectConfig
    env: EnvironmentConfig
    promotion: Promotion
    build: Build
    current: Promotion | None
    source: Location
    target: Location
    tag: str
    _clients: ExitStack
    _open: dict[str, RegistryClient] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)  # what earlier steps answered, merged

    @property
    def db(self) -> Database:
        return self.scope.db

    def client(self, location: Location) -> RegistryClient:
        """One client per registry for the whole promotion, so tokens and connections are reused."""
        host = location.registry.host
        if host not in self._open:
            self._open[host] = self._clients.enter_context(RegistryClient(location.registry))
        return self._open[host]


@dataclass(frozen=True)
class StepResult:
    """A step's answer. ``refused`` ends the promotion as rejected, ``awaiting_merge`` pauses
    it, ``retry`` gives it back to the queue for ``retry_after`` seconds; ``output`` is merged
    into the context for the steps after it and into what the promotion records; ``record`` is
    kept in the step's own entry of the promotion's steps (a smoke test's container log)."""

    message: str
    status: StepStatus = "succeeded"
    output: Mapping[str, Any] = field(default_factory=dict)
    retry_after: float | None = None
    record: Mapping[str, Any] = field(default_factory=dict)


Runner = Callable[[StepContext], StepResult]


@dataclass(frozen=True)
class StepInfo:
    """A step kind and what the executor must know before it runs one.

    ``visible``: what it writes is seen by others the moment it is written (a signature, a Git
    commit, a tag), so it runs only while the worker's claim holds. ``repeatable``: running it
    again after a crash finds its work done instead of doing it twice.
    """

    kind: str
    run: Runner
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    visible: bool = False
    repeatable: bool = True


class StepRegistry:
    """Step kinds by name, registered explicitly (importing a module registers nothing)."""

    def __init__(self, steps: Iterator[StepInfo] | tuple[StepInfo, ...] | list[StepInfo] = ()) -> None:
        self._steps: dict[str, StepInfo] = {}
        for info in steps:
            self.register(info)

    def register(self, info: StepInfo) -> None:
        if info.kind in self._steps:
            raise ValueError(f"step kind {info.kind!r} is registered twice")
        self._steps[info.kind] = info

    def __getitem__(self, kind: str) -> StepInfo:
        try:
            return self._steps[kind]
        except KeyError:
            raise ConfigError(f"no promotion step of kind {kind!r}; known: {', '.join(self._steps)}") from None

    def __contains__(self, kind: object) -> bool:
        return kind in self._steps

    def kinds(self) -> list[str]:
        return list(self._steps)
