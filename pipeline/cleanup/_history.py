"""What Git says now about a project, read from its bare mirror after a fetch (with ``--prune``,
so a branch deleted in Git is gone here too): branches and their newest commits, tags, and the
commits any of them reaches. Also the mirrors' upkeep (``git gc``)."""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline.cleanup._policy import GitFacts
from pipeline.config import Config
from pipeline.errors import GitError
from pipeline.git import locked, run_git
from pipeline.source import mirror_path, update_mirror

__all__ = ["gc_mirrors", "git_facts"]

log = logging.getLogger(__name__)


def git_facts(config: Config, project: str, keep_commits: int) -> GitFacts:
    """Fetch the project's mirror and read branches, tags and reachable commits from it.

    A fetch that fails stops the cleanup of this project: deciding from a stale mirror could
    take a branch pushed since for deleted."""
    path = update_mirror(config.data_dir, project, config.project(project))
    with locked(path):
        refs = run_git("--git-dir", str(path), "for-each-ref", "--format=%(refname) %(objectname) %(*objectname)")
        branches: dict[str, tuple[str, ...]] = {}
        tags: dict[str, str] = {}
        for line in refs.splitlines():
            name, sha, *peeled = line.split(" ")
            if name.startswith("refs/heads/"):
                branch = name.removeprefix("refs/heads/")
                branches[branch] = _newest(path, sha, keep_commits)
            elif name.startswith("refs/tags/"):
                tags[name.removeprefix("refs/tags/")] = peeled[0] if peeled and peeled[0] else sha
        reachable = run_git("--git-dir", str(path), "rev-list", "--branches", "--tags") if refs else ""
    return GitFacts(branches, tags, frozenset(reachable.split()))


def _newest(path: Path, head: str, count: int) -> tuple[str, ...]:
    if count == 0:
        return ()
    out = run_git("--git-dir", str(path), "rev-list", f"--max-count={count}", head, "--")
    return tuple(out.split())


def gc_mirrors(config: Config) -> list[str]:
    """``git gc`` every project's mirror (one at a time, under the mirror's lock, so no fetch
    runs meanwhile); the names of those collected. A failure is logged, not raised."""
    done = []
    for name in config.projects:
        path = mirror_path(config.data_dir, name)
        if not (path / "HEAD").exists():
            continue
        try:
            with locked(path):
                run_git("--git-dir", str(path), "gc", "--quiet", "--prune=now", timeout=1800)
            done.append(name)
        except GitError as exc:
            log.warning("project %s: git gc of its mirror failed: %s", name, exc.message)
    return done
