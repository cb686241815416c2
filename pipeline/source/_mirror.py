"""A bare mirror per project and exact-SHA checkouts from it.

The mirror makes the second push cheap (an incremental fetch); the checkout is a ``--shared``
clone of the mirror (no object copies) at a detached SHA. ``core.autocrlf=input`` is given on
the command line so a builder host whose global Git config converts line endings still builds
the bytes that were committed (a CRLF shell script breaks ``RUN``); ``.gitattributes`` rules
still apply, as git applies them on checkout.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline.config import ProjectConfig
from pipeline.errors import GitError
from pipeline.git import AUTOCRLF, auth_env, fetch_mirror, locked, run_git, sanitize
from pipeline.types import is_commit

__all__ = ["changed_files", "checkout", "mirror_path", "remote_refs", "update_mirror"]

log = logging.getLogger(__name__)


def mirror_path(data_dir: Path, project: str) -> Path:
    return data_dir / "mirrors" / f"{project}.git"


def update_mirror(data_dir: Path, name: str, project: ProjectConfig) -> Path:
    """Create the bare mirror on first use, else fetch what changed; only ``project.repo``."""
    path = mirror_path(data_dir, name)
    with locked(path):
        fetch_mirror(path, project.repo, project.git)
    return path


def _require_sha(commit: str) -> str:
    if not is_commit(commit):
        raise GitError(f"{commit[:60]!r} is not a full commit SHA")
    return commit


def checkout(data_dir: Path, name: str, project: ProjectConfig, commit: str, dest: Path) -> Path:
    """Fetch, then check ``commit`` out into the new directory ``dest``."""
    _require_sha(commit)
    mirror = update_mirror(data_dir, name, project)
    try:
        run_git("--git-dir", str(mirror), "cat-file", "-e", f"{commit}^{{commit}}")
    except GitError:
        raise GitError(f"commit {commit} is not in {sanitize(project.repo)} (was it force-pushed away?)") from None
    if dest.exists() and any(dest.iterdir()):
        raise GitError(f"checkout directory {dest} is not empty")
    run_git(*AUTOCRLF, "clone", "--shared", "--no-checkout", "--quiet", "--", str(mirror), str(dest))
    run_git(*AUTOCRLF, "-C", str(dest), "checkout", "--quiet", "--detach", commit)
    if project.git.submodules:
        _submodules(dest, project)
    if project.git.lfs:
        _lfs(dest, project)
    log.info("project %s: checked out %s into %s", name, commit[:12], dest)
    return dest


def _submodules(dest: Path, project: ProjectConfig) -> None:
    """Submodules come from the repository's own .gitmodules, fetched with the same credentials."""
    run_git(
        *AUTOCRLF,
        "-C",
        str(dest),
        "submodule",
        "update",
        "--init",
        "--recursive",
        "--quiet",
        env=auth_env(project.repo, project.git),
        timeout=project.git.timeout_seconds,
    )


def _lfs(dest: Path, project: ProjectConfig) -> None:
    try:
        run_git("lfs", "version")
    except GitError:
        raise GitError("the project enables Git LFS, but git-lfs is not installed on this worker") from None
    endpoint = project.repo.removesuffix("/").removesuffix(".git") + ".git/info/lfs"
    run_git(
        *AUTOCRLF,
        "-C",
        str(dest),
        "-c",
        f"lfs.url={endpoint}",
        "lfs",
        "pull",
        env={**auth_env(project.repo, project.git), "GIT_LFS_SKIP_SMUDGE": "0"},
        timeout=project.git.timeout_seconds,
    )


def changed_files(checkout_dir: Path, before: str, after: str) -> list[str] | None:
    """Paths changed between two commits, or None when ``before`` is unknown (force-push, gc)."""
    try:
        run_git("-C", str(checkout_dir), "cat-file", "-e", f"{_require_sha(before)}^{{commit}}")
    except GitError:
        return None
    out = run_git("-C", str(checkout_dir), "diff", "--name-only", "--no-renames", before, _require_sha(after))
    return [line for line in out.splitlines() if line]


def remote_refs(project: ProjectConfig) -> dict[str, str]:
    """Ref → SHA of the remote's branches and tags, as ``git ls-remote`` sees them now."""
    out = run_git(
        "ls-remote",
        "--heads",
        "--tags",
        "--",
        project.repo,
        env=auth_env(project.repo, project.git),
        timeout=min(project.git.timeout_seconds, 120),
    )
    refs: dict[str, str] = {}
    for line in out.splitlines():
        sha, _, ref = line.partition("\t")
        if ref.endswith("^{}"):  # the commit an annotated tag points at wins
            refs[ref.removesuffix("^{}")] = sha
        else:
            refs.setdefault(ref, sha)
    return refs
