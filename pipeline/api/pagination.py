"""Opaque keyset cursors: pages stay stable while new rows arrive at the top."""

from __future__ import annotations

import base64
import binascii
import json

from pipeline.errors import InvalidRequest

__all__ = ["decode_cursor", "encode_cursor"]


def encode_cursor(before_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"before": before_id}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        before = data["before"]
        if not isinstance(before, int):
            raise TypeError
        return before
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise InvalidRequest("cursor is not one this API returned; start again without it") from None
