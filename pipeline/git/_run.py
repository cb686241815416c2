"""Running git: argument lists, a clean environment, credentials only via that environment.

Credentials never go into a URL or onto the command line (both show up in logs and ``ps``):
an HTTPS token becomes an ``http.<origin>.extraHeader`` set through ``GIT_CONFIG_*`` variables,
scoped to the repository's own origin so a submodule elsewhere never receives it; an SSH deploy
key becomes ``GIT_SSH_COMMAND`` with a pinned ``known_hosts``.
"""

from __future__ import annotations

import base64
import os
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import git

from pipeline.config import GitConfig
from pipeline.errors import ConfigError, GitError

__all__ = ["AUTOCRLF", "auth_env", "run_git", "sanitize"]

AUTOCRLF = ("-c", "core.autocrlf=input")
_USERINFO = re.compile(r"(://)[^/@\s]+@")
_BASE_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "SSH_ASKPASS": "true", "GIT_LFS_SKIP_SMUDGE": "1"}


def sanitize(text: str) -> str:
    """Drop credentials embedded in URLs before an error reaches a log or the database."""
    return _USERINFO.sub(r"\1***@", text)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}/"


def auth_env(url: str, auth: GitConfig) -> dict[str, str]:
    """Environment that lets git authenticate to ``url`` the way the project's config says."""
    env: dict[str, str] = {}
    if auth.token_env:
        token = os.environ.get(auth.token_env)
        if not token:
            raise ConfigError(f"git token: environment variable {auth.token_env} is not set")
        if not url.startswith(("https://", "http://")):
            raise ConfigError(f"git token_env is for HTTP(S) repositories; {sanitize(url)} is not one")
        basic = base64.b64encode(f"{auth.username}:{token}".encode()).decode()
        env.update(
            GIT_CONFIG_COUNT="1",
            GIT_CONFIG_KEY_0=f"http.{_origin(url)}.extraHeader",
            GIT_CONFIG_VALUE_0=f"Authorization: Basic {basic}",
        )
    if auth.ssh_key_file:
        options = [
            "ssh",
            "-i",
            str(auth.ssh_key_file),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            f"UserKnownHostsFile={auth.known_hosts_file}",
            "-o",
            "StrictHostKeyChecking=yes",
        ]
        env["GIT_SSH_COMMAND"] = shlex.join(options)
    return env


def run_git(
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
    secrets: tuple[str, ...] = (),
) -> str:
    """Run ``git args`` and return stdout; any failure is a ``GitError`` with git's own words."""
    full_env = {**_BASE_ENV, **(env or {})}
    try:
        return git.Git(str(cwd) if cwd else None).execute(["git", *args], env=full_env, kill_after_timeout=timeout)
    except git.GitCommandError as exc:
        stderr = str(exc.stderr or "").strip().removeprefix("stderr: ").strip("'\n ")
        for secret in secrets:
            stderr = stderr.replace(secret, "***")
        if timeout and ("did not complete in" in stderr or exc.status == -9):
            raise GitError(f"git {args[0] if args else ''} took longer than {timeout:.0f} s and was stopped") from None
        command = sanitize(" ".join(a for a in args if not a.startswith("http.")))
        raise GitError(f"git {command} failed: {sanitize(stderr) or f'exit {exc.status}'}") from None
