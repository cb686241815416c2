"""What every queue worker shares: a name, the claim and its heartbeat, the wait for work,
one lifecycle that ends every job, and backoff for retries. Build and promotion workers
differ only in what they run and what a success writes.

The lifecycle, whatever the job does: claim (a ``Job`` with a fencing epoch), heartbeat,
run, then exactly one of finish, release for a retry, or nothing when the lease was lost;
the heartbeat stops in a ``finally``. An exception that is no ``PipelineError`` (a bug) ends
the job as failed with "internal error: …" and its traceback in the log, never ``running``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import socket
import threading
import traceback
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from pipeline.claims import ClaimScope, Heartbeat
from pipeline.config import Config, LiveConfig
from pipeline.errors import LeaseLost, LockBusy, PipelineError
from pipeline.logs import job_context
from pipeline.store import Database, jobs, wakeups

__all__ = ["Outcome", "QueueWorker", "retry_delay", "traceback_lines"]

log = logging.getLogger(__name__)


def retry_delay(attempts: int, base: float = 5.0, cap: float = 300.0) -> dt.timedelta:
    """Exponential backoff with full jitter: 5 s, 10 s, 20 s … at most 5 minutes."""
    return dt.timedelta(seconds=random.uniform(0.5, 1.0) * min(cap, base * 2 ** max(attempts - 1, 0)))


class Outcome:
    """How a job ended, as the worker writes it: the row's new columns and, in the same
    transaction, what follows from them (automatic promotions)."""

    def __init__(
        self,
        status: str,
        then: Callable[[Session], object] | None = None,
        *,
        cause: BaseException | None = None,
        **values: Any,
    ) -> None:
        self.status, self.then, self.values = status, then, values
        self.cause = cause  # the error that ended the job, if one did (not written to the row)


class QueueWorker:
    """Claims and works rows of one queue until ``stop()``; one job at a time."""

    kind: jobs.JobKind
    job_key: str  # how log records name the job: build_id or promotion_id

    def __init__(self, db: Database, config: Config | LiveConfig, name: str | None = None) -> None:
        self.db = db
        self.live = LiveConfig.of(config)
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{id(self) & 0xFFFF:x}"
        self._stop = threading.Event()
        self._wake = wakeups.signal(self.kind.table.__tablename__)

    @property
    def config(self) -> Config:
        """The config as it is now: a reload takes effect at the next job, never within one."""
        return self.live.current

    @property
    def lease(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.config.worker.lease_seconds)

    def stop(self) -> None:
        self._stop.set()
        self._wake.fire()  # an idle worker notices now, not at its next poll

    def run_forever(self) -> None:
        """Work until stopped; when the queue is empty, sleep until woken (a job queued in this
        process, a NOTIFY on PostgreSQL) or until the poll interval, whichever comes first."""
        unlisten = wakeups.listen(self.db.url)
        log.info("%s %s: started", type(self).__name__, self.name)
        try:
            while not self._stop.is_set():
                generation = self._wake.generation
                try:
                    worked = self.run_once()
                except Exception:
                    log.exception("worker %s: iteration failed", self.name)
                    worked = False
                if not worked and not self._stop.is_set():
                    self._wake.wait(generation, self.config.worker.poll_seconds)
        finally:
            unlisten()
        log.info("%s %s: stopped", type(self).__name__, self.name)

    def claim(self, lease: dt.timedelta | None = None) -> jobs.Job | None:
        with self.db.session(immediate=True) as session:
            return jobs.claim(session, self.kind, self.name, lease or self.lease, self.limits())

    def limits(self) -> dict[str, int] | None:
        return None

    def run_once(self) -> bool:
        """Claim and work one row to its end; ``False`` when the queue was empty."""
        lease = self.lease
        job = self.claim(lease)
        if job is None:
            return False
        log.info("worker %s: claimed %s (claim %s)", self.name, job.name, job.epoch)
        beat = Heartbeat(self.db, job, lease)
        beat.start()
        with job_context(**{self.job_key: job.id}):
            try:
                outcome = self._outcome(job, ClaimScope(self.db, job, beat))
            finally:
                beat.stop()
            if outcome is not None:
                self._write(job, outcome)
            else:
                log.info("worker %s: %s ended", self.name, job.name)
        return True

    def work(self, scope: ClaimScope) -> Outcome | None:
        """Run the claimed job; ``None`` when the job wrote its own end. Raise ``PipelineError``
        for a failure users can act on."""
        raise NotImplementedError

    def ended(self, session: Session, job: jobs.Job, outcome: Outcome) -> None:
        """What else the job's end writes, in the transaction that records it (its commit
        statuses and notifications): nothing by default."""

    def internal_error(self, scope: ClaimScope, exc: BaseException) -> None:
        """Where a job's own log keeps the traceback of a bug (the build log); the process log
        always has it."""

    def _outcome(self, job: jobs.Job, scope: ClaimScope) -> Outcome | None:
        try:
            return self.work(scope)
        except LeaseLost as exc:
            log.warning("worker %s: %s; leaving it to its new owner", self.name, exc.message)
            return None
        except LockBusy as exc:  # the holder may be frozen: wait our turn however long, counting no failure
            log.info("worker %s: %s: %s", self.name, job.name, exc.message)
            return Outcome(
                "retry",
                error=f"waiting: {exc.message}",
                delay=dt.timedelta(seconds=random.uniform(0.5, 1.5)),
                attempt=False,
            )
        except PipelineError as exc:
            if exc.retryable and job.attempts < self.config.worker.max_attempts:
                asked = getattr(exc, "retry_after", None)  # a step that said when (StepResult.retry_after)
                delay = (
                    dt.timedelta(seconds=asked)
                    if asked is not None
                    else retry_delay(job.attempts, base=self.config.worker.retry_seconds)
                )
                return Outcome("retry", error=f"will retry: {exc.message}", delay=delay)
            return Outcome("failed", cause=exc, error=exc.message)
        except Exception as exc:  # a bug must still end the job with a readable error
            log.exception("%s crashed", job.name)
            try:
                self.internal_error(scope, exc)
            except Exception:
                log.exception("%s: could not keep the traceback with the job", job.name)
            return Outcome("failed", cause=exc, error=f"internal error: {exc!r}")

    def _write(self, job: jobs.Job, outcome: Outcome) -> None:
        """One transaction: the outcome (only while the claim holds) and what follows from it."""
        try:
            with self.db.session() as session:
                if outcome.status == "retry":
                    jobs.release(session, job, **outcome.values)
                else:
                    jobs.finish(session, job, status=outcome.status, **outcome.values)
                if outcome.then is not None:
                    outcome.then(session)
                if outcome.status != "retry":
                    self.ended(session, job, outcome)
        except LeaseLost as exc:
            log.warning("worker %s: %s", self.name, exc.message)
            return
        log.info("worker %s: %s %s", self.name, job.name, "requeued" if outcome.status == "retry" else outcome.status)


def traceback_lines(exc: BaseException) -> list[str]:
    """The traceback of a bug as log lines, for the job's own log."""
    return "".join(traceback.format_exception(exc)).rstrip("\n").splitlines()
