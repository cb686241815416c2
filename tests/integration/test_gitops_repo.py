"""Write-back into real bare repositories: one commit per change, none without one, comments kept,
concurrent writers both land (fetch, re-apply, push again), and a refused push is a clear error."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from pipeline.config import GitConfig
from pipeline.errors import ConfigError, GitPushRefused
from pipeline.gitops import HelmValue, ImageChange, KustomizeImage, update_yaml, write_back
from tests.gitrepo import GitRepo

VALUES = """\
# values for the demo app (kept as written)
replicaCount: 2
image:
  repository: registry.example.com/demo   # where prod pulls from
  digest: sha256:0000000000000000000000000000000000000000000000000000000000000000
other:
  image:
    digest: ""
"""
DIGEST = "sha256:" + "a" * 64


def _edit(key: str, digest: str):  # type: ignore[no-untyped-def]
    change = ImageChange("registry.example.com/demo", digest)
    return lambda text: update_yaml(text, HelmValue(key), change, source="values.yaml")


def _show(repo: GitRepo, what: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(repo.bare), *what.split()], capture_output=True, text=True, check=True
    ).stdout


def _write(tmp_path: Path, repo: GitRepo, key: str, digest: str, name: str = "w"):  # type: ignore[no-untyped-def]
    return write_back(
        tmp_path / "data",
        tmp_path / f"work-{name}",
        repo=repo.url,
        branch="main",
        path="values.yaml",
        auth=GitConfig(),
        edit=_edit(key, digest),
        message=f"promote {digest}",
        author=("pipeline", "pipeline@example.com"),
    )


@pytest.fixture
def deploy_repo(tmp_path: Path) -> GitRepo:
    repo = GitRepo.create(tmp_path / "deploy")
    repo.commit({"values.yaml": VALUES, "kustomization.yaml": "images:\n- name: demo\n  newTag: old\n"}, "initial")
    return repo


def test_a_change_is_one_commit_and_the_rest_of_the_file_stays_byte_for_byte(
    tmp_path: Path, deploy_repo: GitRepo
) -> None:
    pushed = _write(tmp_path, deploy_repo, "image.digest", DIGEST)
    assert pushed.commit is not None and pushed.attempts == 1
    assert _show(deploy_repo, "rev-parse main").strip() == pushed.commit
    assert _show(deploy_repo, "show main:values.yaml") == VALUES.replace("0" * 64, "a" * 64)
    assert _show(deploy_repo, "log -1 --format=%an%n%s main").split("\n")[:2] == ["pipeline", f"promote {DIGEST}"]
    again = _write(tmp_path, deploy_repo, "image.digest", DIGEST, name="again")
    assert again.commit is None and _show(deploy_repo, "rev-parse main").strip() == pushed.commit


def test_kustomize_images_entry_is_written(tmp_path: Path, deploy_repo: GitRepo) -> None:
    change = ImageChange("registry.example.com/demo", DIGEST)
    pushed = write_back(
        tmp_path / "data",
        tmp_path / "work",
        repo=deploy_repo.url,
        branch="main",
        path="kustomization.yaml",
        auth=GitConfig(),
        edit=lambda text: update_yaml(text, KustomizeImage("demo"), change),
        message="m",
        author=("p", "p@example.com"),
    )
    assert pushed.commit
    written = _show(deploy_repo, "show main:kustomization.yaml")
    assert f"digest: {DIGEST}" in written and "newName: registry.example.com/demo" in written


def test_concurrent_writers_to_one_repository_both_land(tmp_path: Path, deploy_repo: GitRepo) -> None:
    """Two machines (separate data dirs, so no shared lock) race, the first one losing for sure:
    its first edit waits until the second has pushed; it then fetches, re-applies and pushes."""
    results = {}
    second_done, calls = threading.Event(), []
    first_edit = _edit("image.digest", DIGEST)

    def slow_edit(text: str):  # type: ignore[no-untyped-def]
        calls.append(text)
        if len(calls) == 1:
            second_done.wait(30)
        return first_edit(text)

    def run(name: str, edit) -> None:  # type: ignore[no-untyped-def]
        results[name] = write_back(
            tmp_path / f"data-{name}",
            tmp_path / f"work-{name}",
            repo=deploy_repo.url,
            branch="main",
            path="values.yaml",
            auth=GitConfig(),
            edit=edit,
            message=name,
            author=("p", "p@example.com"),
        )
        if name == "two":
            second_done.set()

    threads = [
        threading.Thread(target=run, args=("one", slow_edit)),
        threading.Thread(target=run, args=("two", _edit("other.image.digest", "sha256:" + "b" * 64))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = _show(deploy_repo, "show main:values.yaml")
    assert f"digest: {DIGEST}" in final and "b" * 64 in final and "# where prod pulls from" in final
    assert _show(deploy_repo, "log --format=%s main").split() == ["one", "two", "initial"]
    assert (results["one"].attempts, results["two"].attempts) == (2, 1)


def test_a_branch_moved_by_someone_else_is_fetched_and_the_edit_re_applied(
    tmp_path: Path, deploy_repo: GitRepo
) -> None:
    _write(tmp_path, deploy_repo, "image.digest", DIGEST)  # the mirror now knows main
    deploy_repo.commit({"values.yaml": VALUES.replace("replicaCount: 2", "replicaCount: 5")}, "scale up")
    pushed = _write(tmp_path, deploy_repo, "other.image.digest", "sha256:" + "c" * 64, name="second")
    final = _show(deploy_repo, "show main:values.yaml")
    assert pushed.commit and "replicaCount: 5" in final and "c" * 64 in final


def test_a_repository_that_refuses_the_push_is_a_clear_non_retryable_error(
    tmp_path: Path, deploy_repo: GitRepo
) -> None:
    hook = deploy_repo.bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'main is protected: open a pull request' >&2\nexit 1\n")
    hook.chmod(0o755)
    before = _show(deploy_repo, "rev-parse main")
    with pytest.raises(GitPushRefused, match="refused the push to main.*main is protected") as caught:
        _write(tmp_path, deploy_repo, "image.digest", DIGEST)
    assert not caught.value.retryable
    assert _show(deploy_repo, "rev-parse main") == before


@pytest.mark.parametrize(
    ("path", "branch", "words"),
    [
        ("../etc/passwd", "main", "inside the repository"),
        ("missing.yaml", "main", "missing.yaml is not a file"),
        ("values.yaml", "nope", "no branch 'nope'"),
    ],
)
def test_bad_targets_are_config_errors(
    tmp_path: Path, deploy_repo: GitRepo, path: str, branch: str, words: str
) -> None:
    with pytest.raises(ConfigError, match=words):
        write_back(
            tmp_path / "data",
            tmp_path / "work",
            repo=deploy_repo.url,
            branch=branch,
            path=path,
            auth=GitConfig(),
            edit=_edit("image.digest", DIGEST),
            message="m",
            author=("p", "p@e.com"),
        )


def test_an_edit_that_cannot_apply_names_the_file_and_key(tmp_path: Path, deploy_repo: GitRepo) -> None:
    with pytest.raises(ConfigError, match="values.yaml.*replicaCount"):
        _write(tmp_path, deploy_repo, "replicaCount.digest", DIGEST)
