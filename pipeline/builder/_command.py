"""The command line each kind of builder gets, made in one place.

- Built-in BuildKit (a pre-23 CLI) and buildx's ``docker`` driver build on the engine: the image
  carries inline cache, the last good image is ``--cache-from``, and ``docker push`` follows.
  Neither can export a registry cache (the docker driver refuses it without the containerd image
  store), so it is never asked for.
- Any other buildx driver (``remote`` for a BuildKit daemon, ``docker-container``,
  ``kubernetes``) pushes straight from BuildKit (``--push``, digest from ``--metadata-file``) and
  reads and writes a ``mode=max`` registry cache (zstd). The export has ``ignore-error=true``: a
  cache registry that refuses the write costs the next build its cache, never this build its image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pipeline.builder._engine import Engine
from pipeline.errors import BuildError

__all__ = ["BuildSpec", "build_command", "cache_ref"]


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
    cache_ref: str | None = None  # registry cache of a BuildKit daemon; default <repository>:buildcache

    @property
    def needs_export(self) -> bool:
        """A multi-platform index or attestations cannot be loaded into an engine: BuildKit pushes them."""
        return bool(self.platforms) or self.provenance

    buildx_push = needs_export  # the name build stages used before builder kinds


def cache_ref(spec: BuildSpec) -> str | None:
    """Where a BuildKit daemon keeps this project's registry cache."""
    if spec.cache_ref:
        return spec.cache_ref
    return spec.refs[0].rsplit(":", 1)[0] + ":buildcache" if spec.refs else None


def _driver_flags(engine: Engine, spec: BuildSpec, metadata: Path) -> list[str]:
    if not engine.push_direct:
        if spec.needs_export:
            raise BuildError(
                f"builder {engine.name} ({engine.describe}) cannot build multi-platform images or "
                "provenance: use a BuildKit daemon (builders: [{name, buildkit: tcp://...}]) or a buildx "
                "builder with the docker-container, remote or kubernetes driver"
            )
        if engine.mode == "buildx":
            return ["buildx", "build", "--load"]
        return ["build"]
    flags = [
        "buildx",
        "--builder",
        str(engine.builder),
        "build",
        "--push",
        "--metadata-file",
        str(metadata),
        "--provenance=mode=max" if spec.provenance else "--provenance=false",
    ]
    if spec.platforms:
        flags += ["--platform", ",".join(spec.platforms)]
    if (ref := cache_ref(spec)) and not spec.no_cache:
        flags += ["--cache-from", f"type=registry,ref={ref}", "--cache-to", _cache_to(ref)]
    elif ref:  # no_cache: build everything anew, but leave the cache for the next build
        flags += ["--cache-to", _cache_to(ref)]
    return flags


def _cache_to(ref: str) -> str:
    """Every stage's layers (mode=max), zstd-compressed: only BuildKit reads this cache, and zstd
    costs a fraction of gzip's CPU on the intermediate stages that the image itself never ships."""
    return f"type=registry,ref={ref},mode=max,compression=zstd,ignore-error=true"


def build_command(engine: Engine, spec: BuildSpec, iidfile: Path, secret_files: dict[str, Path]) -> list[str]:
    """The argv of the build (the environment comes from ``Engine.env``)."""
    cmd = engine.command() + _driver_flags(engine, spec, iidfile.with_name("metadata.json"))
    cmd += ["--progress=plain", "--iidfile", str(iidfile), "--file", str(spec.dockerfile)]
    if spec.target:
        cmd += ["--target", spec.target]
    if spec.no_cache:
        cmd.append("--no-cache")
    if spec.pull:
        cmd.append("--pull")
    for ref in spec.cache_from:
        cmd += ["--cache-from", ref]
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
