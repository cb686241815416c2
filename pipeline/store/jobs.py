"""The work queue: claim, heartbeat, finish and reap, for builds and promotions alike.

Modelled on procrastinate: a claim is one ``UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP
LOCKED LIMIT 1) RETURNING`` so two workers can never take the same row (SQLite gets the same
guarantee from ``BEGIN IMMEDIATE``, see ``Database.session``). A worker owns a row only
while its lease runs; every write it makes afterwards names its claim (holder and epoch), so a worker
that lost its lease finds out (``LeaseLost``) instead of overwriting the new owner's work.

The epoch is the fencing token: it grows with every claim of the row, so a worker that
stalled past its lease (a GC pause, SIGSTOP, a frozen VM) and wakes up to find the row
``running`` again, even under its own name after a restart, still sees that it is no longer
its claim. ``check`` is that fresh read, asked right before every side effect that others
can see (a tag move, a Git push, a signature).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from pipeline.errors import LeaseLost
from pipeline.store import wakeups
from pipeline.store.tables import Build, Notification, Promotion, Verification, literal_in, rowcount, utcnow

__all__ = [
    "BUILDS",
    "NOTIFICATIONS",
    "PROMOTIONS",
    "VERIFICATIONS",
    "Job",
    "JobKind",
    "Reaped",
    "check",
    "claim",
    "finish",
    "heartbeat",
    "progress",
    "reap",
    "release",
]


@dataclass(frozen=True)
class JobKind:
    """Which table a queue lives in and what its statuses are called."""

    table: type[Build] | type[Promotion] | type[Verification] | type[Notification]
    waiting: str
    running: str = "running"
    lost: str = "failed"
    serial: tuple[str, ...] = ()  # rows equal in these columns run one at a time, oldest first
    blocking: tuple[str, ...] = ("running",)  # statuses that hold their group (with ``serial``)
    serial_lock: int = 0x7072_6F6D  # "prom": the advisory lock claims of a serialized queue take turns on


@dataclass(frozen=True)
class Job:
    """One claim of one row: what a worker holds, and what its writes are checked against."""

    kind: JobKind
    id: int
    holder: str
    epoch: int
    attempts: int

    @property
    def name(self) -> str:
        """``build 12`` or ``promotion 7``, for messages."""
        return f"{self.kind.table.__tablename__.removesuffix('s')} {self.id}"


_CLAIM_LOCK = 0x7069_7065  # "pipe": one advisory lock id for claims under concurrency limits

BUILDS = JobKind(Build, waiting="queued")
# a promotion waiting for its pull request to be merged still holds its environment: one
# applied after it would be undone when the older pull request is merged
PROMOTIONS = JobKind(
    Promotion, waiting="pending", serial=("project", "environment"), blocking=("running", "awaiting_merge")
)
# a commit's statuses on one host go out in order (pending before success); a dead letter
# frees its group. Its own claim lock: deliveries never wait behind promotion claims.
NOTIFICATIONS = JobKind(
    Notification, waiting="pending", lost="dead", serial=("target", "subject"), serial_lock=0x6E6F_7469
)

# checks of what an environment serves after a promotion; each claim is one check, released
# until the next one (attempt=False), so a ten-minute verification holds no worker meanwhile
VERIFICATIONS = JobKind(Verification, waiting="pending")


def _saturated(session: Session, kind: JobKind, limits: Mapping[str, int]) -> list[str]:
    """Projects already running as many jobs as their concurrency limit allows."""
    table = kind.table
    running = (
        select(table.project, func.count())
        .where(table.status == kind.running, table.project.in_(list(limits)))
        .group_by(table.project)
    )
    return [project for project, count in session.execute(running) if count >= limits[project]]


def claim(
    session: Session, kind: JobKind, worker: str, lease: dt.timedelta, limits: Mapping[str, int] | None = None
) -> Job | None:
    """Take the oldest waiting row that is due, for ``worker``; ``None`` when there is none.

    ``limits`` caps running jobs per project. Counting and claiming must not interleave
    between workers, so with limits the claim takes a transaction-scoped advisory lock on
    PostgreSQL (SQLite's ``BEGIN IMMEDIATE`` already serializes it); claims are short.
    """
    table = kind.table
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres and limits:
        session.execute(select(func.pg_advisory_xact_lock(_CLAIM_LOCK)))
    if postgres and kind.serial:
        session.execute(select(func.pg_advisory_xact_lock(kind.serial_lock)))
    now = utcnow()  # after any wait for a lock: the lease and started_at count from the real claim
    oldest = (
        select(table.id)
        .where(table.status == kind.waiting, or_(table.not_before.is_(None), table.not_before <= now))
        .order_by(table.id)
        .limit(1)
    )
    if limits and (saturated := _saturated(session, kind, limits)):
        oldest = oldest.where(table.project.not_in(saturated))
    if kind.serial:
        oldest = oldest.where(*_first_in_line(kind))
    if postgres:
        oldest = oldest.with_for_update(skip_locked=True)
    stmt = (
        update(table)
        .where(table.id == oldest.scalar_subquery())
        .values(
            status=kind.running,
            worker=worker,
            attempts=table.attempts + 1,
            epoch=table.epoch + 1,
            lease_expires_at=now + lease,
            heartbeat_at=now,
            started_at=now,
            not_before=None,
        )
        .returning(table.id, table.epoch, table.attempts)
        .execution_options(synchronize_session=False)
    )
    row = session.execute(stmt).one_or_none()
    return None if row is None else Job(kind, row.id, worker, row.epoch, row.attempts)


def _first_in_line(kind: JobKind) -> list[Any]:
    """A row may start only when no row of its group runs and none older waits.

    That keeps one group (a project's environment) in request order, so the last request is
    the one that ends up applied. Claims of such queues take turns (an advisory lock on
    PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) so two workers never both see a group as idle.
    """
    table = kind.table
    other = aliased(table)
    same = and_(*(getattr(other, c) == getattr(table, c) for c in kind.serial))
    # literal statuses: the promotions' partial index of unfinished rows serves both probes
    return [
        ~exists().where(same, literal_in(other.status, kind.blocking)),
        ~exists().where(same, literal_in(other.status, (kind.waiting,)), other.id < table.id),
    ]


def _owned(job: Job) -> Any:
    table = job.kind.table
    return (
        update(table)
        .where(
            table.id == job.id, table.worker == job.holder, table.epoch == job.epoch, table.status == job.kind.running
        )
        .execution_options(synchronize_session=False)
    )


def check(session: Session, job: Job) -> None:
    """A fresh read of the row: raises ``LeaseLost`` saying why, unless ``job`` still holds it.

    Called right before a side effect outside the database; with the claim's epoch it also
    catches a row that was reaped and claimed again in the meantime.
    """
    table = job.kind.table
    row = session.execute(
        select(table.status, table.worker, table.epoch, table.error).where(table.id == job.id)
    ).one_or_none()
    if row is None:
        raise LeaseLost(f"{job.name} no longer exists")
    if row.status == job.kind.running and row.worker == job.holder and row.epoch == job.epoch:
        return
    raise LeaseLost(f"{job.name}: {_why_lost(job, row)}")


def _why_lost(job: Job, row: Any) -> str:
    if row.status != job.kind.running:
        detail = f" ({row.error})" if row.error else ""
        return f"lease lost: it is {row.status} now{detail}"
    return f"lease lost: claim {job.epoch} by {job.holder} was taken over by claim {row.epoch} of {row.worker}"


def heartbeat(session: Session, job: Job, lease: dt.timedelta) -> None:
    """Extend the lease; raises ``LeaseLost`` once the row was reaped, cancelled or re-claimed."""
    now = utcnow()
    result = session.execute(_owned(job).values(heartbeat_at=now, lease_expires_at=now + lease))
    if rowcount(result) == 0:
        raise LeaseLost(f"{job.name} is no longer held by worker {job.holder} (claim {job.epoch})")


def progress(session: Session, job: Job, **values: Any) -> None:
    """Write what the job has done so far, only while ``job`` is still the row's claim."""
    if rowcount(session.execute(_owned(job).values(**values))) == 0:
        raise LeaseLost(
            f"{job.name} is no longer held by worker {job.holder} (claim {job.epoch}); progress not recorded"
        )


def finish(session: Session, job: Job, **values: Any) -> None:
    """Write the outcome, only if ``job`` is still the row's claim.

    A serialized queue's finish takes the claims' lock first: the next claim of the group then
    waits for this commit, and its ``started_at`` (taken after its wait) follows ``finished_at``.
    """
    if job.kind.serial and session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(job.kind.serial_lock)))
    values.setdefault("finished_at", utcnow())
    result = session.execute(_owned(job).values(lease_expires_at=None, **values))
    if job.kind.serial:  # the group is free: the next one in line may start now
        wakeups.announce(session, job.kind.table.__tablename__)
    if rowcount(result) == 0:
        raise LeaseLost(
            f"{job.name} is no longer held by worker {job.holder} (claim {job.epoch}); outcome not recorded"
        )


