"""Source checkouts from a real Git repository through the project's bare mirror."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline import source
from pipeline.config import ProjectConfig
from pipeline.errors import ConfigError, GitError
from tests.git_server import GitHttpServer
from tests.gitrepo import GitRepo, _git
from tests.ssh_server import SshGitServer, git_ssh_command, make_deploy_key


def _project(url: str, **git: object) -> ProjectConfig:
    return ProjectConfig(repo=url, image={"registry": "r", "repository": "a/b"}, git=git)


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
    dest = source.checkout(tmp_path / "data", "app", _project(git_repo.url), sha, tmp_path / "co")
    assert (dest / "run.sh").read_bytes() == b"#!/bin/sh\necho hello\n"


def test_second_checkout_fetches_into_the_same_mirror(git_repo: GitRepo, tmp_path: Path) -> None:
    first = git_repo.commit({"a.txt": "one\n"})
    source.checkout(tmp_path / "data", "app", _project(git_repo.url), first, tmp_path / "co1")
    mirror = source.mirror_path(tmp_path / "data", "app")
    marker = mirror / "objects" / "pack"
    packs_before = set(marker.iterdir())
    second = git_repo.commit({"a.txt": "two\n"})
    dest = source.checkout(tmp_path / "data", "app", _project(git_repo.url), second, tmp_path / "co2")
    assert (dest / "a.txt").read_text() == "two\n"
    assert packs_before <= set(marker.iterdir()), "the mirror was re-cloned instead of fetched"
    assert _git("rev-parse", "HEAD", cwd=dest) == second


def test_unknown_commit_and_unreachable_repo_are_clear_errors(git_repo: GitRepo, tmp_path: Path) -> None:
    git_repo.commit({"a.txt": "one\n"})
    with pytest.raises(GitError, match="commit f{40} is not in"):
        source.checkout(tmp_path / "data", "app", _project(git_repo.url), "f" * 40, tmp_path / "co")
    with pytest.raises(GitError, match="git clone --mirror"):
        source.checkout(tmp_path / "data", "gone", _project("file:///no/such/repo.git"), "f" * 40, tmp_path / "co2")


def test_credentials_never_reach_error_messages(tmp_path: Path) -> None:
    with pytest.raises(GitError) as info:
        source.update_mirror(tmp_path, "p", _project("http://user:s3cret@127.0.0.1:9/repo.git"))
    assert "s3cret" not in info.value.message


def test_gitattributes_rules_still_apply(git_repo: GitRepo, tmp_path: Path) -> None:
    sha = git_repo.commit(
        {
            ".gitattributes": "*.bat text eol=crlf\n*.bin binary\n",
            "run.bat": "@echo off\necho hi\n",
            "data.bin": b"a\r\nb\n",
        }
    )
    dest = source.checkout(tmp_path / "data", "app", _project(git_repo.url), sha, tmp_path / "co")
    assert (dest / "run.bat").read_bytes() == b"@echo off\r\necho hi\r\n"
    assert (dest / "data.bin").read_bytes() == b"a\r\nb\n"


def test_changed_files_between_commits(git_repo: GitRepo, tmp_path: Path) -> None:
    first = git_repo.commit({"src/a.py": "1", "docs/x.md": "1"})
    second = git_repo.commit({"src/a.py": "2", "src/b.py": "new"})
    dest = source.checkout(tmp_path / "data", "app", _project(git_repo.url), second, tmp_path / "co")
    assert source.changed_files(dest, first, second) == ["src/a.py", "src/b.py"]
    assert source.changed_files(dest, "e" * 40, second) is None


def test_remote_refs_lists_branches_and_peeled_tags(git_repo: GitRepo) -> None:
    main = git_repo.commit({"a": "1"})
    other = git_repo.commit({"a": "2"}, branch="release/1")
    _git("tag", "-a", "v1.0", "-m", "release", main, cwd=git_repo.work)
    _git("push", "--quiet", "origin", "v1.0", cwd=git_repo.work)
    refs = source.remote_refs(_project(git_repo.url))
    assert refs == {"refs/heads/main": main, "refs/heads/release/1": other, "refs/tags/v1.0": main}


@pytest.fixture
def private_host(tmp_path: Path) -> Iterator[GitHttpServer]:
    with GitHttpServer(tmp_path / "host", tokens={"ci-bot": "tok-1234567890"}) as server:
        yield server


def _seed(server: GitHttpServer, name: str, files: dict[str, str], tmp_path: Path) -> str:
    """Push a commit into the private host (as its owner would) and return its SHA."""
    server.create_repo(name)
    repo = GitRepo.create(tmp_path / f"seed-{name}")
    _git("remote", "set-url", "origin", server.url_for(name), cwd=repo.work)
    _git("config", "http.extraHeader", "Authorization: Bearer tok-1234567890", cwd=repo.work)
    return repo.commit(files)


def test_private_https_repository_with_a_token_from_the_environment(
    private_host: GitHttpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sha = _seed(private_host, "app", {"Dockerfile": "FROM scratch\n"}, tmp_path)
    monkeypatch.setenv("APP_GIT_TOKEN", "tok-1234567890")
    project = _project(private_host.url_for("app"), token_env="APP_GIT_TOKEN")
    dest = source.checkout(tmp_path / "data", "app", project, sha, tmp_path / "co")
    assert (dest / "Dockerfile").read_text() == "FROM scratch\n"
    assert {user for _, _, user in private_host.requests if user} == {"ci-bot"}
    mirror = source.mirror_path(tmp_path / "data", "app")
    stored = (mirror / "config").read_text() + (dest / ".git" / "config").read_text()
    assert "tok-1234567890" not in stored and "Authorization" not in stored

    monkeypatch.setenv("APP_GIT_TOKEN", "tok-wrong-000")
    with pytest.raises(GitError) as info:
        source.update_mirror(tmp_path / "data2", "app", project)
    assert "Authentication failed" in info.value.message or "could not read Username" in info.value.message
    assert "tok-wrong-000" not in info.value.message
    monkeypatch.delenv("APP_GIT_TOKEN")
    with pytest.raises(ConfigError, match="APP_GIT_TOKEN is not set"):
        source.update_mirror(tmp_path / "data3", "app", project)


def test_submodules_are_checked_out_with_the_same_credentials(
    private_host: GitHttpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = _seed(private_host, "lib", {"lib.txt": "shared library\n"}, tmp_path)
    app = GitRepo.create(tmp_path / "app-work")
    _git("remote", "set-url", "origin", private_host.url_for("app"), cwd=app.work)
    _git("config", "http.extraHeader", "Authorization: Bearer tok-1234567890", cwd=app.work)
    private_host.create_repo("app")
    _git(
        "-c",
        "http.extraHeader=Authorization: Bearer tok-1234567890",
        "submodule",
        "add",
        "--quiet",
        private_host.url_for("lib"),
        "vendor/lib",
        cwd=app.work,
    )
    sha = app.commit({"Dockerfile": "FROM scratch\n"})
    monkeypatch.setenv("APP_GIT_TOKEN", "tok-1234567890")
    project = _project(private_host.url_for("app"), token_env="APP_GIT_TOKEN", submodules=True)
    dest = source.checkout(tmp_path / "data", "app", project, sha, tmp_path / "co")
    assert (dest / "vendor" / "lib" / "lib.txt").read_text() == "shared library\n"
    assert _git("rev-parse", "HEAD", cwd=dest / "vendor" / "lib") == lib


def test_lfs_enabled_without_git_lfs_installed_is_a_clear_error(git_repo: GitRepo, tmp_path: Path) -> None:
    if shutil.which("git-lfs"):
        pytest.skip("git-lfs is installed here; this checks the message when it is not")
    sha = git_repo.commit({"a": "1"})
    with pytest.raises(GitError, match="git-lfs is not installed on this worker"):
        source.checkout(tmp_path / "data", "app", _project(git_repo.url, lfs=True), sha, tmp_path / "co")


def test_network_calls_time_out(tmp_path: Path) -> None:
    with socket.socket() as silent:  # accepts connections into its backlog and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/repo.git"
        with pytest.raises(GitError, match="took longer than 2 s"):
            source.update_mirror(tmp_path, "slow", _project(url, timeout_seconds=2))


def test_private_ssh_repository_with_a_deploy_key_and_pinned_host_key(tmp_path: Path) -> None:
    with SshGitServer(tmp_path / "sshd") as server:
        server.create_repo("app")
        key, public = make_deploy_key(tmp_path / "keys")
        server.add_deploy_key(public, repos=("app",), read_only=True)
        known = tmp_path / "known_hosts"
        known.write_text(server.known_hosts_line() + "\n")
        owner_key, owner_public = make_deploy_key(tmp_path / "owner", "owner")
        server.add_deploy_key(owner_public)
        seed = GitRepo.create(tmp_path / "seed")
        _git("remote", "set-url", "origin", server.url_for("app"), cwd=seed.work)
        _git("config", "core.sshCommand", git_ssh_command(owner_key, known), cwd=seed.work)
        sha = seed.commit({"Dockerfile": "FROM scratch\n"})

        project = _project(server.url_for("app"), ssh_key_file=str(key), known_hosts_file=str(known))
        dest = source.checkout(tmp_path / "data", "app", project, sha, tmp_path / "co")
        assert (dest / "Dockerfile").read_text() == "FROM scratch\n"

        other = tmp_path / "other_known_hosts"
        other.write_text(f"[127.0.0.1]:{server.port} " + owner_public.rsplit(" ", 1)[0] + "\n")
        moved = _project(server.url_for("app"), ssh_key_file=str(key), known_hosts_file=str(other))
        with pytest.raises(GitError, match="Host key verification failed"):
            source.update_mirror(tmp_path / "data2", "app", moved)


def test_ssh_key_without_pinned_host_key_is_a_config_error() -> None:
    with pytest.raises(Exception, match="known_hosts_file"):
        _project("ssh://git@example.com/a.git", ssh_key_file="/k")


def test_concurrent_checkouts_share_one_mirror_safely(git_repo: GitRepo, tmp_path: Path) -> None:
    shas = [git_repo.commit({"n": str(i)}) for i in range(3)]
    results: dict[int, str] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            dest = source.checkout(tmp_path / "data", "app", _project(git_repo.url), shas[i % 3], tmp_path / f"co{i}")
            results[i] = (dest / "n").read_text()
        except BaseException as exc:  # collected and re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert results == {i: str(i % 3) for i in range(6)}
    _git("--git-dir", str(source.mirror_path(tmp_path / "data", "app")), "fsck", "--no-progress", cwd=tmp_path)
