"""Queries on API tokens. The token itself is shown once, at creation; only its hash is stored."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from pipeline.errors import NotFound
from pipeline.store.tables import ApiToken, utcnow

__all__ = [
    "PREFIX",
    "count_active",
    "create_token",
    "due_for_touch",
    "find_token",
    "hash_token",
    "list_tokens",
    "revoke_token",
    "touch",
]

PREFIX = "pipe_"
_TOUCH_EVERY = dt.timedelta(minutes=1)  # last_used_at is for humans: one write a minute is plenty


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(
    session: Session, *, name: str, role: str, environments: list[str] | None, created_by: str
) -> tuple[ApiToken, str]:
    """A new token row and the token itself, which exists nowhere else after this returns."""
    secret = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        name=name,
        role=role,
        environments=environments,
        token_sha256=hash_token(secret),
        prefix=secret[:12],
        created_by=created_by,
    )
    session.add(row)
    session.flush()
    return row, secret


def find_token(session: Session, secret: str) -> ApiToken | None:
    """The active token with this value, or ``None``."""
    return session.scalars(
        select(ApiToken).where(ApiToken.token_sha256 == hash_token(secret), ApiToken.revoked_at.is_(None))
    ).first()


def due_for_touch(row: ApiToken) -> bool:
    return row.last_used_at is None or utcnow() - row.last_used_at > _TOUCH_EVERY


def touch(session: Session, token_id: int) -> None:
    """Note a use (for humans reading `tokens ls`); a separate short write, not every request."""
    session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=utcnow()))


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.id)))


def revoke_token(session: Session, token_id: int) -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"no API token with id {token_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
    return row


def count_active(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(ApiToken).where(ApiToken.revoked_at.is_(None))) or 0)
