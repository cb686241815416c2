"""Source: the exact pushed commit, from the project's configured repository only."""

from pipeline.source._git import AUTOCRLF, auth_env, run_git
from pipeline.source._git import sanitize as public_url
from pipeline.source._mirror import (
    changed_files,
    checkout,
    fetch_mirror,
    locked,
    mirror_path,
    remote_refs,
    update_mirror,
)

__all__ = [
    "AUTOCRLF",
    "auth_env",
    "changed_files",
    "checkout",
    "fetch_mirror",
    "locked",
    "mirror_path",
    "public_url",
    "remote_refs",
    "run_git",
    "update_mirror",
]
