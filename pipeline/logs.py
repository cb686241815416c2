"""Logging set-up: readable lines for a terminal, one JSON object per line for a log pipeline.

A worker marks the job it is on (``job_context``), and every record logged meanwhile in that
thread carries the build or promotion id, so the lines of one build can be found in
aggregated logs without parsing messages.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from pipeline.errors import ConfigError

__all__ = ["JsonFormatter", "job_context", "setup_logging"]

_job: contextvars.ContextVar[dict[str, int] | None] = contextvars.ContextVar("pipeline_job", default=None)
_PLAIN = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
# APScheduler logs two INFO lines for every run of every duty ("Running job ...", "Job ...
# executed successfully"): every few seconds, about half of a quiet service's log.
_PER_RUN_LOGGERS = ("apscheduler.executors.",)


@contextmanager
def job_context(**ids: int) -> Iterator[None]:
    """``with job_context(build_id=7):`` tags every record of this thread with the id."""
    token = _job.set(ids)
    try:
        yield
    finally:
        _job.reset(token)


class _JobFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_job.get() or {}).items():
            setattr(record, key, value)
        return True


class _DemoteToDebug(logging.Filter):
    """Turns a chatty library's INFO records into DEBUG ones, shown only at ``PIPELINE_LOG_LEVEL=debug``;
    its warnings and errors (a missed run, a duty that raised) stay as they are."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and record.name.startswith(_PER_RUN_LOGGERS):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", "build_id"/"promotion_id", "exception"}``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("build_id", "promotion_id"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def _level() -> int:
    name = os.environ.get("PIPELINE_LOG_LEVEL", "info").strip().lower()
    if name not in _LEVELS:
        raise ConfigError(f"PIPELINE_LOG_LEVEL is {name!r}; use one of {', '.join(_LEVELS)}")
    return _LEVELS[name]


def setup_logging(log_format: str | None = None) -> None:
    """``PIPELINE_LOG_FORMAT=json`` (or ``log_format``) for JSON lines; plain text otherwise.
    ``PIPELINE_LOG_LEVEL`` (debug, info, warning, error; default info) sets what is shown."""
    level = _level()
    chosen = (log_format or os.environ.get("PIPELINE_LOG_FORMAT") or "text").lower()
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if chosen == "json" else logging.Formatter(_PLAIN))
    handler.addFilter(_JobFilter())
    handler.addFilter(_DemoteToDebug())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
