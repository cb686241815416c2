"""Config reloads asked for, newest last: how processes learn that they should read their file again."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pipeline.store.tables import ConfigReload

__all__ = ["latest", "latest_id", "record"]


def record(session: Session, *, fingerprint: str, actor: str, summary: str) -> ConfigReload:
    row = ConfigReload(fingerprint=fingerprint, actor=actor, summary=summary)
    session.add(row)
    session.flush()
    return row


def latest_id(session: Session) -> int:
    """0 before the first reload; one index lookup, asked every few seconds by each process."""
    return int(session.scalar(select(func.max(ConfigReload.id))) or 0)


def latest(session: Session) -> ConfigReload | None:
    return session.scalars(select(ConfigReload).order_by(ConfigReload.id.desc()).limit(1)).first()
