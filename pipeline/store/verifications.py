"""Queries on verifications after promotion (the rows ``jobs.VERIFICATIONS`` claims). Functions
never commit."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from pipeline.errors import NotFound
from pipeline.store import wakeups
from pipeline.store.tables import Verification

__all__ = ["add_verification", "get_verification", "note", "of_promotion", "of_promotions"]


def add_verification(session: Session, **values: Any) -> Verification:
    row = Verification(**values)
    session.add(row)
    session.flush()
    wakeups.announce(session, "verifications")
    return row


def get_verification(session: Session, verification_id: int) -> Verification:
    row = session.get(Verification, verification_id)
    if row is None:
        raise NotFound(f"no verification with id {verification_id}")
    return row


def of_promotion(session: Session, promotion_id: int) -> Verification | None:
    return session.scalars(select(Verification).where(Verification.promotion_id == promotion_id)).first()


def of_promotions(session: Session, promotion_ids: Iterable[int]) -> dict[int, Verification]:
    """The verifications of a page of promotions, by promotion id (one query for the page)."""
    ids = list(promotion_ids)
    if not ids:
        return {}
    rows = session.scalars(select(Verification).where(Verification.promotion_id.in_(ids)))
    return {row.promotion_id: row for row in rows}


def note(session: Session, verification_id: int, **values: Any) -> None:
    """What the last check saw, written in the transaction that just released or finished the
    claim (so only its holder writes it)."""
    if not values:
        return
    session.execute(
        update(Verification)
        .where(Verification.id == verification_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
