"""What a rollback restores: the newest digest that ran in the environment before the current
one and is not rejected.

History is a chain (``Promotion.rollback_to_id``: each promotion points at the one it replaced,
a rollback inherits the pointer of what it restored). A rejected digest on that chain is passed
over — rolling back onto an image someone blocked would be refused anyway — and the ones passed
over are named, so whoever rolls back knows what was skipped and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from pipeline.store import Promotion, RejectedDigest, promotions

__all__ = ["RollbackTarget", "Skipped", "rollback_target"]

_LONGEST_WALK = 1000  # a chain this long of rejected digests is not history, it is a bug


@dataclass(frozen=True)
class Skipped:
    """A promotion on the way back whose digest was rejected."""

    promotion: Promotion
    rejection: RejectedDigest

    def describe(self) -> str:
        return f"{self.promotion.digest} (promotion {self.promotion.id}, rejected: {self.rejection.reason})"


@dataclass(frozen=True)
class RollbackTarget:
    restored: Promotion | None  # None: every earlier digest is rejected (or nothing ran before)
    skipped: list[Skipped] = field(default_factory=list)

    def note(self) -> str:
        """``skipped rejected …``: appended to the rollback's reason; empty when none was skipped."""
        if not self.skipped:
            return ""
        return "skipped rejected " + "; ".join(s.describe() for s in self.skipped)


def rollback_target(session: Session, start: Promotion | None) -> RollbackTarget:
    """Walk back from ``start`` (what ran before the current promotion) past rejected digests.

    One lookup per step; a chain without rejected digests costs one rejection lookup."""
    skipped: list[Skipped] = []
    seen: set[int] = set()
    row = start
    while row is not None and row.id not in seen and len(seen) < _LONGEST_WALK:
        seen.add(row.id)
        rejected = promotions.rejection(session, row.digest)
        if rejected is None:
            return RollbackTarget(row, skipped)
        skipped.append(Skipped(row, rejected))
        row = promotions.get_promotion(session, row.rollback_to_id) if row.rollback_to_id is not None else None
    return RollbackTarget(None, skipped)
