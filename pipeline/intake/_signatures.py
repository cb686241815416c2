"""Constant-time checks of the three schemes hosts use: HMAC with prefix, bare HMAC, token."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from pipeline.errors import BadSignature

__all__ = ["require_hmac", "require_token"]


def _header(headers: Mapping[str, str], names: tuple[str, ...]) -> tuple[str, str] | None:
    for name in names:
        if value := headers.get(name.lower()):
            return name, value.strip()
    return None


def require_hmac(
    headers: Mapping[str, str], names: tuple[str, ...], body: bytes, secret: bytes, prefix: str = ""
) -> None:
    """The first present header of ``names`` must equal ``prefix + hex(HMAC-SHA256(body))``."""
    found = _header(headers, names)
    if found is None:
        raise BadSignature(f"missing signature header {' or '.join(names)}: set a secret on the webhook")
    name, given = found
    expected = prefix + hmac.new(secret, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(given.lower().encode(), expected.encode()):
        raise BadSignature(f"{name} does not match the body signed with the project's secret")


def require_token(headers: Mapping[str, str], name: str, secret: bytes) -> None:
    """GitLab sends the secret itself; compare it in constant time."""
    given = headers.get(name.lower())
    if not given:
        raise BadSignature(f"missing {name} header: set a secret token on the webhook")
    if not hmac.compare_digest(given.encode(), secret):
        raise BadSignature(f"{name} does not match the project's secret")
