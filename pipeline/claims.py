"""A claimed job's scope: what a build or a promotion may ask of the claim it runs under.

The worker claims a row and hands the job a ``ClaimScope``. The job asks ``should_stop()``
between steps (the heartbeat found the lease lost: cancelled, superseded, reaped), and wraps
every side effect that others can see (a tag move, a Git push, a signature) in ``fenced()``:
a fresh read of holder and epoch, under a lock named for the thing it changes, so that a
worker that stalled past its lease and woke up touches nothing.

Registries have no compare-and-swap, so the fence cannot be perfect; it is kept as short as
a fresh read plus the one registry request, and those who move the same tag take turns on
the same lock (``store.locks.fence``).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from pipeline.errors import LeaseLost
from pipeline.store import Database, jobs, locks

__all__ = ["ClaimScope", "Heartbeat", "unclaimed"]

log = logging.getLogger(__name__)


class Heartbeat(threading.Thread):
    """Extends a job's lease until ``done``; sets ``lost`` once another party took the row."""

    def __init__(self, db: Database, job: jobs.Job, lease: dt.timedelta) -> None:
        super().__init__(name=f"heartbeat-{job.name.replace(' ', '-')}", daemon=True)
        self.db, self.job, self.lease = db, job, lease
        self.done = threading.Event()
        self.lost = threading.Event()

    def run(self) -> None:
        # frequent enough that a cancel or a superseding push stops the job within seconds
        interval = min(self.lease.total_seconds() / 3, 2.0)
        while not self.done.wait(interval):
            try:
                with self.db.session() as session:
                    jobs.heartbeat(session, self.job, self.lease)
            except LeaseLost:
                log.warning("%s: lease lost, stopping it", self.job.name)
                self.lost.set()
                return
            except Exception:  # the database may be briefly away; the lease has slack
                log.exception("%s: heartbeat failed", self.job.name)

    def stop(self) -> None:
        self.done.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join()


class ClaimScope:
    """The claim a job runs under; the only way the job learns it should stop or may act."""

    def __init__(self, db: Database, job: jobs.Job | None, beat: Heartbeat | None = None) -> None:
        self.db, self.job, self._beat = db, job, beat

    @property
    def lock_wait(self) -> float:
        """How long to wait for a lock another worker holds before giving the job back: a
        lease, the longest a live holder goes without a heartbeat."""
        return self._beat.lease.total_seconds() if self._beat is not None else 30.0

    def should_stop(self) -> bool:
        return self._beat is not None and self._beat.lost.is_set()

    def ended(self) -> None:
        """The job wrote its own end (a build's record step): no more heartbeats."""
        if self._beat is not None:
            self._beat.stop()

    def check_lease(self) -> None:
        """Raises ``LeaseLost`` (with the reason) unless this claim still holds the row."""
        if self.job is None:
            return
        with self.db.session() as session:
            jobs.check(session, self.job)

    @contextmanager
    def fenced(self, lock: str) -> Iterator[Session]:
        """A writer transaction that holds ``lock`` and has just checked the claim.

        The caller makes its one outside change inside the block; others changing the same
        thing (the same tag) wait on the same lock. On SQLite the transaction starts as the
        writer, which serializes the same way within the one process that runs there.
        """
        with self.db.session(immediate=True) as session:
            locks.fence(session, lock, self.lock_wait)
            if self.job is not None:
                jobs.check(session, self.job)
            yield session


def unclaimed(db: Database) -> ClaimScope:
    """A scope with no claim behind it: for code run outside a worker (tests, the CLI)."""
    return ClaimScope(db, None)
