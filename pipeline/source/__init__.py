"""Source: the exact pushed commit, checked out fresh from a per-project bare mirror.

The mirror makes the second push cheap (an incremental fetch); the checkout is a
``--shared`` clone of the mirror (no object copies) at a detached SHA. ``core.autocrlf=input``
is given on the command line so a builder host whose global Git config converts line endings
still produces the bytes that were committed: a CRLF shell script breaks ``RUN``.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import git

from pipeline.errors import GitError

__all__ = ["checkout", "mirror_path", "public_url", "remote_heads", "update_mirror"]

log = logging.getLogger(__name__)

_AUTOCRLF = ["-c", "core.autocrlf=input"]
_USERINFO = re.compile(r"(://)[^/@\s]+@")


def _sanitize(text: str) -> str:
    """Drop credentials embedded in URLs before an error reaches a log or the database."""
    return _USERINFO.sub(r"\1***@", text)


def _git(*args: str, cwd: Path | None = None) -> str:
    env = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true"}
    try:
        return git.Git(str(cwd) if cwd else None).execute(["git", *args], env=env)
    except git.GitCommandError as exc:
        stderr = _sanitize(str(exc.stderr or "").strip().removeprefix("stderr: ").strip("'\n "))
        raise GitError(f"git {_sanitize(' '.join(args))} failed: {stderr}") from None


def mirror_path(data_dir: Path, project: str) -> Path:
    return data_dir / "mirrors" / f"{project}.git"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One process at a time per mirror: fetches into the same bare repo corrupt refs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def update_mirror(data_dir: Path, project: str, url: str) -> Path:
    """Create the bare mirror on first use, else fetch what changed."""
    path = mirror_path(data_dir, project)
    with _locked(path):
        if (path / "HEAD").exists():
            _git("--git-dir", str(path), "remote", "set-url", "origin", "--", url)
            _git("--git-dir", str(path), "fetch", "--prune", "--quiet", "origin")
        else:
            shutil.rmtree(path, ignore_errors=True)
            tmp = path.with_name(path.name + ".new")
            shutil.rmtree(tmp, ignore_errors=True)
            _git("clone", "--mirror", "--quiet", "--", url, str(tmp))
            os.replace(tmp, path)
    return path


def checkout(data_dir: Path, project: str, url: str, commit: str, dest: Path) -> Path:
    """Fetch, then check ``commit`` out into the empty directory ``dest``."""
    mirror = update_mirror(data_dir, project, url)
    try:
        _git("--git-dir", str(mirror), "cat-file", "-e", f"{commit}^{{commit}}")
    except GitError:
        raise GitError(f"commit {commit} is not in {_sanitize(url)} (was it force-pushed away?)") from None
    if dest.exists() and any(dest.iterdir()):
        raise GitError(f"checkout directory {dest} is not empty")
    _git(*_AUTOCRLF, "clone", "--shared", "--no-checkout", "--quiet", "--", str(mirror), str(dest))
    _git(*_AUTOCRLF, "-C", str(dest), "checkout", "--quiet", "--detach", commit)
    log.info("project %s: checked out %s into %s", project, commit[:12], dest)
    return dest


def public_url(url: str) -> str:
    """The repository URL as it may be shown or stored: without embedded credentials."""
    return _sanitize(url)


def remote_heads(url: str) -> dict[str, str]:
    """Branch name → SHA as the remote has them now (``git ls-remote --heads``)."""
    out = _git("ls-remote", "--heads", "--", url)
    heads: dict[str, str] = {}
    for line in out.splitlines():
        sha, _, ref = line.partition("\t")
        heads[ref.removeprefix("refs/heads/")] = sha
    return heads
