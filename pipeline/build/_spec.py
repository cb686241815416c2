"""What to build, resolved from the config and the build row before BuildKit is asked: the
spec, the build to take cache from, and which tags are the build's own and which move."""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from pipeline import builder, source
from pipeline.config import BuildConfig, Config, ProjectConfig
from pipeline.errors import ConfigError
from pipeline.store import Build, Database, builds, utcnow

__all__ = ["Tags", "build_inputs", "build_spec", "previous_build", "reusable_build", "split_tags"]

# A tag rendered from one of these names one commit or one build: it never points elsewhere.
# Every other tag (``latest``, ``{branch}``, ``{semver_minor}``) moves from build to build,
# and only ever to a newer build of the same ref. ``{tag}`` and ``{semver}`` name a release.
_IMMUTABLE = {"sha", "short_sha", "build_id", "timestamp", "tag", "semver"}
_FIELD = re.compile(r"{([^}]*)}")


@dataclass(frozen=True)
class Tags:
    """The build's tags in the project's order, and which of them move."""

    all: list[str]
    moving: list[str]

    @property
    def immutable(self) -> list[str]:
        return [t for t in self.all if t not in self.moving]


def split_tags(templates: list[str], values: dict[str, str | None], *, default_branch: bool) -> Tags:
    """Render the tags; the builder pushes the immutable ones, the record step moves the rest.

    A build needs at least one immutable tag to push by: when the templates give none (only
    ``latest``, say), the commit's SHA is added.
    """
    rendered = builder.render_tags(templates, values, default_branch=default_branch)
    fixed = [t for t in templates if _IMMUTABLE & set(_FIELD.findall(t))]
    # render_tags falls back to the SHA when no template applies: the SHA is immutable too
    immutable = set(builder.render_tags(fixed, values, default_branch=default_branch))
    if not immutable & set(rendered):
        rendered.append(str(values["sha"]))
        immutable.add(str(values["sha"]))
    return Tags(rendered, [t for t in rendered if t not in immutable])


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


def previous_build(db: Database, project: ProjectConfig, build: Build) -> Build | None:
    """The build to take cache and comparisons from: same ref first, else the default branch."""
    refs = list(dict.fromkeys([build.ref, f"refs/heads/{project.default_branch}"]))
    with db.session() as session:
        return builds.last_succeeded(session, build.project, refs, build.id)


def build_inputs(config: Config, project: ProjectConfig, build: Build) -> tuple[str, Tags]:
    """The fingerprint of what goes into the image besides the commit (dockerfile, context,
    target, rendered args, platforms) and the build's tags: two builds of one commit with equal
    fingerprints make the same image, so the later one may re-tag the earlier one's digest."""
    options = project.build_for(build.branch)
    tag = build.ref.removeprefix("refs/tags/") if build.ref.startswith("refs/tags/") else None
    values = builder.template_values(
        project=build.project, branch=build.branch, tag=tag, sha=build.commit, build_id=build.id, now=utcnow()
    )
    try:
        tags = split_tags(project.tags, values, default_branch=build.branch == project.default_branch)
    except ValueError as exc:
        raise ConfigError(f"project {build.project}: {exc}") from None
    inputs = {
        "dockerfile": options.dockerfile,
        "context": options.context,
        "target": options.target,
        "args": builder.render_args(options.args, values),
        "platforms": sorted(options.platforms),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest(), tags


def reusable_build(db: Database, build: Build, inputs_sha256: str) -> Build | None:
    """A succeeded build of the same project, commit and inputs whose image is in the registry."""
    with db.session() as session:
        builds.record_progress(session, build.id, inputs_sha256=inputs_sha256)
        return builds.same_image(session, build.project, build.commit, inputs_sha256, build.id)


def build_spec(
    config: Config, project: ProjectConfig, build: Build, checkout: Path, previous: Build | None
) -> tuple[builder.BuildSpec, Tags]:
    """The spec BuildKit gets (pushing the immutable tags only) and all of the build's tags."""
    now = utcnow()
    registry = config.registries[project.image.registry]
    options = project.build_for(build.branch)
    tag = build.ref.removeprefix("refs/tags/") if build.ref.startswith("refs/tags/") else None
    values = builder.template_values(
        project=build.project, branch=build.branch, tag=tag, sha=build.commit, build_id=build.id, now=now
    )
    try:
        tags = split_tags(project.tags, values, default_branch=build.branch == project.default_branch)
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
    spec = builder.BuildSpec(
        context_dir=builder.resolve_inside(checkout, options.context, "build context"),
        dockerfile=builder.resolve_inside(checkout, options.dockerfile, "dockerfile"),
        refs=[f"{repository}:{t}" for t in tags.immutable],
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
        cache_ref=options.cache_ref,
    )
    return spec, tags
