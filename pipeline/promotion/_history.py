"""Answers to "what runs where, from which commit, promoted by whom, and what was before it"."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.orm import Session

from pipeline.config import Config, RegistryConfig, SigningConfig
from pipeline.errors import NotFound, PipelineError
from pipeline.promotion._leadtime import LeadTime, LeadTimes
from pipeline.promotion._rollback import Skipped, rollback_target
from pipeline.registry import RegistryClient
from pipeline.signing import DSSE_MEDIA_TYPE, attestation_tag, load_private_key, verify_attestation_manifest
from pipeline.store import Build, EnvironmentHold, Promotion, RejectedDigest, builds, matrix, promotions

__all__ = [
    "AttestationStatus",
    "EnvironmentState",
    "ImageLineage",
    "LeadTime",
    "attestation_status",
    "environment_matrix",
    "image_lineage",
]


_LEAD_TIMES = LeadTimes()


@dataclass(frozen=True)
class EnvironmentState:
    project: str
    environment: str
    registry: str
    repository: str
    current: Promotion | None
    build: Build | None
    previous: Promotion | None  # what a rollback would restore
    hold: EnvironmentHold | None
    waiting: int
    lead_time: LeadTime | None = None
    rejected: RejectedDigest | None = None  # the digest running now was rejected since it arrived
    skipped: tuple[Skipped, ...] = ()  # rejected digests a rollback would pass over to reach ``previous``


def environment_matrix(
    session: Session, config: Config, project: str | None = None, window_days: int = 30
) -> list[EnvironmentState]:
    """One entry per configured project and environment, in config order; seven statements
    however many cells (``store.matrix``), six while no cell has a new arrival (``LeadTimes``)."""
    names = [project] if project else list(config.projects)
    cells = [(name, env.name) for name in names for env in config.project(name).environments]
    running = matrix.current(session, cells)
    made = matrix.builds_by_id(session, {p.build_id for p in running.values() if p.build_id})
    before = matrix.promotions_by_id(session, {p.rollback_to_id for p in running.values() if p.rollback_to_id})
    held, waiting = matrix.holds(session, names), matrix.waiting(session, names)
    lead_times = _LEAD_TIMES.of(session, running, cells, window_days)
    rejected = matrix.rejections(session, {p.digest for p in [*running.values(), *before.values()]})
    states = []
    for name, environment in cells:
        env = config.project(name).environment(environment)
        current = running.get((name, environment))
        previous = before.get(current.rollback_to_id) if current and current.rollback_to_id else None
        skipped: list[Skipped] = []
        if previous is not None and previous.digest in rejected:  # rare: walk on, a lookup a step
            target = rollback_target(session, previous)
            previous, skipped = target.restored, target.skipped
        states.append(
            EnvironmentState(
                name,
                environment,
                config.registries[env.registry].host,
                env.repository,
                current,
                made.get(current.build_id) if current and current.build_id else None,
                previous,
                held.get((name, environment)),
                waiting.get((name, environment), 0),
                lead_times[(name, environment)],
                rejected.get(current.digest) if current else None,
                tuple(skipped),
            )
        )
    return states


@dataclass(frozen=True)
class ImageLineage:
    digest: str
    builds: list[Build]
    promotions: list[Promotion]
    rejection: Any
    environments: list[str]  # project/environment pairs that run it now
    provenance: dict[str, Any] | None = None  # the statement of the newest build that made it


def _provenance_of(made: list[Build]) -> dict[str, Any] | None:
    """``made`` is oldest first; the newest succeeded build with a statement speaks for the digest."""
    return next((b.provenance for b in reversed(made) if b.provenance and b.status == "succeeded"), None)


def image_lineage(session: Session, config: Config, digest: str) -> ImageLineage:
    """The build that made a digest and every environment it has been in."""
    made = builds.list_builds(session, builds.BuildFilter(digest=digest), limit=100)
    moved = promotions.promotions_of_digest(session, digest)
    if not made and not moved:
        raise NotFound(f"no build or promotion knows {digest}")
    arrived = {(p.project, p.environment) for p in moved if p.status == "succeeded"}
    running = [  # only where it ever arrived can it run now: one query per such environment
        f"{project}/{env.name}"
        for project, project_config in config.projects.items()
        for env in project_config.environments
        if (project, env.name) in arrived
        and (now := promotions.current(session, project, env.name)) is not None
        and now.digest == digest
    ]
    made = list(reversed(made))
    return ImageLineage(digest, made, moved, promotions.rejection(session, digest), running, _provenance_of(made))


@dataclass(frozen=True)
class AttestationStatus:
    reference: str
    present: bool
    layers: int = 0
    verified: bool | None = None  # None: not checked
    verified_layers: int = 0
    detail: str = ""


@functools.lru_cache(maxsize=4)
def _public_key(
    key_file: Path, stamp: tuple[int, int], password_sha256: str, password: bytes
) -> ec.EllipticCurvePublicKey:
    """The signing key's public half; scrypt costs ~64 MB and a fraction of a second, so once
    per key file version (``stamp``) and password."""
    return load_private_key(key_file, password).public_key()


def _signing_public_key(signing: SigningConfig) -> ec.EllipticCurvePublicKey:
    password = signing.password()
    stat = Path(signing.key_file).stat()
    return _public_key(
        Path(signing.key_file), (stat.st_mtime_ns, stat.st_size), hashlib.sha256(password).hexdigest(), password
    )


def _build_location(config: Config, build: Build) -> tuple[RegistryConfig, str] | None:
    """The registry and repository the build pushed to (from its recorded image reference)."""
    project = config.projects.get(build.project)
    if project is None or not build.image:
        return None
    host, _, repository = build.image.split("@", 1)[0].partition("/")
    registry = config.registries.get(project.image.registry)
    if registry is None or registry.host != host:
        registry = next((r for r in config.registries.values() if r.host == host), None)
    return (registry, repository) if registry is not None else None


def attestation_status(config: Config, lineage: ImageLineage) -> AttestationStatus | None:
    """Look at the digest's ``.att`` where its newest build pushed it; verify with the public key
    of ``signing.key_file``. A few small registry requests; registry trouble is reported, not raised."""
    made = next((b for b in reversed(lineage.builds) if b.status == "succeeded" and b.image), None)
    location = _build_location(config, made) if made is not None else None
    if location is None:
        return None
    registry, repository = location
    tag = attestation_tag(lineage.digest)
    reference = f"{registry.host}/{repository}:{tag}"
    try:
        with RegistryClient(registry) as client:
            try:
                found = client.manifest(repository, tag)
            except NotFound:
                return AttestationStatus(reference, present=False, detail="no .att tag")
            layers = [
                layer
                for layer in found.json().get("layers") or []
                if isinstance(layer, dict) and layer.get("mediaType") == DSSE_MEDIA_TYPE
            ]
            if config.signing is None:
                return AttestationStatus(
                    reference, True, len(layers), detail="no signing key configured to verify with"
                )
            try:
                key = _signing_public_key(config.signing)
            except (PipelineError, OSError) as exc:
                return AttestationStatus(
                    reference, True, len(layers), detail=f"not verified: {getattr(exc, 'message', exc)}"
                )

            def fetch(layer_digest: str) -> bytes:
                try:
                    return client.read_blob(repository, layer_digest)
                except NotFound:
                    return b""

            verified = verify_attestation_manifest(found.raw, fetch, lineage.digest, [key])
    except PipelineError as exc:
        return AttestationStatus(reference, present=False, detail=f"could not look: {exc.message}")
    return AttestationStatus(
        reference,
        True,
        len(layers),
        bool(verified),
        len(verified),
        f"{len(verified)} of {len(layers)} envelopes verify with {config.signing.key_file}",
    )
