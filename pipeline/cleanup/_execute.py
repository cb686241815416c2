"""Working a cleanup plan: each image to delete is checked again and deleted under the locks of
everything that could be moving it, its build rows marked in the same transaction.

The check right before a delete runs with the locks the promoter's ``move-tag`` takes (one per
environment tag the digest would get), the build's tag lock, and the digest's build rows
locked (PostgreSQL; on SQLite the writer transaction serializes the same way). A promotion
asked for meanwhile waits for the rows and is then refused (``image_deleted_at``); one asked
for before is seen and keeps the image. Deletes go signatures first, then tags, then the
manifest, so a failure half-way leaves an image with its signatures, never the reverse.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from pipeline.cleanup._history import git_facts
from pipeline.cleanup._policy import Decision, Plan, plan
from pipeline.config import Config
from pipeline.errors import ConfigError, DeletesDisabled, LockBusy, PipelineError
from pipeline.promotion import build_location, environment_location, environment_tag
from pipeline.registry import (
    RegistryClient,
    RegistryTraits,
    delete_manifest,
    delete_signed_artifacts,
    delete_tag,
    list_tags,
)
from pipeline.store import Build, Database, locks, retention, utcnow

__all__ = ["DeletedImage", "ProjectCleanup", "clean_project", "plan_project"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeletedImage:
    digest: str
    build_ids: list[int]
    tags: list[str]
    signatures: list[str]


@dataclass
class ProjectCleanup:
    """One project's run: every decision (as finally taken), what was deleted, what stopped it."""

    project: str
    dry_run: bool
    decisions: list[Decision] = field(default_factory=list)
    deleted: list[DeletedImage] = field(default_factory=list)
    refused: str | None = None  # the registry does not allow deletes: said once, not retried
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        kept = sum(1 for d in self.decisions if d.action == "keep")
        return {
            "project": self.project,
            "dry_run": self.dry_run,
            "kept": kept,
            "deleted": len(self.decisions) - kept,
            "decisions": [d.to_dict() for d in self.decisions],
            "deleted_images": [d.__dict__ for d in self.deleted],
            "refused": self.refused,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
        }


def plan_project(db: Database, config: Config, project: str) -> Plan:
    """The project's plan from Git and the database as they are now."""
    policy = config.retention(project)
    facts = git_facts(config, project, policy.keep_commits)
    shared = _sharing_the_build_repository(config, project)
    with db.session() as session:
        images = retention.live_images(session, project)
        promoted = retention.kept_by_promotions(session, project, policy.keep_promotions)
        for digest, env in retention.ever_promoted(session, project, shared).items():
            promoted.setdefault(digest, f"ran in {env}, whose repository is the build repository (not cleaned)")
    return plan(project, images, facts, promoted, policy, utcnow())


def _sharing_the_build_repository(config: Config, project: str) -> list[str]:
    """Environments promoted into the build repository itself: what ran there stays, since
    environment repositories are never cleaned."""
    project_config = config.project(project)
    build = build_location(config, project_config).name
    return [env.name for env in project_config.environments if environment_location(config, env).name == build]


def clean_project(db: Database, config: Config, project: str, *, dry_run: bool) -> ProjectCleanup:
    """Plan the project's cleanup and, unless ``dry_run``, delete what it says (re-checked)."""
    started = time.monotonic()
    report = ProjectCleanup(project, dry_run)
    if not config.retention(project).enabled:
        report.errors.append(f"projects.{project}.cleanup.enabled is false: nothing planned")
        return report
    try:
        with locks.held(db, f"cleanup {project}", wait=0):
            planned = plan_project(db, config, project)
            report.decisions = list(planned.decisions)
            if not dry_run:
                _work(db, config, planned, report)
    except LockBusy:
        report.errors.append(f"another process is cleaning {project} now; left to it")
    report.seconds = time.monotonic() - started
    return report


