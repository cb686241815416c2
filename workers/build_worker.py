"""The build worker: claim a build, keep its lease alive, run it, record the outcome.

Thin on purpose: claiming and finishing are ``pipeline.store.jobs``; the build itself is
``pipeline.build_job.run_build``. When the lease is lost (reaped after a stall, or the build
was cancelled) the heartbeat tells the build to stop. A succeeded build queues its automatic
promotions in the same transaction that records it, so none is lost to a crash in between.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from pipeline import promotion
from pipeline.build_job import BuildSkipped, run_build
from pipeline.errors import PipelineError
from pipeline.store import builds, jobs
from workers._lease import Heartbeat, QueueWorker, retry_delay

__all__ = ["BuildWorker", "retry_delay"]

log = logging.getLogger(__name__)


class BuildWorker(QueueWorker):
    """Claims and runs builds until ``stop()``; one build at a time per worker."""

    kind = jobs.BUILDS
    job_key = "build_id"

    def limits(self) -> dict[str, int]:
        return {name: p.concurrency for name, p in self.config.projects.items() if p.concurrency}

    def work(self, build_id: int, beat: Heartbeat) -> None:
        try:
            outcome = run_build(self.db, self.config, build_id, should_stop=beat.lost.is_set)
        except PipelineError as exc:
            self.fail_or_retry(build_id, beat, self._attempts(build_id), exc.retryable, exc.message)
            return
        if isinstance(outcome, BuildSkipped):
            self.record(build_id, beat, jobs.finish, status="skipped", error=outcome.reason)
            return
        self.record(build_id, beat, jobs.finish, then=lambda session: self._promote(session, build_id),
                    status="succeeded", **outcome.columns())
        if outcome.followup is not None:
            try:
                outcome.followup()
            except PipelineError as exc:  # the image is built and recorded; insight is a bonus
                log.warning("build %s: image insight failed: %s", build_id, exc.message)

    def _promote(self, session: Session, build_id: int) -> None:
        queued = promotion.queue_auto_after_build(session, self.config, builds.get_build(session, build_id))
        for row in queued:
            log.info("build %s: auto-promotion %s to %s is %s", build_id, row.id, row.environment, row.status)

    def _attempts(self, build_id: int) -> int:
        with self.db.session() as session:
            return builds.get_build(session, build_id).attempts
