"""Locks that span machines, for work outside the database that must not overlap (pushes to one
Git repository, moves of one tag). PostgreSQL advisory locks; the embedded SQLite setup is one
machine, where the caller's file locks or its writer transaction already serialize."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pipeline.store.database import Database

__all__ = ["fence", "held"]


def _key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def fence(session: Session, name: str) -> None:
    """Hold the lock called ``name`` until the session's transaction ends (PostgreSQL); on
    SQLite the caller's ``BEGIN IMMEDIATE`` transaction is the lock."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(_key(name))))


@contextmanager
def held(db: Database, name: str) -> Iterator[None]:
    """Hold the lock called ``name`` for the block (waiting for it if another holds it)."""
    if db.dialect != "postgresql":
        yield
        return
    key = _key(name)
    with db.engine.connect() as conn:
        conn.execute(select(func.pg_advisory_lock(key)))
        conn.commit()
        try:
            yield
        finally:
            conn.execute(select(func.pg_advisory_unlock(key)))
            conn.commit()
