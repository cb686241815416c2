"""The build's log: lines from every step and from BuildKit, written in batches, read live."""

from __future__ import annotations

import logging
import threading
import time

from pipeline.store import Database, builds

__all__ = ["LogSink"]

log = logging.getLogger(__name__)


class LogSink:
    """Buffers build output and writes it in batches so a chatty build does not flood the DB;
    a timer flushes what a quiet step printed last, so followers see it within a second."""

    def __init__(self, db: Database, build_id: int, flush_every: float = 0.5, max_lines: int = 200) -> None:
        self._db, self._id = db, build_id
        self._pending: list[str] = []
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._last = time.monotonic()
        self._every, self._max = flush_every, max_lines
        self._closed = threading.Event()
        threading.Thread(target=self._timer, name=f"logs-{build_id}", daemon=True).start()

    def _timer(self) -> None:
        while not self._closed.wait(self._every):
            try:
                self.flush()
            except Exception:  # the final flush in close() reports for real
                log.debug("build %s: periodic log flush failed", self._id, exc_info=True)

    def close(self) -> None:
        self._closed.set()
        self.flush()

    def __call__(self, line: str) -> None:
        with self._lock:
            self._pending.append(line)
            due = len(self._pending) >= self._max or time.monotonic() - self._last >= self._every
        if due:
            self.flush()

    def flush(self) -> None:
        with self._flushing:  # one writer at a time keeps seq numbers in order
            with self._lock:
                lines, self._pending = self._pending, []
                self._last = time.monotonic()
            if not lines:
                return
            try:
                # a writer from the start: append_logs reads the last seq, then inserts, and on
                # SQLite a read transaction cannot become a writer once another one committed
                with self._db.session(immediate=True) as session:
                    builds.append_logs(session, self._id, lines)
            except Exception:
                with self._lock:  # keep them for the next flush: a log line is never dropped
                    self._pending = lines + self._pending
                raise
