"""Turning verified pushes into queued builds: shared by webhooks and the poller."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from pipeline.config import ProjectConfig
from pipeline.intake._event import PushEvent
from pipeline.intake._filters import needs_path_check, skip_reason
from pipeline.store import builds, deliveries, intake, utcnow

__all__ = ["Accepted", "accept_pushes", "build_actor", "plan"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Accepted:
    """What became of one delivery: ``duplicate``, ``queued`` (with build ids) or ``ignored``."""

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
    **delivery: object,
) -> Accepted:
    """Record the delivery and queue a build for every push that passes the filters.

    Written in the caller's transaction, so a push is either fully accepted (recorded and
    queued) or not at all. ``delivery`` holds the delivery row's identifying columns.
    """
    wanted, skipped = plan(project, pushes, str(delivery.pop("reason", "") or ""))
    if len(pushes) == 1 and len(wanted) == 1 and session.get_bind().dialect.name == "postgresql":
        return _one_round_trip(session, name, project, wanted[0], trigger, delivery)
    first = pushes[0] if pushes else None
    delivery_id = deliveries.insert_delivery(
        session,
        project=name,
        outcome="queued" if wanted else "ignored",
        reason=skipped,
        ref=first.ref if first else None,
        before=first.before if first else None,
        after=first.after if first else None,
        **delivery,
    )
    if delivery_id is None:
        return Accepted("duplicate", "this delivery was received before")
    queued: list[int] = []
    actor = build_actor(trigger, delivery)
    for push in wanted:
        build_id = builds.queue_build(
            session,
            project=name,
            commit=push.after,
            ref=push.ref,
            branch=push.branch,
            trigger=trigger,
            actor=actor,
            delivery_id=delivery_id,
            before_commit=push.before,
            check_paths=needs_path_check(project, push),
        )
        queued.append(build_id)
        if superseded := builds.supersede_older(session, name, push.ref, build_id, running=project.supersede_running):
            log.info("project %s: builds %s superseded by %s", name, superseded, build_id)
    return Accepted("queued" if queued else "ignored", skipped, queued)


def _one_round_trip(
    session: Session, name: str, project: ProjectConfig, push: PushEvent, trigger: str, delivery: dict[str, object]
) -> Accepted:
    """The common case (one branch push that builds) on PostgreSQL, as a single statement.

    One statement is atomic by itself: when it opens the transaction, it runs in autocommit,
    which saves the BEGIN and COMMIT round trips as well.
    """
    if not session.in_transaction():
        session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    recorded = intake.record_single_push(
        session,
        now=utcnow(),
        supersede_running=project.supersede_running,
        project=name,
        ref=push.ref,
        before=push.before,
        after=push.after,
        branch=push.branch,
        check_paths=needs_path_check(project, push),
        trigger=trigger,
        actor=build_actor(trigger, delivery),
        provider=delivery["provider"],
        delivery_id=delivery["delivery_id"],
        hook_id=delivery.get("hook_id") or "",
        event=delivery["event"],
        repository=delivery.get("repository"),
        body_sha256=delivery.get("body_sha256"),
    )
    if recorded.delivery_id is None:
        return Accepted("duplicate", "this delivery was received before")
    if recorded.superseded:
        log.info("project %s: builds %s superseded by %s", name, recorded.superseded, recorded.build_id)
    return Accepted("queued", "", [recorded.build_id] if recorded.build_id is not None else [])
