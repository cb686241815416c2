"""The build job's steps, in order: resolve → reuse → checkout → build → push → record → insight
(a build that reuses an image of the same commit and inputs is recorded by ``reuse`` and ends there).

Each step is a function of the ``BuildContext`` that fills in what later steps read and
returns ``None``, or a ``BuildSkipped`` that ends the build early. The job (``_job``) runs
them and nothing else; a step that makes an outside change others can see does so under the
claim's fence (``ClaimScope.fenced``).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.orm import Session

from pipeline import builder, insight, source
from pipeline.build._logs import LogSink
from pipeline.build._provenance import attach_provenance, load_signing_key, provenance_for
from pipeline.build._spec import Tags, build_inputs, build_spec, previous_build, reusable_build
from pipeline.claims import ClaimScope
from pipeline.config import Config, ProjectConfig
from pipeline.errors import NotFound, PipelineError, RegistryError
from pipeline.registry import RegistryClient
from pipeline.store import Build, builds

__all__ = ["STEPS", "BuildContext", "BuildSkipped", "Recorded"]

log = logging.getLogger(__name__)

OnRecorded = Callable[[Session, int], None]


@dataclass(frozen=True)
class BuildSkipped:
    """The push changed no file the project's path filter cares about (known only after a diff)."""

    reason: str


@dataclass(frozen=True)
class Recorded:
    """What the record step wrote on the build row."""

    digest: str
    image: str
    tags: list[str]
    left_tags: list[str]  # moving tags a newer build holds, not moved by this one


@dataclass
class BuildContext:
    """One build as the steps see it: inputs first, then what each step found."""

    config: Config
    project: ProjectConfig
    build: Build
    scope: ClaimScope
    sink: LogSink
    workdir: Path
    background: ThreadPoolExecutor
    on_recorded: OnRecorded | None = None
    key: Future[ec.EllipticCurvePrivateKey] | None = None
    checkout: Path | None = None
    previous: Build | None = None
    spec: builder.BuildSpec | None = None
    tags: Tags | None = None
    engine: builder.Engine | None = None
    built: builder.Built | None = None
    layers: list[dict[str, Any]] = field(default_factory=list)
    statement: dict[str, Any] | None = None
    recorded: Recorded | None = None
    reused_from: int | None = None  # the build whose image this one re-tagged instead of building

    @property
    def repository(self) -> str:
        return self.project.image.repository

    @property
    def image_repository(self) -> str:
        """``registry/repository``, as refs name it."""
        return f"{self.config.registries[self.project.image.registry].host}/{self.repository}"

    def registry_client(self) -> RegistryClient:
        return RegistryClient(self.config.registries[self.project.image.registry])


def resolve(ctx: BuildContext) -> None:
    """The build to take cache from, and the signing key decrypted (scrypt takes a fraction of
    a second) while the checkout runs."""
    if ctx.config.signing is not None:
        ctx.key = ctx.background.submit(load_signing_key, ctx.config.signing)
    ctx.previous = previous_build(ctx.scope.db, ctx.project, ctx.build)


def reuse(ctx: BuildContext) -> None:
    """A commit already built with the same inputs is not built again: its image gets this
    build's tags by a manifest PUT by digest (no layer moves), and the build is recorded as
    succeeded with ``reused_from``, so auto-promotion follows as after any build. A rebuild
    asked for by hand always builds afresh."""
    inputs, tags = build_inputs(ctx.config, ctx.project, ctx.build)
    found = reusable_build(ctx.scope.db, ctx.build, inputs)
    if found is None or found.digest is None or ctx.build.trigger == "rebuild":
        return
    digest = found.digest
    with ctx.registry_client() as client:
        try:
            manifest = client.manifest(ctx.repository, digest)
        except NotFound:
            ctx.sink(f"build {found.id} made {digest}, which {ctx.image_repository} no longer has: building")
            return
        ctx.scope.check_lease()  # a tag is visible to everyone: only while the claim holds
        for tag in tags.immutable:
            client.tag(ctx.repository, tag, manifest)
    ctx.sink(
        f"commit {ctx.build.commit[:12]} was built with the same inputs by build {found.id}: "
        f"tagged its image {ctx.image_repository}@{digest} as {', '.join(tags.immutable)} instead of building"
    )
    steps = found.steps_total or 0
    ctx.tags, ctx.layers, ctx.statement, ctx.reused_from = tags, list(found.layers), found.provenance, found.id
    ctx.built = builder.Built(digest, found.image_size or 0, "", [], steps, steps, loaded=False)
    record(ctx)


