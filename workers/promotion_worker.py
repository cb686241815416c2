"""The promotion worker: claim a promotion (one per environment at a time), run its steps,
record the outcome, and queue the automatic promotions that follow from its arrival."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from pipeline import promotion
from pipeline.errors import PipelineError
from pipeline.store import jobs, promotions
from workers._lease import Heartbeat, QueueWorker

__all__ = ["PromotionWorker"]

log = logging.getLogger(__name__)


class PromotionWorker(QueueWorker):
    kind = jobs.PROMOTIONS
    job_key = "promotion_id"

    def work(self, promotion_id: int, beat: Heartbeat) -> None:
        try:
            outcome = promotion.run_promotion(self.db, self.config, promotion_id)
        except PipelineError as exc:
            self.fail_or_retry(promotion_id, beat, self._attempts(promotion_id), exc.retryable, exc.message)
            return
        except Exception as exc:  # a bug must still end the promotion with a readable error
            log.exception("promotion %s crashed", promotion_id)
            self.record(promotion_id, beat, jobs.finish, status="failed", error=f"internal error: {exc!r}")
            return
        if isinstance(outcome, promotion.PromotionRefused):
            self.record(promotion_id, beat, jobs.finish, status="rejected", error=outcome.reason)
            return
        if isinstance(outcome, promotion.PromotionPaused):
            self.record(promotion_id, beat, jobs.finish, status="awaiting_merge", **outcome.columns())
            return
        self.record(promotion_id, beat, jobs.finish, then=lambda session: self._next(session, promotion_id),
                    status="succeeded", **outcome.columns())

    def _next(self, session: Session, promotion_id: int) -> None:
        arrived = promotions.get_promotion(session, promotion_id)
        for row in promotion.queue_auto_after_promotion(session, self.config, arrived):
            log.info("promotion %s: auto-promotion %s to %s is %s", promotion_id, row.id, row.environment, row.status)

    def _attempts(self, promotion_id: int) -> int:
        with self.db.session() as session:
            return promotions.get_promotion(session, promotion_id).attempts
