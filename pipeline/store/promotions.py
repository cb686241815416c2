"""Queries on promotions, environment holds and rejected digests. Functions never commit."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from pipeline.errors import NotFound
from pipeline.store import jobs, wakeups
from pipeline.store.jobs import Job
from pipeline.store.pages import Before, newest_first
from pipeline.store.tables import ARRIVED, Build, EnvironmentHold, Promotion, RejectedDigest, literal_in, utcnow

__all__ = [
    "PromotionFilter",
    "abandon",
    "active_hold",
    "add_promotion",
    "awaiting_merge",
    "current",
    "get_promotion",
    "list_promotions",
    "newest_succeeded",
    "place_hold",
    "promotions_of_digest",
    "record_steps",
    "reject_digest",
    "rejection",
    "release_hold",
    "resume",
    "succeeded_build_with_digest",
    "was_promoted",
]


def add_promotion(session: Session, **values: Any) -> Promotion:
    row = Promotion(**values)
    session.add(row)
    session.flush()
    set_committed_value(row, "verification", None)  # known: none yet (readable after the session ends)
    wakeups.announce(session, "promotions")
    return row


def get_promotion(session: Session, promotion_id: int) -> Promotion:
    row = session.get(Promotion, promotion_id)
    if row is None:
        raise NotFound(f"no promotion with id {promotion_id}")
    return row


def newest_succeeded(project: Any, environment: Any) -> Select[int]:
    """The id of the promotion an environment runs: its newest succeeded one. The one definition,
    for ``current`` and for the matrix (``store.matrix``), which gives it columns, not values."""
    return (
        select(Promotion.id)
        .where(
            Promotion.project == project, Promotion.environment == environment, literal_in(Promotion.status, ARRIVED)
        )
        .order_by(Promotion.id.desc())
        .limit(1)
    )


def current(session: Session, project: str, environment: str) -> Promotion | None:
    """The promotion whose digest the environment runs."""
    return session.scalars(
        select(Promotion).where(Promotion.id == newest_succeeded(project, environment).scalar_subquery())
    ).first()


def was_promoted(session: Session, project: str, environment: str, digest: str) -> bool:
    """Did ``digest`` ever arrive in ``environment`` (the test a ``requires`` gate asks)?"""
    stmt = (
        select(Promotion.id)
        .where(
            Promotion.project == project,
            Promotion.environment == environment,
            Promotion.digest == digest,
            Promotion.status == "succeeded",
        )
        .limit(1)
    )
    return session.scalar(stmt) is not None


def succeeded_build_with_digest(session: Session, project: str, digest: str) -> Build | None:
    stmt = (
        select(Build)
        .where(Build.project == project, Build.digest == digest, Build.status == "succeeded")
        .order_by(Build.id)
        .limit(1)
    )
    return session.scalars(stmt).first()


def promotions_of_digest(session: Session, digest: str) -> list[Promotion]:
    return list(session.scalars(select(Promotion).where(Promotion.digest == digest).order_by(Promotion.id)))


@dataclass(frozen=True)
class PromotionFilter:
    project: str | None = None
    environment: str | None = None
    status: str | None = None
    digest: str | None = None
    actor: str | None = None
    trigger: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None


def list_promotions(
    session: Session, where: PromotionFilter, *, limit: int, before: Before | None = None
) -> list[Promotion]:
    """Newest first, keyset-paginated (``pages``) so pages stay stable while promotions are added."""
    stmt = select(Promotion)
    for column in ("project", "environment", "status", "digest", "actor", "trigger"):
        if (value := getattr(where, column)) is not None:
            stmt = stmt.where(getattr(Promotion, column) == value)
    return list(
        session.scalars(newest_first(stmt, Promotion, since=where.since, until=where.until, before=before, limit=limit))
    )


def awaiting_merge(session: Session) -> list[Promotion]:
    return list(session.scalars(select(Promotion).where(Promotion.status == "awaiting_merge").order_by(Promotion.id)))


def resume(session: Session, promotion_id: int, steps: list[dict[str, Any]]) -> None:
    """Back to the queue after its pull request was merged; the worker runs the steps left."""
    session.execute(
        update(Promotion)
        .where(Promotion.id == promotion_id, Promotion.status == "awaiting_merge")
        .values(status="pending", steps=steps, worker=None, not_before=None, error=None)
    )
    wakeups.announce(session, "promotions")


def abandon(session: Session, promotion_id: int, error: str) -> None:
    session.execute(
        update(Promotion)
        .where(Promotion.id == promotion_id, Promotion.status == "awaiting_merge")
        .values(status="failed", error=error, finished_at=utcnow())
    )


def record_steps(session: Session, job: Job, steps: list[dict[str, Any]]) -> None:
    """What the promotion has done so far, visible while it runs; only its claim's holder
    writes it (``LeaseLost`` otherwise)."""
    jobs.progress(session, job, steps=steps)


def active_hold(session: Session, project: str, environment: str) -> EnvironmentHold | None:
    stmt = (
        select(EnvironmentHold)
        .where(
            EnvironmentHold.project == project,
            EnvironmentHold.environment == environment,
            EnvironmentHold.released_at.is_(None),
        )
        .order_by(EnvironmentHold.id.desc())
        .limit(1)
    )
    return session.scalars(stmt).first()


def place_hold(
    session: Session, project: str, environment: str, *, actor: str, reason: str, promotion_id: int | None
) -> EnvironmentHold:
    """Hold the environment (a second hold while one is active just keeps the first)."""
    if existing := active_hold(session, project, environment):
        return existing
    hold = EnvironmentHold(
        project=project, environment=environment, actor=actor, reason=reason, promotion_id=promotion_id
    )
    session.add(hold)
    session.flush()
    return hold


def release_hold(session: Session, project: str, environment: str, *, actor: str) -> EnvironmentHold | None:
    """Lift the active hold; ``None`` when there was none (releasing is idempotent)."""
    hold = active_hold(session, project, environment)
    if hold is not None:
        hold.released_at, hold.released_by = utcnow(), actor
        session.flush()
    return hold


def rejection(session: Session, digest: str) -> RejectedDigest | None:
    return session.get(RejectedDigest, digest)


def reject_digest(session: Session, digest: str, *, actor: str, reason: str) -> RejectedDigest:
    """Mark a digest never to be promoted again; rejecting it twice keeps the first reason."""
    if existing := rejection(session, digest):
        return existing
    row = RejectedDigest(digest=digest, actor=actor, reason=reason)
    session.add(row)
    session.flush()
    return row