def release(
    session: Session, job: Job, error: str, delay: dt.timedelta = dt.timedelta(0), *, attempt: bool = True
) -> None:
    """Give a row back to the queue after a failure worth retrying (engine down, registry 5xx),
    not to be claimed again before ``delay`` has passed. ``attempt=False``: the claim did not
    count as a try (it only waited its turn for a lock), so waiting never uses up the tries."""
    table = job.kind.table
    result = session.execute(
        _owned(job).values(
            status=job.kind.waiting,
            worker=None,
            lease_expires_at=None,
            error=error,
            not_before=utcnow() + delay,
            attempts=table.attempts if attempt else table.attempts - 1,
        )
    )
    if rowcount(result) == 0:
        raise LeaseLost(f"{job.name} is no longer held by worker {job.holder} (claim {job.epoch}); not released")
    wakeups.announce(session, job.kind.table.__tablename__)


@dataclass(frozen=True)
class Reaped:
    requeued: list[int]
    failed: list[int]


def reap(session: Session, kind: JobKind, max_attempts: int) -> Reaped:
    """Give rows whose lease expired back to the queue, or fail them after ``max_attempts``."""
    table = kind.table
    now = utcnow()
    expired = (table.status == kind.running, table.lease_expires_at < now)
    requeued = (
        session.execute(
            update(table)
            .where(*expired, table.attempts < max_attempts)
            .values(status=kind.waiting, worker=None, lease_expires_at=None)
            .returning(table.id)
            .execution_options(synchronize_session=False)
        )
        .scalars()
        .all()
    )
    failed = (
        session.execute(
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
        )
        .scalars()
        .all()
    )
    if requeued or failed:
        wakeups.announce(session, table.__tablename__)
    return Reaped(list(requeued), list(failed))
