"""The delivery worker: claim an outbox row, send it, record delivered / retry / dead.

The same lifecycle as builds and promotions (``workers._lease``: claim with a fencing epoch,
heartbeat, exactly one end). A receiver that is down, slow or rate-limiting gets the row back
later, after exponential backoff or its own ``Retry-After``; after
``notifications.max_attempts`` tries, or at once when the receiver refuses it (401, 404), the
row is a dead letter with the reason. Nothing here can touch a build or a promotion.
"""

from __future__ import annotations

import datetime as dt
import logging

from pipeline import notify
from pipeline.claims import ClaimScope
from pipeline.errors import DeliveryError
from pipeline.store import jobs, notifications
from workers._lease import Outcome, QueueWorker, retry_delay

__all__ = ["NotificationWorker"]

log = logging.getLogger(__name__)


class NotificationWorker(QueueWorker):
    kind = jobs.NOTIFICATIONS
    job_key = "notification_id"

    def work(self, scope: ClaimScope) -> Outcome:
        assert scope.job is not None
        job, settings = scope.job, self.config.notifications
        with self.db.session() as session:
            row = notifications.get_notification(session, job.id)
            deployment = (
                notifications.earlier_result(session, row, "deployment_id") if row.kind == "deployment" else None
            )
        try:
            delivered = notify.deliver(self.config, row, deployment_id=deployment)
        except DeliveryError as exc:
            if exc.retryable and job.attempts < settings.max_attempts:
                delay = (
                    dt.timedelta(seconds=exc.retry_after)
                    if exc.retry_after is not None
                    else retry_delay(job.attempts, base=settings.retry_seconds, cap=settings.max_retry_seconds)
                )
                log.info(
                    "%s: attempt %s: %s; again in %.1f s", job.name, job.attempts, exc.message, delay.total_seconds()
                )
                return Outcome("retry", error=f"attempt {job.attempts}: {exc.message}", delay=delay)
            log.warning("%s: dead letter after %s attempt(s): %s", job.name, job.attempts, exc.message)
            return Outcome("dead", error=exc.message)
        except Exception as exc:  # a bug: the row still ends, readable
            log.exception("%s: delivery crashed", job.name)
            return Outcome("dead", error=f"internal error: {exc!r}")
        return Outcome("delivered", response_code=delivered.code, result=delivered.result, error=None)
