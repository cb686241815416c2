"""Tag templates: ``{branch}-{short_sha}`` and friends, made into valid OCI tags."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["render_tags", "sanitize_tag"]

_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def sanitize_tag(value: str) -> str:
    """``feature/Login`` becomes ``feature-Login``: a tag allows ``[A-Za-z0-9_.-]``, 128 chars."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", value).lstrip(".-")
    return cleaned[:128] or "_"


def render_tags(templates: Iterable[str], values: dict[str, str]) -> list[str]:
    """Render each template; values are sanitized first so the result is always a valid tag."""
    safe = {k: sanitize_tag(v) for k, v in values.items()}
    tags: list[str] = []
    for template in templates:
        tag = template.format_map(safe)
        if not _TAG.match(tag):
            raise ValueError(f"tag template {template!r} renders to {tag!r}, which is not a valid tag")
        if tag not in tags:
            tags.append(tag)
    return tags
