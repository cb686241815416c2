"""The build worker: claim a build, run it under the claim, and let the lifecycle end it.

Thin on purpose: claiming and finishing are ``pipeline.store.jobs`` and ``workers._lease``;
the build itself is ``pipeline.build.run_build``, whose record step writes the digest. A
succeeded build queues its automatic promotions in the same transaction that records it, so
none is lost to a crash in between.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from pipeline import notify, promotion
from pipeline.build import BuildSkipped, run_build
from pipeline.claims import ClaimScope
from pipeline.errors import BuildError
from pipeline.store import builds, jobs
from workers._lease import Outcome, QueueWorker, retry_delay, traceback_lines

__all__ = ["BuildWorker", "retry_delay"]

log = logging.getLogger(__name__)


class BuildWorker(QueueWorker):
    """Claims and runs builds until ``stop()``; one build at a time per worker."""

    kind = jobs.BUILDS
    job_key = "build_id"

    def limits(self) -> dict[str, int]:
        return {name: p.concurrency for name, p in self.config.projects.items() if p.concurrency}

    def work(self, scope: ClaimScope) -> Outcome | None:
        assert scope.job is not None
        self._report_start(scope.job.id)
        outcome = run_build(scope, self.config, scope.job.id, on_recorded=self._recorded)
        if isinstance(outcome, BuildSkipped):
            return Outcome("skipped", error=outcome.reason)
        return None  # the record step wrote the succeeded build

    def internal_error(self, scope: ClaimScope, exc: BaseException) -> None:
        assert scope.job is not None
        with self.db.session(immediate=True) as session:
            builds.append_logs(session, scope.job.id, [f"internal error: {exc!r}", *traceback_lines(exc)])

    def _report_start(self, build_id: int) -> None:
        """``running`` on the commit (its own short transaction: the claim is already made)."""
        with self.db.session() as session:
            notify.build_started(session, self.config, build_id)

    def ended(self, session: Session, job: jobs.Job, outcome: Outcome) -> None:
        """A failed or skipped build's statuses and notifications, with its outcome."""
        notify.build_ended(
            session, self.config, job.id, failure=outcome.cause is None or isinstance(outcome.cause, BuildError)
        )

    def _recorded(self, session: Session, build_id: int) -> None:
        """In the record step's transaction: the automatic promotions, and the success status."""
        self._promote(session, build_id)
        notify.build_ended(session, self.config, build_id)

    def _promote(self, session: Session, build_id: int) -> None:
        queued = promotion.queue_auto_after_build(session, self.config, builds.get_build(session, build_id))
        for row in queued:
            log.info("build %s: auto-promotion %s to %s is %s", build_id, row.id, row.environment, row.status)
