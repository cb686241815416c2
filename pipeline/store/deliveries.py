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


_TABLE = Delivery.__table__
# Built once: a statement of constant shape is compiled once and cached, its values bound per call.
_INSERT = {
    name: dialect.insert(_TABLE).on_conflict_do_nothing().returning(_TABLE.c.id)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}
_COLUMNS = (
    "provider",
    "delivery_id",
    "hook_id",
    "event",
    "repository",
    "project",
    "ref",
    "before",
    "after",
    "body_sha256",
    "outcome",
    "reason",
)


def insert_delivery(session: Session, **values: Any) -> int | None:
    """Insert a delivery row; ``None`` when an equal one was recorded before."""
    unknown = set(values) - set(_COLUMNS)
    if unknown:
        raise TypeError(f"unknown delivery columns {sorted(unknown)}")
    row = {column: values.get(column) for column in _COLUMNS}
    row["hook_id"] = row["hook_id"] or ""
    row["reason"] = row["reason"] or ""
    row["received_at"] = utcnow()
    connection = session.connection()
    return connection.execute(_INSERT[connection.dialect.name], row).scalar_one_or_none()


def has_any(session: Session, provider: str, hook_id: str) -> bool:
    stmt = select(Delivery.id).where(Delivery.provider == provider, Delivery.hook_id == hook_id).limit(1)
    return session.scalar(stmt) is not None
