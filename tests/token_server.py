"""A Bearer token server for a real CNCF distribution registry, as Docker Hub, GHCR and Quay run.

The registry (``auth: {token: ...}``, see ``TokenServer.registry_auth()``) answers an
unauthenticated request with ``401`` and ``WWW-Authenticate: Bearer realm=...,service=...,
scope=...``; the client then asks this server for a token covering the scopes it needs, sending
HTTP basic credentials, and retries with ``Authorization: Bearer <token>``. The token is an ES256
JWT signed by a key whose self-signed certificate the registry trusts (``rootcertbundle``); its
header names the key by its libtrust fingerprint (``kid``), which is how distribution finds it.

Two ways to ask, both as public registries offer them:

* ``GET /token?service=S&scope=repository:NAME:ACTIONS[&scope=...]`` with basic auth (docker,
  skopeo). A scope parameter may also hold several scopes separated by spaces.
* ``POST /token`` with a form ``grant_type=password&username=U&password=P&service=S&scope=...``
  (the OAuth2 password grant that containerd and BuildKit try first). With ``access_type=offline``
  the answer also holds a ``refresh_token`` (what ``docker login`` stores as an identity token).
* ``POST /token`` with ``grant_type=refresh_token&refresh_token=R&client_id=C&service=S&scope=...``
  (how Docker and ``pipeline.registry.RegistryAuth`` use an identity token). R is one this server
  issued, one configured per user (``refresh_tokens={user: token}``) or one minted with
  ``issue_refresh_token(user)``; an unknown or revoked one is ``400 invalid_grant``, a missing
  ``client_id`` ``400 invalid_request`` (distribution's OAuth2 spec requires it), any other grant
  type ``400 unsupported_grant_type``.

Answers follow distribution's token spec: GET gives ``{token, access_token, expires_in,
issued_at}``, POST ``{access_token, token, scope, expires_in, issued_at[, refresh_token]}``.

Every request is recorded in ``calls`` (method, grant type, user, scopes, client_id, status) so
a test can tell which flow a client used; ``requests`` and ``rejected`` keep the older, coarser
record (issued tokens and 401s, as ``(user, scopes)``).

Policy: each requested scope gets the intersection of the actions asked for and what
``grants[user]`` allows; a user without an entry in ``grants`` gets pull and push on every
repository. Anonymous requests are refused (401) unless ``anonymous_pull``, in which case they
get at most ``pull``. Wrong credentials are always 401, even with ``anonymous_pull``.

The registry accepts a token up to 60 s after its ``exp`` (distribution's clock-skew leeway), and
docker treats any lifetime under 60 s as 60 s: to test an expired token, mint one whose ``exp`` is
well in the past with ``make_token(..., expires_in=-120)``.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import fnmatch
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple, Self
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# What a user without an entry in `grants` may do: pull and push on every repository.
DEFAULT_GRANT: dict[str, list[str]] = {"*": ["pull", "push"]}
ANONYMOUS = ""  # the key in `grants` for anonymous clients (used only with anonymous_pull)


class TokenRequest(NamedTuple):
    """One request for a token: who asked (None = anonymous) and the scopes, as sent."""

    user: str | None
    scopes: tuple[str, ...]


class TokenCall(NamedTuple):
    """One request to /token, whatever came of it. grant_type is None for GET; user is who the
    credentials named (the owner of a refresh token, None when unknown or anonymous)."""

    method: str
    grant_type: str | None
    user: str | None
    scopes: tuple[str, ...]
    client_id: str | None
    status: int


class Scope(NamedTuple):
    """A parsed scope: `repository:team/app:pull,push` or `repository(plugin):x:pull`."""

    type: str
    resource_class: str
    name: str
    actions: tuple[str, ...]


class ScopeError(ValueError):
    """A scope string that is not `type[(class)]:name:actions`."""


def libtrust_key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """The libtrust fingerprint distribution looks keys up by (the JWT header's `kid`):
    base32 of the first 30 bytes of sha256(SubjectPublicKeyInfo DER), 12 groups of 4, ':'."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode("ascii")  # 48 chars, no '='
    return ":".join(b32[i : i + 4] for i in range(0, len(b32), 4))


def parse_scope(scope: str) -> Scope:
    """Split `type[(class)]:name:actions`; the name may itself contain ':' (not for repositories,
    but the registry's own resources are matched the same way)."""
    rtype, sep, rest = scope.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not (sep and sep2 and rtype and name):
        raise ScopeError(f"malformed scope {scope!r}: want type:name:actions")
    resource_class = ""
    if rtype.endswith(")") and "(" in rtype:
        rtype, _, resource_class = rtype[:-1].partition("(")
    wanted = tuple(dict.fromkeys(a for a in actions.split(",") if a))
    return Scope(rtype, resource_class, name, wanted)


def split_scopes(values: Iterable[str]) -> list[str]:
    """Scopes from repeated `scope` parameters, each of which may hold several separated by
    spaces (the form the OAuth2 POST uses)."""
    return [part for value in values for part in value.split()]


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: TokenServer


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    server_version = "test-token-server/1.0"

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/token":
            self._send(404, {"errors": [{"code": "NOT_FOUND", "message": url.path}]})
            return
        params = parse_qs(url.query, keep_blank_values=True)
        owner = self.server.owner
        status, body, headers, user = owner._answer_get(params, self.headers.get("Authorization"))
        owner._record(TokenCall("GET", None, user, tuple(split_scopes(params.get("scope", []))), None, status))
        self._send(status, body, headers)

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        if url.path != "/token":
            self._send(404, {"errors": [{"code": "NOT_FOUND", "message": url.path}]})
            return
        form = parse_qs(raw.decode("utf-8", errors="replace"), keep_blank_values=True)
        owner = self.server.owner
        status, body, headers, user = owner._answer_post(form)
        owner._record(
            TokenCall(
                "POST",
                form.get("grant_type", [""])[-1],
                user,
                tuple(split_scopes(form.get("scope", []))),
                form.get("client_id", [None])[-1],
                status,
            )
        )
        self._send(status, body, headers)

    def _send(self, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        self.server.owner._log(f"{self.address_string()} {format % args}")


class TokenServer:
    """A token server on 127.0.0.1 (a free port, bound at construction so that `realm` is known
    before `start()`), serving from a background thread; see the module docstring."""

    def __init__(
        self,
        base_dir: str | Path,
        *,
        users: Mapping[str, str],
        service: str = "test-registry",
        issuer: str = "test-issuer",
        grants: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
        anonymous_pull: bool = False,
        expires_in: int = 300,
        refresh_tokens: Mapping[str, str] | None = None,
    ) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.users = dict(users)
        self.service, self.issuer = service, issuer
        self.grants = {
            user: {glob: list(actions) for glob, actions in rules.items()} for user, rules in (grants or {}).items()
        }
        self.anonymous_pull = anonymous_pull
        self.expires_in = expires_in  # seconds; may be changed between requests
        self.rootcertbundle = self.base_dir / "token-cert.pem"
        self.log_path = self.base_dir / "token-server.log"
        self.requests: list[TokenRequest] = []  # every token issued, in order
        self.rejected: list[TokenRequest] = []  # every 401 (bad or missing credentials)
        self.calls: list[TokenCall] = []  # every request to /token, with its status
        # refresh token -> user: configured ones, then those issued by the password grant
        self._refresh_tokens: dict[str, str] = {token: user for user, token in (refresh_tokens or {}).items()}
        self._lock = threading.Lock()
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.public_key = self._key.public_key()
        self.key_id = libtrust_key_id(self.public_key)
        self._write_certificate()
        self._httpd: _HTTPServer | None = self._bind(0)
        self.port = int(self._httpd.server_address[1])
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def realm(self) -> str:
        return f"{self.url}/token"

    def registry_auth(self) -> dict[str, str]:
        """The `auth.token` section of a distribution config: pass as Registry(token_auth=...)."""
        return {
            "realm": self.realm,
            "service": self.service,
            "issuer": self.issuer,
            "rootcertbundle": str(self.rootcertbundle),
        }

    def start(self) -> None:
        if self._thread is not None:
            return
        if self._httpd is None:  # stopped before: listen on the same port again
            self._httpd = self._bind(self.port)
        httpd = self._httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, name=f"token-server-{self.port}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        httpd, thread, self._httpd, self._thread = self._httpd, self._thread, None, None
        if httpd is None:
            return
        if thread is not None:  # shutdown() waits for serve_forever: only call it if running
            httpd.shutdown()
            thread.join(timeout=10)
        httpd.server_close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def clear_log(self) -> None:
        """Forget the requests seen so far (issued, rejected and every call)."""
        with self._lock:
            self.requests.clear()
            self.rejected.clear()
            self.calls.clear()

    # -- refresh tokens (identity tokens) ---------------------------------------------------

    def issue_refresh_token(self, user: str) -> str:
        """A new refresh token for `user`, as the password grant with access_type=offline
        would hand out (a test's shortcut for `docker login`)."""
        token = "rt-" + secrets.token_urlsafe(24)
        with self._lock:
            self._refresh_tokens[token] = user
        return token

    def revoke_refresh_token(self, token: str) -> None:
        """Forget a refresh token: using it afterwards is 400 invalid_grant."""
        with self._lock:
            self._refresh_tokens.pop(token, None)

    # -- tokens ----------------------------------------------------------------------------

    def access_for(self, user: str | None, scopes: Iterable[str]) -> list[dict[str, Any]]:
        """The `access` claim for `user` (None = anonymous) asking for `scopes`: one entry per
        resource (repeated scopes for one resource are merged), each with the asked actions
        that the policy allows, in the order asked; an entry may have no actions at all."""
        merged: dict[tuple[str, str, str], list[str]] = {}
        for text in scopes:
            scope = parse_scope(text)
            actions = merged.setdefault((scope.type, scope.resource_class, scope.name), [])
            actions.extend(a for a in scope.actions if a not in actions)
        access = []
        for (rtype, resource_class, name), asked in merged.items():
            allowed = self._allowed(user, rtype, name)
            granted = list(asked) if "*" in allowed else [a for a in asked if a in allowed]
            entry: dict[str, Any] = {"type": rtype, "name": name, "actions": granted}
            if resource_class:
                entry["class"] = resource_class
            access.append(entry)
        return access

    def make_token(
        self,
        subject: str | None,
        access: Sequence[Mapping[str, Any]],
        *,
        expires_in: int | None = None,
        issued_at: float | None = None,
    ) -> str:
        """Sign a token for exactly `access` (no policy applied): what the HTTP endpoint
        returns, and what a test uses to craft an expired or differently scoped token."""
        now = int(time.time() if issued_at is None else issued_at)
        lifetime = self.expires_in if expires_in is None else expires_in
        claims = {
            "iss": self.issuer,
            "sub": subject or "",
            "aud": self.service,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": secrets.token_urlsafe(18),
            "access": [dict(a) for a in access],
        }
        return jwt.encode(claims, self._key, algorithm="ES256", headers={"kid": self.key_id, "typ": "JWT"})

    def decode(self, token: str, *, verify_exp: bool = True) -> dict[str, Any]:
        """The claims of a token this server signed (signature, issuer, audience checked)."""
        claims: dict[str, Any] = jwt.decode(
            token,
            self.public_key,
            algorithms=["ES256"],
            audience=self.service,
            issuer=self.issuer,
            options={"verify_exp": verify_exp},
        )
        return claims

    # -- the HTTP endpoint -----------------------------------------------------------------

    def _answer_get(
        self,
        params: Mapping[str, list[str]],
        authorization: str | None,
    ) -> tuple[int, dict[str, Any], dict[str, str], str | None]:
        scopes = split_scopes(params.get("scope", []))
        try:
            credentials = _basic_credentials(authorization)
        except ValueError as exc:
            return (*self._unauthorized(None, scopes, str(exc)), None)
        user = credentials[0] if credentials else None
        return (*self._issue(params.get("service", [""])[-1], scopes, credentials, oauth=False), user)

    def _answer_post(
        self,
        form: Mapping[str, list[str]],
    ) -> tuple[int, dict[str, Any], dict[str, str], str | None]:
        def last(name: str) -> str:
            return form.get(name, [""])[-1]

        grant_type = last("grant_type")
        scopes = split_scopes(form.get("scope", []))
        offline = last("access_type") == "offline"
        if grant_type == "password":
            credentials = (last("username"), last("password"))
            return (*self._issue(last("service"), scopes, credentials, oauth=True, offline=offline), credentials[0])
        if grant_type == "refresh_token":
            refresh_token = last("refresh_token")
            with self._lock:
                user = self._refresh_tokens.get(refresh_token) if refresh_token else None
            if not last("client_id"):
                return 400, {"error": "invalid_request", "error_description": "client_id is required"}, {}, user
            if user is None:
                return (
                    400,
                    {"error": "invalid_grant", "error_description": "unknown or revoked refresh token"},
                    {},
                    None,
                )
            return (
                *self._issue(
                    last("service"),
                    scopes,
                    None,
                    oauth=True,
                    user=user,
                    refresh_token=refresh_token if offline else None,
                ),
                user,
            )
        return (
            400,
            {
                "error": "unsupported_grant_type",
                "error_description": f"grant_type {grant_type!r}: only password and refresh_token",
            },
            {},
            None,
        )

    def _issue(
        self,
        service: str,
        scopes: list[str],
        credentials: tuple[str, str] | None,
        *,
        oauth: bool,
        offline: bool = False,
        user: str | None = None,
        refresh_token: str | None = None,
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """A token for `credentials` (checked here), or for `user` when a refresh token already
        authenticated them. `offline`: also issue a new refresh token (password grant);
        `refresh_token`: hand back that one (refresh grant with access_type=offline)."""
        if service and service != self.service:
            return 400, {"errors": [{"code": "UNSUPPORTED", "message": f"unknown service {service!r}"}]}, {}
        if user is not None:
            pass  # authenticated by its refresh token
        elif credentials is None:
            if not self.anonymous_pull:
                return self._unauthorized(None, scopes, "authentication required")
        else:
            name, password = credentials
            expected = self.users.get(name)
            if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
                return self._unauthorized(name, scopes, "invalid username or password")
            user = name
        try:
            access = self.access_for(user, scopes)
        except ScopeError as exc:
            return 400, {"errors": [{"code": "INVALID_SCOPE", "message": str(exc)}]}, {}
        now = int(time.time())
        token = self.make_token(user, access, issued_at=now)
        with self._lock:
            self.requests.append(TokenRequest(user, tuple(scopes)))
        body: dict[str, Any] = {
            "token": token,
            "access_token": token,
            "expires_in": self.expires_in,
            "issued_at": _rfc3339(now),
        }
        if oauth:
            body["scope"] = " ".join(scopes)
            if offline and user is not None:
                refresh_token = self.issue_refresh_token(user)
            if refresh_token:
                body["refresh_token"] = refresh_token
        return 200, body, {}

    def _record(self, call: TokenCall) -> None:
        with self._lock:
            self.calls.append(call)

    def _unauthorized(
        self,
        user: str | None,
        scopes: list[str],
        why: str,
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            self.rejected.append(TokenRequest(user, tuple(scopes)))
        return (
            401,
            {"errors": [{"code": "UNAUTHORIZED", "message": why}]},
            {"WWW-Authenticate": f'Basic realm="{self.issuer}"'},
        )

    def _allowed(self, user: str | None, rtype: str, name: str) -> set[str]:
        """Actions the policy allows on one resource. Globs without ':' match repository names
        (fnmatch: '*' also matches '/'); globs with ':' match `type:name` of other resources,
        e.g. {"registry:catalog": ["*"]} for the catalog."""
        if user is None:
            rules: Mapping[str, Sequence[str]] = (
                self.grants.get(ANONYMOUS, {"*": ["pull"]}) if self.anonymous_pull else {}
            )
        else:
            rules = self.grants.get(user, DEFAULT_GRANT)
        repository = rtype == "repository"
        target = name if repository else f"{rtype}:{name}"
        allowed: set[str] = set()
        for pattern, actions in rules.items():
            if (":" not in pattern) == repository and fnmatch.fnmatchcase(target, pattern):
                allowed.update(actions)
        if user is None:  # anonymous clients never get more than pull
            allowed = {"pull"} if ("*" in allowed or "pull" in allowed) else set()
        return allowed

    # -- setup -----------------------------------------------------------------------------

    def _bind(self, port: int) -> _HTTPServer:
        httpd = _HTTPServer(("127.0.0.1", port), _Handler)
        httpd.owner = self
        return httpd

    def _write_certificate(self, days: int = 2) -> None:
        """A self-signed certificate of the signing key: the registry's rootcertbundle."""
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.issuer)])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        self.rootcertbundle.write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    def _log(self, line: str) -> None:
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        with self._lock, open(self.log_path, "a") as log:
            log.write(f"{stamp} {line}\n")


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(user, password) from `Authorization: Basic ...`, None if there is no header; ValueError
    if it is malformed or not basic (a Bearer token is no credential for the token server)."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        raise ValueError(f"{scheme or 'empty'} authorization: basic credentials wanted")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError("malformed basic credentials") from exc
    user, sep, password = decoded.partition(":")
    if not sep:
        raise ValueError("malformed basic credentials: no ':'")
    return user, password


def _rfc3339(epoch: int) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
