"""Registry credentials as Docker stores them, so a host that ran ``docker login`` needs no more.

Docker's CLI keeps credentials in ``config.json`` (in ``$DOCKER_CONFIG``, else ``~/.docker``) and
looks them up per registry in this order, which is followed here exactly:

1. ``credHelpers[host]``: a credential helper for that registry alone;
2. ``credsStore``: the default helper for every registry (Docker Desktop's ``desktop``,
   ``osxkeychain``, ``pass``, ``secretservice``, ``ecr-login``, ...);
3. ``auths[host]``: credentials in the file itself, base64 ``user:password`` in ``auth`` (or
   ``username``/``password``), possibly with an ``identitytoken``.

A configured helper is authoritative, as it is for Docker: when it knows nothing about the
registry, ``auths`` is not consulted (Docker Desktop leaves empty ``auths`` entries behind that
mean only "logged in via the store").

A helper is run as ``docker-credential-<name> get`` with the server address on stdin, and answers
``{"ServerURL", "Username", "Secret"}`` on stdout. The username ``<token>`` means the secret is an
*identity token*: an OAuth2 refresh token the registry's token service exchanges for access
tokens (``RegistryAuth`` does this with a ``grant_type=refresh_token`` POST).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import RegistryConfig
from pipeline.errors import RegistryAuthError

__all__ = ["Credentials", "docker_config_credentials", "resolve_credentials"]

# The key Docker stores Docker Hub credentials under, and the names Hub goes by in references.
DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_DOCKER_HUB = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
TOKEN_USERNAME = "<token>"  # a helper's Username when Secret is an identity token
_NOT_FOUND = "credentials not found in native keychain"
_HELPER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True, repr=False)
class Credentials:
    """A username and password, or an identity token (then the password is usually empty).

    The repr names the user and says whether a secret is present, never the secret itself, so a
    Credentials can end up in a log line or a traceback safely.
    """

    username: str
    password: str
    identity_token: str | None = None

    def __repr__(self) -> str:
        password = "<hidden>" if self.password else "''"
        token = "<hidden>" if self.identity_token else "None"
        return f"Credentials(username={self.username!r}, password={password}, identity_token={token})"

    @classmethod
    def of(cls, value: Credentials | tuple[str, str] | None) -> Credentials | None:
        """Accept the ``(username, password)`` tuples older callers pass."""
        if value is None or isinstance(value, Credentials):
            return value
        username, password = value
        return cls(username, password)


def _hostname(address: str) -> str:
    """``https://host:5000/v1/`` → ``host:5000``: how Docker matches legacy ``auths`` keys."""
    address = re.sub(r"^[A-Za-z][A-Za-z0-9+.-]*://", "", address.strip())
    return address.split("/", 1)[0].lower()


def _is_hub(host: str) -> bool:
    return host in _DOCKER_HUB


def _spellings(host: str) -> list[str]:
    """The ``auths`` keys Docker (and tools writing Docker's file) use for one registry,
    most specific first."""
    if _is_hub(host):
        return [
            DOCKER_HUB_KEY,
            "index.docker.io",
            "docker.io",
            "registry-1.docker.io",
            "https://index.docker.io",
            "https://registry-1.docker.io",
            "https://docker.io",
        ]
    return [host, f"https://{host}", f"http://{host}", f"https://{host}/v1/", f"http://{host}/v1/"]


def _server_address(host: str) -> str:
    """What Docker asks a helper for: Hub's legacy index URL, else the host itself."""
    return DOCKER_HUB_KEY if _is_hub(host) else host


def _config_path(config_dir: Path | None) -> Path:
    if config_dir is not None:
        return Path(config_dir) / "config.json"
    if env := os.environ.get("DOCKER_CONFIG"):
        return Path(env) / "config.json"
    return Path.home() / ".docker" / "config.json"


