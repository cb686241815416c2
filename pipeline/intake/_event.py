"""What every provider's webhook boils down to, and the checks a payload's values must pass."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pipeline.errors import BadPayload
from pipeline.types import is_commit

__all__ = ["ZERO_SHA", "Delivery", "PushEvent", "validate_ref", "validate_sha"]

ZERO_SHA = "0" * 40
# git check-ref-format's rules, and no byte a shell or a git option could misread
_BAD_REF = re.compile(r"(^|/)[.-]|\.\.|[\x00-\x20\x7f~^:?*\[\\;|&$`'\"<>]|@\{|//|\.lock(/|$)|/$|\.$")
MAX_REF = 255


def validate_sha(value: object, what: str) -> str:
    if not is_commit(value):
        shown = value[:60] if isinstance(value, str) else value
        raise BadPayload(f"{what} must be a 40-character hex commit SHA, got {shown!r}")
    return value


def validate_ref(value: object) -> str:
    if (
        not isinstance(value, str)
        or len(value) > MAX_REF
        or not value.startswith(("refs/heads/", "refs/tags/"))
        or _BAD_REF.search(value.removeprefix("refs/"))
    ):
        shown = value[:80] if isinstance(value, str) else value
        raise BadPayload(f"ref must be a valid branch or tag ref such as refs/heads/main, got {shown!r}")
    return value


@dataclass(frozen=True)
class PushEvent:
    """One ref update, whatever host sent it. ``changed_paths`` is None when the host's list is
    missing or truncated: the source step then diffs ``before..after`` itself."""

    ref: str
    before: str
    after: str
    head_message: str = ""
    changed_paths: tuple[str, ...] | None = None
    tag_object: str | None = None  # an annotated tag's object; ``after`` is the commit it peels to

    @property
    def deleted(self) -> bool:
        return self.after == ZERO_SHA

    @property
    def branch(self) -> str | None:
        return self.ref.removeprefix("refs/heads/") if self.ref.startswith("refs/heads/") else None

    @property
    def tag(self) -> str | None:
        return self.ref.removeprefix("refs/tags/") if self.ref.startswith("refs/tags/") else None


@dataclass(frozen=True)
class Delivery:
    """A parsed but not yet trusted delivery: enough to find the project and its secret.

    ``kind`` is ``push``, ``ping`` or ``other``; ``pushes()`` validates the ref updates and is
    called only after the signature was verified. ``identified`` is False when the sender gave
    no delivery id: such a delivery is deduplicated by its body's hash, within a window only.
    ``hook_id`` scopes the id: the hook it came through (GitHub, Bitbucket), or GitLab's hook
    kind (``system`` or ``project``), which send one event's id to several hooks.
    """

    provider: str
    event: str
    kind: str
    delivery_id: str
    hook_id: str
    repository_urls: tuple[str, ...]
    full_name: str | None
    payload: dict[str, Any]
    signed_body: bytes
    identified: bool = True

    @property
    def repository(self) -> str:
        return self.full_name or next(iter(self.repository_urls), "(none)")

    @property
    def names_repository(self) -> bool:
        return bool(self.full_name or self.repository_urls)


def changed_paths(commits: object, complete: bool) -> tuple[str, ...] | None:
    """Files touched by GitHub/GitLab/Gitea-style ``commits[]``; None when not trustworthy."""
    if not complete or not isinstance(commits, list) or not commits:
        return None
    paths: set[str] = set()
    for commit in commits:
        if not isinstance(commit, dict):
            return None
        for key in ("added", "modified", "removed"):
            files = commit.get(key)
            if not isinstance(files, list):
                return None
            paths.update(str(f) for f in files)
    return tuple(sorted(paths))
