"""What every queue worker shares: a name, a heartbeat that keeps the lease, the polling loop,
and backoff for retries. Build and promotion workers differ only in what they run."""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import socket
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from pipeline.config import Config, LiveConfig
from pipeline.errors import LeaseLost
from pipeline.logs import job_context
from pipeline.store import Database, jobs

__all__ = ["Heartbeat", "QueueWorker", "retry_delay"]

log = logging.getLogger(__name__)


def retry_delay(attempts: int, base: float = 5.0, cap: float = 300.0) -> dt.timedelta:
    """Exponential backoff with full jitter: 5 s, 10 s, 20 s … at most 5 minutes."""
    return dt.timedelta(seconds=random.uniform(0.5, 1.0) * min(cap, base * 2 ** max(attempts - 1, 0)))


class Heartbeat(threading.Thread):
    """Extends a job's lease until ``done``; sets ``lost`` once another party took the row."""

    def __init__(self, db: Database, kind: jobs.JobKind, job_id: int, worker: str, lease: dt.timedelta) -> None:
        super().__init__(name=f"heartbeat-{kind.table.__tablename__}-{job_id}", daemon=True)
        self.db, self.kind, self.job_id, self.worker, self.lease = db, kind, job_id, worker, lease
        self.done = threading.Event()
        self.lost = threading.Event()

    def run(self) -> None:
        # frequent enough that a cancel or a superseding push stops the job within seconds
        interval = min(self.lease.total_seconds() / 3, 2.0)
        while not self.done.wait(interval):
            try:
                with self.db.session() as session:
                    jobs.heartbeat(session, self.kind, self.job_id, self.worker, self.lease)
            except LeaseLost:
                log.warning("%s %s: lease lost, stopping it", self.kind.table.__tablename__, self.job_id)
                self.lost.set()
                return
            except Exception:  # the database may be briefly away; the lease has slack
                log.exception("%s %s: heartbeat failed", self.kind.table.__tablename__, self.job_id)


class QueueWorker:
    """Claims and works rows of one queue until ``stop()``; one job at a time."""

    kind: jobs.JobKind
    job_key: str  # how log records name the job: build_id or promotion_id

    def __init__(self, db: Database, config: Config | LiveConfig, name: str | None = None) -> None:
        self.db = db
        self.live = LiveConfig.of(config)
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{id(self) & 0xFFFF:x}"
        self._stop = threading.Event()

    @property
    def config(self) -> Config:
        """The config as it is now: a reload takes effect at the next job, never within one."""
        return self.live.current

    @property
    def lease(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.config.worker.lease_seconds)

    def stop(self) -> None:
        self._stop.set()

    def run_forever(self) -> None:
        log.info("%s %s: started", type(self).__name__, self.name)
        while not self._stop.is_set():
            try:
                worked = self.run_once()
            except Exception:
                log.exception("worker %s: iteration failed", self.name)
                worked = False
            if not worked:
                self._stop.wait(self.config.worker.poll_seconds)
        log.info("%s %s: stopped", type(self).__name__, self.name)

    def claim(self, lease: dt.timedelta | None = None) -> int | None:
        with self.db.session(immediate=True) as session:
            return jobs.claim(session, self.kind, self.name, lease or self.lease, self.limits())

    def limits(self) -> dict[str, int] | None:
        return None

    def run_once(self) -> bool:
        """Claim and work one row; ``False`` when the queue was empty."""
        lease = self.lease
        job_id = self.claim(lease)
        if job_id is None:
            return False
        log.info("worker %s: claimed %s %s", self.name, self.kind.table.__tablename__, job_id)
        beat = Heartbeat(self.db, self.kind, job_id, self.name, lease)
        beat.start()
        with job_context(**{self.job_key: job_id}):
            self.work(job_id, beat)
        return True

    def work(self, job_id: int, beat: Heartbeat) -> None:
        raise NotImplementedError

    def record(self, job_id: int, beat: Heartbeat, write: Callable[..., None],
               then: Callable[[Session], object] | None = None, **values: Any) -> bool:
        """Stop the heartbeat, then write the outcome (``jobs.finish`` or ``jobs.release``) and,
        in the same transaction, what follows from it; ``False`` when the lease was lost."""
        beat.done.set()
        beat.join()
        try:
            with self.db.session() as session:
                write(session, self.kind, job_id, self.name, **values)
                if then is not None:
                    then(session)
        except LeaseLost as exc:
            log.warning("worker %s: %s", self.name, exc.message)
            return False
        log.info("worker %s: %s %s %s", self.name, self.kind.table.__tablename__, job_id,
                 values.get("status", "requeued"))
        return True

    def fail_or_retry(self, job_id: int, beat: Heartbeat, attempts: int, retryable: bool, message: str) -> None:
        if retryable and attempts < self.config.worker.max_attempts:
            delay = retry_delay(attempts, base=self.config.worker.retry_seconds)
            self.record(job_id, beat, jobs.release, error=f"will retry: {message}", delay=delay)
        else:
            self.record(job_id, beat, jobs.finish, status="failed", error=message)
