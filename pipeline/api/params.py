"""Shapes of path and query parameters shared by the routes, bounded so that no value a client
can send reaches the database as something it cannot hold (found by schemathesis: an id of
2**63 or a date in year 9999 at -23:59 became a 500 instead of a 422)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import Path, Query
from pydantic import AfterValidator

__all__ = ["MAX_ID", "Id", "Moment", "to_utc"]

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
