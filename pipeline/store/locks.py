"""Locks that span machines, for work outside the database that must not overlap (pushes to one
Git repository, moves of one tag). PostgreSQL advisory locks; the embedded SQLite setup is one
machine, where the caller's file locks or its writer transaction already serialize."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from pipeline.errors import LockBusy
from pipeline.store.database import Database

__all__ = ["fence", "held"]


_LOCK_NOT_AVAILABLE = "55P03"


def _try_for(conn: Connection, key: int, wait: float) -> bool:
    """Take a session-level advisory lock within ``wait`` seconds (polling, so that the
    connection is never left with a lock_timeout another user would inherit)."""
    deadline = time.monotonic() + wait
    while not conn.execute(select(func.pg_try_advisory_lock(key))).scalar_one():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def fence(session: Session, name: str, wait: float) -> None:
    """Hold the lock called ``name`` until the session's transaction ends (PostgreSQL); on
    SQLite the caller's ``BEGIN IMMEDIATE`` transaction is the lock.

    A holder may be a worker frozen inside its fenced block (it keeps its session and so the
    lock; taking the lock from it would let its late registry write land after a newer one):
    waiters give up after ``wait`` seconds with ``LockBusy`` instead of hanging a worker.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    session.execute(text(f"SET LOCAL lock_timeout = '{int(wait * 1000)}ms'"))
    try:
        session.execute(select(func.pg_advisory_xact_lock(_key(name))))
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
            raise
        raise LockBusy(f"{name} is held by another worker for more than {wait:.0f} s; waiting for it") from None
    session.execute(text("SET LOCAL lock_timeout = 0"))


@contextmanager
def held(db: Database, name: str, wait: float | None = None) -> Iterator[None]:
    """Hold the lock called ``name`` for the block, waiting for it if another holds it: for ever,
    or ``wait`` seconds before ``LockBusy``."""
    if db.dialect != "postgresql":
        yield
        return
    key = _key(name)
    with db.engine.connect() as conn:
        if wait is None:
            conn.execute(select(func.pg_advisory_lock(key)))
        elif not _try_for(conn, key, wait):
            raise LockBusy(f"{name} is held by another worker for more than {wait:.0f} s; waiting for it")
        conn.commit()
        try:
            yield
        finally:
            conn.execute(select(func.pg_advisory_unlock(key)))
            conn.commit()
