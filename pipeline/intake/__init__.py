"""Intake: a Git host's push webhook becomes a queued build, or a recorded reason why not.

Nothing in a payload chooses what is cloned or built: the payload only names a repository,
which must match a configured project, and that project's config says where to clone from.
Order matters: the body is parsed, the project found (its secret is needed), the signature
verified, and only then is anything written.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy.exc import IntegrityError

from pipeline.config import Config, ProjectConfig
from pipeline.errors import BadSignature, NotFound, PayloadTooLarge
from pipeline.intake import _github
from pipeline.intake._event import PushEvent
from pipeline.intake._matching import match_project, normalize_repo
from pipeline.store import Database, Delivery, builds, deliveries

__all__ = ["MAX_BODY_BYTES", "IntakeResult", "PROVIDERS", "normalize_repo", "receive"]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 25 * 1024 * 1024
PROVIDERS = ("github",)


@dataclass(frozen=True)
class IntakeResult:
    """What to answer the host: 202 when builds were queued, 200 with a reason otherwise."""

    status_code: int
    outcome: str
    reason: str = ""
    project: str | None = None
    build_ids: list[int] = field(default_factory=list)

    def body(self) -> dict[str, object]:
        return {
            "outcome": self.outcome,
            "reason": self.reason,
            "project": self.project,
            "build_ids": self.build_ids,
        }


def receive(
    db: Database, config: Config, provider: str, headers: Mapping[str, str], body: bytes
) -> IntakeResult:
    """Handle one delivery; raises ``PipelineError`` subclasses for refusals (4xx)."""
    if provider not in PROVIDERS:
        raise NotFound(f"unknown webhook provider {provider!r}; supported: {', '.join(PROVIDERS)}")
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"webhook body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}")
    headers = {k.lower(): v for k, v in headers.items()}
    delivery = _github.parse(headers, body)
    name = match_project(config.projects, delivery.repository_urls(), delivery.full_name())
    if name is None:
        shown = delivery.full_name() or next(iter(delivery.repository_urls()), "(none)")
        raise NotFound(f"repository {shown!r} matches no configured project")
    project = config.projects[name]
    _verify(name, project, headers, body)
    if delivery.event == "ping":
        return IntakeResult(200, "pong", "webhook reaches the service and its signature verifies", name)
    if delivery.event != "push":
        return IntakeResult(200, "ignored", f"event {delivery.event!r} is not handled", name)
    return _accept_push(db, name, project, delivery)


def _verify(name: str, project: ProjectConfig, headers: Mapping[str, str], body: bytes) -> None:
    secret = project.webhook_secret()
    if secret is None:
        log.error(
            "project %s: webhook refused, no secret (set the environment variable %s)",
            name,
            project.webhook_secret_env or "named by webhook_secret_env",
        )
        raise BadSignature(f"project {name!r} has no webhook secret configured; refusing unsigned pushes")
    try:
        _github.verify(headers, body, secret)
    except BadSignature as exc:
        log.warning("project %s: webhook refused: %s", name, exc.message)
        raise


def _skip_reason(project: ProjectConfig, push: PushEvent) -> str | None:
    if push.deleted:
        return f"{push.ref} was deleted; nothing to build"
    if push.branch is None:
        return f"{push.ref} is not a branch; only branch pushes are built"
    if not any(fnmatch.fnmatchcase(push.branch, glob) for glob in project.branches):
        return f"branch {push.branch!r} does not match the project's branches {project.branches}"
    return None


def _accept_push(
    db: Database, name: str, project: ProjectConfig, delivery: _github.GitHubDelivery
) -> IntakeResult:
    push = delivery.push()
    record = Delivery(
        provider="github",
        delivery_id=delivery.delivery_id,
        hook_id=delivery.hook_id,
        event=delivery.event,
        repository=delivery.full_name(),
        project=name,
        ref=push.ref,
        before=push.before,
        after=push.after,
        outcome="ignored",
    )
    try:
        with db.session() as session:
            if deliveries.find_delivery(session, "github", delivery.hook_id, delivery.delivery_id):
                return IntakeResult(200, "duplicate", "this delivery was received before", name)
            reason = _skip_reason(project, push)
            if reason is None:
                deliveries.record_delivery(session, record)
                build = builds.create_build(
                    session,
                    project=name,
                    commit=push.after,
                    ref=push.ref,
                    branch=push.branch,
                    trigger="webhook",
                    delivery_id=record.id,
                )
                record.outcome, record.build_ids = "queued", [build.id]
            else:
                record.reason = reason
                deliveries.record_delivery(session, record)
    except IntegrityError:
        return IntakeResult(200, "duplicate", "this delivery was received before", name)
    log.info("project %s: delivery %s %s: %s", name, delivery.delivery_id, record.outcome, record.reason)
    if record.outcome == "queued":
        return IntakeResult(202, "queued", f"build queued for {push.after[:12]}", name, record.build_ids)
    return IntakeResult(200, "ignored", record.reason, name)
