"""Config reload without a restart, in every process of an installation.

An admin asks one process (``POST /api/v1/config/reload``, ``pipeline config reload``). It
reads its file again; when the file does not validate nothing changes anywhere and the answer
names the bad keys. When it does, the projects table learns new projects and a row in
``config_reloads`` tells the other processes (API processes, workers on other machines) to
read their own file too: each checks for a newer row every few seconds.

Each process reads its own file, which is what a Kubernetes ConfigMap gives: its mounted copy
changes on every pod, but not at the same moment. A process whose file does not yet say what
the asking process read (another fingerprint) tries again at each check for a while.
``SIGHUP`` reloads only the process that gets it, as daemons do.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import ConfigChange, LiveConfig
from pipeline.errors import ConfigError, InvalidRequest
from pipeline.store import Database, projects, reloads

__all__ = ["CHECK_SECONDS", "ReloadFollower", "Reloaded", "reload_config"]

log = logging.getLogger(__name__)

CHECK_SECONDS = 5.0  # how often a process asks whether a reload was asked for
CATCH_UP_SECONDS = 600.0  # how long a process retries a file that does not yet say what was asked


@dataclass(frozen=True)
class Reloaded:
    change: ConfigChange
    reload_id: int
    source: Path


def sync(db: Database, live: LiveConfig) -> None:
    """New projects into the projects table, which builds and promotions refer to."""
    with db.session(immediate=True) as session:
        projects.sync_projects(session, live.current.projects)


def reload_config(db: Database, live: LiveConfig, actor: str) -> Reloaded:
    """Reload here and tell every other process; ``InvalidRequest`` (nothing changed) for a bad file."""
    try:
        change = live.reload()
    except ConfigError as exc:
        raise InvalidRequest(f"{exc.message}\nnothing was reloaded: the running config is unchanged") from None
    with db.session(immediate=True) as session:
        projects.sync_projects(session, live.current.projects)
        row = reloads.record(session, fingerprint=change.fingerprint, actor=actor, summary=change.summary())
        reload_id = row.id
    live.generation = max(live.generation, reload_id)
    log.info("config reload %s by %s: %s", reload_id, actor, change.summary())
    assert live.source is not None  # reload() refuses a config without a file
    return Reloaded(change, reload_id, live.source)


class ReloadFollower:
    """Reads this process's file again when another process recorded a reload.

    ``check()`` is one cheap query (the newest reload's id); ``start()`` runs it in a daemon
    thread for processes without a scheduler (``pipeline api``).
    """

    def __init__(self, db: Database, live: LiveConfig, *, check_seconds: float = CHECK_SECONDS) -> None:
        self.db, self.live, self.check_seconds = db, live, check_seconds
        self._behind_since: float | None = None  # monotonic time the file first lagged
        self._stop = threading.Event()

    def mark_current(self) -> None:
        """At start: the file just read is as new as any reload recorded before."""
        with self.db.session() as session:
            self.live.generation = max(self.live.generation, reloads.latest_id(session))

    def check(self) -> ConfigChange | None:
        with self.db.session() as session:
            newest = reloads.latest(session)
        if newest is None or newest.id <= self.live.generation:
            return None
        try:
            change = self.live.reload()
        except ConfigError as exc:
            log.error(
                "config reload %s (asked by %s) failed in this process; it keeps its config: %s",
                newest.id,
                newest.actor,
                exc.message,
            )
            self.live.generation = newest.id
            return None
        if self.live.fingerprint != newest.fingerprint and not self._gave_up(newest.id):
            return change  # the file here may not have been updated yet: look again at the next check
        self._behind_since = None
        self.live.generation = newest.id
        if not change.unchanged:
            sync(self.db, self.live)
        return change

    def _gave_up(self, reload_id: int) -> bool:
        now = time.monotonic()
        if self._behind_since is None:
            self._behind_since = now
            log.warning(
                "config reload %s: this process's file (%s) does not yet say what the asking process "
                "read; trying again for %.0f s",
                reload_id,
                self.live.source,
                CATCH_UP_SECONDS,
            )
        if now - self._behind_since < CATCH_UP_SECONDS:
            return False
        log.warning("config reload %s: this process's file still differs; keeping what it says", reload_id)
        return True

    def start(self) -> threading.Thread:
        self.mark_current()
        thread = threading.Thread(target=self._run, name="config-reload-follower", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.check_seconds):
            try:
                self.check()
            except Exception:  # the database may be briefly away; the next check tries again
                log.exception("config reload check failed")
