"""A real private Git host for tests: bare repositories served by ``git http-backend`` over HTTP.

``GitHttpServer`` is a stdlib ``ThreadingHTTPServer`` on 127.0.0.1 that puts HTTP basic / Bearer
authentication in front of git's own smart-HTTP CGI program and runs that program once per
request, as Apache or nginx+fcgiwrap would. Everything a git client does over HTTPS against
GitHub or GitLab goes through it unchanged: protocol v2 (the ``Git-Protocol`` request header
reaches the backend as ``HTTP_GIT_PROTOCOL``), gzip-compressed negotiation bodies, chunked
request bodies of large pushes, ``Expect: 100-continue``.

Authentication, when ``users`` or ``tokens`` is given (otherwise anyone may read and push):

* ``users`` maps a user name to its password: HTTP basic auth ``user:password``.
* ``tokens`` maps a name (who the token belongs to) to a token. A token is accepted as the basic
  auth password with any user name (GitHub's ``x-access-token:<token>``) or as
  ``Authorization: Bearer <token>`` (what ``git -c http.extraHeader=...`` sends). The request is
  then made as the token's name.

Anything else gets ``401`` with ``WWW-Authenticate: Basic realm="git"``. Every request is
recorded in ``requests`` as ``(method, path, user)``: ``path`` is the request target as sent
(with its query string) and ``user`` the authenticated name, or ``None`` when the request was
anonymous or refused. ``exchanges`` holds the same requests with the status and what the body
looked like, for tests that care about the wire (gzip, chunked, protocol version).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import zlib
from collections.abc import Iterator, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import IO, NamedTuple, Self
from urllib.parse import unquote, urlsplit

HTTP_BACKEND = Path("/usr/lib/git-core/git-http-backend")
REALM = "git"
_COPY = 64 * 1024
# Request headers that are not handed to the CGI program as HTTP_* variables: credentials stay
# with the server (a CGI gets REMOTE_USER), and the body is handed over already de-chunked and
# decompressed, so its framing headers would lie.
_HIDDEN_HEADERS = {
    "authorization",
    "proxy-authorization",
    "content-length",
    "content-type",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "expect",
}


class Exchange(NamedTuple):
    """One request as the server saw it."""

    method: str
    path: str
    user: str | None
    status: int
    content_encoding: str | None  # the request's Content-Encoding (git sends "gzip")
    chunked: bool  # the request body came with Transfer-Encoding: chunked
    body_bytes: int  # size of the request body after de-chunking and decompression
    git_protocol: str | None  # the Git-Protocol header ("version=2" for protocol v2)


class _Refused(Exception):
    """The request cannot be served; answered with ``status``."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Server(ThreadingHTTPServer):
    # Handler threads are joined by server_close() rather than abandoned as daemons.
    daemon_threads = False
    block_on_close = True
    owner: GitHttpServer

    def __init__(self, owner: GitHttpServer) -> None:
        self.owner = owner
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:  # type: ignore[no-untyped-def]
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_idle_connections(self) -> None:
        """Make handlers waiting for a next keep-alive request see end-of-file and finish."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RD)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, chunked responses: what curl expects of a host
    server_version = "git-test-host/1"
    timeout = 60  # a client that stalls mid-request does not pin a thread forever
    server: _Server

    # -- plumbing --------------------------------------------------------------------------

    def log_message(self, format: str, *args: object) -> None:
        pass  # tests read `requests` / `exchanges` instead of stderr noise

    def handle_expect_100(self) -> bool:
        # curl sends `Expect: 100-continue` before a large body; refuse bad credentials before
        # the client uploads anything, as a real host does.
        self._identity = self._authenticate()
        if self._identity is _DENIED:
            self._deny()
            return False
        return super().handle_expect_100()

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    # -- authentication --------------------------------------------------------------------

    def _authenticate(self) -> str | object | None:
        """The authenticated name, None for anonymous access, or _DENIED."""
        owner = self.server.owner
        if owner.users is None and owner.tokens is None:
            return None  # an open host ignores whatever credentials come along
        header = self.headers.get("Authorization", "")
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(value, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return _DENIED
            user, sep, password = decoded.partition(":")
            if not sep:
                return _DENIED
            expected = (owner.users or {}).get(user)
            if expected is not None and hmac.compare_digest(expected.encode(), password.encode()):
                return user
            return owner.token_owner(password) or _DENIED
        if scheme.lower() == "bearer":
            return owner.token_owner(value) or _DENIED
        return _DENIED

    def _deny(self) -> None:
        body = b"Authentication required\n"
        self.send_response(HTTPStatus.UNAUTHORIZED)
        self.send_header("WWW-Authenticate", f'Basic realm="{REALM}"')
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        # An unread request body would be taken for the next request: end the connection.
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.close_connection = True
        self._record(None, HTTPStatus.UNAUTHORIZED, 0)

    # -- the request -----------------------------------------------------------------------

    def _serve(self) -> None:
        identity = getattr(self, "_identity", _UNSET)
        self._identity = _UNSET  # handlers are reused across keep-alive requests
        if identity is _UNSET:
            identity = self._authenticate()
        if identity is _DENIED:
            self._deny()
            return
        user = identity if isinstance(identity, str) else None
        with tempfile.TemporaryFile(prefix="git-http-body-") as body:
            try:
                size = self._read_body(body)
            except _Refused as refused:
                self._plain(refused.status, str(refused), user, close=True)
                return
            body.seek(0)
            self._run_backend(user, body, size)

    def _read_body(self, out: IO[bytes]) -> int:
        """Copy the request body, de-chunked and decompressed, to ``out``; returns its size."""
        encoding = (self.headers.get("Content-Encoding") or "").strip().lower()
        if encoding in ("gzip", "x-gzip"):
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding in ("", "identity"):
            inflater = None
        else:
            raise _Refused(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"unsupported encoding {encoding}")
        size = 0

        def write(data: bytes) -> None:
            nonlocal size
            if inflater is not None:
                try:
                    data = inflater.decompress(data)
                except zlib.error as exc:
                    raise _Refused(HTTPStatus.BAD_REQUEST, f"bad gzip body: {exc}") from exc
            out.write(data)
            size += len(data)

        transfer = (self.headers.get("Transfer-Encoding") or "").strip().lower()
        if transfer == "chunked":
            for chunk in self._chunks():
                write(chunk)
        elif transfer:
            raise _Refused(HTTPStatus.NOT_IMPLEMENTED, f"unsupported transfer encoding {transfer}")
        else:
            try:
                remaining = int(self.headers.get("Content-Length") or 0)
            except ValueError as exc:
                raise _Refused(HTTPStatus.BAD_REQUEST, "bad Content-Length") from exc
            while remaining > 0:
                data = self.rfile.read(min(remaining, _COPY))
                if not data:
                    raise _Refused(HTTPStatus.BAD_REQUEST, "request body cut short")
                remaining -= len(data)
                write(data)
        if inflater is not None:
            tail = inflater.flush()
            if not inflater.eof:
                raise _Refused(HTTPStatus.BAD_REQUEST, "gzip body cut short")
            out.write(tail)
            size += len(tail)
        return size

    def _chunks(self) -> Iterator[bytes]:
        while True:
            line = self.rfile.readline(1024)
            if not line.endswith(b"\n"):
                raise _Refused(HTTPStatus.BAD_REQUEST, "bad chunk header")
            try:
                length = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError as exc:
                raise _Refused(HTTPStatus.BAD_REQUEST, "bad chunk size") from exc
            if length == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return
            remaining = length
            while remaining > 0:
                data = self.rfile.read(min(remaining, _COPY))
                if not data:
                    raise _Refused(HTTPStatus.BAD_REQUEST, "chunk cut short")
                remaining -= len(data)
                yield data
            if self.rfile.readline(8) not in (b"\r\n", b"\n"):
                raise _Refused(HTTPStatus.BAD_REQUEST, "chunk not terminated")

    def _cgi_environment(self, user: str | None, size: int) -> dict[str, str]:
        owner = self.server.owner
        target = urlsplit(self.path)
        env = {
            # The backend's own needs: where git lives, and no configuration from this machine.
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": str(owner.root),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_PROJECT_ROOT": str(owner.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            # RFC 3875
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_SOFTWARE": self.server_version,
            "SERVER_PROTOCOL": self.request_version,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": str(self.server.server_address[1]),
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote(target.path),
            "QUERY_STRING": target.query,
            "REMOTE_ADDR": self.client_address[0],
            "CONTENT_LENGTH": str(size),
        }
        if self.headers.get("Content-Type"):
            env["CONTENT_TYPE"] = self.headers["Content-Type"]
        if user is not None:
            env["REMOTE_USER"] = user
            env["AUTH_TYPE"] = self.headers.get("Authorization", "").split(" ", 1)[0]
        for name, value in self.headers.items():
            if name.lower() not in _HIDDEN_HEADERS:
                # Git-Protocol -> HTTP_GIT_PROTOCOL: without it the backend speaks protocol v0.
                env["HTTP_" + name.upper().replace("-", "_")] = value
        return env

    def _run_backend(self, user: str | None, body: IO[bytes], size: int) -> None:
        owner = self.server.owner
        env = self._cgi_environment(user, size)
        with tempfile.TemporaryFile(prefix="git-http-stderr-") as errors:
            process = subprocess.Popen(
                [str(owner.backend)],
                stdin=body,
                stdout=subprocess.PIPE,
                stderr=errors,
                env=env,
                cwd=owner.root,
            )
            assert process.stdout is not None
            relayed = False
            try:
                self._relay(process.stdout, user, size)
                relayed = True
            finally:
                if not relayed:
                    process.kill()  # the client went away mid-response
                else:
                    while process.stdout.read(_COPY):
                        pass  # a body that was not to be sent (HEAD, 304)
                process.stdout.close()
                process.wait()
                errors.seek(0)
                message = errors.read().decode("utf-8", "replace").strip()
                if message:
                    owner.record_backend_error(f"{self.command} {self.path}: {message}")

    def _relay(self, stdout: IO[bytes], user: str | None, size: int) -> int:
        """Send the CGI response to the client; returns the HTTP status sent."""
        status, reason = 200, ""
        headers: list[tuple[str, str]] = []
        while True:
            line = stdout.readline(65536)
            if not line:
                self._plain(HTTPStatus.BAD_GATEWAY, "git http-backend sent no response", user, close=True)
                return HTTPStatus.BAD_GATEWAY.value
            line = line.rstrip(b"\r\n")
            if not line:
                break
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip(), value.strip()
            if name.lower() == "status":
                code, _, reason = value.partition(" ")
                status = int(code)
            else:
                if name.lower() == "location" and status == 200:
                    status = 302
                headers.append((name, value))
        length = next((v for n, v in headers if n.lower() == "content-length"), None)
        bodyless = self.command == "HEAD" or status in (204, 304) or status < 200
        chunked = length is None and not bodyless
        self.send_response(status, reason or None)
        for name, value in headers:
            self.send_header(name, value)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._record(user, status, size)
        if bodyless:
            return status
        while True:
            data = stdout.read1(_COPY) if hasattr(stdout, "read1") else stdout.read(_COPY)
            if not data:
                break
            if chunked:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            else:
                self.wfile.write(data)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        return status

    def _plain(self, status: HTTPStatus, message: str, user: str | None, *, close: bool) -> None:
        body = (message + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._record(user, status.value, 0)

    def _record(self, user: str | None, status: int, size: int) -> None:
        encoding = self.headers.get("Content-Encoding")
        self.server.owner.record(
            Exchange(
                method=self.command,
                path=self.path,
                user=user,
                status=int(status),
                content_encoding=encoding.strip().lower() if encoding else None,
                chunked=(self.headers.get("Transfer-Encoding") or "").strip().lower() == "chunked",
                body_bytes=size,
                git_protocol=self.headers.get("Git-Protocol"),
            )
        )


_DENIED = object()
_UNSET = object()


class GitHttpServer:
    """Bare repositories under ``root`` served over smart HTTP on 127.0.0.1, behind auth."""

    def __init__(
        self,
        root: Path,
        *,
        users: Mapping[str, str] | None = None,
        tokens: Mapping[str, str] | None = None,
        backend: Path = HTTP_BACKEND,
    ) -> None:
        self.root = Path(root).resolve()
        self.users = dict(users) if users is not None else None
        self.tokens = dict(tokens) if tokens is not None else None
        self.backend = backend
        self.requests: list[tuple[str, str, str | None]] = []
        self.exchanges: list[Exchange] = []
        self.backend_errors: list[str] = []  # whatever git http-backend wrote to stderr
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("already started")
        if not self.backend.is_file():
            raise RuntimeError(f"{self.backend} is missing (Debian package git)")
        self.root.mkdir(parents=True, exist_ok=True)
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"git-http-{self.port}",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, end idle keep-alive connections and join every thread."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        if thread is not None:
            thread.join()
        server.close_idle_connections()
        server.server_close()  # joins the request threads (block_on_close)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("not started")
        return self._server.server_address[1]

    def url_for(self, repo_name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{_repo_dir(repo_name)}"

    # -- repositories ----------------------------------------------------------------------

    def create_repo(self, name: str, *, initial_branch: str = "main") -> Path:
        """A new bare repository ``<root>/<name>.git`` that accepts pushes over HTTP."""
        path = self.root / _repo_dir(name)
        if path.exists():
            raise FileExistsError(path)
        path.mkdir(parents=True)
        git = shutil.which("git") or "git"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.root),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
        }
        for args in (
            ["init", "--bare", "--quiet", f"--initial-branch={initial_branch}"],
            # Without this the backend refuses git-receive-pack to anonymous clients; with
            # it pushes work whether or not REMOTE_USER is set.
            ["config", "http.receivepack", "true"],
        ):
            subprocess.run([git, *args], cwd=path, env=env, check=True, capture_output=True)
        return path

    # -- records ---------------------------------------------------------------------------

    def token_owner(self, token: str) -> str | None:
        """The name ``token`` belongs to, or None."""
        if not token or not self.tokens:
            return None
        found = None
        for name, expected in self.tokens.items():
            if hmac.compare_digest(expected.encode(), token.encode()):
                found = name
        return found

    def record(self, exchange: Exchange) -> None:
        with self._lock:
            self.exchanges.append(exchange)
            self.requests.append((exchange.method, exchange.path, exchange.user))

    def record_backend_error(self, message: str) -> None:
        with self._lock:
            self.backend_errors.append(message)

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()
            self.exchanges.clear()
            self.backend_errors.clear()


def _repo_dir(name: str) -> str:
    name = name.strip("/")
    if not name or ".." in Path(name).parts:
        raise ValueError(f"bad repository name {name!r}")
    return name if name.endswith(".git") else f"{name}.git"
