"""Keyset pages over the history tables: newest first, stable while rows arrive at the top.

A listing without a time range is ordered by id and served by the ``(…, id)`` indexes. One
with ``since``/``until`` is ordered by ``(created_at, id)`` and served by that index: ordered by
id, PostgreSQL walks the primary key down from the newest row and filters on time, reading most
of the table for a range a year back (1.3 s at 5M promotions). The two orders agree but for
rows created in the same instant, and the cursor says which one it continues.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select, and_, or_

from pipeline.store.tables import Build, Promotion

__all__ = ["Before", "newest_first"]

Stmt = TypeVar("Stmt", bound=Select[Any])


@dataclass(frozen=True)
class Before:
    """Where the previous page ended: its last row's id and, for a listing by time, its ``created_at``."""

    id: int
    created_at: dt.datetime | None = None


def newest_first(
    stmt: Stmt,
    table: type[Build] | type[Promotion],
    *,
    since: dt.datetime | None,
    until: dt.datetime | None,
    before: Before | None,
    limit: int,
) -> Stmt:
    """``stmt`` limited to the time range, ordered newest first and continued after ``before``."""
    if since is not None:
        stmt = stmt.where(table.created_at >= since)
    if until is not None:
        stmt = stmt.where(table.created_at < until)
    if since is None and until is None:
        if before is not None:
            stmt = stmt.where(table.id < before.id)
        return stmt.order_by(table.id.desc()).limit(limit)
    if before is not None:
        if before.created_at is None:
            raise ValueError("a listing by time continues from a position with created_at")
        # the <= alone is what an index range can use; the OR settles ties within one instant
        stmt = stmt.where(
            table.created_at <= before.created_at,
            or_(
                table.created_at < before.created_at, and_(table.created_at == before.created_at, table.id < before.id)
            ),
        )
    return stmt.order_by(table.created_at.desc(), table.id.desc()).limit(limit)
