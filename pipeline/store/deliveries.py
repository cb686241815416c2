"""Webhook deliveries: what arrived and what we did with it."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.store.tables import Delivery

__all__ = ["find_delivery", "find_same_body", "has_any", "record_delivery"]


def find_delivery(session: Session, provider: str, hook_id: str, delivery_id: str) -> Delivery | None:
    stmt = select(Delivery).where(
        Delivery.provider == provider, Delivery.hook_id == hook_id, Delivery.delivery_id == delivery_id
    )
    return session.scalars(stmt).first()


def find_same_body(session: Session, project: str, body_sha256: str) -> Delivery | None:
    """A replay with a new delivery id but identical bytes (Gitea's "replay", Bitbucket retries)."""
    stmt = select(Delivery).where(Delivery.project == project, Delivery.body_sha256 == body_sha256)
    return session.scalars(stmt.limit(1)).first()


def has_any(session: Session, provider: str, hook_id: str) -> bool:
    stmt = select(Delivery.id).where(Delivery.provider == provider, Delivery.hook_id == hook_id).limit(1)
    return session.scalar(stmt) is not None


def record_delivery(session: Session, delivery: Delivery) -> Delivery:
    session.add(delivery)
    session.flush()
    return delivery
