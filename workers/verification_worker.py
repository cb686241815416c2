"""The verification worker: claim one due verification, ask the environment once, and either
give it back until its next check or end it (verified, failed and perhaps rolled back)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from pipeline import promotion
from pipeline.claims import ClaimScope
from pipeline.store import jobs
from workers._lease import Outcome, QueueWorker

__all__ = ["VerificationWorker"]


class VerificationWorker(QueueWorker):
    kind = jobs.VERIFICATIONS
    job_key = "verification_id"

    def work(self, scope: ClaimScope) -> Outcome:
        assert scope.job is not None
        verification_id, config = scope.job.id, self.config
        checked = promotion.check_verification(scope, config, verification_id)

        def then(session: Session) -> None:
            promotion.conclude_verification(session, config, verification_id, checked)

        if checked.status == "retry":  # a miss is no failed try: attempts count lost workers only
            delay = dt.timedelta(seconds=checked.delay)
            return Outcome("retry", then=then, error=checked.message, delay=delay, attempt=False)
        return Outcome(checked.status, then=then, error=None if checked.status == "verified" else checked.message)
