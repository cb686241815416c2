"""A real SSH Git host for tests: OpenSSH's ``sshd`` serving bare repositories to deploy keys.

``SshGitServer`` runs Debian's ``/usr/sbin/sshd -D -e -f CONFIG`` as root on 127.0.0.1 and a free
port, with its own ed25519 host key, config, ``authorized_keys``, pid file and log, all under the
``base_dir`` the caller owns. Nothing under ``/etc/ssh`` is read or changed; the only thing
outside ``base_dir`` is ``/run/sshd``, the empty directory sshd's privilege separation chroots
into (created when missing, as the Debian service would).

Who logs in: **root**, so URLs look like ``ssh://root@127.0.0.1:PORT/<base_dir>/repos/x.git``.
A dedicated ``git`` user is not practical here: it would have to be added to /etc/passwd, and it
could not reach repositories under pytest's ``tmp_path`` (whose parents are mode 0700). Root is
locked down instead, the way a Git host locks down its ``git`` account:

* ``PermitRootLogin forced-commands-only`` and ``AllowUsers root``: public keys only (no
  password, keyboard-interactive or PAM), and only keys that carry a ``command=``.
* every key is written as ``restrict,environment="HOME=...",command="..."``: no pty, no port,
  agent or X11 forwarding, no ``~/.ssh/rc``; the forced command (``git-serve``, a small sh
  script in ``base_dir``) accepts only ``git-upload-pack '<path>'`` / ``git-receive-pack
  '<path>'`` (also spelt ``git upload-pack``), optionally only for some repositories and only for
  reading, and then hands the command to ``git-shell -c``, git's own restricted shell.
* ``HOME`` is overridden to an empty ``base_dir/home``. sshd runs the forced command through
  root's login shell, and Debian's bash sources ``~/.bashrc`` for commands run over ssh: root's
  real ``.bashrc`` (pyenv, cargo, ...) would otherwise run on every fetch, cost ~0.3 s, and any
  output of it would corrupt the git protocol. The server side of git also ignores
  ``/etc/gitconfig`` (``GIT_CONFIG_NOSYSTEM=1``), so the host's git config cannot leak in.

Protocol v2 works over this transport: sshd accepts the client's ``GIT_PROTOCOL`` variable
(``AcceptEnv GIT_PROTOCOL``, what ``git`` sends with ``-o SendEnv=GIT_PROTOCOL``).

``stop()`` ends the listener and also every connection still open: sshd's per-connection
processes leave its process group (they call ``setsid``), so they are found through
``/proc`` while the listener is still alive, then terminated, then killed after a timeout.

Clients pin the host key with ``known_hosts_line()`` and use ``git_ssh_command()``::

    key, public = make_deploy_key(tmp_path)
    with SshGitServer(tmp_path / "ssh") as server:
        server.create_repo("app")
        server.add_deploy_key(public)
        known = tmp_path / "known_hosts"
        known.write_text(server.known_hosts_line() + "\\n")
        env = {**os.environ, "GIT_SSH_COMMAND": git_ssh_command(key, known)}
        subprocess.run(["git", "clone", server.url_for("app"), "app"], env=env, check=True)
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shlex
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.services import free_port, log_tail

SSHD = Path("/usr/sbin/sshd")
SSH = Path("/usr/bin/ssh")
SSH_KEYGEN = Path("/usr/bin/ssh-keygen")
GIT_SHELL = Path("/usr/bin/git-shell")
PRIVSEP_DIR = Path("/run/sshd")  # Debian's sshd is built to chroot its pre-auth child here
LOGIN_USER = "root"
START_TIMEOUT = 10.0
# OpenSSH 9.2 prefers the post-quantum sntrup761x25519 key exchange, which costs ~0.2 s of CPU
# per connection on these small test machines, as much as all the rest of a clone. Tests make
# many connections, so by default the server offers the classic ones only (as many Git hosts
# do). Pass kex_algorithms=None for sshd's own default list.
FAST_KEX = "curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256"
_NAME_RE = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")
# Characters that would need escaping inside authorized_keys options or sh quotes.
_UNSAFE_PATH_CHARS = set("'\"\\\n\r\t$`")

# The forced command of every key. sshd runs it as `$SHELL -c 'exec /bin/sh git-serve MODE
# [REPO]'` with the client's request in SSH_ORIGINAL_COMMAND. Only the exact requests git's
# ssh transport sends get through, and git-shell still has the last word.
_GIT_SERVE = r"""#!/bin/sh
# Forced command for deploy keys (written by tests/ssh_server.py).
#   $1      rw | ro (ro: clone and fetch only)
#   $2...   absolute repository paths this key may reach (none: any repository)
set -f
mode=$1
shift
cmd=${SSH_ORIGINAL_COMMAND-}
deny() {
    echo "ERROR: $1" >&2
    exit 1
}
case $cmd in
*'
'*) deny "one git command per connection" ;;
"git-upload-pack "*) verb=upload-pack arg=${cmd#git-upload-pack } ;;
"git upload-pack "*) verb=upload-pack arg=${cmd#git upload-pack } ;;
"git-receive-pack "*) verb=receive-pack arg=${cmd#git-receive-pack } ;;
"git receive-pack "*) verb=receive-pack arg=${cmd#git receive-pack } ;;
*) deny "this key may run git-upload-pack and git-receive-pack only, not: $cmd" ;;
esac
if [ "$verb" = receive-pack ] && [ "$mode" != rw ]; then
    deny "the key you are authenticating with is read-only"