def _load(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RegistryAuthError(
            f"cannot read the Docker config {path}: {exc.strerror or exc.__class__.__name__}"
        ) from None
    except UnicodeDecodeError:
        raise RegistryAuthError(f"the Docker config {path} is not UTF-8 text; fix or remove it") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        # The position only, not the message: a decode error may quote part of a secret.
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise RegistryAuthError(f"the Docker config {path} is not valid JSON{where}; fix or remove it") from None
    if not isinstance(data, dict):
        raise RegistryAuthError(f"the Docker config {path} is not a JSON object; fix or remove it")
    return data


def _mapping(data: Mapping[str, Any], key: str, path: Path) -> Mapping[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, Mapping):
        raise RegistryAuthError(f"the Docker config {path}: {key!r} must be an object")
    return value


def docker_config_credentials(host: str, config_dir: Path | None = None, *, timeout: float = 10) -> Credentials | None:
    """Credentials for ``host`` as ``docker login`` left them; None if Docker has none.

    ``config_dir`` is the directory holding ``config.json`` (default ``$DOCKER_CONFIG``, else
    ``~/.docker``). ``timeout`` bounds a credential helper, which may wait on a keychain or a
    cloud API. Raises ``RegistryAuthError`` when the file or a helper is broken, since silently
    going anonymous would turn that into a confusing "unauthorized" much later.
    """
    host = _hostname(host)
    path = _config_path(config_dir)
    data = _load(path)
    if data is None:
        return None
    helpers = _mapping(data, "credHelpers", path)
    for key in _spellings(host):
        if key in helpers:
            return _from_helper(helpers[key], host, f"credHelpers[{key!r}] in {path}", timeout)
    for key, helper in helpers.items():  # e.g. "https://host/" written by another tool
        if _hostname(key) == host or (_is_hub(host) and _is_hub(_hostname(key))):
            return _from_helper(helper, host, f"credHelpers[{key!r}] in {path}", timeout)
    if store := data.get("credsStore"):
        return _from_helper(store, host, f"credsStore in {path}", timeout)
    return _from_auths(_mapping(data, "auths", path), host, path)


def _from_auths(auths: Mapping[str, Any], host: str, path: Path) -> Credentials | None:
    key = next((k for k in _spellings(host) if k in auths), None)
    if key is None:
        key = next((k for k in auths if _hostname(k) == host or (_is_hub(host) and _is_hub(_hostname(k)))), None)
    if key is None:
        return None
    entry = auths[key]
    where = f"auths[{key!r}] in the Docker config {path}"
    if not isinstance(entry, Mapping):
        raise RegistryAuthError(f"{where} (registry {host}) must be an object")
    username, password = entry.get("username") or "", entry.get("password") or ""
    if encoded := entry.get("auth"):
        if not isinstance(encoded, str):
            raise RegistryAuthError(f"{where} (registry {host}): 'auth' must be a base64 string")
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise RegistryAuthError(
                f"{where} (registry {host}): 'auth' is not base64 of 'user:password'; run `docker login` again"
            ) from None
        username, sep, password = decoded.partition(":")  # the password may contain ':'
        if not sep:
            raise RegistryAuthError(
                f"{where} (registry {host}): 'auth' holds no ':' between user and password; run `docker login` again"
            )
        password = password.strip("\x00")  # as Docker does: some tools pad with NULs
    token = entry.get("identitytoken") or None
    if not all(isinstance(v, str) for v in (username, password, token or "")):
        raise RegistryAuthError(f"{where} (registry {host}): username, password and identitytoken must be strings")
    if not (username or password or token):
        return None  # e.g. {} left by Docker Desktop: "stored in the credential store"
    return Credentials(username, password, token)


def _from_helper(name: object, host: str, where: str, timeout: float) -> Credentials | None:
    if not isinstance(name, str) or not _HELPER_NAME.match(name):
        raise RegistryAuthError(
            f"{where}: {name!r} is not a credential helper name (expected e.g. 'desktop' for docker-credential-desktop)"
        )
    program = f"docker-credential-{name}"
    executable = shutil.which(program)
    if executable is None:
        raise RegistryAuthError(
            f"{program} (from {where}) is not on PATH, so there are no "
            f"credentials for registry {host}: install it or change the config"
        )
    output, errors, code = _run_helper(executable, _server_address(host), timeout, program, host)
    message = output.strip() or errors.strip()
    if code != 0:
        if _NOT_FOUND in message.lower():
            return None
        detail = message.splitlines()[0][:200] if message else f"exit status {code}"
        raise RegistryAuthError(f"{program} get failed for registry {host} ({where}): {detail}")
    try:
        answer = json.loads(output)
        username, secret = answer.get("Username") or "", answer.get("Secret") or ""
    except (ValueError, AttributeError):
        # Never quote the output: it is where the secret would be.
        raise RegistryAuthError(
            f"{program} get for registry {host} ({where}) did not print the JSON {{ServerURL, Username, Secret}}"
        ) from None
    if not isinstance(username, str) or not isinstance(secret, str):
        raise RegistryAuthError(f"{program} get for registry {host} ({where}): Username and Secret must be strings")
    if not (username or secret):
        return None
    if username == TOKEN_USERNAME:
        return Credentials("", "", secret)
    return Credentials(username, secret)


def _run_helper(executable: str, address: str, timeout: float, program: str, host: str) -> tuple[str, str, int]:
    """Run ``<helper> get`` without a shell. The helper gets its own process group, so that on a
    timeout whatever it started (a shell script's ``sleep``, a keychain prompt) dies with it
    instead of keeping the pipes open."""
    try:
        process = subprocess.Popen(
            [executable, "get"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise RegistryAuthError(
            f"cannot run {program} for registry {host}: {exc.strerror or exc.__class__.__name__}"
        ) from None
    try:
        out, err = process.communicate(address.encode(), timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.communicate(timeout=5)  # reap it; a grandchild in its own session may linger
        raise RegistryAuthError(
            f"{program} get did not answer within {timeout:g} s for registry "
            f"{host} (is it waiting for a locked keychain?)"
        ) from None
    return (out.decode("utf-8", errors="replace"), err.decode("utf-8", errors="replace"), process.returncode)


def resolve_credentials(config: RegistryConfig) -> Credentials | None:
    """The credentials to use for one configured registry.

    The registry's own ``username_env``/``password_env`` win: they are explicit, and a CI
    runner's Docker login may belong to someone else. Without them, whatever ``docker login``
    stored for the host is used, so a developer machine needs no extra setup.
    """
    if (pair := config.credentials()) is not None:
        return Credentials(*pair)
    return docker_config_credentials(config.host, config.docker_config)
