"""The numbers behind ``/metrics``, read from the database at scrape time.

The database is the single source of truth across every API and worker process, so counting
there needs no shared in-memory state and no multiprocess mode: history rows are final once
finished, which makes the per-status counts monotonic, as Prometheus counters must be.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, Select, case, cast, func, select
from sqlalchemy.orm import Session

from pipeline.store.tables import Build, Delivery, Promotion, utcnow

__all__ = ["BUCKETS", "Histogram", "QueueState", "cache_steps", "counts", "durations", "queue_state"]

BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600)
_TERMINAL_BUILD = ("succeeded", "failed", "cancelled", "superseded", "skipped")
_TERMINAL_PROMOTION = ("succeeded", "failed", "rejected")


def _seconds(session: Session, start: Any, end: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def counts(session: Session, what: str) -> list[tuple[tuple[str, ...], int]]:
    """Finished builds by (project, status), promotions by (project, environment, status),
    webhook deliveries by (provider, outcome)."""
    stmt: Select[*tuple[Any, ...]]
    if what == "builds":
        columns: Sequence[Any] = (Build.project, Build.status)
        stmt = select(*columns, func.count()).where(Build.status.in_(_TERMINAL_BUILD))
    elif what == "promotions":
        columns = (Promotion.project, Promotion.environment, Promotion.status)
        stmt = select(*columns, func.count()).where(Promotion.status.in_(_TERMINAL_PROMOTION))
    else:
        columns = (Delivery.provider, Delivery.outcome)
        stmt = select(*columns, func.count())
    return [(tuple(str(v) for v in row[:-1]), int(row[-1])) for row in session.execute(stmt.group_by(*columns))]


@dataclass(frozen=True)
class Histogram:
    labels: tuple[str, ...]
    buckets: list[int]  # cumulative counts, one per BUCKETS entry
    count: int
    total: float


def durations(session: Session, what: str) -> list[Histogram]:
    """Start-to-finish seconds of succeeded builds (per project) or promotions (per environment)."""
    table = Build if what == "builds" else Promotion
    groups: Sequence[Any] = (Build.project,) if what == "builds" else (Promotion.project, Promotion.environment)
    seconds = cast(_seconds(session, table.started_at, table.finished_at), Float)
    stmt = (
        select(
            *groups,
            *(func.sum(case((seconds <= b, 1), else_=0)) for b in BUCKETS),
            func.count(),
            func.coalesce(func.sum(seconds), 0.0),
        )
        .where(table.status == "succeeded", table.started_at.is_not(None), table.finished_at.is_not(None))
        .group_by(*groups)
    )
    found = []
    for row in session.execute(stmt):
        labels, rest = tuple(str(v) for v in row[: len(groups)]), row[len(groups) :]
        found.append(Histogram(labels, [int(v or 0) for v in rest[: len(BUCKETS)]], int(rest[-2]), float(rest[-1])))
    return found


@dataclass(frozen=True)
class QueueState:
    depth: int
    oldest_age_seconds: float


def queue_state(session: Session, what: str, now: dt.datetime | None = None) -> QueueState:
    table, waiting = (Build, "queued") if what == "builds" else (Promotion, "pending")
    depth, oldest = session.execute(
        select(func.count(), func.min(table.created_at)).where(table.status == waiting)
    ).one()
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=dt.UTC)
    age = ((now or utcnow()) - oldest).total_seconds() if oldest is not None else 0.0
    return QueueState(int(depth), max(age, 0.0))


def cache_steps(session: Session) -> list[tuple[str, int, int]]:
    """(project, steps, steps served from cache) over succeeded builds."""
    stmt = (
        select(
            Build.project, func.coalesce(func.sum(Build.steps_total), 0), func.coalesce(func.sum(Build.steps_cached), 0)
        )
        .where(Build.status == "succeeded")
        .group_by(Build.project)
    )
    return [(str(p), int(t or 0), int(c or 0)) for p, t, c in session.execute(stmt)]
