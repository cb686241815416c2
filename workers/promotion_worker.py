"""The promotion worker: claim a promotion (one per environment at a time), run its steps
under the claim, record the outcome, and queue the automatic promotions that follow from its
arrival."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from pipeline import notify, promotion
from pipeline.claims import ClaimScope
from pipeline.store import jobs, promotions
from workers._lease import Outcome, QueueWorker

__all__ = ["PromotionWorker"]

log = logging.getLogger(__name__)


class PromotionWorker(QueueWorker):
    kind = jobs.PROMOTIONS
    job_key = "promotion_id"

    def work(self, scope: ClaimScope) -> Outcome:
        assert scope.job is not None
        promotion_id = scope.job.id
        with self.db.session() as session:  # the host shows the deployment in progress
            notify.promotion_started(session, self.config, promotion_id)
        outcome = promotion.run_promotion(scope, self.config, promotion_id)
        if isinstance(outcome, promotion.PromotionRefused):
            return Outcome("rejected", error=outcome.reason)
        if isinstance(outcome, promotion.PromotionPaused):
            return Outcome("awaiting_merge", **outcome.columns())
        return Outcome("succeeded", then=lambda session: self._next(session, promotion_id), **outcome.columns())

    def ended(self, session: Session, job: jobs.Job, outcome: Outcome) -> None:
        """The deployment's end and the promotion's notification, with its outcome."""
        notify.promotion_ended(session, self.config, job.id)

    def _next(self, session: Session, promotion_id: int) -> None:
        arrived = promotions.get_promotion(session, promotion_id)
        if checking := promotion.queue_verification(session, self.config, arrived):
            log.info("promotion %s: verification %s asks %s", promotion_id, checking.id, checking.url)
        for row in promotion.queue_auto_after_promotion(session, self.config, arrived):
            log.info("promotion %s: auto-promotion %s to %s is %s", promotion_id, row.id, row.environment, row.status)
