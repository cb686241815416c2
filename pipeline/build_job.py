"""One claimed build, start to finish: source, then builder, then the record.

This is what a worker calls after it claimed a build row. It knows the order of the steps
and what to write down; how to check out and how to build live in ``source`` and ``builder``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline import builder, source
from pipeline.config import Config, ProjectConfig
from pipeline.errors import BuildError, ConfigError, PipelineError, RegistryError
from pipeline.registry import RegistryClient
from pipeline.store import Build, Database, builds, utcnow

__all__ = ["BuildOutcome", "BuildSkipped", "LogSink", "run_build"]

log = logging.getLogger(__name__)


class LogSink:
    """Buffers build output and writes it in batches so a chatty build does not flood the DB."""

    def __init__(self, db: Database, build_id: int, flush_every: float = 0.5, max_lines: int = 200) -> None:
        self._db, self._id = db, build_id
        self._pending: list[str] = []
        self._lock = threading.Lock()
        self._last = time.monotonic()
        self._every, self._max = flush_every, max_lines

    def __call__(self, line: str) -> None:
        with self._lock:
            self._pending.append(line)
            due = len(self._pending) >= self._max or time.monotonic() - self._last >= self._every
        if due:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            lines, self._pending = self._pending, []
            self._last = time.monotonic()
        if lines:
            with self._db.session() as session:
                builds.append_logs(session, self._id, lines)


@dataclass(frozen=True)
class BuildOutcome:
    digest: str
    image: str
    tags: list[str]
    size: int


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


def _template_values(project_name: str, build: Build, now: dt.datetime) -> dict[str, str]:
    return {
        "project": project_name,
        "branch": build.branch or "detached",
        "sha": build.commit,
        "short_sha": build.commit[:7],
        "build_id": str(build.id),
        "timestamp": now.strftime("%Y%m%d%H%M%S"),
    }


def _secrets(project: ProjectConfig) -> dict[str, str]:
    values: dict[str, str] = {}
    for secret in project.build.secrets:
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


def _spec(config: Config, project: ProjectConfig, build: Build, checkout: Path) -> builder.BuildSpec:
    now = utcnow()
    registry = config.registries[project.image.registry]
    values = _template_values(build.project, build, now)
    try:
        tags = builder.render_tags(project.tags, values)
    except ValueError as exc:
        raise ConfigError(f"project {build.project}: {exc}") from None
    repository = f"{registry.host}/{project.image.repository}"
    labels = {
        "org.opencontainers.image.source": source.public_url(project.repo),
        "org.opencontainers.image.revision": build.commit,
        "org.opencontainers.image.created": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
    }
    if build.branch:
        labels["org.opencontainers.image.ref.name"] = build.branch
    return builder.BuildSpec(
        context_dir=builder.resolve_inside(checkout, project.build.context, "build context"),
        dockerfile=builder.resolve_inside(checkout, project.build.dockerfile, "dockerfile"),
        refs=[f"{repository}:{tag}" for tag in tags],
        target=project.build.target,
        args=dict(project.build.args),
        labels=labels,
        secrets=_secrets(project),
        network=project.build.network,
        timeout=project.build.timeout_seconds,
        registry=registry.host,
        credentials=registry.credentials(),
    )


def _registry_digest(config: Config, project: ProjectConfig, tags: list[str], pushed: str) -> str:
    """Ask the registry itself what every tag now points at; it must be what was pushed."""
    with RegistryClient(config.registries[project.image.registry]) as client:
        for tag in tags:
            found = client.manifest_info(project.image.repository, tag).digest
            if found != pushed:
                raise RegistryError(f"{client.host}/{project.image.repository}:{tag} points at {found}, "
                                    f"but the push reported {pushed}")
    return pushed


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
    try:
        sink(f"checking out {build.commit} ({build.ref}) from {source.public_url(project.repo)}")
        checkout = source.checkout(config.data_dir, build.project, project, build.commit,
                                   workdir / "src")
        if skipped := _path_filter(project, build, checkout, sink):
            sink(f"skipped: {skipped.reason}")
            return skipped
        spec = _spec(config, project, build, checkout)
        engine = builder.pick_engine(config.docker.hosts, config.docker.cli, spread=build_id)
        with db.session() as session:
            builds.record_progress(session, build_id, engine=engine.name, builder_mode=engine.mode,
                                   build_args=spec.args)
        built = builder.build_and_push(engine, spec, sink, workdir / "tmp", should_stop)
        tags = [ref.rsplit(":", 1)[1] for ref in spec.refs]
        digest = _registry_digest(config, project, tags, built.digest)
        repository = f"{spec.registry}/{project.image.repository}"
        sink(f"pushed {repository}@{digest}; the registry reports it for tags {', '.join(tags)}")
        return BuildOutcome(digest, f"{repository}@{digest}", tags, built.size)
    except PipelineError as exc:
        sink(f"error: {exc.message}")
        raise
    except Exception as exc:  # a bug must still end the build with a readable error
        log.exception("build %s crashed", build_id)
        sink(f"internal error: {exc!r}")
        raise BuildError(f"internal error while building: {exc!r}") from exc
    finally:
        sink.flush()
        shutil.rmtree(workdir, ignore_errors=True)
