"""Shapes of path and query parameters shared by the routes, bounded so that no value a client
can send reaches the database as something it cannot hold (found by schemathesis: an id of
2**63 or a date in year 9999 at -23:59 became a 500 instead of a 422)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import Path, Query
from pydantic import AfterValidator

from pipeline.api import _examples as ex

__all__ = ["MAX_ID", "Cursor", "Id", "Moment", "PageSize", "Since", "Until", "to_utc"]

MAX_ID = 2**31 - 1  # ids are 32-bit integers on PostgreSQL


def to_utc(value: dt.datetime | None) -> dt.datetime | None:
    """A timezone-aware UTC time (naive means UTC); refused when UTC cannot represent it."""
    if value is None:
        return None
    try:
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError(f"{value.isoformat()} is outside the range of representable UTC times") from None


Id = Annotated[int, Path(ge=1, le=MAX_ID)]
Moment = Annotated[dt.datetime | None, AfterValidator(to_utc), Query()]

# the paging and time-range parameters of the history listings (builds, promotions)
Since = Annotated[
    Moment,
    Query(
        description="only those created at or after this time (RFC 3339; without an "
        "offset, UTC); with since or until the list is ordered by creation time",
        examples=["2025-05-14T00:00:00Z"],
    ),
]
Until = Annotated[
    Moment,
    Query(
        description="only those created before this time (RFC 3339; without an offset, UTC)",
        examples=["2025-05-15T00:00:00Z"],
    ),
]
PageSize = Annotated[int, Query(ge=1, le=500, description="how many per page")]
Cursor = Annotated[
    str | None,
    Query(
        description="`next_cursor` of the page before; omit for the first page "
        "(a cursor continues only the kind of listing it came from)",
        examples=[ex.CURSOR],
    ),
]
