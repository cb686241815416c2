"""Webhook deliveries: what arrived and what we did with it.

A delivery is inserted once: a redelivery (same provider, hook and delivery id) or a replay
(same project and body bytes) hits a unique index and is reported as a duplicate. Doing that
in the insert itself, rather than looking first, keeps the hot path to one round trip and
leaves no window in which two copies of one delivery both get in.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from pipeline.store.tables import Delivery, utcnow

__all__ = ["has_any", "insert_delivery"]


def insert_delivery(session: Session, **values: Any) -> int | None:
    """Insert a delivery row; ``None`` when an equal one was recorded before."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    values.setdefault("received_at", utcnow())
    stmt = dialect.insert(Delivery).values(**values).on_conflict_do_nothing().returning(Delivery.id)
    return session.execute(stmt).scalar_one_or_none()


def has_any(session: Session, provider: str, hook_id: str) -> bool:
    stmt = select(Delivery.id).where(Delivery.provider == provider, Delivery.hook_id == hook_id).limit(1)
    return session.scalar(stmt) is not None
