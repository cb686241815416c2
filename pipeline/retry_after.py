"""``Retry-After``, as registries and notification receivers send it.

One reading for every client the service has: the header is a delay in seconds or an HTTP
date (RFC 9110 §10.2.3), and a hostile or mistaken value must not stall a worker, so callers
give the longest wait they accept.
"""

from __future__ import annotations

import datetime as dt
import email.utils

__all__ = ["retry_after_seconds"]


def retry_after_seconds(value: str | None, cap: float) -> float | None:
    """The header's wait in seconds, between 0 and ``cap``; None when absent or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # an HTTP date is GMT; a zone-less one is read as such
            when = when.replace(tzinfo=dt.UTC)
        seconds = (when - dt.datetime.now(dt.UTC)).total_seconds()
    return min(max(seconds, 0.0), cap)