fi
if [ $# -gt 0 ]; then
    allowed=
    for repo in "$@"; do
        if [ "$arg" = "'$repo'" ]; then allowed=1; fi
    done
    if [ -z "$allowed" ]; then deny "this key has no access to $arg"; fi
fi
GIT_CONFIG_NOSYSTEM=1
export GIT_CONFIG_NOSYSTEM
exec /usr/bin/git-shell -c "$cmd"
"""


def _check_path(path: Path) -> str:
    text = str(path)
    if _UNSAFE_PATH_CHARS & set(text):
        raise ValueError(f"unsupported characters in path {text!r}")
    return text


def _keygen(private_key: Path, comment: str) -> None:
    if not SSH_KEYGEN.exists():
        raise RuntimeError(f"{SSH_KEYGEN} is missing: run `bash scripts/install-test-deps.sh`")
    proc = subprocess.run(
        [str(SSH_KEYGEN), "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(private_key)],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"ssh-keygen failed: {proc.stderr.decode(errors='replace')}")


def make_deploy_key(directory: Path, name: str | None = None) -> tuple[Path, str]:
    """A new passphrase-less ed25519 key pair in ``directory``.

    Returns the private key file (mode 0600, as ssh requires) and the public key text
    (``ssh-ed25519 AAAA... comment``, one line, no newline). ``name`` defaults to a fresh
    ``deploy_key_XXXXXXXX``; an existing file is never overwritten.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    private_key = directory / (name or f"deploy_key_{secrets.token_hex(4)}")
    if private_key.exists() or private_key.with_name(private_key.name + ".pub").exists():
        raise FileExistsError(private_key)
    _keygen(private_key, f"deploy-key-{private_key.name}@tests")
    private_key.chmod(0o600)
    public = private_key.with_name(private_key.name + ".pub").read_text().strip()
    return private_key, public


def git_ssh_command(private_key: Path, known_hosts: Path) -> str:
    """A ``GIT_SSH_COMMAND`` that offers only ``private_key`` and trusts only ``known_hosts``.

    ``-F /dev/null`` and ``GlobalKnownHostsFile=/dev/null`` keep the machine's own ssh config
    and known hosts out of it; ``BatchMode`` makes any prompt a failure instead of a hang.
    """
    return shlex.join(
        [
            str(SSH),
            "-F",
            "/dev/null",
            "-i",
            str(private_key),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            f"UserKnownHostsFile={known_hosts}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
        ]
    )


def _proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, start time) for every process we can see."""
    table: dict[int, tuple[int, str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # comm (field 2) may hold spaces and parentheses: split after its last ')'.
        fields = stat[stat.rindex(")") + 2 :].split()
        table[int(entry)] = (int(fields[1]), fields[19])
    return table


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None  # a zombie has exited already; its parent (init, or us) reaps it
    return fields[19]


class SshGitServer:
    """Bare repositories under ``base_dir/repos`` served by a real sshd to authorized keys."""

    user = LOGIN_USER

    def __init__(self, base_dir: Path, *, kex_algorithms: str | None = FAST_KEX) -> None:
        self.base_dir = Path(base_dir).absolute()
        self.kex_algorithms = kex_algorithms
        _check_path(self.base_dir)
        self.repos_dir = self.base_dir / "repos"
        self.home_dir = self.base_dir / "home"  # HOME of every session: empty on purpose
        self.host_key = self.base_dir / "ssh_host_ed25519_key"
        self.config_path = self.base_dir / "sshd_config"
        self.authorized_keys = self.base_dir / "authorized_keys"
        self.git_serve = self.base_dir / "git-serve"
        self.pid_path = self.base_dir / "sshd.pid"
        self.log_path = self.base_dir / "sshd.log"
        self._port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        if self._proc is not None:
            raise RuntimeError("already started")
        for tool in (SSHD, SSH_KEYGEN, GIT_SHELL):
            if not tool.exists():
                raise RuntimeError(f"{tool} is missing: run `bash scripts/install-test-deps.sh`")
        if os.geteuid() != 0:
            raise RuntimeError("sshd must be started as root (it has to switch to the login user)")
        for directory in (self.base_dir, self.repos_dir, self.home_dir):
            directory.mkdir(parents=True, exist_ok=True)
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        if not self.host_key.exists():
            _keygen(self.host_key, "ssh-git-server@127.0.0.1")
        self.git_serve.write_text(_GIT_SERVE)
        self.git_serve.chmod(0o755)
        self.authorized_keys.touch(mode=0o600)
        last_error: RuntimeError | None = None
        for _attempt in range(3):  # a free port can be taken before sshd binds it
            try:
                self._launch(free_port())
                return self
            except RuntimeError as exc:
                if "Address already in use" not in str(exc):
                    raise
                last_error = exc
        assert last_error is not None
        raise last_error

    def _launch(self, port: int) -> None:
        self.pid_path.unlink(missing_ok=True)
        self.config_path.write_text(self._config(port))
        with open(self.log_path, "ab") as log:
            proc = subprocess.Popen(
                [str(SSHD), "-D", "-e", "-f", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        # sshd writes its pid file once its listening socket is bound.
        while not self._pid_file_ready(proc.pid):
            if proc.poll() is not None:
                raise RuntimeError(f"sshd exited with {proc.returncode} on port {port}:\n{log_tail(self.log_path)}")
            if time.monotonic() > deadline:
                self._terminate(proc, [])
                raise RuntimeError(f"sshd did not start in {START_TIMEOUT}s:\n{log_tail(self.log_path)}")
            time.sleep(0.01)
        self._proc, self._port = proc, port

    def _pid_file_ready(self, pid: int) -> bool:
        try:
            return self.pid_path.read_text().strip() == str(pid)
        except OSError:
            return False

    def _config(self, port: int) -> str:
        def q(path: Path) -> str:
            return f'"{path}"'

        return "\n".join(
            [
                "# Written by tests/ssh_server.py: a loopback Git host, root by forced command only.",
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {q(self.host_key)}",
                f"PidFile {q(self.pid_path)}",
                f"AuthorizedKeysFile {q(self.authorized_keys)}",
                "AuthorizedPrincipalsFile none",
                # base_dir belongs to root and sits under 0700 pytest dirs; nothing to check.
                "StrictModes no",
                "UsePAM no",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "HostbasedAuthentication no",
                "PermitEmptyPasswords no",
                f"AllowUsers {LOGIN_USER}",
                "PermitRootLogin forced-commands-only",
                # Only the HOME=... that add_deploy_key writes into each key's options.
                "PermitUserEnvironment HOME",
                "AcceptEnv GIT_PROTOCOL",
                "PermitUserRC no",
                "PermitTTY no",
                "AllowTcpForwarding no",
                "AllowStreamLocalForwarding no",
                "AllowAgentForwarding no",
                "X11Forwarding no",
                "PermitTunnel no",
                "GatewayPorts no",
                "PrintMotd no",
                "PrintLastLog no",
                "UseDNS no",
                "LoginGraceTime 30",
                "LogLevel VERBOSE",
                *([f"KexAlgorithms {self.kex_algorithms}"] if self.kex_algorithms else []),
                "",
            ]
        )

    def stop(self, timeout: float = 5.0) -> None:
        """End sshd and every connection it still serves: SIGTERM, then SIGKILL after timeout."""
        proc = self._proc
        if proc is None:
            return
        # Connection handlers setsid() away from the listener's process group: note them
        # (and what runs under them: git-upload-pack, ...) while they are still its children.
        table = _proc_table()
        children: dict[int, list[int]] = {}
        for pid, (ppid, _start) in table.items():
            children.setdefault(ppid, []).append(pid)
        descendants: list[tuple[int, str]] = []
        todo = list(children.get(proc.pid, []))
        while todo:
            pid = todo.pop()
            descendants.append((pid, table[pid][1]))
            todo.extend(children.get(pid, []))
        self._terminate(proc, descendants, timeout)
        self._proc = None
        self.pid_path.unlink(missing_ok=True)

    @staticmethod
    def _terminate(proc: subprocess.Popen[bytes], descendants: list[tuple[int, str]], timeout: float = 5.0) -> None:
        def alive() -> list[int]:
            return [pid for pid, start in descendants if _start_time(pid) == start]

        def signal_all(sig: int) -> None:
            if proc.poll() is None:
                proc.send_signal(sig)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)  # anything still in sshd's own process group
            for pid in alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)

        signal_all(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (proc.poll() is None or alive()):
            time.sleep(0.02)
        if proc.poll() is None or alive():
            signal_all(signal.SIGKILL)
            proc.wait(timeout=10)
            deadline = time.monotonic() + 5
            while alive() and time.monotonic() < deadline:
                time.sleep(0.02)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("not started")
        return self._port

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("not started")
        return self._proc.pid

    def pids(self) -> list[int]:
        """The listener and every process under it now (connection handlers, git)."""
        table = _proc_table()
        found = [self.pid]
        for pid in found:
            found.extend(child for child, (ppid, _start) in table.items() if ppid == pid)
        return found

    # -- repositories and keys -------------------------------------------------------------

    def repo_path(self, name: str) -> Path:
        name = name.strip("/")
        if not _NAME_RE.fullmatch(name) or ".." in name.split("/"):
            raise ValueError(f"bad repository name {name!r}")
        return self.repos_dir / (name if name.endswith(".git") else f"{name}.git")

    def create_repo(self, name: str, *, initial_branch: str = "main") -> Path:
        """A new bare repository ``base_dir/repos/<name>.git``."""
        path = self.repo_path(name)
        if path.exists():
            raise FileExistsError(path)
        path.mkdir(parents=True)
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.home_dir),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
        }
        subprocess.run(
            ["git", "init", "--bare", "--quiet", f"--initial-branch={initial_branch}"],
            cwd=path,
            env=env,
            check=True,
            capture_output=True,
            timeout=30,
        )
        return path

    def url_for(self, name: str) -> str:
        """``ssh://root@127.0.0.1:PORT/<absolute path of the bare repository>``."""
        return f"ssh://{LOGIN_USER}@127.0.0.1:{self.port}{self.repo_path(name)}"

    def add_deploy_key(self, public_key_text: str, *, repos: Iterable[str] = (), read_only: bool = False) -> None:
        """Authorize a public key for git fetch/clone (and push unless ``read_only``).

        With ``repos`` the key reaches only those repositories (GitHub's deploy keys are
        per repository); by default it reaches every repository of this server. Takes effect
        on the next connection: sshd reads ``authorized_keys`` at every login.
        """
        fields = public_key_text.strip().split()
        if (
            "\n" in public_key_text.strip()
            or len(fields) < 2
            or not re.fullmatch(r"(ssh|ecdsa|sk)-[A-Za-z0-9@.+-]+", fields[0])
            or not re.fullmatch(r"[A-Za-z0-9+/=]+", fields[1])
        ):
            raise ValueError(f"not an OpenSSH public key line: {public_key_text!r}")
        paths = [_check_path(self.repo_path(name)) for name in repos]
        command = " ".join(
            ["exec", "/bin/sh", _check_path(self.git_serve), "ro" if read_only else "rw", *(f"'{p}'" for p in paths)]
        )
        options = f'restrict,environment="HOME={_check_path(self.home_dir)}",command="{command}"'
        with open(self.authorized_keys, "a") as out:
            out.write(f"{options} {' '.join(fields)}\n")

    def known_hosts_line(self) -> str:
        """``[127.0.0.1]:PORT ssh-ed25519 AAAA...``: the line that pins this server's host key."""
        key_type, key = self.host_key.with_name(self.host_key.name + ".pub").read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {key_type} {key}"
