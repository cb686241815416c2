"""What becomes of one delivery, decided before anything is written: a ``DeliveryRecord`` for
``store.deliveries`` to record, and the answer once it is recorded.

Order matters: the body is parsed, the project found (its secret is needed), the signature
verified, and only then are refs read. A refusal at any step is still logged (provider,
delivery id, event, project if matched, reason, status, size, address), never with a secret
or a signature value; the error is raised once the row is written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from pipeline.config import Config, ProjectConfig
from pipeline.errors import BadPayload, BadSignature, NotFound, PayloadTooLarge, PipelineError, UnsupportedMediaType
from pipeline.intake._accept import build_actor, plan, queued_pushes
from pipeline.intake._event import Delivery as ParsedDelivery
from pipeline.intake._event import PushEvent
from pipeline.intake._matching import match_project
from pipeline.intake._providers import PROVIDERS
from pipeline.store.deliveries import DeliveryRecord, Recorded

__all__ = ["MAX_BODY_BYTES", "Decision", "IntakeResult", "decide", "kept_headers", "refusal"]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 25 * 1024 * 1024

# What a stored body is redelivered with: the headers that say what the delivery is, and never
# one that authenticates it (X-Hub-Signature*, X-Gitlab-Token, Authorization).
_KEPT_HEADERS = frozenset(
    {
        "content-type",
        "user-agent",
        "x-github-event",
        "x-github-delivery",
        "x-github-hook-id",
        "x-github-hook-installation-target-type",
        "x-github-hook-installation-target-id",
        "x-gitlab-event",
        "x-gitlab-event-uuid",
        "x-gitlab-instance",
        "idempotency-key",
        "x-gitea-event",
        "x-gitea-event-type",
        "x-gitea-delivery",
        "x-forgejo-event",
        "x-forgejo-delivery",
        "x-gogs-event",
        "x-gogs-delivery",
        "x-event-key",
        "x-request-uuid",
        "x-request-id",
        "x-hook-uuid",
        "x-attempt-number",
        "x-pipeline-delivery",
    }
)
_DELIVERY_HEADERS = (
    "x-github-delivery",
    "idempotency-key",
    "x-gitlab-event-uuid",
    "x-gitea-delivery",
    "x-forgejo-delivery",
    "x-request-uuid",
    "x-request-id",
    "x-pipeline-delivery",
)
_EVENT_HEADERS = ("x-github-event", "x-gitlab-event", "x-gitea-event", "x-forgejo-event", "x-event-key")


def kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: v[:500] for k, v in headers.items() if k in _KEPT_HEADERS}


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


@dataclass(frozen=True)
class Decision:
    """The row to record, and what to answer (or raise) once it is recorded."""

    record: DeliveryRecord
    error: PipelineError | None = None

    def answer(self, recorded: Recorded) -> IntakeResult:
        rec = self.record
        shown = f"project {rec.project or '-'}: {rec.provider} delivery {rec.delivery_id[:100]}"
        if self.error is not None:
            log.warning("%s refused (%s): %s", shown, rec.outcome, self.error.message)
            raise self.error
        if recorded.duplicate:
            outcome, reason, code = "duplicate", "this delivery was received before", 200
        elif recorded.build_ids:
            outcome, reason, code = "queued", rec.reason, 202
        elif recorded.coalesced:
            outcome, code = "coalesced", 200
            reason = f"build {', '.join(map(str, recorded.coalesced))} of the same commit is already queued or running"
        else:
            outcome, reason, code = rec.outcome, rec.reason, rec.status_code
        if recorded.superseded:
            log.info("project %s: builds %s superseded by %s", rec.project, recorded.superseded, recorded.build_ids)
        log.info("%s %s %s", shown, outcome, reason)
        return IntakeResult(code, outcome, reason, rec.project, [*recorded.build_ids, *recorded.coalesced])


@dataclass
class _Seen:
    """What was learned about a delivery before it was refused."""

    provider: str
    delivery: ParsedDelivery | None = None
    project: str | None = None


def _outcome_of(exc: PipelineError, seen: _Seen) -> str:
    if isinstance(exc, BadSignature):
        return "bad_signature"
    if isinstance(exc, NotFound):
        return "unknown_repository" if seen.provider in PROVIDERS else "unknown_provider"
    if isinstance(exc, PayloadTooLarge):
        return "too_large"
    if isinstance(exc, UnsupportedMediaType):
        return "unsupported_media"
    if isinstance(exc, BadPayload):
        return "malformed"
    return "refused"


def refusal(
    provider: str,
    headers: Mapping[str, str],
    size: int,
    remote_addr: str | None,
    now: dt.datetime,
    exc: PipelineError,
    seen: _Seen | None = None,
) -> Decision:
    """The log row of a refused delivery: what could be read of it, and why it was refused."""
    seen = seen or _Seen(provider)
    parsed = seen.delivery
    delivery_id = parsed.delivery_id if parsed else next((headers[h] for h in _DELIVERY_HEADERS if h in headers), "")
    event = parsed.event if parsed else next((headers[h] for h in _EVENT_HEADERS if h in headers), "")
    record = DeliveryRecord(
        provider=provider[:20],
        delivery_id=delivery_id,
        hook_id=parsed.hook_id if parsed else "",
        event=event,
        repository=parsed.repository if parsed and parsed.names_repository else None,
        project=seen.project,
        outcome=_outcome_of(exc, seen),
        reason=exc.message[:1000],
        status_code=exc.status,
        size=size,
        remote_addr=remote_addr,
        now=now,
    )
    return Decision(record, exc)


def decide(
    config: Config,
    provider: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    remote_addr: str | None,
    now: dt.datetime,
    verify: bool = True,
) -> Decision:
    """Everything before the database; ``verify=False`` only for a redelivery of a stored body
    whose signature verified when it first arrived."""
    headers = {k.lower(): v for k, v in headers.items()}
    seen = _Seen(provider)
    try:
        return _decide(config, provider, headers, body, remote_addr, now, verify, seen)
    except PipelineError as exc:
        return refusal(provider, headers, len(body), remote_addr, now, exc, seen)


def _decide(
    config: Config,
    provider: str,
    headers: dict[str, str],
    body: bytes,
    remote_addr: str | None,
    now: dt.datetime,
    verify: bool,
    seen: _Seen,
) -> Decision:
    host = PROVIDERS.get(provider)
    if host is None:
        raise NotFound(f"unknown webhook provider {provider!r}; supported: {', '.join(PROVIDERS)}")
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"webhook body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}")
    delivery = seen.delivery = host.parse(headers, body)
    base = DeliveryRecord(
        provider=provider,
        delivery_id=delivery.delivery_id,
        hook_id=delivery.hook_id,
        event=delivery.event,
        repository=delivery.repository if delivery.names_repository else None,
        outcome="ignored",
        status_code=200,
        size=len(body),
        remote_addr=remote_addr,
        now=now,
    )
    if not delivery.names_repository and delivery.kind != "push":
        # an organisation's or a GitHub App's ping, or an event about no repository: no project,
        # so no secret to verify it with; answered 200 so the host does not show the hook failing
        what = "ping" if delivery.kind == "ping" else f"event {delivery.event!r}"
        return Decision(
            replace(
                base,
                outcome="pong" if delivery.kind == "ping" else "ignored",
                reason=f"{what} names no repository (an organisation or App hook): nothing to build",
            )
        )
    name = match_project(config.projects, delivery.repository_urls, delivery.full_name)
    if name is None:
        raise NotFound(f"repository {delivery.repository[:200]!r} matches no configured project")
    seen.project = name
    project = config.projects[name]
    if verify:
        _verify(name, project, delivery, headers, body)
    base = replace(base, project=name)
    if delivery.kind == "ping":
        return Decision(replace(base, outcome="pong", reason="webhook reaches the service and its signature verifies"))
    return Decision(_accepted(config, name, project, delivery, headers, body, base))


def _accepted(
    config: Config,
    name: str,
    project: ProjectConfig,
    delivery: ParsedDelivery,
    headers: Mapping[str, str],
    body: bytes,
    base: DeliveryRecord,
) -> DeliveryRecord:
    """The row of a verified delivery: its identity, its body for redelivery, its builds."""
    sha = hashlib.sha256(delivery.signed_body).hexdigest()
    if delivery.identified:
        key, window_start = f"{delivery.provider}/{delivery.hook_id}/{delivery.delivery_id}", None
    else:  # no id: the body's hash is the identity, within the dedupe window only
        window = config.intake.dedupe_window
        bucket = int(base.now.timestamp()) // window
        key, window_start = f"{delivery.provider}/body/{name}/{sha}/{bucket}", base.now - dt.timedelta(seconds=window)
    pushes: list[PushEvent] = PROVIDERS[delivery.provider].pushes(delivery) if delivery.kind == "push" else []
    given = "" if delivery.kind == "push" else f"event {delivery.event!r} is not handled"
    wanted, skipped = plan(project, pushes, given)
    first = pushes[0] if pushes else None
    return replace(
        base,
        dedupe_key=key[:400],
        window_start=window_start,
        body_sha256=sha,
        ref=first.ref if first else None,
        before=first.before if first else None,
        after=first.after if first else None,
        outcome="queued" if wanted else "ignored",
        reason=skipped,
        status_code=202 if wanted else 200,
        body=body,
        headers=kept_headers(headers),
        pushes=queued_pushes(project, wanted),
        actor=build_actor("webhook", {"provider": delivery.provider, "delivery_id": delivery.delivery_id}),
        supersede_running=project.supersede_running,
    )


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
    PROVIDERS[delivery.provider].verify(delivery, headers, body, secret)
