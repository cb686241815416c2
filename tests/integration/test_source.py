"""Source checkouts from a real Git repository through the project's bare mirror."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pipeline import source
from pipeline.errors import GitError
from tests.gitrepo import GitRepo, _git


def test_checkout_is_lf_even_when_global_config_says_autocrlf_true(
    git_repo: GitRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sha = git_repo.commit({"run.sh": "#!/bin/sh\necho hello\n", ".gitattributes": ""})
    hostile = tmp_path / "global.gitconfig"
    hostile.write_text("[core]\n\tautocrlf = true\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(hostile))
    # Prove the hostile config would convert: a plain clone under it gets CRLF.
    plain = tmp_path / "plain"
    subprocess.run(["git", "clone", "--quiet", git_repo.url, str(plain)], check=True)
    assert (plain / "run.sh").read_bytes() == b"#!/bin/sh\r\necho hello\r\n"
    dest = source.checkout(tmp_path / "data", "app", git_repo.url, sha, tmp_path / "co")
    assert (dest / "run.sh").read_bytes() == b"#!/bin/sh\necho hello\n"


def test_second_checkout_fetches_into_the_same_mirror(git_repo: GitRepo, tmp_path: Path) -> None:
    first = git_repo.commit({"a.txt": "one\n"})
    source.checkout(tmp_path / "data", "app", git_repo.url, first, tmp_path / "co1")
    mirror = source.mirror_path(tmp_path / "data", "app")
    marker = mirror / "objects" / "pack"
    packs_before = set(marker.iterdir())
    second = git_repo.commit({"a.txt": "two\n"})
    dest = source.checkout(tmp_path / "data", "app", git_repo.url, second, tmp_path / "co2")
    assert (dest / "a.txt").read_text() == "two\n"
    assert packs_before <= set(marker.iterdir()), "the mirror was re-cloned instead of fetched"
    assert _git("rev-parse", "HEAD", cwd=dest) == second


def test_unknown_commit_and_unreachable_repo_are_clear_errors(git_repo: GitRepo, tmp_path: Path) -> None:
    git_repo.commit({"a.txt": "one\n"})
    with pytest.raises(GitError, match="commit f{40} is not in"):
        source.checkout(tmp_path / "data", "app", git_repo.url, "f" * 40, tmp_path / "co")
    with pytest.raises(GitError, match="git clone --mirror"):
        source.checkout(tmp_path / "data", "gone", "file:///no/such/repo.git", "f" * 40, tmp_path / "co2")


def test_credentials_never_reach_error_messages(tmp_path: Path) -> None:
    with pytest.raises(GitError) as info:
        source.update_mirror(tmp_path, "p", "http://user:s3cret@127.0.0.1:9/repo.git")
    assert "s3cret" not in info.value.message
