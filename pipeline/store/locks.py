"""Locks that span machines, for work outside the database that must not overlap (pushes to one
Git repository). PostgreSQL advisory locks; the embedded SQLite setup is one machine, where the
caller's file locks already serialize."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import func, select

from pipeline.store.database import Database

__all__ = ["held"]


@contextmanager
def held(db: Database, name: str) -> Iterator[None]:
    """Hold the lock called ``name`` for the block (waiting for it if another holds it)."""
    if db.dialect != "postgresql":
        yield
        return
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    with db.engine.connect() as conn:
        conn.execute(select(func.pg_advisory_lock(key)))
        conn.commit()
        try:
            yield
        finally:
            conn.execute(select(func.pg_advisory_unlock(key)))
            conn.commit()
