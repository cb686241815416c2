"""Opaque keyset cursors: pages stay stable while new rows arrive at the top."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Protocol, TypeVar

from pipeline.errors import InvalidRequest

__all__ = ["decode_cursor", "encode_cursor", "split_page"]


def encode_cursor(before_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"before": before_id}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        before = data["before"]
        if not isinstance(before, int) or not 1 <= before <= 2**31 - 1:
            raise TypeError
        return before
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise InvalidRequest("cursor is not one this API returned; start again without it") from None


class _HasId(Protocol):
    id: int


Row = TypeVar("Row", bound=_HasId)


def split_page(rows: Sequence[Row], limit: int) -> tuple[list[Row], str | None]:
    """Rows fetched with ``limit + 1``: the page, and the cursor for the next one if there is more."""
    page = list(rows[:limit])
    return page, encode_cursor(page[-1].id) if len(rows) > limit else None
