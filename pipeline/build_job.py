"""One claimed build, start to finish: source, then builder, then what the image is made of.

This is what a worker calls after it claimed a build row. It knows the order of the steps
and what to write down; how to check out, build, talk to a registry or read an image live in
``source``, ``builder``, ``registry`` and ``insight``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from pipeline import builder, insight, source
from pipeline.config import BuildConfig, Config, ProjectConfig, SigningConfig
from pipeline.errors import BuildError, ConfigError, NotFound, PipelineError, RegistryError, SigningError
from pipeline.registry import RegistryClient, update_artifact
from pipeline.signing import (
    DSSE_MEDIA_TYPE,
    append_attestation,
    attestation_tag,
    dsse_envelope,
    load_private_key,
    provenance_statement,
    statement_bytes,
    verify_envelope,
)
from pipeline.store import Build, Database, builds, utcnow

__all__ = ["BuildOutcome", "BuildSkipped", "LogSink", "run_build"]

log = logging.getLogger(__name__)


class LogSink:
    """Buffers build output and writes it in batches so a chatty build does not flood the DB;
    a timer flushes what a quiet step printed last, so followers see it within a second."""

    def __init__(self, db: Database, build_id: int, flush_every: float = 0.5, max_lines: int = 200) -> None:
        self._db, self._id = db, build_id
        self._pending: list[str] = []
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._last = time.monotonic()
        self._every, self._max = flush_every, max_lines
        self._closed = threading.Event()
        threading.Thread(target=self._timer, name=f"logs-{build_id}", daemon=True).start()

    def _timer(self) -> None:
        while not self._closed.wait(self._every):
            try:
                self.flush()
            except Exception:  # the final flush in close() reports for real
                log.debug("build %s: periodic log flush failed", self._id, exc_info=True)

    def close(self) -> None:
        self._closed.set()
        self.flush()

    def __call__(self, line: str) -> None:
        with self._lock:
            self._pending.append(line)
            due = len(self._pending) >= self._max or time.monotonic() - self._last >= self._every
        if due:
            self.flush()

    def flush(self) -> None:
        with self._flushing:  # one writer at a time keeps seq numbers in order
            with self._lock:
                lines, self._pending = self._pending, []
                self._last = time.monotonic()
            if not lines:
                return
            try:
                # a writer from the start: append_logs reads the last seq, then inserts, and on
                # SQLite a read transaction cannot become a writer once another one committed
                with self._db.session(immediate=True) as session:
                    builds.append_logs(session, self._id, lines)
            except Exception:
                with self._lock:  # keep them for the next flush: a log line is never dropped
                    self._pending = lines + self._pending
                raise


@dataclass(frozen=True)
class BuildOutcome:
    """Everything recorded on a successful build row."""

    digest: str
    image: str
    tags: list[str]
    image_size: int
    layers: list[dict[str, Any]]
    steps_total: int
    steps_cached: int
    cache_from: list[str]
    followup: Callable[[], None] | None = field(default=None, compare=False)
    provenance: dict[str, Any] | None = None  # the in-toto statement (signed into .att when a key is set)

    def columns(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "followup"} | {"error": None}


@dataclass(frozen=True)
class BuildSkipped:
    """The push changed no file the project's path filter cares about (known only after a diff)."""

    reason: str


def _path_filter(project: ProjectConfig, build: Build, checkout: Path, sink: LogSink) -> BuildSkipped | None:
    if not (build.check_paths and build.before_commit):
        return None
    files = source.changed_files(checkout, build.before_commit, build.commit)
    if files is None:
        sink(f"cannot diff against {build.before_commit[:12]} (not in the repository); building anyway")
        return None
    if project.paths.matches(files):
        return None
    return BuildSkipped(f"none of the {len(files)} changed files matches the project's paths filter")


def _secrets(options: BuildConfig) -> dict[str, str]:
    values: dict[str, str] = {}
    for secret in options.secrets:
        if secret.env is not None:
            if secret.env not in os.environ:
                raise ConfigError(f"build secret {secret.id!r}: environment variable {secret.env} is not set")
            values[secret.id] = os.environ[secret.env]
        else:
            try:
                values[secret.id] = Path(secret.file).read_text()  # type: ignore[arg-type]
            except OSError as exc:
                raise ConfigError(f"build secret {secret.id!r}: cannot read {secret.file}: {exc.strerror}") from None
    return values


def _previous(db: Database, project: ProjectConfig, build: Build) -> Build | None:
    """The build to take cache and comparisons from: same ref first, else the default branch."""
    refs = list(dict.fromkeys([build.ref, f"refs/heads/{project.default_branch}"]))
    with db.session() as session:
        return builds.last_succeeded(session, build.project, refs, build.id)


