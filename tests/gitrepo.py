"""A real Git "host" for tests: a bare repository served over file:// and a work tree."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

_ENV = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.com",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def _git(*args: str, cwd: Path) -> str:
    env = {**os.environ, **_ENV}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {done.stderr}")
    return done.stdout.strip()


@dataclass
class GitRepo:
    bare: Path
    work: Path

    @classmethod
    def create(cls, root: Path, branch: str = "main") -> GitRepo:
        bare, work = root / "remote.git", root / "work"
        bare.mkdir(parents=True)
        _git("init", "--bare", "--quiet", f"--initial-branch={branch}", ".", cwd=bare)
        work.mkdir()
        _git("init", "--quiet", f"--initial-branch={branch}", ".", cwd=work)
        _git("remote", "add", "origin", str(bare), cwd=work)
        return cls(bare, work)

    @property
    def url(self) -> str:
        return f"file://{self.bare}"

    def commit(self, files: dict[str, str | bytes], message: str = "change", branch: str = "main") -> str:
        """Write ``files``, commit them on ``branch`` and push; returns the new commit SHA."""
        _git("checkout", "--quiet", "-B", branch, cwd=self.work)
        for name, content in files.items():
            path = self.work / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content.encode() if isinstance(content, str) else content)
        _git("add", "--all", cwd=self.work)
        _git("commit", "--quiet", "--allow-empty", "-m", message, cwd=self.work)
        _git("push", "--quiet", "--force", "origin", branch, cwd=self.work)
        return _git("rev-parse", "HEAD", cwd=self.work)

    def tag(self, name: str, commit: str) -> None:
        """An annotated tag ``name`` at ``commit``, pushed."""
        _git("tag", "--annotate", "-m", name, name, commit, cwd=self.work)
        _git("push", "--quiet", "origin", f"refs/tags/{name}", cwd=self.work)

    def delete_branch(self, name: str) -> None:
        """Delete ``name`` in the remote (as a merged pull request's branch is)."""
        _git("push", "--quiet", "origin", "--delete", name, cwd=self.work)
