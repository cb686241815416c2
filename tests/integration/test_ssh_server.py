"""The SSH Git host of tests/ssh_server.py, driven by the real git and ssh clients.

What a builder cloning a private repository over SSH with a deploy key relies on: the key
and the pinned host key let it clone, fetch and push; another key, or another host key, is
refused; the key runs git and nothing else.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ssh_server import (
    GIT_SHELL,
    SSH,
    SSH_KEYGEN,
    SSHD,
    SshGitServer,
    git_ssh_command,
    make_deploy_key,
)


def _pgrep(pattern: str) -> list[int]:
    proc = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True, check=False)
    return [int(pid) for pid in proc.stdout.split()]


def _alive(pids: list[int]) -> list[int]:
    """Those of ``pids`` that still run (a zombie has ended; its parent reaps it)."""
    running = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            running.append(pid)
    return running


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SshGitServer]:
    for tool in (SSHD, SSH, SSH_KEYGEN, GIT_SHELL):
        if not tool.exists():
            pytest.fail(f"{tool} is missing: run `bash scripts/install-test-deps.sh` (as root)")
    srv = SshGitServer(tmp_path / "sshd")
    srv.start()
    seen: set[int] = set()
    try:
        yield srv
    finally:
        if srv.running:
            seen.update(srv.pids())
        srv.stop()
    # Nothing of this sshd may outlive the test: the listener is found by its config path,
    # connection handlers and git processes by the pids noted before stop().
    assert _pgrep(str(srv.config_path)) == [], "sshd listener left behind"
    assert _alive(sorted(seen)) == [], "sshd connection processes left behind"


@pytest.fixture
def deploy_key(tmp_path: Path, server: SshGitServer) -> Path:
    key, public = make_deploy_key(tmp_path / "keys")
    server.add_deploy_key(public)
    return key


@pytest.fixture
def known_hosts(tmp_path: Path, server: SshGitServer) -> Path:
    path = tmp_path / "known_hosts"
    path.write_text(server.known_hosts_line() + "\n")
    return path


def _env(key: Path, known: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "SSH_"))}
    env.update(
        {
            "GIT_SSH_COMMAND": git_ssh_command(key, known),
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": "Test",
            "GIT_AUTHOR_EMAIL": "test@example.invalid",
            "GIT_COMMITTER_NAME": "Test",
            "GIT_COMMITTER_EMAIL": "test@example.invalid",
        }
    )
    env.update(extra)
    return env


def git(
    env: dict[str, str], *args: str, cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=30, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def _commit(env: dict[str, str], work: Path, name: str, text: str) -> str:
    (work / name).write_text(text)
    git(env, "add", name, cwd=work)
    git(env, "commit", "-q", "-m", f"add {name}", cwd=work)
    return git(env, "rev-parse", "HEAD", cwd=work).stdout.strip()


def _local_repo(env: dict[str, str], path: Path) -> Path:
    git(env, "init", "-q", "-b", "main", str(path))
    return path


def test_push_clone_fetch_with_deploy_key(
    tmp_path: Path, server: SshGitServer, deploy_key: Path, known_hosts: Path
) -> None:
    bare = server.create_repo("team/app")
    url = server.url_for("team/app")
    assert url == f"ssh://root@127.0.0.1:{server.port}{bare}"
    env = _env(deploy_key, known_hosts)

    work = _local_repo(env, tmp_path / "work")
    first = _commit(env, work, "Dockerfile", "FROM scratch\n")
    git(env, "push", "-q", url, "main", cwd=work)
    assert git(env, "rev-parse", "main", cwd=bare).stdout.strip() == first

    git(env, "clone", "-q", url, str(tmp_path / "clone"))
    clone = tmp_path / "clone"
    assert (clone / "Dockerfile").read_text() == "FROM scratch\n"
    assert git(env, "rev-parse", "HEAD", cwd=clone).stdout.strip() == first

    second = _commit(env, work, "README", "hello\n")
    git(env, "push", "-q", url, "main", cwd=work)
    # Protocol v2 reaches the server: sshd accepts the GIT_PROTOCOL variable.
    fetched = git({**env, "GIT_TRACE_PACKET": "1"}, "-c", "protocol.version=2", "fetch", "origin", cwd=clone)
    assert "< version 2" in fetched.stderr
    assert git(env, "rev-parse", "origin/main", cwd=clone).stdout.strip() == second
    assert "Accepted publickey for root" in server.log_path.read_text()


def test_another_key_is_refused(tmp_path: Path, server: SshGitServer, deploy_key: Path, known_hosts: Path) -> None:
    server.create_repo("app")
    stranger, _public = make_deploy_key(tmp_path / "keys", "stranger")
    proc = git(_env(stranger, known_hosts), "ls-remote", server.url_for("app"), check=False)
    assert proc.returncode != 0
    assert "Permission denied (publickey)" in proc.stderr


@pytest.mark.parametrize("pinned", ["other-host-key", "nothing"])
def test_unpinned_host_key_is_refused(tmp_path: Path, server: SshGitServer, deploy_key: Path, pinned: str) -> None:
    server.create_repo("app")
    known = tmp_path / "known_hosts"
    if pinned == "other-host-key":
        # Another ed25519 key pinned for this very [host]:port: a man in the middle.
        _other, other_public = make_deploy_key(tmp_path / "other", "other_host")
        known.write_text(f"[127.0.0.1]:{server.port} {' '.join(other_public.split()[:2])}\n")
    else:
        known.write_text("")
    proc = git(_env(deploy_key, known), "ls-remote", server.url_for("app"), check=False)
    assert proc.returncode != 0
    assert "Host key verification failed" in proc.stderr
    if pinned == "other-host-key":
        assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in proc.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["id"],
        [],  # an interactive shell
        ["git-upload-pack '/nonexistent'; id"],
        ["sh", "-c", "id"],
        ["git-shell", "-c", "id"],
    ],
)
def test_deploy_key_runs_git_only(
    server: SshGitServer, deploy_key: Path, known_hosts: Path, command: list[str]
) -> None:
    ssh = [
        str(SSH),
        "-F",
        "/dev/null",
        "-i",
        str(deploy_key),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-p",
        str(server.port),
        "root@127.0.0.1",
        *command,
    ]
    proc = subprocess.run(ssh, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL, check=False)
    assert proc.returncode != 0, proc.stdout
    assert "uid=" not in proc.stdout + proc.stderr


def test_read_only_key_for_one_repository(tmp_path: Path, server: SshGitServer, known_hosts: Path) -> None:
    server.create_repo("app")
    server.create_repo("other")
    env = _env(tmp_path / "no-key", known_hosts)
    work = _local_repo(env, tmp_path / "work")
    _commit(env, work, "f", "1\n")
    for name in ("app", "other"):  # seeded locally: this test is about the reader's key
        git(env, "push", "-q", str(server.repo_path(name)), "main", cwd=work)

    reader, public = make_deploy_key(tmp_path / "keys", "reader")
    server.add_deploy_key(public, repos=["app"], read_only=True)
    renv = _env(reader, known_hosts)
    git(renv, "clone", "-q", server.url_for("app"), str(tmp_path / "app"))
    _commit(renv, tmp_path / "app", "g", "2\n")

    push = git(renv, "push", "-q", "origin", "main", cwd=tmp_path / "app", check=False)
    assert push.returncode != 0
    assert "read-only" in push.stderr
    other = git(renv, "ls-remote", server.url_for("other"), check=False)
    assert other.returncode != 0
    assert "no access" in other.stderr


def test_stop_ends_open_connections(tmp_path: Path, server: SshGitServer, deploy_key: Path, known_hosts: Path) -> None:
    bare = server.create_repo("app")
    ssh = [
        str(SSH),
        "-F",
        "/dev/null",
        "-i",
        str(deploy_key),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-p",
        str(server.port),
        "root@127.0.0.1",
        f"git-upload-pack '{bare}'",
    ]
    # git-upload-pack advertises its refs, then waits for the client: a connection held open.
    client = subprocess.Popen(ssh, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert client.stdout is not None
        assert client.stdout.read(4)  # first pkt-line of the advertisement
        session = server.pids()
        assert len(session) >= 3  # listener, connection handler(s), git-upload-pack
        server.stop()
        assert _alive(session) == []
        assert client.wait(timeout=10) != 0
    finally:
        if client.poll() is None:
            client.kill()
        client.communicate()


def test_start_stop_as_context_manager(tmp_path: Path) -> None:
    with SshGitServer(tmp_path / "ctx") as srv:
        port, config = srv.port, srv.config_path
        assert _pgrep(str(config))
        assert srv.known_hosts_line().startswith(f"[127.0.0.1]:{port} ssh-ed25519 AAAA")
    assert _pgrep(str(config)) == []
    assert not srv.running
    with pytest.raises(RuntimeError, match="not started"):
        _ = srv.pid
