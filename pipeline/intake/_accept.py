"""Which pushes build, and the poller's way into the one write path (``store.deliveries``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from pipeline.config import ProjectConfig
from pipeline.intake._event import PushEvent
from pipeline.intake._filters import needs_path_check, skip_reason
from pipeline.store import deliveries, utcnow
from pipeline.store.deliveries import DeliveryRecord, QueuedPush

__all__ = ["Accepted", "accept_pushes", "build_actor", "plan", "queued_pushes"]


@dataclass(frozen=True)
class Accepted:
    """What became of one delivery: ``duplicate``, ``queued`` (with build ids), ``coalesced`` or ``ignored``."""

    outcome: str
    reason: str = ""
    build_ids: list[int] = field(default_factory=list)


def plan(project: ProjectConfig, pushes: Sequence[PushEvent], given: str = "") -> tuple[list[PushEvent], str]:
    """The pushes that build, and why the others do not (``given`` when there are no pushes)."""
    reasons = [skip_reason(project, push) for push in pushes]
    wanted = [push for push, reason in zip(pushes, reasons, strict=True) if reason is None]
    skipped = "; ".join(r for r in reasons if r)
    if not pushes:
        skipped = given or "no ref updates in the push"
    return wanted, skipped


def queued_pushes(project: ProjectConfig, wanted: Sequence[PushEvent]) -> tuple[QueuedPush, ...]:
    return tuple(
        QueuedPush(p.ref, p.branch, p.after, p.before, needs_path_check(project, p), p.tag_object) for p in wanted
    )


def build_actor(trigger: str, delivery: Mapping[str, object]) -> str:
    """Who asked for a pushed build: ``poll``, or the provider and the delivery's id."""
    return "poll" if trigger == "poll" else f"{delivery['provider']} delivery {delivery['delivery_id']}"


def accept_pushes(
    session: Session,
    name: str,
    project: ProjectConfig,
    pushes: Sequence[PushEvent],
    *,
    trigger: str,
    provider: str,
    delivery_id: str,
    hook_id: str = "",
    event: str,
    repository: str | None = None,
    reason: str = "",
) -> Accepted:
    """Record a delivery the service made itself (a poll) and queue its pushes that pass the
    filters, in the caller's transaction: the same write path as a webhook's."""
    wanted, skipped = plan(project, pushes, reason)
    first = pushes[0] if pushes else None
    rec = DeliveryRecord(
        provider=provider,
        delivery_id=delivery_id,
        hook_id=hook_id,
        event=event,
        repository=repository,
        project=name,
        ref=first.ref if first else None,
        before=first.before if first else None,
        after=first.after if first else None,
        dedupe_key=f"{provider}/{hook_id}/{delivery_id}"[:400],
        outcome="queued" if wanted else "ignored",
        reason=skipped,
        status_code=202 if wanted else 200,
        now=utcnow(),
        pushes=queued_pushes(project, wanted),
        trigger=trigger,
        actor=build_actor(trigger, {"provider": provider, "delivery_id": delivery_id}),
        supersede_running=project.supersede_running,
    )
    recorded = deliveries.record(session, rec)
    if recorded.duplicate:
        return Accepted("duplicate", "this delivery was received before")
    if recorded.build_ids:
        return Accepted("queued", skipped, recorded.build_ids)
    if recorded.coalesced:
        return Accepted("coalesced", f"build {recorded.coalesced[0]} of the same commit is already queued or running")
    return Accepted("ignored", skipped)
