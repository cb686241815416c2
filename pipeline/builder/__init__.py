"""Builder: a checkout becomes an image in the project's registry, with its digest.

Builds run on the configured builders (``builders:``; ``docker.hosts`` is the older spelling):
a Docker engine (built-in BuildKit on a pre-23 CLI, buildx's ``docker`` driver otherwise), a
BuildKit daemon through a buildx ``remote`` builder the service defines itself, or a buildx
builder made outside the service. ``BuilderPool.build`` picks a healthy one in rotation,
skipping (and saying why) the ones that cannot take the build, and moves on to the next when a
builder fails mid-build. The CLI is driven directly (python-on-whales defines builders and reads
them back) and its output streamed line by line, so logs arrive live and the process can be
stopped. Build secrets go in as BuildKit secrets from 0600 files that are deleted afterwards,
never as build-args, and their values are redacted from every log line.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.builder._command import BuildSpec, cache_ref
from pipeline.builder._command import build_command as _argv
from pipeline.builder._container import RunningContainer, remove_labelled, running_container
from pipeline.builder._engine import Engine, pick_engine
from pipeline.builder._pool import BuilderPool
from pipeline.builder._probe import BuilderStatus
from pipeline.builder._readback import registry_archive
from pipeline.builder._run import Built, build_and_push
from pipeline.builder._run import _pushed_by_buildx as _pushed_by_buildx  # re-exported: unit tests read it
from pipeline.builder._tags import render_args, render_tags, sanitize_tag, template_values
from pipeline.errors import BuildError

__all__ = [
    "BuildSpec",
    "BuilderPool",
    "BuilderStatus",
    "Built",
    "Engine",
    "RunningContainer",
    "build_and_push",
    "cache_ref",
    "pick_engine",
    "registry_archive",
    "remove_labelled",
    "render_args",
    "render_tags",
    "resolve_inside",
    "running_container",
    "sanitize_tag",
    "template_values",
]


def resolve_inside(root: Path, relative: str, what: str) -> Path:
    """``root/relative``, refusing anything (``..``, symlinks) that lands outside ``root``."""
    root = root.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise BuildError(f"{what} {relative!r} points outside the repository checkout")
    if not path.exists():
        raise BuildError(f"{what} {relative!r} does not exist in the commit")
    return path


def _build_command(engine: Engine, spec: BuildSpec, iidfile: Path, secret_files: dict[str, Path]) -> list[str]:
    """The build's argv, for the unit tests (the environment comes from ``Engine.env``)."""
    return _argv(engine, spec, iidfile, secret_files)
