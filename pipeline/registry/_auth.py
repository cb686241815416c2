"""Registry authentication as httpx auth flows: anonymous, basic, and the Bearer challenge.

Docker Hub, GHCR, Quay and distribution with token auth answer 401 with
``WWW-Authenticate: Bearer realm=…,service=…,scope=…``; the client then asks the realm for a
token covering exactly the scopes the operation needs. Tokens are scoped, so they are cached
per set of scopes (a token for ``a:pull`` must not be reused for ``b:push``).

How the token is asked for depends on the credentials, as in Docker's own client:

* a username and password (or none): ``GET realm?service=…&scope=…`` with HTTP basic auth;
* an identity token (what ``docker login`` keeps for registries whose token service hands out
  OAuth2 refresh tokens, e.g. via a credential helper's ``<token>`` user): ``POST realm`` with
  the form ``grant_type=refresh_token&refresh_token=…&service=…&scope=…&client_id=pipeline``
  (distribution's OAuth2 token spec). There is no fallback to GET: the GET endpoint cannot take
  a refresh token, so falling back would only turn a clear refusal into an anonymous one.
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
from pipeline.registry._credentials import Credentials

__all__ = ["CLIENT_ID", "Challenge", "RegistryAuth", "TokenCache", "parse_challenge"]

CLIENT_ID = "pipeline"  # the OAuth2 client_id sent with a refresh-token grant

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


def _basic(credentials: Credentials) -> str:
    pair = f"{credentials.username}:{credentials.password}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


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
    """Answers whichever challenge the registry sends, for the scopes one operation needs.

    ``credentials`` is a ``Credentials`` (possibly holding an identity token), a plain
    ``(username, password)`` tuple, or None for anonymous access.
    """

    requires_response_body = True

    def __init__(
        self, host: str, credentials: Credentials | tuple[str, str] | None, scopes: Iterable[str], cache: TokenCache
    ) -> None:
        self.host, self.cache = host, cache
        self.credentials = Credentials.of(credentials)
        self.scopes = frozenset(scopes)

    @property
    def _identity_token(self) -> str | None:
        return self.credentials.identity_token if self.credentials else None

    def _who(self) -> str:
        if self.credentials is None:
            return "anonymously"
        if self.credentials.identity_token:
            user = self.credentials.username
            return f"the identity token of {user}" if user else "the identity token"
        return f"as {self.credentials.username}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        key = (self.host, self.scopes)
        if token := self.cache.get(key):
            request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401:
            return
        challenge = parse_challenge(response.headers.get("www-authenticate", ""))
        if challenge.scheme == "basic":
            credentials = self.credentials
            if credentials is None:
                raise RegistryAuthError(
                    f"registry {self.host} needs a username and password; set "
                    "username_env/password_env in its config, or `docker login` to it "
                    "(config.json in its docker_config, DOCKER_CONFIG or ~/.docker)"
                )
            if credentials.identity_token and not credentials.password:
                raise RegistryAuthError(
                    f"registry {self.host} asks for a username and password (Basic auth), but "
                    "the credentials found are an identity token, which only a Bearer token "
                    "service accepts; set username_env/password_env in its config or "
                    f"`docker login {self.host}` with a password"
                )
            request.headers["Authorization"] = _basic(credentials)
            retried = yield request
            if retried.status_code == 401:
                raise RegistryAuthError(f"registry {self.host} refused the password of {credentials.username}")
            return
        if challenge.scheme != "bearer" or "realm" not in challenge.params:
            return
        token_response = yield self._token_request(challenge)
        token, expires_in = self._read_token(token_response)
        self.cache.put(key, token, expires_in)
        request.headers["Authorization"] = f"Bearer {token}"
        yield request

    def _scopes_for(self, challenge: Challenge) -> list[str]:
        scopes = set(self.scopes)
        if not scopes and (asked := challenge.params.get("scope")):
            scopes.update(asked.split(" "))
        return sorted(scopes)

    def _token_request(self, challenge: Challenge) -> httpx.Request:
        scopes = self._scopes_for(challenge)
        service = challenge.params.get("service")
        if refresh_token := self._identity_token:
            form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": CLIENT_ID}
            if service:
                form["service"] = service
            if scopes:
                form["scope"] = " ".join(scopes)  # one space-separated field, as Docker sends it
            return httpx.Request("POST", challenge.params["realm"], data=form)
        # a tuple, not a list: httpx types a list of pairs invariantly, so a list[tuple[str, str]] does not fit
        params = (*([("service", service)] if service else []), *(("scope", scope) for scope in scopes))
        request = httpx.Request("GET", challenge.params["realm"], params=params)
        if self.credentials is not None:
            request.headers["Authorization"] = _basic(self.credentials)
        return request

    def _read_token(self, response: httpx.Response) -> tuple[str, float]:
        oauth = response.request.method == "POST"
        if response.status_code in (401, 403) or (oauth and response.status_code == 400):
            what = f"for {' '.join(sorted(self.scopes)) or 'access'}"
            if oauth:
                raise RegistryAuthError(
                    f"registry {self.host}: the token service refused {self._who()} {what} "
                    f"({response.status_code}{_oauth_error(response)}); it may have expired or "
                    f"been revoked: `docker login {self.host}` again"
                )
            raise RegistryAuthError(
                f"registry {self.host}: the token service refused {self._who()} {what} ({response.status_code})"
            )
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


def _oauth_error(response: httpx.Response) -> str:
    """``: invalid_grant`` from an OAuth2 error body; only the short code, which is safe to log
    (a description is free text chosen by the server)."""
    try:
        code = response.json().get("error")
    except (ValueError, AttributeError):
        return ""
    return f": {code}" if isinstance(code, str) and re.fullmatch(r"[\w.-]{1,64}", code) else ""
