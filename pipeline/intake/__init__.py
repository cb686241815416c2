"""Intake: a Git host's push webhook becomes queued builds, or a recorded reason why not.

Nothing in a payload chooses what is cloned or built: the payload only names a repository,
which must match a configured project, and that project's config says where to clone from.
Order matters: the body is parsed, the project found (its secret is needed), the signature
verified, and only then are refs read and anything written.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from pipeline.config import Config, ProjectConfig
from pipeline.errors import BadSignature, NotFound, PayloadTooLarge
from pipeline.intake._accept import Accepted, accept_pushes
from pipeline.intake._event import Delivery as ParsedDelivery
from pipeline.intake._event import PushEvent
from pipeline.intake._matching import match_project, normalize_repo
from pipeline.intake._poll import poll_project
from pipeline.intake._providers import PROVIDERS
from pipeline.store import Database

__all__ = [
    "MAX_BODY_BYTES",
    "PROVIDERS",
    "Checked",
    "IntakeResult",
    "Pool",
    "PushEvent",
    "accept_pushes",
    "answer",
    "check",
    "normalize_repo",
    "open_pool",
    "poll_project",
    "receive",
    "receive_async",
    "record",
]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 25 * 1024 * 1024


@dataclass(frozen=True)
class IntakeResult:
    """What to answer the host: 202 when builds were queued, 200 with a reason otherwise."""

    status_code: int
    outcome: str
    reason: str = ""
    project: str | None = None
    build_ids: list[int] = field(default_factory=list)

    def body(self) -> dict[str, object]:
        return {"outcome": self.outcome, "reason": self.reason, "project": self.project, "build_ids": self.build_ids}


def receive(db: Database, config: Config, provider: str, headers: Mapping[str, str], body: bytes) -> IntakeResult:
    """Handle one delivery; raises ``PipelineError`` subclasses for refusals (4xx)."""
    checked = check(config, provider, headers, body)
    if isinstance(checked, IntakeResult):
        return checked
    return record(db, checked)


@dataclass(frozen=True)
class Checked:
    """A delivery whose signature verified, with its ref updates read: what is left is to record it."""

    name: str
    project: ProjectConfig
    delivery: ParsedDelivery
    pushes: list[PushEvent]
    body_sha256: str

    def columns(self) -> dict[str, str]:
        """The delivery row's identifying columns, cut to their lengths."""
        d = self.delivery
        return {
            "provider": d.provider,
            "delivery_id": d.delivery_id[:100],
            "hook_id": d.hook_id[:100],
            "event": d.event[:50],
            "repository": d.repository[:500],
            "body_sha256": self.body_sha256,
        }

    @property
    def not_push(self) -> str:
        return "" if self.delivery.kind == "push" else f"event {self.delivery.event!r} is not handled"


def check(config: Config, provider: str, headers: Mapping[str, str], body: bytes) -> Checked | IntakeResult:
    """Everything before the database: parse, find the project, verify, read the pushes.

    Returns the answer itself when nothing is to be recorded (a ping); raises for refusals.
    """
    host = PROVIDERS.get(provider)
    if host is None:
        raise NotFound(f"unknown webhook provider {provider!r}; supported: {', '.join(PROVIDERS)}")
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"webhook body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}")
    headers = {k.lower(): v for k, v in headers.items()}
    delivery = host.parse(headers, body)
    name = match_project(config.projects, delivery.repository_urls, delivery.full_name)
    if name is None:
        raise NotFound(f"repository {delivery.repository[:200]!r} matches no configured project")
    project = config.projects[name]
    _verify(name, project, delivery, headers, body)
    if delivery.kind == "ping":
        return IntakeResult(200, "pong", "webhook reaches the service and its signature verifies", name)
    pushes = host.pushes(delivery) if delivery.kind == "push" else []
    return Checked(name, project, delivery, pushes, hashlib.sha256(delivery.signed_body).hexdigest())


def _verify(
    name: str, project: ProjectConfig, delivery: ParsedDelivery, headers: Mapping[str, str], body: bytes
) -> None:
    if project.allow_unsigned:
        return
    secret = project.webhook_secret()
    if secret is None:
        where = project.webhook_secret_file or project.webhook_secret_env or "webhook_secret_env"
        log.error("project %s: webhook refused, no secret (set %s)", name, where)
        raise BadSignature(f"project {name!r} has no webhook secret configured; refusing unsigned pushes")
    try:
        PROVIDERS[delivery.provider].verify(delivery, headers, body, secret)
    except BadSignature as exc:
        log.warning(
            "project %s: %s delivery %s refused: %s", name, delivery.provider, delivery.delivery_id[:100], exc.message
        )
        raise


def record(db: Database, checked: Checked) -> IntakeResult:
    """Record a checked delivery in one transaction and queue its builds (the synchronous path)."""
    with db.session() as session:
        accepted = accept_pushes(
            session,
            checked.name,
            checked.project,
            checked.pushes,
            trigger="webhook",
            reason=checked.not_push,
            **checked.columns(),
        )
    return answer(checked, accepted)


def answer(checked: Checked, accepted: Accepted) -> IntakeResult:
    """What to answer the host for a recorded delivery (logged, as every delivery is)."""
    log.info(
        "project %s: %s delivery %s %s %s",
        checked.name,
        checked.delivery.provider,
        checked.delivery.delivery_id[:100],
        accepted.outcome,
        accepted.reason,
    )
    code = 202 if accepted.outcome == "queued" else 200
    return IntakeResult(code, accepted.outcome, accepted.reason, checked.name, accepted.build_ids)


# the PostgreSQL fast path reads this module's functions, so it is imported once they exist
from pipeline.intake._async import Pool, open_pool, receive_async  # noqa: E402
