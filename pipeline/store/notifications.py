"""The outbox: commit statuses, deployment reports and notifications waiting to be delivered.

Rows are added in the caller's transaction (the one that records the change they report) and
claimed, leased and finished through ``store.jobs`` like builds and promotions, with the
``NOTIFICATIONS`` queue kind. Functions never commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from pipeline.errors import NotFound
from pipeline.store import wakeups
from pipeline.store.pages import Before
from pipeline.store.tables import Delivery, Notification, utcnow
from pipeline.types import GIT_HOSTS

__all__ = [
    "STATUSES",
    "NotificationFilter",
    "add_notification",
    "counts",
    "earlier_result",
    "get_notification",
    "has_rows",
    "list_notifications",
    "webhook_provider",
]

STATUSES = ("pending", "running", "delivered", "dead")


_INSERT = insert(Notification)  # Core: one statement, no unit of work to flush


def add_notification(
    session: Session,
    *,
    kind: str,
    target: str,
    subject: str,
    event: str,
    project: str,
    payload: dict[str, Any],
    environment: str | None = None,
    build_id: int | None = None,
    promotion_id: int | None = None,
) -> None:
    """Queue one delivery; its worker is woken when the transaction commits."""
    values = {
        "kind": kind,
        "target": target,
        "subject": subject,
        "event": event,
        "project": project,
        "environment": environment,
        "build_id": build_id,
        "promotion_id": promotion_id,
        "payload": payload,
        "status": "pending",
        "attempts": 0,
        "epoch": 0,
        "created_at": utcnow(),
    }
    session.execute(_INSERT, values)
    wakeups.announce(session, "notifications")


def get_notification(session: Session, notification_id: int) -> Notification:
    row = session.get(Notification, notification_id)
    if row is None:
        raise NotFound(f"no notification with id {notification_id}")
    return row


def has_rows(session: Session, target: str, subject: str) -> bool:
    stmt = select(Notification.id).where(Notification.target == target, Notification.subject == subject).limit(1)
    return session.scalar(stmt) is not None


def earlier_result(session: Session, row: Notification, key: str) -> Any:
    """``key`` from the result of an earlier delivered row of the same target and subject: the
    deployment a promotion's later deployment statuses belong to."""
    stmt = (
        select(Notification.result)
        .where(
            Notification.target == row.target,
            Notification.subject == row.subject,
            Notification.id < row.id,
            Notification.status == "delivered",
        )
        .order_by(Notification.id.desc())
    )
    for result in session.scalars(stmt):
        if result and key in result:
            return result[key]
    return None


@dataclass(frozen=True)
class NotificationFilter:
    status: str | None = None
    project: str | None = None
    target: str | None = None
    kind: str | None = None
    build_id: int | None = None
    promotion_id: int | None = None


def list_notifications(
    session: Session, where: NotificationFilter, *, limit: int, before: Before | None = None
) -> list[Notification]:
    """Newest first, keyset-paginated by id."""
    stmt = select(Notification)
    for column in ("status", "project", "target", "kind", "build_id", "promotion_id"):
        if (value := getattr(where, column)) is not None:
            stmt = stmt.where(getattr(Notification, column) == value)
    if before is not None:
        stmt = stmt.where(Notification.id < before.id)
    return list(session.scalars(stmt.order_by(Notification.id.desc()).limit(limit)))


def counts(session: Session) -> dict[str, int]:
    """Rows per status: how far behind delivery is, and how many are dead letters."""
    stmt = select(Notification.status, func.count()).group_by(Notification.status)
    found = {status: 0 for status in STATUSES}
    found.update({status: int(n) for status, n in session.execute(stmt)})
    return found


def webhook_provider(session: Session, project: str, delivery_id: int | None) -> str | None:
    """The Git host whose webhook queued a build: its own delivery's provider, else the one of
    the project's newest delivery from a host (a build asked for through the API or found by
    the poller, whose deliveries are ``poll``)."""
    if delivery_id is not None:
        found = session.scalar(select(Delivery.provider).where(Delivery.id == delivery_id))
        if found in GIT_HOSTS:
            return found
    stmt = (
        select(Delivery.provider)
        .where(Delivery.project == project, Delivery.provider.in_(GIT_HOSTS))
        .order_by(Delivery.id.desc())
        .limit(1)
    )
    return session.scalar(stmt)
