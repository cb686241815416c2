"""The config of a long-running process, and how it is reloaded without a restart.

Whole configs are swapped, never edited in place: a request or a job reads ``current`` once
and works with one consistent config from start to end, while the next one sees the new
file. A file that does not validate changes nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.config._base import Model
from pipeline.errors import ConfigError

if TYPE_CHECKING:
    from pipeline.config import Config

__all__ = ["ConfigChange", "LiveConfig", "fingerprint"]

log = logging.getLogger(__name__)

# what a running process set up from the config at its start and keeps until it is restarted
_AT_START = ("database_url",)


def fingerprint(config: Model) -> str:
    """Names one config's content (not its file's bytes: comments and order do not count)."""
    return hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ConfigChange:
    """What a reload changed: projects added, removed or changed, and other top-level sections."""

    fingerprint: str
    previous: str
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    sections: tuple[str, ...] = ()
    restart_required: tuple[str, ...] = ()

    @property
    def unchanged(self) -> bool:
        return self.fingerprint == self.previous

    def summary(self) -> str:
        if self.unchanged:
            return "no change"
        parts = [
            f"{label} {', '.join(names)}"
            for label, names in (
                ("added", self.added),
                ("removed", self.removed),
                ("changed", self.changed),
                ("sections", self.sections),
                ("restart for", self.restart_required),
            )
            if names
        ]
        return "; ".join(parts) or "formatting only"


def compare(old: Config, new: Config) -> ConfigChange:
    old_projects, new_projects = old.projects, new.projects
    sections = tuple(
        name for name in type(new).model_fields if name != "projects" and getattr(old, name) != getattr(new, name)
    )
    return ConfigChange(
        fingerprint(new),
        fingerprint(old),
        added=tuple(n for n in new_projects if n not in old_projects),
        removed=tuple(n for n in old_projects if n not in new_projects),
        changed=tuple(n for n in new_projects if n in old_projects and old_projects[n] != new_projects[n]),
        sections=tuple(s for s in sections if s not in _AT_START),
        restart_required=tuple(s for s in sections if s in _AT_START),
    )


@dataclass
class LiveConfig:
    """Holds the current config; ``reload()`` reads ``source`` again and swaps it in.

    Listeners run after a swap, in the reloading thread: the scheduler re-plans its duties,
    the API points its state at the new config. Without a ``source`` (a config built in code)
    there is nothing to reload.
    """

    config: Config
    source: Path | None = None
    loaded_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    generation: int = 0  # the newest recorded reload this process has acted on (``pipeline.config_reload``)
    _listeners: list[Callable[[Config], None]] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def of(cls, config: Config | LiveConfig) -> LiveConfig:
        """``config`` as a live one: a plain ``Config`` (tests, code) becomes one that never reloads."""
        return config if isinstance(config, LiveConfig) else cls(config)

    @property
    def current(self) -> Config:
        return self.config

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.config)

    def on_change(self, listener: Callable[[Config], None]) -> None:
        self._listeners.append(listener)

    def reload(self) -> ConfigChange:
        """Read the source again; ``ConfigError`` (and the old config kept) when it is invalid."""
        from pipeline.config import load_config, require_webhook_secrets  # the package imports this module

        if self.source is None:
            raise ConfigError("this process was not started from a config file, so there is nothing to reload")
        with self._lock:  # two reloads at once must not interleave read and swap
            new = load_config(self.source)
            require_webhook_secrets(new, str(self.source))
            change = compare(self.config, new)
            if change.unchanged:
                return change
            self.config, self.loaded_at = new, dt.datetime.now(dt.UTC)
        for listener in self._listeners:
            try:
                listener(new)
            except Exception:  # one listener's trouble must not keep the others from the new config
                log.exception("config reload: a listener failed")
        log.info("config reloaded from %s (%s): %s", self.source, change.fingerprint, change.summary())
        return change
