"""The work queue: claim, heartbeat, finish and reap, for builds and promotions alike.

Modelled on procrastinate: a claim is one ``UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP
LOCKED LIMIT 1) RETURNING`` so two workers can never take the same row (SQLite gets the same
guarantee from ``BEGIN IMMEDIATE``, see ``Database.session``). A worker owns a row only
while its lease runs; every write it makes afterwards names itself, so a worker that lost its
lease finds out (``LeaseLost``) instead of overwriting the new owner's work.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from pipeline.errors import LeaseLost
from pipeline.store.tables import Build, Promotion, utcnow

__all__ = ["BUILDS", "PROMOTIONS", "JobKind", "Reaped", "claim", "finish", "heartbeat", "reap", "release"]


@dataclass(frozen=True)
class JobKind:
    """Which table a queue lives in and what its statuses are called."""

    table: type[Build] | type[Promotion]
    waiting: str
    running: str = "running"
    lost: str = "failed"


BUILDS = JobKind(Build, waiting="queued")
PROMOTIONS = JobKind(Promotion, waiting="pending")


def claim(session: Session, kind: JobKind, worker: str, lease: dt.timedelta) -> int | None:
    """Take the oldest waiting row for ``worker``; ``None`` when the queue is empty."""
    table = kind.table
    oldest = select(table.id).where(table.status == kind.waiting).order_by(table.id).limit(1)
    if session.get_bind().dialect.name == "postgresql":
        oldest = oldest.with_for_update(skip_locked=True)
    now = utcnow()
    stmt = (
        update(table)
        .where(table.id == oldest.scalar_subquery())
        .values(
            status=kind.running,
            worker=worker,
            attempts=table.attempts + 1,
            lease_expires_at=now + lease,
            heartbeat_at=now,
            started_at=now,
        )
        .returning(table.id)
        .execution_options(synchronize_session=False)
    )
    return session.execute(stmt).scalar_one_or_none()


def _owned(kind: JobKind, job_id: int, worker: str) -> Any:
    table = kind.table
    return (
        update(table)
        .where(table.id == job_id, table.worker == worker, table.status == kind.running)
        .execution_options(synchronize_session=False)
    )


def heartbeat(session: Session, kind: JobKind, job_id: int, worker: str, lease: dt.timedelta) -> None:
    """Extend the lease; raises ``LeaseLost`` once the row was reaped, cancelled or re-claimed."""
    now = utcnow()
    result = session.execute(
        _owned(kind, job_id, worker).values(heartbeat_at=now, lease_expires_at=now + lease)
    )
    if result.rowcount == 0:
        raise LeaseLost(f"job {job_id} is no longer held by worker {worker}")


def finish(session: Session, kind: JobKind, job_id: int, worker: str, **values: Any) -> None:
    """Write the outcome, only if ``worker`` still holds the row."""
    values.setdefault("finished_at", utcnow())
    result = session.execute(
        _owned(kind, job_id, worker).values(lease_expires_at=None, **values)
    )
    if result.rowcount == 0:
        raise LeaseLost(f"job {job_id} is no longer held by worker {worker}; outcome not recorded")


def release(session: Session, kind: JobKind, job_id: int, worker: str, error: str) -> None:
    """Give a row back to the queue after a failure worth retrying (engine down, registry 5xx)."""
    result = session.execute(
        _owned(kind, job_id, worker).values(status=kind.waiting, worker=None, lease_expires_at=None,
                                            error=error)
    )
    if result.rowcount == 0:
        raise LeaseLost(f"job {job_id} is no longer held by worker {worker}; not released")


@dataclass(frozen=True)
class Reaped:
    requeued: list[int]
    failed: list[int]


def reap(session: Session, kind: JobKind, max_attempts: int) -> Reaped:
    """Give rows whose lease expired back to the queue, or fail them after ``max_attempts``."""
    table = kind.table
    now = utcnow()
    expired = (table.status == kind.running, table.lease_expires_at < now)
    requeued = session.execute(
        update(table)
        .where(*expired, table.attempts < max_attempts)
        .values(status=kind.waiting, worker=None, lease_expires_at=None)
        .returning(table.id)
        .execution_options(synchronize_session=False)
    ).scalars().all()
    failed = session.execute(
        update(table)
        .where(*expired, table.attempts >= max_attempts)
        .values(
            status=kind.lost,
            lease_expires_at=None,
            finished_at=now,
            error=f"the worker stopped sending heartbeats {max_attempts} times; giving up",
        )
        .returning(table.id)
        .execution_options(synchronize_session=False)
    ).scalars().all()
    return Reaped(list(requeued), list(failed))
