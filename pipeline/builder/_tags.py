"""Tag and build-arg templates: ``{branch}-{short_sha}``, ``{semver}`` and friends.

A template is rendered only when every value it names exists for this build: ``{tag}`` and
``{semver}`` exist for tag pushes (``{semver*}`` only for a semantic version), ``{branch}`` for
branch pushes. ``latest`` is applied only to builds of the default branch.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping

__all__ = ["render_args", "render_tags", "sanitize_tag", "template_values"]

_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_SEMVER = re.compile(r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")
_FIELD = re.compile(r"{([^}]*)}")


def sanitize_tag(value: str) -> str:
    """``feature/Login`` becomes ``feature-Login``: a tag allows ``[A-Za-z0-9_.-]``, 128 chars."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", value).lstrip(".-")
    return cleaned[:128] or "_"


def template_values(
    *, project: str, branch: str | None, tag: str | None, sha: str, build_id: int, now: dt.datetime
) -> dict[str, str | None]:
    """Every placeholder's value for one build; None where it does not apply."""
    values: dict[str, str | None] = {
        "project": project,
        "branch": branch,
        "tag": tag,
        "sha": sha,
        "short_sha": sha[:7],
        "build_id": str(build_id),
        "timestamp": now.strftime("%Y%m%d%H%M%S"),
        "version": tag.removeprefix("v") if tag else sha[:7],
        "semver": None,
        "semver_minor": None,
        "semver_major": None,
    }
    if tag and (match := _SEMVER.match(tag)):
        major, minor, patch, pre = match.groups()
        values["semver"] = f"{major}.{minor}.{patch}" + (f"-{pre}" if pre else "")
        if not pre:  # a pre-release must not move the 1.2 and 1 tags
            values["semver_minor"], values["semver_major"] = f"{major}.{minor}", major
    return values


def _renderable(template: str, values: Mapping[str, str | None]) -> bool:
    return all(values.get(name) is not None for name in _FIELD.findall(template))


def render_tags(templates: Iterable[str], values: Mapping[str, str | None], *, default_branch: bool) -> list[str]:
    """Render the templates that apply to this build; ``{sha}`` when none does."""
    safe = {k: sanitize_tag(v) for k, v in values.items() if v is not None}
    tags: list[str] = []
    for template in templates:
        if template == "latest" and not default_branch:
            continue
        if not _renderable(template, values):
            continue
        tag = template.format_map(safe)
        if not _TAG.match(tag):
            raise ValueError(f"tag template {template!r} renders to {tag!r}, which is not a valid tag")
        if tag not in tags:
            tags.append(tag)
    return tags or [safe["sha"]]


def render_args(args: Mapping[str, str], values: Mapping[str, str | None]) -> dict[str, str]:
    """Build-arg values with placeholders filled; a value that does not apply becomes empty."""
    filled = {k: v or "" for k, v in values.items()}
    return {name: value.format_map(filled) for name, value in args.items()}
