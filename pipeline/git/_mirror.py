"""Bare mirrors: one fetch at a time per mirror, and an incremental fetch (or a first clone)."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.config import GitConfig
from pipeline.git._run import auth_env, run_git

__all__ = ["fetch_mirror", "locked"]


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """One process at a time per mirror: concurrent fetches into one bare repo corrupt refs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def fetch_mirror(path: Path, repo: str, auth: GitConfig) -> None:
    """Bring the bare mirror at ``path`` up to date with ``repo``; the caller holds ``locked(path)``."""
    env, timeout = auth_env(repo, auth), auth.timeout_seconds
    if (path / "HEAD").exists():
        run_git("--git-dir", str(path), "remote", "set-url", "origin", "--", repo)
        run_git("--git-dir", str(path), "fetch", "--prune", "--quiet", "origin", env=env, timeout=timeout)
    else:
        tmp = path.with_name(path.name + ".new")
        shutil.rmtree(tmp, ignore_errors=True)
        run_git("clone", "--mirror", "--quiet", "--", repo, str(tmp), env=env, timeout=timeout)
        os.replace(tmp, path)
