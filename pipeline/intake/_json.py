"""Body decoding shared by the providers: JSON, or a form with the JSON in ``payload``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from pipeline.errors import BadPayload, UnsupportedMediaType

__all__ = ["decode_body", "header", "media_type"]


def media_type(headers: Mapping[str, str]) -> str:
    return headers.get("content-type", "").split(";")[0].strip().lower()


def header(headers: Mapping[str, str], name: str, provider: str) -> str:
    value = headers.get(name.lower())
    if not value:
        raise BadPayload(f"missing header {name}: is this a {provider} webhook?")
    return value


def decode_body(headers: Mapping[str, str], body: bytes, *, form: bool) -> tuple[dict[str, Any], bytes]:
    """The payload object and the JSON bytes it came from (what Gitea signs in form mode)."""
    kind = media_type(headers)
    if kind == "application/json":
        raw = body
    elif form and kind == "application/x-www-form-urlencoded":
        try:
            fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            raise BadPayload("form body is not valid UTF-8 form encoding") from None
        if "payload" not in fields:
            raise BadPayload("form-encoded webhook without a 'payload' field")
        raw = fields["payload"][0].encode()
    else:
        accepted = "application/json" + (" or application/x-www-form-urlencoded" if form else "")
        raise UnsupportedMediaType(f"content type {kind or '(none)'!r}: send {accepted}")
    try:
        payload = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadPayload("body is not valid UTF-8") from None
    except json.JSONDecodeError as exc:
        raise BadPayload(f"body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise BadPayload("body must be a JSON object")
    return payload, raw


def obj(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def text(value: object) -> str | None:
    return value if isinstance(value, str) else None