def _spec(config: Config, project: ProjectConfig, build: Build, checkout: Path,
          previous: Build | None) -> builder.BuildSpec:
    now = utcnow()
    registry = config.registries[project.image.registry]
    options = project.build_for(build.branch)
    tag = build.ref.removeprefix("refs/tags/") if build.ref.startswith("refs/tags/") else None
    values = builder.template_values(project=build.project, branch=build.branch, tag=tag, sha=build.commit,
                                     build_id=build.id, now=now)
    try:
        tags = builder.render_tags(project.tags, values, default_branch=build.branch == project.default_branch)
    except ValueError as exc:
        raise ConfigError(f"project {build.project}: {exc}") from None
    repository = f"{registry.host}/{project.image.repository}"
    labels = {
        "org.opencontainers.image.source": source.public_url(project.repo),
        "org.opencontainers.image.revision": build.commit,
        "org.opencontainers.image.created": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "org.opencontainers.image.version": values["version"] or build.commit[:7],
        "org.opencontainers.image.ref.name": tag or build.branch or build.commit,
    }
    cache_from = [previous.image] if previous and previous.image and options.cache_from_last else []
    return builder.BuildSpec(
        context_dir=builder.resolve_inside(checkout, options.context, "build context"),
        dockerfile=builder.resolve_inside(checkout, options.dockerfile, "dockerfile"),
        refs=[f"{repository}:{t}" for t in tags],
        target=options.target,
        args=builder.render_args(options.args, values),
        labels=labels,
        secrets=_secrets(options),
        network=options.network,
        timeout=options.timeout_seconds,
        registry=registry.host,
        credentials=registry.credentials(),
        no_cache=options.no_cache,
        pull=options.pull,
        cache_from=[] if options.no_cache else cache_from,
        platforms=list(options.platforms),
        provenance=options.provenance,
    )


def _registry_manifest(config: Config, project: ProjectConfig, tags: list[str], pushed: str) -> list[dict[str, Any]]:
    """Ask the registry itself what every tag now points at; it must be what was pushed."""
    with RegistryClient(config.registries[project.image.registry]) as client:
        for tag in tags:
            found = client.manifest_info(project.image.repository, tag).digest
            if found != pushed:
                raise RegistryError(f"{client.host}/{project.image.repository}:{tag} points at {found}, "
                                    f"but the push reported {pushed}")
        return client.manifest(project.image.repository, pushed).layers()


def _insight_followup(db: Database, build_id: int, engine: builder.Engine, dockerfile: Path, image_id: str,
                      previous: Build | None, scratch: Path) -> Callable[[], None]:
    """Image insight, run after the build is recorded as succeeded: reading the whole image
    takes seconds, and nobody waiting for the digest should wait for it.

    The Dockerfile is copied out first because the checkout is gone by then.
    """
    scratch.mkdir(parents=True, exist_ok=True)
    kept = scratch / "Dockerfile"
    shutil.copyfile(dockerfile, kept)

    def analyze() -> None:
        try:
            found = insight.save_and_analyze([str(p) for p in engine.client().docker_cmd], image_id, scratch)
            advice = [a.to_dict() for a in insight.advise(kept, found)]
            compared = insight.compare(previous.insight if previous else None, found)
            with db.session() as session:
                builds.record_progress(session, build_id, insight={**found.to_dict(), "compared": compared},
                                       advice=advice)
                builds.append_logs(session, build_id, [
                    f"image: {found.size} bytes in {found.layer_count} layers, {found.wasted_bytes} bytes "
                    f"wasted, efficiency {found.efficiency:.4f}"])
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    return analyze


def _load_signing_key(signing: SigningConfig) -> ec.EllipticCurvePrivateKey:
    try:
        return load_private_key(signing.key_file, signing.password())
    except SigningError as exc:
        raise SigningError(f"provenance: cannot sign with signing.key_file {signing.key_file}: {exc.message}") from None


def _provenance(project: ProjectConfig, build: Build, spec: builder.BuildSpec, engine: builder.Engine,
                digest: str) -> dict[str, Any]:
    """The statement for the digest: only the recorded build-args (``spec.args``) go in, never
    ``spec.secrets`` or anything else BuildKit was handed."""
    options = project.build_for(build.branch)
    now = utcnow()
    return provenance_statement(
        repository=f"{spec.registry}/{project.image.repository}", digest=digest, source_repo=project.repo,
        ref=build.ref, commit=build.commit, context=options.context, dockerfile=options.dockerfile,
        target=spec.target, build_args=spec.args, platforms=spec.platforms, build_id=build.id,
        started_on=build.started_at or now, finished_on=now, engine=engine.name, builder_mode=engine.mode)


def _dsse_layers(raw: bytes) -> list[dict[str, Any]]:
    try:
        data = json.loads(raw)
    except ValueError:
        return []  # append_attestation refuses it with a clear message
    layers = data.get("layers") if isinstance(data, dict) else None
    return [layer for layer in layers or [] if isinstance(layer, dict) and layer.get("mediaType") == DSSE_MEDIA_TYPE]