def checkout(ctx: BuildContext) -> BuildSkipped | None:
    build = ctx.build
    ctx.sink(f"checking out {build.commit} ({build.ref}) from {source.public_url(ctx.project.repo)}")
    ctx.checkout = source.checkout(ctx.config.data_dir, build.project, ctx.project, build.commit, ctx.workdir / "src")
    if not (build.check_paths and build.before_commit):
        return None
    files = source.changed_files(ctx.checkout, build.before_commit, build.commit)
    if files is None:
        ctx.sink(f"cannot diff against {build.before_commit[:12]} (not in the repository); building anyway")
        return None
    if ctx.project.paths.matches(files):
        return None
    return BuildSkipped(f"none of the {len(files)} changed files matches the project's paths filter")


def build(ctx: BuildContext) -> None:
    """BuildKit builds the spec on the first usable builder of the pool (the next one when that
    builder fails mid-build) and pushes the immutable tags; where it runs is recorded as it starts."""
    assert ctx.checkout is not None
    ctx.spec, ctx.tags = build_spec(ctx.config, ctx.project, ctx.build, ctx.checkout, ctx.previous)
    if ctx.key is not None:
        ctx.key.result()  # a key that cannot sign fails before building
    spec = ctx.spec

    def started(engine: builder.Engine) -> None:
        ctx.engine = engine
        with ctx.scope.db.session() as session:
            builds.record_progress(
                session,
                ctx.build.id,
                engine=engine.name,
                builder_mode=engine.mode,
                build_args=spec.args,
                cache_from=spec.cache_from,
            )

    pool = builder.BuilderPool.from_config(ctx.config)
    ctx.built = pool.build(
        spec, ctx.sink, ctx.workdir / "tmp", spread=ctx.build.id, should_stop=ctx.scope.should_stop, on_start=started
    )


def push(ctx: BuildContext) -> None:
    """The registry itself must report the pushed digest for every tag; then the provenance."""
    assert ctx.built is not None and ctx.tags is not None and ctx.spec is not None and ctx.engine is not None
    digest = ctx.built.digest
    with ctx.registry_client() as client:
        for tag in ctx.tags.immutable:
            found = client.manifest_info(ctx.repository, tag).digest
            if found != digest:
                raise RegistryError(
                    f"{client.host}/{ctx.repository}:{tag} points at {found}, but the push reported {digest}"
                )
        ctx.layers = client.manifest(ctx.repository, digest).layers()
    ctx.sink(
        f"pushed {ctx.image_repository}@{digest}; the registry reports it for tags {', '.join(ctx.tags.immutable)}"
    )
    ctx.sink(f"steps: {ctx.built.steps_total}, from cache: {ctx.built.steps_cached}")
    ctx.statement = provenance_for(ctx.project, ctx.build, ctx.spec, ctx.engine, digest)
    if ctx.key is not None:
        ctx.scope.check_lease()  # a signature is visible to everyone: only while the claim holds
        ctx.sink(attach_provenance(ctx.config, ctx.project, digest, ctx.statement, ctx.key.result()))


