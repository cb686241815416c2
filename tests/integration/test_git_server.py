"""The test Git host (tests/git_server.py) against the real git CLI and git http-backend."""

from __future__ import annotations

import base64
import gzip
import http.client
import os
import socket
import subprocess
import threading
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.git_server import GitHttpServer

TOKEN = "ghs_test0123456789abcdef"
USERS = {"alice": "s3cret pass"}
TOKENS = {"ci-bot": TOKEN}
WRONG_PASSWORD = "not-the-password"


# -- helpers -------------------------------------------------------------------------------


def _env(home: Path, **extra: str) -> dict[str, str]:
    """An environment in which nothing on this machine (config, askpass, proxies, netrc) counts."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("GIT_") and "proxy" not in key.lower() and key != "SSH_ASKPASS"
    }
    home.mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(home),  # no ~/.netrc, no ~/.git-credentials
        XDG_CONFIG_HOME=str(home / ".config"),
        GIT_CONFIG_GLOBAL="/dev/null",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_TERMINAL_PROMPT="0",
        GIT_AUTHOR_NAME="Test Author",
        GIT_AUTHOR_EMAIL="author@example.com",
        GIT_COMMITTER_NAME="Test Author",
        GIT_COMMITTER_EMAIL="author@example.com",
    )
    env.update(extra)
    return env


def git(
    *args: str, cwd: Path, env: dict[str, str], check: bool = True, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    return done


def _fast_import(
    commits: int,
    *,
    branch: str = "main",
    first: int = 0,
    start: int = 1_700_000_000,
    tags: bool = False,
    parent: str | None = None,
) -> str:
    """A git fast-import stream of ``commits`` small commits (optionally each tagged)."""
    out = []
    for i in range(first, first + commits):
        out.append(
            f"commit refs/heads/{branch}\nmark :{i + 1}\n"
            f"committer Test Author <author@example.com> {start + i} +0000\n"
            f"data <<EOM\ncommit {i}\nEOM\n"
        )
        if i == first and parent:
            out.append(f"from {parent}\n")
        out.append(f"M 644 inline file{i % 20}.txt\ndata <<EOM\nversion {i}\nEOM\n\n")
        if tags:
            out.append(f"reset refs/tags/build-{i}\nfrom :{i + 1}\n\n")
    return "".join(out)


def _seed(server: GitHttpServer, name: str, env: dict[str, str]) -> str:
    """Create repository ``name`` on the server with one commit on main; returns its SHA."""
    bare = server.create_repo(name)
    git("fast-import", "--quiet", cwd=bare, env=env, stdin=_fast_import(1))
    return git("rev-parse", "refs/heads/main", cwd=bare, env=env).stdout.strip()


def _commit(work: Path, env: dict[str, str], name: str) -> str:
    (work / name).write_text(f"{name}\n")
    git("add", name, cwd=work, env=env)
    git("commit", "--quiet", "-m", f"add {name}", cwd=work, env=env)
    return git("rev-parse", "HEAD", cwd=work, env=env).stdout.strip()


def _askpass(tmp_path: Path, username: str, password: str) -> Path:
    script = tmp_path / "askpass.sh"
    script.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        f"  Username*) printf '%s\\n' '{username}' ;;\n"
        f"  *) printf '%s\\n' '{password}' ;;\n"
        "esac\n"
    )
    script.chmod(0o755)
    return script


def _with_credentials(url: str, user: str, password: str) -> str:
    return url.replace("http://", f"http://{quote(user, safe='')}:{quote(password, safe='')}@", 1)


def _clone_fetch_push(server: GitHttpServer, tmp_path: Path, env: dict[str, str], url: str, *config: str) -> None:
    """Clone, push a commit from the clone, fetch it into another repository: all over HTTP."""
    first = _seed(server, "app", env)
    one, two = tmp_path / "one", tmp_path / "two"
    git(*config, "clone", "--quiet", url, str(one), cwd=tmp_path, env=env)
    assert git("rev-parse", "HEAD", cwd=one, env=env).stdout.strip() == first

    pushed = _commit(one, env, "pushed.txt")
    git(*config, "push", "--quiet", "origin", "main", cwd=one, env=env)
    bare = server.root / "app.git"
    assert git("rev-parse", "refs/heads/main", cwd=bare, env=env).stdout.strip() == pushed

    git("init", "--quiet", str(two), cwd=tmp_path, env=env)
    git(*config, "fetch", "--quiet", url, "main:refs/remotes/origin/main", cwd=two, env=env)
    assert git("rev-parse", "origin/main", cwd=two, env=env).stdout.strip() == pushed
    assert git("rev-parse", "origin/main~1", cwd=two, env=env).stdout.strip() == first


def _served(server: GitHttpServer) -> list[tuple[str, str, str | None]]:
    return [(e.method, e.path, e.user) for e in server.exchanges if e.status == 200]


# -- authenticated access ------------------------------------------------------------------


def test_bearer_token_from_extra_header(tmp_path: Path) -> None:
    env = _env(tmp_path / "home")
    with GitHttpServer(tmp_path / "srv", users=USERS, tokens=TOKENS) as server:
        _clone_fetch_push(
            server, tmp_path, env, server.url_for("app"), "-c", f"http.extraHeader=Authorization: Bearer {TOKEN}"
        )
    # The header goes with every request, so there is no 401 round trip at all.
    assert server.requests and all(user == "ci-bot" for _, _, user in server.requests)
    assert {e.status for e in server.exchanges} == {200}
    paths = {path for _, path, _ in server.requests}
    assert "/app.git/info/refs?service=git-upload-pack" in paths
    assert "/app.git/info/refs?service=git-receive-pack" in paths
    assert ("POST", "/app.git/git-receive-pack", "ci-bot") in server.requests
    fetches = [e for e in server.exchanges if e.path == "/app.git/git-upload-pack"]
    assert fetches and all(e.git_protocol == "version=2" for e in fetches)
    assert server.backend_errors == []


@pytest.mark.parametrize(
    ("username", "password", "expected_user"),
    [("alice", USERS["alice"], "alice"), ("x-access-token", TOKEN, "ci-bot")],
    ids=["password", "token-as-password"],
)
def test_askpass_credentials(tmp_path: Path, username: str, password: str, expected_user: str) -> None:
    env = _env(tmp_path / "home", GIT_ASKPASS=str(_askpass(tmp_path, username, password)))
    with GitHttpServer(tmp_path / "srv", users=USERS, tokens=TOKENS) as server:
        _clone_fetch_push(server, tmp_path, env, server.url_for("app"))
    # git asks only after a 401 challenge, then sends basic auth.
    assert ("GET", "/app.git/info/refs?service=git-upload-pack", None) in server.requests
    assert 401 in {e.status for e in server.exchanges}
    assert {user for _, _, user in _served(server)} == {expected_user}


def test_credentials_in_url(tmp_path: Path) -> None:
    env = _env(tmp_path / "home")
    with GitHttpServer(tmp_path / "srv", users=USERS, tokens=TOKENS) as server:
        url = _with_credentials(server.url_for("app"), "alice", USERS["alice"])
        _clone_fetch_push(server, tmp_path, env, url)
    served = _served(server)
    assert served and {user for _, _, user in served} == {"alice"}
    assert ("POST", "/app.git/git-receive-pack", "alice") in served


# -- refused access ------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["none", "wrong-url-password", "wrong-askpass", "wrong-bearer", "user-as-token"])
def test_refused_without_or_with_wrong_credentials(tmp_path: Path, how: str) -> None:
    env = _env(tmp_path / "home")
    config: list[str] = []
    with GitHttpServer(tmp_path / "srv", users=USERS, tokens=TOKENS) as server:
        _seed(server, "app", env)
        url = server.url_for("app")
        if how == "wrong-url-password":
            url = _with_credentials(url, "alice", WRONG_PASSWORD)
        elif how == "wrong-askpass":
            env["GIT_ASKPASS"] = str(_askpass(tmp_path, "alice", WRONG_PASSWORD))
        elif how == "wrong-bearer":
            config = ["-c", "http.extraHeader=Authorization: Bearer not-a-token"]
        elif how == "user-as-token":  # a user's password is not a token
            config = ["-c", f"http.extraHeader=Authorization: Bearer {USERS['alice']}"]

        cloned = git(*config, "clone", "--quiet", url, str(tmp_path / "clone"), cwd=tmp_path, env=env, check=False)
        work = tmp_path / "work"
        work.mkdir()
        git("init", "--quiet", "--initial-branch=main", cwd=work, env=env)
        _commit(work, env, "x.txt")
        pushed = git(*config, "push", url, "main:refs/heads/intruder", cwd=work, env=env, check=False)

    for done in (cloned, pushed):
        assert done.returncode == 128
        if how in ("none", "wrong-bearer", "user-as-token"):
            # git gets a 401, has no credentials to try and may not prompt
            assert "could not read Username" in done.stderr, done.stderr
            assert "terminal prompts disabled" in done.stderr
        else:
            assert "Authentication failed" in done.stderr, done.stderr
    assert not (tmp_path / "clone").exists()
    assert server.exchanges and {e.status for e in server.exchanges} == {401}
    assert all(user is None for _, _, user in server.requests)
    intruder = git(
        "show-ref", "--verify", "--quiet", "refs/heads/intruder", cwd=server.root / "app.git", env=env, check=False
    )
    assert intruder.returncode != 0


def test_raw_http_answers(tmp_path: Path) -> None:
    """Challenge, token and basic variants, CGI Status mapping and gzip bodies, seen on the wire."""

    def request(
        method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def basic(user: str, password: str) -> dict[str, str]:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    env = _env(tmp_path / "home")
    refs = "/app.git/info/refs?service=git-upload-pack"
    with GitHttpServer(tmp_path / "srv", users=USERS, tokens=TOKENS) as server:
        _seed(server, "app", env)
        status, headers, _ = request("GET", refs)
        assert status == 401
        assert headers["WWW-Authenticate"] == 'Basic realm="git"'
        assert request("GET", refs, basic("alice", WRONG_PASSWORD))[0] == 401
        assert request("GET", refs, {"Authorization": "Bearer nope"})[0] == 401
        assert request("GET", refs, {"Authorization": "Basic !!!"})[0] == 401

        status, headers, body = request("GET", refs, {"Authorization": f"Bearer {TOKEN}"})
        assert status == 200
        assert headers["Content-Type"] == "application/x-git-upload-pack-advertisement"
        assert body.startswith(b"001e# service=git-upload-pack\n")
        assert request("GET", refs, basic("anything", TOKEN))[0] == 200
        assert request("GET", refs, basic("alice", USERS["alice"]))[0] == 200
        # "Status: 404 Not Found" from the CGI becomes the HTTP status
        missing = "/missing.git/info/refs?service=git-upload-pack"
        assert request("GET", missing, basic("alice", USERS["alice"]))[0] == 404

        # A protocol v2 ls-refs request, gzip-compressed as git compresses large ones.
        pkt = b"0014command=ls-refs\n" + b"0001" + b"0009peel\n" + b"0000"
        v2 = {
            **basic("alice", USERS["alice"]),
            "Git-Protocol": "version=2",
            "Content-Type": "application/x-git-upload-pack-request",
        }
        status, _, body = request(
            "POST", "/app.git/git-upload-pack", {**v2, "Content-Encoding": "gzip"}, gzip.compress(pkt)
        )
        assert status == 200
        assert b" refs/heads/main" in body and body.endswith(b"0000")
        status, _, _ = request(
            "POST", "/app.git/git-upload-pack", {**v2, "Content-Encoding": "gzip"}, b"not gzip at all"
        )
        assert status == 400

    assert server.requests[:4] == [("GET", refs, None)] * 4
    assert server.requests[4:7] == [("GET", refs, "ci-bot"), ("GET", refs, "ci-bot"), ("GET", refs, "alice")]
    assert server.exchanges[-2].content_encoding == "gzip"
    assert server.exchanges[-2].body_bytes == len(pkt)


# -- the wire: protocol v2, gzip and chunked bodies ----------------------------------------


def test_500_commits_then_incremental_fetch(tmp_path: Path) -> None:
    env = _env(tmp_path / "home")
    auth = ["-c", f"http.extraHeader=Authorization: Bearer {TOKEN}"]
    with GitHttpServer(tmp_path / "srv", tokens=TOKENS) as server:
        bare = server.create_repo("big")
        # 500 commits, each tagged as a CI system tags builds: the clone wants 500 refs, a
        # 25 KB negotiation request that git sends gzip-compressed.
        git("fast-import", "--quiet", cwd=bare, env=env, stdin=_fast_import(500, tags=True))
        clone = tmp_path / "clone"
        git(*auth, "clone", "--quiet", server.url_for("big"), str(clone), cwd=tmp_path, env=env)
        assert git("rev-list", "--count", "origin/main", cwd=clone, env=env).stdout.strip() == "500"
        assert len(git("tag", cwd=clone, env=env).stdout.split()) == 500
        initial = list(server.exchanges)

        # One new commit upstream, while the clone has 60 commits of its own the server has
        # never seen: negotiation takes several rounds, the later ones with gzip bodies.
        tip = git("rev-parse", "refs/heads/main", cwd=bare, env=env).stdout.strip()
        git("fast-import", "--quiet", cwd=bare, env=env, stdin=_fast_import(1, first=500, parent=tip))
        new = git("rev-parse", "refs/heads/main", cwd=bare, env=env).stdout.strip()
        git(
            "fast-import",
            "--quiet",
            cwd=clone,
            env=env,
            stdin=_fast_import(60, branch="wip", first=1000, start=1_800_000_000, parent=tip),
        )
        server.clear()
        fetched = git(*auth, "fetch", "origin", cwd=clone, env={**env, "GIT_TRACE_PACKET": "1"})
        assert git("rev-parse", "origin/main", cwd=clone, env=env).stdout.strip() == new
        assert git("rev-list", "--count", "origin/main", cwd=clone, env=env).stdout.strip() == "501"
        incremental = list(server.exchanges)

    assert "git< version 2" in fetched.stderr  # the server answered in protocol v2
    for exchanges in (initial, incremental):
        posts = [e for e in exchanges if e.method == "POST"]
        assert posts and all(e.path == "/big.git/git-upload-pack" for e in posts)
        assert all(e.git_protocol == "version=2" and e.status == 200 for e in exchanges)
        assert any(e.content_encoding == "gzip" for e in posts), posts
        assert all(e.user == "ci-bot" for e in exchanges)
    assert max(e.body_bytes for e in initial) > 20_000
    assert len([e for e in incremental if e.method == "POST"]) >= 3  # ls-refs + fetch rounds


def test_large_push_streams_a_chunked_body(tmp_path: Path) -> None:
    env = _env(tmp_path / "home")
    with GitHttpServer(tmp_path / "srv", users=USERS) as server:
        _seed(server, "app", env)
        url = _with_credentials(server.url_for("app"), "alice", USERS["alice"])
        work = tmp_path / "work"
        git("clone", "--quiet", url, str(work), cwd=tmp_path, env=env)
        (work / "blob.bin").write_bytes(os.urandom(3 << 19))  # over http.postBuffer (1 MiB)
        git("add", "blob.bin", cwd=work, env=env)
        git("commit", "--quiet", "-m", "large", cwd=work, env=env)
        git("push", "--quiet", "origin", "main", cwd=work, env=env)
        blob = git("rev-parse", "HEAD:blob.bin", cwd=work, env=env).stdout.strip()
        git("cat-file", "-e", blob, cwd=server.root / "app.git", env=env)

    pushes = [e for e in server.exchanges if e.path == "/app.git/git-receive-pack"]
    # git first sends a 4-byte flush packet to see whether auth holds, then streams the pack
    assert [(e.chunked, e.status) for e in pushes] == [(False, 200), (True, 200)]
    assert pushes[0].body_bytes == 4 and pushes[1].body_bytes > 3 << 19


# -- anonymous host, lifecycle -------------------------------------------------------------


def test_anonymous_access_when_no_users_or_tokens(tmp_path: Path) -> None:
    env = _env(tmp_path / "home")
    with GitHttpServer(tmp_path / "srv") as server:
        _clone_fetch_push(server, tmp_path, env, server.url_for("app"))
        # Credentials are ignored rather than refused on an open host.
        url = _with_credentials(server.url_for("app"), "who", "ever")
        git("ls-remote", url, cwd=tmp_path, env=env)
    assert server.requests and all(user is None for _, _, user in server.requests)
    assert {e.status for e in server.exchanges} == {200}
    assert ("POST", "/app.git/git-receive-pack", None) in server.requests


def test_stop_ends_keep_alive_connections_and_joins_threads(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    server = GitHttpServer(tmp_path / "srv", tokens=TOKENS).start()
    _seed(server, "app", _env(tmp_path / "home"))
    port = server.port
    idle = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    idle.request("GET", "/app.git/info/refs?service=git-upload-pack", headers={"Authorization": f"Bearer {TOKEN}"})
    response = idle.getresponse()
    assert response.status == 200
    response.read()  # the connection stays open, its handler thread waiting for a next request
    assert len(set(threading.enumerate()) - before) == 2  # the accept loop and that handler

    stopper = threading.Thread(target=server.stop)
    stopper.start()
    stopper.join(timeout=10)  # an idle keep-alive connection must not hold stop() up
    assert not stopper.is_alive()
    assert set(threading.enumerate()) - before - {stopper} == set()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    idle.close()
    server.stop()  # idempotent
    with pytest.raises(RuntimeError):
        server.url_for("app")
