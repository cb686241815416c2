"""Wake idle workers the moment work becomes claimable, instead of at their next poll.

Two paths, and polling stays underneath both as the fallback:
- in the process that committed it: store functions that queue or free work ``announce`` the
  queue on the session, and the commit wakes that queue's waiters (``pipeline serve`` on
  SQLite is one process, so this is all it needs);
- across processes on PostgreSQL: a statement trigger on the queue tables (migration 0013)
  sends ``NOTIFY pipeline_jobs``; ``listen`` keeps one connection per process that LISTENs
  and wakes the same waiters, reconnecting when the connection drops.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["CHANNEL", "Signal", "announce", "install", "listen", "signal"]

CHANNEL = "pipeline_jobs"
_KEY = "pipeline_announced_queues"
log = logging.getLogger(__name__)


class Signal:
    """A generation counter waiters compare against, so a wake-up between a worker's empty
    claim and its wait is never missed."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._generation = 0

    @property
    def generation(self) -> int:
        with self._cond:
            return self._generation

    def fire(self) -> None:
        with self._cond:
            self._generation += 1
            self._cond.notify_all()

    def wait(self, since: int, timeout: float) -> bool:
        """Until the generation moved past ``since`` or ``timeout`` passed; True if woken."""
        with self._cond:
            return self._cond.wait_for(lambda: self._generation != since, timeout)


_SIGNALS = {
    "builds": Signal(),
    "promotions": Signal(),
    "verifications": Signal(),  # polled across processes
    "notifications": Signal(),
}


def signal(queue: str) -> Signal:
    """The wake-up of one queue table (``builds``, ``promotions`` or ``notifications``) in this process."""
    return _SIGNALS[queue]


def announce(session: Session, queue: str) -> None:
    """Wake ``queue``'s waiters when this session's transaction commits (not before: a worker
    woken early would find nothing it can see)."""
    session.info.setdefault(_KEY, set()).add(queue)


def _after_commit(session: Session) -> None:
    for queue in session.info.pop(_KEY, ()):
        _SIGNALS[queue].fire()


def _after_rollback(session: Session) -> None:
    session.info.pop(_KEY, None)


def install(factory: sessionmaker[Session]) -> None:
    """Hook the in-process wake-ups into a session factory (``Database`` does it)."""
    event.listen(factory, "after_commit", _after_commit)
    event.listen(factory, "after_soft_rollback", lambda session, _previous: _after_rollback(session))


class _Listener(threading.Thread):
    """One LISTEN connection for the workers of one database in this process."""

    def __init__(self, url: str, retry_seconds: float) -> None:
        super().__init__(daemon=True, name="job-notifications")
        self.url, self.retry_seconds = url, retry_seconds
        self.users = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        import psycopg  # the PostgreSQL driver; only imported where PostgreSQL is used

        while not self.stopped.is_set():
            try:
                with psycopg.connect(_conninfo(self.url), autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    _wake_all()  # whatever was queued while nobody listened is found by this one
                    while not self.stopped.is_set():
                        for note in conn.notifies(timeout=1.0):
                            _wake(note.payload)
            except Exception as exc:  # the database restarted, the network dropped: poll meanwhile
                if not self.stopped.is_set():
                    log.warning("job notifications: %s; workers poll until the connection is back", exc)
            self.stopped.wait(self.retry_seconds)


_listeners: dict[str, _Listener] = {}
_listeners_lock = threading.Lock()


def listen(url: str, *, retry_seconds: float = 2.0) -> Callable[[], None]:
    """Have this process LISTEN for queued work on ``url`` (PostgreSQL; one connection shared
    by every worker of the process); returns the call that says this user is done with it."""
    if make_url(url).get_backend_name() != "postgresql":
        return lambda: None
    with _listeners_lock:
        listener = _listeners.get(url)
        if listener is None or not listener.is_alive():
            listener = _listeners[url] = _Listener(url, retry_seconds)
            listener.start()
        listener.users += 1

    def done() -> None:
        with _listeners_lock:
            listener.users -= 1
            if listener.users == 0:
                listener.stopped.set()
                if _listeners.get(url) is listener:
                    del _listeners[url]

    return done


def _conninfo(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _wake(payload: Any) -> None:
    found = _SIGNALS.get(str(payload))
    if found is not None:
        found.fire()


def _wake_all() -> None:
    for found in _SIGNALS.values():
        found.fire()