def _work(db: Database, config: Config, planned: Plan, report: ProjectCleanup) -> None:
    location = build_location(config, config.project(planned.project))
    changed: dict[int, Decision] = {}
    with RegistryClient(location.registry) as client:
        traits = RegistryTraits(tags=list_tags(client, location.repository))  # learnt once for the run
        for digest, decisions in planned.deletions.items():
            try:
                outcome = _delete_image(
                    db, config, planned.project, client, location.repository, digest, decisions, traits
                )
            except DeletesDisabled as exc:
                report.refused = exc.message
                log.error("project %s: cleanup stopped: %s", planned.project, exc.message)
                break
            except PipelineError as exc:
                report.errors.append(f"{digest}: {exc.message}")
                log.warning("project %s: could not delete %s: %s", planned.project, digest, exc.message)
                continue
            if isinstance(outcome, str):
                for d in decisions:
                    changed[d.build_id] = Decision(
                        d.build_id, d.digest, d.commit, d.branch, d.tags, "keep", f"checked again: {outcome}"
                    )
            else:
                report.deleted.append(outcome)
    if report.refused is not None:  # nothing more was deleted: say so for every one left
        done = {d.digest for d in report.deleted}
        for digest, decisions in planned.deletions.items():
            if digest not in done:
                for d in decisions:
                    changed.setdefault(
                        d.build_id,
                        Decision(
                            d.build_id, d.digest, d.commit, d.branch, d.tags, "keep", "not deleted: " + report.refused
                        ),
                    )
    report.decisions = [changed.get(d.build_id, d) for d in report.decisions]


def _lock_names(config: Config, project: str, builds: list[Build]) -> list[str]:
    """The promoter's per-environment tag locks for this digest, and the build's tag lock."""
    project_config = config.project(project)
    names = {f"tags of {build_location(config, project_config).name}"}
    for env in project_config.environments:
        for build in builds:
            try:
                names.add(f"tag {environment_location(config, env).name}:{environment_tag(env, project, build)}")
            except ConfigError:
                continue  # a template this build cannot fill: no promotion of it can take that lock either
    return sorted(names)


def _delete_image(
    db: Database,
    config: Config,
    project: str,
    client: RegistryClient,
    repository: str,
    digest: str,
    decisions: list[Decision],
    traits: RegistryTraits,
) -> DeletedImage | str:
    """Delete one image under the locks, or say why the check right before kept it."""
    wait = float(config.worker.lease_seconds)
    with db.session() as session:
        names = _lock_names(config, project, retention.images_of_digest(session, project, digest))
    with db.session(immediate=True) as session:
        for name in names:
            locks.fence(session, name, wait)
        builds = retention.images_of_digest(session, project, digest, lock=True)
        if why := retention.kept_by_promotions(session, project, config.retention(project).keep_promotions, digest):
            return why[digest]
        if env := retention.ever_promoted(session, project, _sharing_the_build_repository(config, project)).get(digest):
            return f"ran in {env}, whose repository is the build repository (not cleaned)"
        planned = {d.build_id for d in decisions}
        if newer := [b.id for b in builds if b.id not in planned and b.image_deleted_at is None]:
            return f"build {newer[0]} made the same digest since the plan"
        tags = sorted({str(t) for b in builds for t in b.tags or ()})
        if traits.tags is not None:
            tags = [t for t in tags if t in traits.tags]
        at_digest = [t for t in tags if (found := client.find_manifest(repository, t)) and found.digest == digest]
        artifacts = delete_signed_artifacts(client, repository, digest, traits)
        for tag in at_digest if traits.tags_alone else ():
            if delete_tag(client, repository, tag) == "with-manifest":  # 2.8: the manifest delete takes them
                traits.tags_alone = False
        delete_manifest(client, repository, digest)  # False when gone already (deleted by hand): marked all the same
        retention.mark_image_deleted(session, [b.id for b in builds])
    log.info("project %s: deleted %s@%s (builds %s)", project, repository, digest, sorted(planned))
    return DeletedImage(digest, sorted(planned), at_digest, artifacts.tags + artifacts.referrers)
