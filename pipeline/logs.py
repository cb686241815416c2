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

__all__ = ["JsonFormatter", "job_context", "setup_logging"]

_job: contextvars.ContextVar[dict[str, int] | None] = contextvars.ContextVar("pipeline_job", default=None)
_PLAIN = "%(asctime)s %(levelname)s %(name)s: %(message)s"


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


def setup_logging(log_format: str | None = None) -> None:
    """``PIPELINE_LOG_FORMAT=json`` (or ``log_format``) for JSON lines; plain text otherwise."""
    chosen = (log_format or os.environ.get("PIPELINE_LOG_FORMAT") or "text").lower()
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if chosen == "json" else logging.Formatter(_PLAIN))
    handler.addFilter(_JobFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