def record(ctx: BuildContext) -> None:
    """Move the moving tags and record the digest, in one fenced transaction.

    A moving tag (``latest``, ``{branch}``) moves only when no newer build of the project holds
    it: a build that finishes after a newer one keeps its immutable tags and leaves the moving
    ones where they are. Builds of one repository take turns here (the fence's lock), so the
    check and the move cannot interleave with another build's. The log is complete when the
    build is recorded: what came before is flushed first, what the move did is written with it.
    """
    assert ctx.built is not None and ctx.tags is not None and ctx.scope.job is not None
    digest, build = ctx.built.digest, ctx.build
    moved: list[str] = []
    left: dict[str, int] = {}
    ctx.sink.flush()
    with ctx.registry_client() as client:
        manifest = client.manifest(ctx.repository, digest) if ctx.tags.moving else None
        with ctx.scope.fenced(f"tags of {ctx.image_repository}") as session:
            for tag in ctx.tags.moving:
                holder = _newer_holder(session, client, ctx, tag)
                if holder is not None:
                    left[tag] = holder
                    continue
                assert manifest is not None
                client.tag(ctx.repository, tag, manifest)
                moved.append(tag)
            tags = [t for t in ctx.tags.all if t not in left]
            said = [f"moved {', '.join(moved)} to {digest}"] if moved else []
            said += [
                f"left {tag} where it is: build {holder}, queued after this one, already holds it"
                for tag, holder in left.items()
            ]
            if said:
                builds.append_logs(session, build.id, said)
            builds.record_succeeded(
                session,
                ctx.scope.job,
                digest=digest,
                image=f"{ctx.image_repository}@{digest}",
                tags=tags,
                image_size=sum(int(layer.get("size") or 0) for layer in ctx.layers),
                layers=ctx.layers,
                steps_total=ctx.built.steps_total,
                steps_cached=ctx.built.steps_cached,
                cache_from=ctx.spec.cache_from if ctx.spec else [],
                provenance=ctx.statement,
                reused_from=ctx.reused_from,
            )
            if ctx.on_recorded is not None:
                ctx.on_recorded(session, build.id)
    ctx.scope.ended()
    ctx.recorded = Recorded(digest, f"{ctx.image_repository}@{digest}", tags, list(left))


def _newer_holder(session: Session, client: RegistryClient, ctx: BuildContext, tag: str) -> int | None:
    """The id of a build newer than this one that the tag points at now, if any."""
    found = client.find_manifest(ctx.repository, tag)
    if found is None:
        return None
    owner = builds.newest_with_digest(session, ctx.build.project, found.digest)
    return owner.id if owner is not None and owner.id > ctx.build.id else None


def image_insight(ctx: BuildContext) -> None:
    """What the image is made of, after the digest is recorded: reading the whole image takes
    seconds, and nobody waiting for the digest should wait for it. A failure only warns."""
    options = ctx.project.build_for(ctx.build.branch)
    if not (options.insight and ctx.built is not None and ctx.engine and ctx.spec):
        return
    scratch = ctx.workdir / "insight"
    scratch.mkdir(parents=True, exist_ok=True)
    kept = scratch / "Dockerfile"
    shutil.copyfile(ctx.spec.dockerfile, kept)
    try:
        if ctx.built.loaded:
            found = insight.save_and_analyze(
                [str(p) for p in ctx.engine.client().docker_cmd], ctx.built.image_id, scratch
            )
        else:  # BuildKit pushed it straight to the registry: no engine holds it, read it back from there
            with ctx.registry_client() as client:
                archive = builder.registry_archive(client, ctx.repository, ctx.built.digest, scratch / "pushed.tar")
            found = insight.analyze_archive(archive)
        advice = [a.to_dict() for a in insight.advise(kept, found)]
        compared = insight.compare(ctx.previous.insight if ctx.previous else None, found)
        with ctx.scope.db.session() as session:
            builds.record_progress(
                session, ctx.build.id, insight={**found.to_dict(), "compared": compared}, advice=advice
            )
        ctx.sink(
            f"image: {found.size} bytes in {found.layer_count} layers, {found.wasted_bytes} bytes "
            f"wasted, efficiency {found.efficiency:.4f}"
        )
    except PipelineError as exc:  # the image is built and recorded; insight is a bonus
        log.warning("build %s: image insight failed: %s", ctx.build.id, exc.message)
        ctx.sink(f"image insight failed: {exc.message}")


STEPS: tuple[tuple[str, Callable[[BuildContext], BuildSkipped | None]], ...] = (
    ("resolve", resolve),
    ("reuse", reuse),
    ("checkout", checkout),
    ("build", build),
    ("push", push),
    ("record", record),
    ("insight", image_insight),
)
