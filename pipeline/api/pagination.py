"""Opaque keyset cursors: pages stay stable while new rows arrive at the top.

A cursor is the position the page ended at (``store.pages.Before``): the last row's id and,
for a listing with a time range (ordered by time), its ``created_at`` too.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from pipeline.errors import InvalidRequest
from pipeline.store.pages import Before

__all__ = ["decode_cursor", "encode_cursor", "page", "split_page"]

_NOT_OURS = "cursor is not one this API returned; start again without it"


def encode_cursor(before: Before) -> str:
    data: dict[str, object] = {"before": before.id}
    if before.created_at is not None:
        data["at"] = before.created_at.isoformat()
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, *, by_time: bool = False) -> Before | None:
    """The position to continue after; ``by_time`` for a listing with ``since`` or ``until``."""
    if not cursor:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        before = data["before"]
        if not isinstance(before, int) or isinstance(before, bool) or not 1 <= before <= 2**31 - 1:
            raise TypeError
        at = data.get("at")
        created_at = dt.datetime.fromisoformat(at) if isinstance(at, str) else None
        if created_at is not None and created_at.tzinfo is None:
            raise TypeError
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError, OverflowError):
        raise InvalidRequest(_NOT_OURS) from None
    if by_time and created_at is None:
        raise InvalidRequest(
            "this cursor continues a listing without since/until; with a time range, start again without a cursor"
        )
    return Before(before, created_at if by_time else None)


class _Row(Protocol):
    id: int
    created_at: dt.datetime


Row = TypeVar("Row", bound=_Row)


def split_page(rows: Sequence[Row], limit: int, *, by_time: bool = False) -> tuple[list[Row], str | None]:
    """Rows fetched with ``limit + 1``: the page, and the cursor for the next one if there is more."""
    page = list(rows[:limit])
    if len(rows) <= limit:
        return page, None
    last = page[-1]
    return page, encode_cursor(Before(last.id, last.created_at if by_time else None))


def page(
    fetch: Callable[[int, Before | None], Sequence[Row]], limit: int, cursor: str | None, *, by_time: bool
) -> tuple[list[Row], str | None]:
    """One page of a listing: ``fetch(n, before)`` gives up to ``n`` rows after the cursor's position."""
    return split_page(fetch(limit + 1, decode_cursor(cursor, by_time=by_time)), limit, by_time=by_time)
