"""Registry authentication as httpx auth flows: anonymous, basic, and the Bearer challenge.

Docker Hub, GHCR, Quay and distribution with token auth answer 401 with
``WWW-Authenticate: Bearer realm=…,service=…,scope=…``; the client then asks the realm for a
token covering exactly the scopes the operation needs. Tokens are scoped, so they are cached
per set of scopes (a token for ``a:pull`` must not be reused for ``b:push``).
"""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Generator, Iterable
from dataclasses import dataclass

import httpx

from pipeline.errors import RegistryAuthError, RegistryError

__all__ = ["Challenge", "RegistryAuth", "TokenCache", "parse_challenge"]

_PARAM = re.compile(r'(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')


@dataclass(frozen=True)
class Challenge:
    scheme: str
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge:
    """``Bearer realm="https://auth",service="reg",scope="repository:a:pull"`` → Challenge."""
    scheme, _, rest = header.strip().partition(" ")
    params = {m[1].lower(): (m[2] if m[2] is not None else m[3]) for m in _PARAM.finditer(rest)}
    return Challenge(scheme.lower(), params)


def _basic(credentials: tuple[str, str]) -> str:
    user, password = credentials
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class TokenCache:
    """Bearer tokens by (registry, scopes) until shortly before they expire; thread-safe."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, frozenset[str]], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, frozenset[str]]) -> str | None:
        with self._lock:
            found = self._tokens.get(key)
        if found and found[1] > time.monotonic():
            return found[0]
        return None

    def put(self, key: tuple[str, frozenset[str]], token: str, expires_in: float) -> None:
        with self._lock:
            self._tokens[key] = (token, time.monotonic() + max(expires_in - 10, 1))


class RegistryAuth(httpx.Auth):
    """Answers whichever challenge the registry sends, for the scopes one operation needs."""

    requires_response_body = True

    def __init__(self, host: str, credentials: tuple[str, str] | None, scopes: Iterable[str],
                 cache: TokenCache) -> None:
        self.host, self.credentials, self.cache = host, credentials, cache
        self.scopes = frozenset(scopes)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        key = (self.host, self.scopes)
        if token := self.cache.get(key):
            request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401:
            return
        challenge = parse_challenge(response.headers.get("www-authenticate", ""))
        if challenge.scheme == "basic":
            if self.credentials is None:
                raise RegistryAuthError(f"registry {self.host} needs a username and password; "
                                    "set username_env/password_env in its config")
            request.headers["Authorization"] = _basic(self.credentials)
            retried = yield request
            if retried.status_code == 401:
                raise RegistryAuthError(f"registry {self.host} refused the password of {self.credentials[0]}")
            return
        if challenge.scheme != "bearer" or "realm" not in challenge.params:
            return
        token_response = yield self._token_request(challenge)
        token, expires_in = self._read_token(token_response)
        self.cache.put(key, token, expires_in)
        request.headers["Authorization"] = f"Bearer {token}"
        yield request

    def _token_request(self, challenge: Challenge) -> httpx.Request:
        scopes = set(self.scopes)
        if not scopes and (asked := challenge.params.get("scope")):
            scopes.update(asked.split(" "))
        params = [("scope", scope) for scope in sorted(scopes)]
        if service := challenge.params.get("service"):
            params.insert(0, ("service", service))
        request = httpx.Request("GET", challenge.params["realm"], params=params)
        if self.credentials is not None:
            request.headers["Authorization"] = _basic(self.credentials)
        return request

    def _read_token(self, response: httpx.Response) -> tuple[str, float]:
        if response.status_code in (401, 403):
            who = f"as {self.credentials[0]}" if self.credentials else "anonymously"
            raise RegistryAuthError(f"registry {self.host}: the token service refused {who} "
                                f"for {' '.join(sorted(self.scopes)) or 'access'} ({response.status_code})")
        if response.status_code != 200:
            raise RegistryError(f"registry {self.host}: token service answered {response.status_code}")
        try:
            body = response.json()
            token = body.get("token") or body.get("access_token")
            expires_in = float(body.get("expires_in") or 60)
        except (ValueError, AttributeError, TypeError):
            raise RegistryError(f"registry {self.host}: token service sent no usable JSON") from None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"registry {self.host}: token service sent no token")
        return token, expires_in
