"""Asking for promotions: by hand, automatically after a build or an arrival, and rollbacks.

Every request becomes a row, including the ones the policy refuses (status ``rejected``,
with the reason), so the history shows what was asked and why it did not happen.
"""

from __future__ import annotations

import fnmatch

from sqlalchemy.orm import Session

from pipeline import notify
from pipeline.config import Config, EnvironmentConfig, ProjectConfig
from pipeline.errors import Conflict, InvalidRequest, NotFound
from pipeline.promotion._policy import refusal
from pipeline.promotion._rollback import rollback_target
from pipeline.store import Build, EnvironmentHold, Promotion, RejectedDigest, builds, promotions, utcnow
from pipeline.types import is_digest

__all__ = [
    "queue_auto_after_build",
    "queue_auto_after_promotion",
    "reject_digest",
    "release_environment",
    "request_promotion",
    "request_rollback",
]


def _build_for(session: Session, project: str, digest: str | None, build_id: int | None) -> Build:
    """The succeeded build that made the digest: promotions move what this service built."""
    if (digest is None) == (build_id is None):
        raise InvalidRequest("give exactly one of digest or build_id")
    if build_id is not None:
        build = builds.get_build(session, build_id)
        if build.project != project:
            raise InvalidRequest(f"build {build_id} belongs to project {build.project}, not {project}")
        if build.status != "succeeded" or not build.digest:
            raise InvalidRequest(f"build {build_id} is {build.status}; only a succeeded build has a digest to promote")
        return build
    assert digest is not None
    if not is_digest(digest):
        raise InvalidRequest(f"digest must look like sha256:<64 lowercase hex>, got {digest[:80]!r}")
    found = promotions.succeeded_build_with_digest(session, project, digest)
    if found is None:
        raise InvalidRequest(f"no succeeded build of {project} produced {digest}; promotions move built digests only")
    return found


def _add(
    session: Session,
    project: ProjectConfig,
    env: EnvironmentConfig,
    build: Build,
    *,
    digest: str,
    actor: str,
    reason: str,
    trigger: str,
    restores_id: int | None = None,
) -> Promotion:
    row = promotions.add_promotion(
        session,
        project=build.project,
        environment=env.name,
        digest=digest,
        build_id=build.id,
        actor=actor,
        reason=reason,
        trigger=trigger,
        restores_id=restores_id,
        status="pending",
    )
    if refused := refusal(session, project, row):
        row.status, row.error, row.finished_at = "rejected", refused, utcnow()
        session.flush()
    return row


def request_promotion(
    session: Session,
    config: Config,
    project: str,
    environment: str,
    *,
    digest: str | None = None,
    build_id: int | None = None,
    actor: str,
    reason: str = "",
    trigger: str = "manual",
) -> Promotion:
    """Queue a promotion of a built digest; a refused one is recorded ``rejected`` and returned."""
    project_config = config.project(project)
    env = project_config.environment(environment)
    build = _build_for(session, project, digest, build_id)
    assert build.digest is not None
    row = _add(session, project_config, env, build, digest=build.digest, actor=actor, reason=reason, trigger=trigger)
    notify.promotion_requested(session, config, row)
    return row


