"""Reading and trimming the delivery log (the rows ``deliveries.record`` writes).

Listed newest first by id, keyset-paginated as the other listings are (``pages.Before``).
Pruning drops an accepted body after ``keep_bodies_days`` (it is only kept for Redeliver) and a
row after ``keep_deliveries_days``, unless a build points at it: a build's delivery is part of
its lineage, which is kept for as long as the build.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session

from pipeline.store.pages import Before
from pipeline.store.tables import Build, Delivery, rowcount

__all__ = ["DeliveryFilter", "Pruned", "build_ids", "get_delivery", "list_deliveries", "prune"]


@dataclass(frozen=True)
class DeliveryFilter:
    project: str | None = None
    provider: str | None = None
    outcome: str | None = None
    since: dt.datetime | None = None


def list_deliveries(
    session: Session, where: DeliveryFilter, *, limit: int, before: Before | None = None
) -> list[Delivery]:
    stmt = select(Delivery)
    if where.project:
        stmt = stmt.where(Delivery.project == where.project)
    if where.provider:
        stmt = stmt.where(Delivery.provider == where.provider)
    if where.outcome:
        stmt = stmt.where(Delivery.outcome == where.outcome)
    if where.since is not None:
        stmt = stmt.where(Delivery.received_at >= where.since)
    if before is not None:
        stmt = stmt.where(Delivery.id < before.id)
    return list(session.scalars(stmt.order_by(Delivery.id.desc()).limit(limit)))


def build_ids(session: Session, delivery_ids: list[int]) -> dict[int, list[int]]:
    """The builds each delivery queued."""
    found: dict[int, list[int]] = {d: [] for d in delivery_ids}
    if delivery_ids:
        stmt = select(Build.delivery_id, Build.id).where(Build.delivery_id.in_(delivery_ids)).order_by(Build.id)
        for delivery_id, build_id in session.execute(stmt):
            if delivery_id is not None:
                found[delivery_id].append(build_id)
    return found


def get_delivery(session: Session, delivery_id: int) -> Delivery | None:
    return session.get(Delivery, delivery_id)


@dataclass(frozen=True)
class Pruned:
    bodies: int
    rows: int


def prune(session: Session, now: dt.datetime, *, keep_bodies_days: int, keep_deliveries_days: int) -> Pruned:
    bodies = rowcount(
        session.execute(
            update(Delivery)
            .where(Delivery.body.is_not(None), Delivery.received_at < now - dt.timedelta(days=keep_bodies_days))
            .values(body=None, headers=None)
            .execution_options(synchronize_session=False)
        )
    )
    rows = rowcount(
        session.execute(
            delete(Delivery)
            .where(
                Delivery.received_at < now - dt.timedelta(days=keep_deliveries_days),
                ~exists().where(Build.delivery_id == Delivery.id),
            )
            .execution_options(synchronize_session=False)
        )
    )
    return Pruned(bodies, rows)
