"""Git for the write-back: clone from a mirror, apply one YAML edit, commit, push, retry.

YAML editing lives in ``_update`` and knows no git; this module knows no YAML. Pushes to one
repository are serialized on this machine by the mirror's lock (and across machines by the
caller's database lock); what still races (a person pushing, another service) is met with
fetch, re-apply and push again, a bounded number of times. Re-applying rather than rebasing
keeps the edit correct when the file itself changed upstream.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pipeline.config import GitConfig
from pipeline.errors import ConfigError, GitError, GitPushRefused
from pipeline.git import AUTOCRLF, auth_env, fetch_mirror, locked, run_git
from pipeline.git import sanitize as public_url
from pipeline.gitops._types import UpdateError, UpdateResult

__all__ = ["Pushed", "gitops_mirror", "write_back"]

log = logging.getLogger(__name__)

_REJECTED_AS_STALE = ("non-fast-forward", "fetch first", "[rejected]", "stale info", "cannot lock ref")


@dataclass(frozen=True)
class Pushed:
    """What the write-back did: the commit it pushed, or ``None`` when the file already said so."""

    commit: str | None
    attempts: int
    old_value: str | None
    new_value: str


def gitops_mirror(data_dir: Path, repo: str) -> Path:
    """One bare mirror per environment repository, shared by every project that writes to it."""
    return data_dir / "mirrors" / f"gitops-{hashlib.sha256(repo.encode()).hexdigest()[:16]}.git"


def _inside(path: str) -> str:
    parts = PurePosixPath(path)
    if parts.is_absolute() or ".." in parts.parts or not parts.parts:
        raise ConfigError(f"gitops path {path!r} must be a relative path inside the repository (no '..')")
    return str(parts)


def write_back(
    data_dir: Path,
    work_dir: Path,
    *,
    repo: str,
    branch: str,
    path: str,
    auth: GitConfig,
    edit: Callable[[str], UpdateResult],
    message: str,
    author: tuple[str, str],
    attempts: int = 5,
    push_to: str | None = None,
) -> Pushed:
    """Apply ``edit`` to ``path`` on ``branch`` and push the commit; no commit when nothing changes.

    ``push_to`` names another branch to push the commit to (a pull request's head, made fresh
    from ``branch`` and owned by us, so it is force-pushed) instead of ``branch`` itself.
    """
    relative = _inside(path)
    mirror = gitops_mirror(data_dir, repo)
    mirror.parent.mkdir(parents=True, exist_ok=True)
    with locked(mirror):
        for attempt in range(1, attempts + 1):
            fetch_mirror(mirror, repo, auth)
            clone = work_dir / f"attempt-{attempt}"
            shutil.rmtree(clone, ignore_errors=True)
            result = _edit_in_clone(mirror, clone, repo, branch, relative, edit)
            if not result.changed:
                return Pushed(None, attempt, result.old_value, result.new_value)
            commit = _commit(clone, relative, message, author)
            if _push(clone, repo, push_to or branch, auth, force=push_to is not None):
                log.info("gitops: pushed %s to %s %s", commit[:12], public_url(repo), push_to or branch)
                return Pushed(commit, attempt, result.old_value, result.new_value)
            log.info("gitops: %s %s moved on; re-applying the edit (attempt %d)", public_url(repo), branch, attempt)
    raise GitError(
        f"{public_url(repo)} {branch} kept moving: the push was overtaken {attempts} times; it will be tried again"
    )


def _edit_in_clone(
    mirror: Path, clone: Path, repo: str, branch: str, path: str, edit: Callable[[str], UpdateResult]
) -> UpdateResult:
    try:
        run_git("--git-dir", str(mirror), "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}")
    except GitError:
        raise ConfigError(f"{public_url(repo)} has no branch {branch!r} to write to") from None
    run_git(*AUTOCRLF, "clone", "--shared", "--quiet", "--branch", branch, "--", str(mirror), str(clone))
    file = clone / path
    if not file.is_file() or file.is_symlink():
        raise ConfigError(f"{public_url(repo)} {branch}: {path} is not a file in the repository")
    original = file.read_bytes().decode("utf-8", errors="strict")
    try:
        result = edit(original)
    except UpdateError as exc:
        raise ConfigError(f"{public_url(repo)} {branch}: {exc}") from None
    if result.changed:
        file.write_bytes(result.text.encode("utf-8"))
    return result


def _commit(clone: Path, path: str, message: str, author: tuple[str, str]) -> str:
    name, email = author
    identity = ("-c", f"user.name={name}", "-c", f"user.email={email}")
    run_git("-C", str(clone), "add", "--", path)
    run_git(*identity, "-C", str(clone), "commit", "--quiet", "--no-verify", "-m", message)
    return run_git("-C", str(clone), "rev-parse", "HEAD").strip()


def _push(clone: Path, repo: str, branch: str, auth: GitConfig, *, force: bool = False) -> bool:
    """``True`` once pushed; ``False`` when the branch moved meanwhile (worth another try)."""
    try:
        run_git(
            "-C",
            str(clone),
            "push",
            "--",
            repo,
            f"{'+' if force else ''}HEAD:refs/heads/{branch}",
            env=auth_env(repo, auth),
            timeout=auth.timeout_seconds,
        )
    except GitError as exc:
        if any(word in exc.message for word in _REJECTED_AS_STALE):
            return False
        raise GitPushRefused(f"{public_url(repo)} refused the push to {branch}: {exc.message}") from None
    return True