def request_rollback(
    session: Session,
    config: Config,
    project: str,
    environment: str,
    *,
    actor: str,
    reason: str = "",
    hold_reason: str | None = None,
) -> Promotion:
    """Promote what ran before (the newest earlier digest that is not rejected, the skipped ones
    named in the reason), and hold the environment so automation cannot undo it (``hold_reason``
    says why on the hold, as a failed verification does)."""
    project_config = config.project(project)
    env = project_config.environment(environment)
    now_running = promotions.current(session, project, environment)
    if now_running is None:
        raise Conflict(f"{project}/{environment} has never had a promotion; there is nothing to roll back")
    if now_running.rollback_to_id is None:
        raise Conflict(
            f"{project}/{environment} runs {now_running.digest} from promotion {now_running.id} "
            "and nothing ran before it; there is nothing to roll back to"
        )
    target = rollback_target(session, promotions.get_promotion(session, now_running.rollback_to_id))
    restored = target.restored
    if restored is None:
        raise Conflict(
            f"{project}/{environment} runs {now_running.digest} and every digest that ran before it was "
            f"rejected ({target.note().removeprefix('skipped rejected ')}); there is nothing to roll back to"
        )
    build = _build_for(session, project, restored.digest, None)
    text = "; ".join(
        part
        for part in (reason or f"roll back from {now_running.digest} (promotion {now_running.id})", target.note())
        if part
    )
    row = _add(
        session,
        project_config,
        env,
        build,
        digest=restored.digest,
        actor=actor,
        reason=text,
        trigger="rollback",
        restores_id=restored.id,
    )
    if row.status != "rejected":
        promotions.place_hold(
            session,
            project,
            environment,
            actor=actor,
            promotion_id=row.id,
            reason=f"{hold_reason}; rollback by promotion {row.id}"
            if hold_reason
            else f"rollback by promotion {row.id}",
        )
    notify.promotion_requested(session, config, row)
    return row


def release_environment(
    session: Session, config: Config, project: str, environment: str, *, actor: str
) -> EnvironmentHold:
    config.project(project).environment(environment)
    hold = promotions.release_hold(session, project, environment, actor=actor)
    if hold is None:
        raise NotFound(f"{project}/{environment} is not held")
    notify.environment_released(session, config, hold)
    return hold


def reject_digest(session: Session, digest: str, *, actor: str, reason: str) -> RejectedDigest:
    """Block a digest from every further promotion; pending ones are refused when a worker takes them."""
    if not is_digest(digest):
        raise InvalidRequest(f"digest must look like sha256:<64 lowercase hex>, got {digest[:80]!r}")
    if not reason.strip():
        raise InvalidRequest("say why the digest is rejected (reason): it is shown to whoever tries to promote it")
    return promotions.reject_digest(session, digest, actor=actor, reason=reason.strip())


def queue_auto_after_build(session: Session, config: Config, build: Build) -> list[Promotion]:
    """A succeeded build of a configured branch enters every first stage marked ``auto``."""
    project = config.projects.get(build.project)
    if project is None or not build.digest or build.branch is None:
        return []
    if not any(fnmatch.fnmatchcase(build.branch, glob) for glob in project.branches):
        return []
    return _queue_auto(
        session, config, project, build, build.digest, None, f"build {build.id} of {build.branch} succeeded"
    )


def queue_auto_after_promotion(session: Session, config: Config, arrived: Promotion) -> list[Promotion]:
    """A digest that arrived in one stage moves on to the stages after it marked ``auto``.

    A rollback does not cascade: rolling staging back must not roll prod back too.
    """
    project = config.projects.get(arrived.project)
    if project is None or arrived.trigger == "rollback" or arrived.build_id is None:
        return []
    build = builds.get_build(session, arrived.build_id)
    reason = f"arrived in {arrived.environment} by promotion {arrived.id}"
    return _queue_auto(session, config, project, build, arrived.digest, arrived.environment, reason)


def _queue_auto(
    session: Session,
    config: Config,
    project: ProjectConfig,
    build: Build,
    digest: str,
    after: str | None,
    reason: str,
) -> list[Promotion]:
    """Auto-promotions of ``digest`` into every stage marked ``auto`` that follows ``after``
    (None: the first stages), reported as any promotion request is."""
    queued = [
        _add(session, project, env, build, digest=digest, actor="auto", trigger="auto", reason=reason)
        for env in project.environments
        if env.auto and env.requires == after
    ]
    return _reported(session, config, queued)


def _reported(session: Session, config: Config, rows: list[Promotion]) -> list[Promotion]:
    """Automatic requests the policy refused at once are notified like manual ones."""
    for row in rows:
        notify.promotion_requested(session, config, row)
    return rows
