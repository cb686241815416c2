"""The service's vocabulary: what a digest and a commit look like, said once.

Everything past the build names an image by digest only, and every commit by its full SHA;
these are the checks every package applies, and ``content_digest`` is how the bytes of a
manifest or a blob get the name a registry gives them.
"""

from __future__ import annotations

import hashlib
import re
from typing import Literal, NewType, TypeGuard, get_args

__all__ = [
    "COMMIT_PATTERN",
    "DIGEST_PATTERN",
    "GIT_HOSTS",
    "Digest",
    "GitHost",
    "content_digest",
    "is_commit",
    "is_digest",
]

Digest = NewType("Digest", str)  # "sha256:<64 hex>": an image, a manifest or a blob

DIGEST_PATTERN = r"sha256:[0-9a-f]{64}"
COMMIT_PATTERN = r"[0-9a-f]{40}"  # a full SHA-1 commit id, lowercase (as Git hosts send it)

# The kinds of Git host the service talks to: whose push webhooks it reads (plus ``generic``),
# and, where implemented, whose pull requests it opens. One list, so a new host is added once.
GitHost = Literal["github", "gitlab", "gitea", "bitbucket"]
GIT_HOSTS: tuple[str, ...] = get_args(GitHost)

_DIGEST = re.compile(DIGEST_PATTERN)
_COMMIT = re.compile(COMMIT_PATTERN)


def is_digest(value: object) -> TypeGuard[Digest]:
    """A sha256 digest as OCI writes it, exactly."""
    return isinstance(value, str) and _DIGEST.fullmatch(value) is not None


def is_commit(value: object) -> TypeGuard[str]:
    """A full, lowercase 40-hex commit SHA."""
    return isinstance(value, str) and _COMMIT.fullmatch(value) is not None


def content_digest(data: bytes) -> Digest:
    """The digest of exactly these bytes: what the registry names them by."""
    return Digest("sha256:" + hashlib.sha256(data).hexdigest())
