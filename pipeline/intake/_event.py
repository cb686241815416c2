"""What every provider's push webhook boils down to."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["PushEvent", "ZERO_SHA", "validate_ref", "validate_sha"]

ZERO_SHA = "0" * 40
_SHA = re.compile(r"^[0-9a-f]{40}$")
# git check-ref-format's rules, as far as a name from a payload may go
_BAD_REF = re.compile(r"(^|/)\.|\.\.|[\x00-\x20\x7f~^:?*\[\\]|@\{|//|\.lock(/|$)|/$|\.$|^-")


def validate_sha(value: object, what: str) -> str:
    if not isinstance(value, str) or not _SHA.match(value):
        raise ValueError(f"{what} must be a 40-character hex commit SHA, got {value!r}")
    return value


def validate_ref(value: object) -> str:
    if not isinstance(value, str) or not value.startswith("refs/") or _BAD_REF.search(value):
        raise ValueError(f"ref must be a valid Git ref such as refs/heads/main, got {value!r}")
    return value


@dataclass(frozen=True)
class PushEvent:
    """A push as the receiver needs it, whatever host sent it."""

    repository_urls: tuple[str, ...]
    full_name: str | None
    ref: str
    before: str
    after: str
    head_message: str = ""
    changed_paths: tuple[str, ...] = field(default=())

    @property
    def deleted(self) -> bool:
        return self.after == ZERO_SHA

    @property
    def branch(self) -> str | None:
        return self.ref.removeprefix("refs/heads/") if self.ref.startswith("refs/heads/") else None

    @property
    def tag(self) -> str | None:
        return self.ref.removeprefix("refs/tags/") if self.ref.startswith("refs/tags/") else None