def _attach_provenance(config: Config, project: ProjectConfig, digest: str, statement: dict[str, Any],
                       key: ec.EllipticCurvePrivateKey) -> str:
    """Sign the statement and append it to the digest's ``.att`` in the project's repository.

    The same read-modify-write (lock per tag, read back) as promotion signing. A retried build
    whose signed statement is already there writes nothing. Registry errors propagate.
    """
    repository, tag = project.image.repository, attestation_tag(digest)
    envelope = dsse_envelope(statement, key)
    layer_digest = "sha256:" + hashlib.sha256(envelope).hexdigest()
    payload, public = statement_bytes(statement), key.public_key()
    with RegistryClient(config.registries[project.image.registry]) as client:

        def ours(raw: bytes) -> bool:
            """A layer whose envelope our key signed over this very statement."""
            for layer in _dsse_layers(raw):
                if layer.get("digest") == layer_digest:
                    return True
                try:
                    blob = client.read_blob(repository, str(layer.get("digest")))
                except NotFound:
                    continue
                found = verify_envelope(blob, [public])
                if found is not None and statement_bytes(found) == payload:
                    return True
            return False

        def change(existing: bytes | None) -> tuple[bytes | None, list[tuple[str, bytes]]]:
            if existing is not None and ours(existing):
                return None, []
            update = append_attestation(existing, envelope)
            if not update.changed:
                return None, []
            return update.manifest, [(blob.digest, blob.data) for blob in update.uploads]

        def present(raw: bytes) -> bool:
            return any(layer.get("digest") == layer_digest for layer in _dsse_layers(raw))

        wrote = update_artifact(config.data_dir, client, repository, tag, change, present)
    where = f"{client.host}/{repository}:{tag}"
    return f"provenance signed into {where}" if wrote else f"provenance already in {where}"


def run_build(db: Database, config: Config, build_id: int, *,
              should_stop: Callable[[], bool] = lambda: False) -> BuildOutcome | BuildSkipped:
    """Check out, build and push one build; raises ``PipelineError`` on any failure."""
    with db.session() as session:
        build = builds.get_build(session, build_id)
    project = config.projects.get(build.project)
    if project is None:
        raise ConfigError(f"project {build.project!r} is no longer in the config")
    sink = LogSink(db, build_id)
    workdir = config.data_dir / "work" / f"build-{build_id}"
    shutil.rmtree(workdir, ignore_errors=True)  # an earlier attempt's leftovers
    # scrypt takes a fraction of a second: decrypt the key while the checkout runs
    keys = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"key-{build_id}") if config.signing else None
    key_future: Future[ec.EllipticCurvePrivateKey] | None = (
        keys.submit(_load_signing_key, config.signing) if keys and config.signing else None)
    try:
        sink(f"checking out {build.commit} ({build.ref}) from {source.public_url(project.repo)}")
        checkout = source.checkout(config.data_dir, build.project, project, build.commit, workdir / "src")
        if skipped := _path_filter(project, build, checkout, sink):
            sink(f"skipped: {skipped.reason}")
            return skipped
        previous = _previous(db, project, build)
        spec = _spec(config, project, build, checkout, previous)
        engine = builder.pick_engine(config.docker.hosts, config.docker.cli, spread=build_id)
        with db.session() as session:
            builds.record_progress(session, build_id, engine=engine.name, builder_mode=engine.mode,
                                   build_args=spec.args, cache_from=spec.cache_from)
        key = key_future.result() if key_future else None  # a key that cannot sign fails before building
        built = builder.build_and_push(engine, spec, sink, workdir / "tmp", should_stop)
        tags = [ref.rsplit(":", 1)[1] for ref in spec.refs]
        layers = _registry_manifest(config, project, tags, built.digest)
        repository = f"{spec.registry}/{project.image.repository}"
        sink(f"pushed {repository}@{built.digest}; the registry reports it for tags {', '.join(tags)}")
        sink(f"steps: {built.steps_total}, from cache: {built.steps_cached}")
        statement = _provenance(project, build, spec, engine, built.digest)
        if key is not None:
            sink(_attach_provenance(config, project, built.digest, statement, key))
        followup = None
        if project.build_for(build.branch).insight and built.loaded:
            scratch = config.data_dir / "work" / f"insight-{build_id}"
            followup = _insight_followup(db, build_id, engine, spec.dockerfile, built.image_id, previous, scratch)
        return BuildOutcome(built.digest, f"{repository}@{built.digest}", tags,
                            sum(int(layer.get("size") or 0) for layer in layers), layers,
                            built.steps_total, built.steps_cached, spec.cache_from, followup,
                            provenance=statement)
    except PipelineError as exc:
        sink(f"error: {exc.message}")
        raise
    except Exception as exc:  # a bug must still end the build with a readable error
        log.exception("build %s crashed", build_id)
        sink(f"internal error: {exc!r}")
        raise BuildError(f"internal error while building: {exc!r}") from exc
    finally:
        if keys is not None:
            keys.shutdown(wait=False, cancel_futures=True)
        sink.close()
        shutil.rmtree(workdir, ignore_errors=True)
