"""The build worker loop: claim a build, keep its lease alive, run it, record the outcome.

Thin on purpose: claiming and finishing are ``pipeline.store.jobs``; the build itself is
``pipeline.build_job.run_build``. A heartbeat thread extends the lease; when the lease is
lost (reaped after a stall, or the build was cancelled) it tells the build to stop.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import socket
import threading
from collections.abc import Callable
from typing import Any

from pipeline.build_job import BuildSkipped, run_build
from pipeline.config import Config
from pipeline.errors import LeaseLost, PipelineError
from pipeline.store import Database, builds, jobs

__all__ = ["BuildWorker", "retry_delay"]

log = logging.getLogger(__name__)


def retry_delay(attempts: int, base: float = 5.0, cap: float = 300.0) -> dt.timedelta:
    """Exponential backoff with full jitter: 5 s, 10 s, 20 s … at most 5 minutes."""
    return dt.timedelta(seconds=random.uniform(0.5, 1.0) * min(cap, base * 2 ** max(attempts - 1, 0)))


class _Heartbeat(threading.Thread):
    def __init__(self, db: Database, build_id: int, worker: str, lease: dt.timedelta) -> None:
        super().__init__(name=f"heartbeat-{build_id}", daemon=True)
        self.db, self.build_id, self.worker, self.lease = db, build_id, worker, lease
        self.done = threading.Event()
        self.lost = threading.Event()

    def run(self) -> None:
        # frequent enough that a cancel or a superseding push stops the build within seconds
        interval = min(self.lease.total_seconds() / 3, 2.0)
        while not self.done.wait(interval):
            try:
                with self.db.session() as session:
                    jobs.heartbeat(session, jobs.BUILDS, self.build_id, self.worker, self.lease)
            except LeaseLost:
                log.warning("build %s: lease lost, stopping it", self.build_id)
                self.lost.set()
                return
            except Exception:  # the database may be briefly away; the lease has slack
                log.exception("build %s: heartbeat failed", self.build_id)


class BuildWorker:
    """Claims and runs builds until ``stop()``; one build at a time per worker."""

    def __init__(self, db: Database, config: Config, name: str | None = None) -> None:
        self.db, self.config = db, config
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{id(self) & 0xFFFF:x}"
        self.lease = dt.timedelta(seconds=config.worker.lease_seconds)
        self._limits = {name: p.concurrency for name, p in config.projects.items() if p.concurrency}
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run_forever(self) -> None:
        log.info("worker %s: started", self.name)
        while not self._stop.is_set():
            try:
                worked = self.run_once()
            except Exception:
                log.exception("worker %s: iteration failed", self.name)
                worked = False
            if not worked:
                self._stop.wait(self.config.worker.poll_seconds)
        log.info("worker %s: stopped", self.name)

    def run_once(self) -> bool:
        """Claim and work one build; ``False`` when the queue was empty."""
        with self.db.session(immediate=True) as session:
            build_id = jobs.claim(session, jobs.BUILDS, self.name, self.lease, self._limits)
        if build_id is None:
            return False
        log.info("worker %s: claimed build %s", self.name, build_id)
        beat = _Heartbeat(self.db, build_id, self.name, self.lease)
        beat.start()
        try:
            outcome = run_build(self.db, self.config, build_id, should_stop=beat.lost.is_set)
        except PipelineError as exc:
            attempts = self._attempts(build_id)
            if exc.retryable and attempts < self.config.worker.max_attempts:
                self._record(build_id, beat, jobs.release, error=f"will retry: {exc.message}",
                             delay=retry_delay(attempts))
            else:
                self._record(build_id, beat, jobs.finish, status="failed", error=exc.message)
        else:
            if isinstance(outcome, BuildSkipped):
                self._record(build_id, beat, jobs.finish, status="skipped", error=outcome.reason)
                return True
            self._record(build_id, beat, jobs.finish, status="succeeded", **outcome.columns())
            if outcome.followup is not None:
                try:
                    outcome.followup()
                except PipelineError as exc:  # the image is built and recorded; insight is a bonus
                    log.warning("build %s: image insight failed: %s", build_id, exc.message)
        return True

    def _attempts(self, build_id: int) -> int:
        with self.db.session() as session:
            return builds.get_build(session, build_id).attempts

    def _record(self, build_id: int, beat: _Heartbeat, write: Callable[..., None], **values: Any) -> None:
        """Stop the heartbeat, then write the outcome (``jobs.finish`` or ``jobs.release``)."""
        beat.done.set()
        beat.join()
        try:
            with self.db.session() as session:
                write(session, jobs.BUILDS, build_id, self.name, **values)
        except LeaseLost as exc:
            log.warning("worker %s: %s", self.name, exc.message)
            return
        log.info("worker %s: build %s %s", self.name, build_id, values.get("status", "requeued"))
