"""A fault-injecting HTTP reverse proxy for registry clients, run inside the test process.

A registry client has to survive what real networks and registries do to it: connections reset
halfway through a blob, a 500 from an overloaded backend, 429 rate limits with Retry-After.
Fakes of the registry get the protocol wrong, so instead the proxy stands in front of a real
plain-HTTP registry (tests.services.Registry) and breaks a seeded, reproducible share of the
requests on their way through. Everything it does not break it forwards unchanged, with request
and response bodies streamed in both directions (a 1 GB blob upload never sits in memory).

Fault kinds, and whether the upstream may have acted on the request:

``reset``
    Before forwarding: the client connection is closed with SO_LINGER 0, so the client gets a
    TCP RST (ECONNRESET) and no response; the request body is not read. The upstream never saw
    the request.
``reset_mid_body``
    After forwarding: the request (body included) goes to the upstream and its response starts
    coming back; the client gets the status line, headers and at most half of the body (the
    first chunk of a body of unknown length), then a RST. A response without a body (HEAD, 201,
    202, 204, Content-Length 0) is not sent at all: the client sees a RST instead of it. The
    upstream DID act: an upload may be complete, a manifest stored, though the client saw an error.
``500`` / ``503``
    Before forwarding: answered by the proxy with that status and a distribution-style JSON
    error body. The request body is read and discarded first (so the client is not cut off
    while still sending and can read the answer; the connection stays usable). The upstream
    never saw the request.
``429``
    As 500, with ``Retry-After: 1``. The upstream never saw the request.

Every injected response carries ``X-Fault-Injected: <kind>``, so a log can tell an injected
fault from a real one. Faults are drawn per request from ``random.Random(seed)``: a request the
predicate selects draws ``rng.random()``, and if that is below ``rate``, ``rng.choice(kinds)``
picks the kind; so sequential requests get the same faults on every run. Concurrent requests
draw in arrival order.

The upstream sees the client's ``Host`` header by default (``preserve_host=True``):
distribution builds its absolute upload ``Location`` URLs from ``Host``, so they already point
at the proxy. With ``preserve_host=False`` the upstream sees its own host, returns URLs to
itself, and the proxy rewrites every ``Location`` that points at the upstream to point at the
proxy (counted in ``location_rewrites``); either way uploads keep going through the proxy.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import http.client
import json
import logging
import random
import socket
import socketserver
import struct
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

log = logging.getLogger(__name__)

Predicate = Callable[[str, str], bool]  # (method, path with query) -> may this request fail?

STATUS_KINDS = ("500", "503", "429")
KINDS = ("reset", "reset_mid_body", *STATUS_KINDS)
# Kinds after which the upstream certainly did nothing: safe to assert "registry unchanged".
PRE_FORWARD_KINDS = ("reset", *STATUS_KINDS)
DEFAULT_KINDS = ("reset", "500", "429")

CHUNK = 64 * 1024
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "expect",
    }
)
_ERROR_CODES = {"500": "UNKNOWN", "503": "UNAVAILABLE", "429": "TOOMANYREQUESTS"}
_LINGER_ZERO = struct.pack("ii", 1, 0)
_MAX_LINE = 65536


@dataclasses.dataclass(frozen=True)
class ProxyStats:
    """A consistent snapshot of the counters (all taken under one lock)."""

    connections: int  # client TCP connections accepted
    requests: int  # requests received from clients (parsed request line and headers)
    forwarded: int  # requests sent on to the upstream (reset_mid_body included)
    faults: dict[str, int]  # faults injected, by kind
    location_rewrites: int  # Location headers rewritten from upstream to proxy
    upstream_errors: int  # requests the upstream could not be reached for or broke off (502)

    @property
    def injected(self) -> int:
        return sum(self.faults.values())


class _Unset:
    """Marks an argument of configure() that was left out (None is a meaningful predicate)."""


_UNSET = _Unset()


class _ClientGone(Exception):
    """The client disconnected or sent a malformed body: nothing more can be said to it."""


class FaultProxy:
    """Reverse proxy from 127.0.0.1:<port> to a plain-HTTP `upstream`, injecting faults.

    upstream: "http://127.0.0.1:5000" or "127.0.0.1:5000". rate: share of selected requests to
    break (0..1). kinds: fault kinds to pick from (see the module docstring). seed: for the
    fault RNG. predicate(method, path): which requests may be broken (default: all).
    preserve_host: send the client's Host upstream (else the upstream's own). timeout: socket
    timeout for both sides, also how long an idle keep-alive connection is kept.

    rate, kinds, predicate and enabled may be changed while it runs (configure(), enable(),
    disable(), paused()). Use as a context manager or call start()/stop().
    """

    def __init__(
        self,
        upstream: str,
        *,
        rate: float = 0.0,
        kinds: Iterable[str] = DEFAULT_KINDS,
        seed: int = 0,
        predicate: Predicate | None = None,
        preserve_host: bool = True,
        port: int = 0,
        timeout: float = 30.0,
    ) -> None:
        parts = urllib.parse.urlsplit(upstream if "://" in upstream else f"http://{upstream}")
        if parts.scheme != "http" or not parts.hostname or parts.port is None:
            raise ValueError(f"upstream must be http://HOST:PORT, not {upstream!r}")
        self.upstream = f"http://{parts.hostname}:{parts.port}"
        self.upstream_host = f"{parts.hostname}:{parts.port}"
        self._upstream_addr = (parts.hostname, parts.port)
        self.preserve_host = preserve_host
        self.timeout = timeout
        self._port = port
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._rate = 0.0
        self._kinds: tuple[str, ...] = ()
        self._predicate: Predicate | None = None
        self._enabled = True
        self.configure(rate=rate, kinds=kinds, predicate=predicate)
        self._server: _Server | None = None
        self._bound_port: int | None = None
        self._serve_thread: threading.Thread | None = None
        self._zero_counters()

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Bind 127.0.0.1 (port 0: the kernel picks a free one, no race) and serve in a thread."""
        if self._server is not None:
            raise RuntimeError("FaultProxy already started")
        server = _Server(("127.0.0.1", self._port), self)
        self._server = server
        self._bound_port = int(server.server_port)
        self._serve_thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"fault-proxy-{server.server_port}",
            daemon=True,
        )
        self._serve_thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, cut every open client and upstream connection (so handler threads
        blocked on a keep-alive read wake up at once) and join all threads: nothing is left
        running to hold up pytest's exit or leak into the next test."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.abort_connections()
        if self._serve_thread is not None:
            self._serve_thread.join(timeout)
        server.join_handlers(timeout)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port bound by start(); still readable after stop() (for messages, asserts)."""
        if self._bound_port is None:
            raise RuntimeError("FaultProxy not started")
        return self._bound_port

    @property
    def host(self) -> str:
        """ "127.0.0.1:PORT", as tests.services.Registry.host (for image references)."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    # -- fault configuration --------------------------------------------------------------------

    def configure(
        self,
        *,
        rate: float | None = None,
        kinds: Iterable[str] | None = None,
        predicate: Predicate | _Unset | None = _UNSET,
    ) -> None:
        """Change what is injected from the next request on; arguments left out stay as they
        are (predicate=None means every request)."""
        with self._lock:
            if rate is not None:
                if not 0.0 <= rate <= 1.0:
                    raise ValueError(f"rate must be within [0, 1], not {rate}")
                self._rate = float(rate)
            if kinds is not None:
                chosen = tuple(kinds)
                unknown = set(chosen) - set(KINDS)
                if not chosen or unknown:
                    raise ValueError(f"kinds must be a non-empty subset of {KINDS}: {chosen}")
                self._kinds = chosen
            if not isinstance(predicate, _Unset):
                self._predicate = predicate

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def kinds(self) -> tuple[str, ...]:
        return self._kinds

    @property
    def enabled(self) -> bool:
        return self._enabled

    def enable(self) -> None:
        self._enabled = True

    def disable(self) -> None:
        """Forward everything untouched (no RNG draws) until enable()."""
        self._enabled = False

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No faults inside the block (e.g. to set up state), the previous setting after it."""
        before, self._enabled = self._enabled, False
        try:
            yield
        finally:
            self._enabled = before

    # -- counters -------------------------------------------------------------------------------

    def stats(self) -> ProxyStats:
        with self._lock:
            return ProxyStats(
                self._connections,
                self._requests,
                self._forwarded,
                dict(self._faults),
                self._location_rewrites,
                self._upstream_errors,
            )

    @property
    def requests(self) -> int:
        return self.stats().requests

    @property
    def forwarded(self) -> int:
        return self.stats().forwarded

    @property
    def faults(self) -> dict[str, int]:
        return self.stats().faults

    @property
    def injected(self) -> int:
        return self.stats().injected

    @property
    def location_rewrites(self) -> int:
        return self.stats().location_rewrites

    @property
    def events(self) -> list[tuple[str, str, str]]:
        """(method, path, outcome) of the latest requests, outcome "forwarded" or a fault kind."""
        with self._lock:
            return list(self._events)

    def reset_counters(self) -> None:
        with self._lock:
            self._zero_counters()

    def _zero_counters(self) -> None:
        self._connections = self._requests = self._forwarded = 0
        self._location_rewrites = self._upstream_errors = 0
        self._faults: collections.Counter[str] = collections.Counter()
        self._events: collections.deque[tuple[str, str, str]] = collections.deque(maxlen=10_000)

    def _count(self, field: str) -> None:
        with self._lock:
            setattr(self, field, getattr(self, field) + 1)

    def _decide(self, method: str, path: str) -> str | None:
        """The fault for this request, or None to forward it; counts it either way."""
        predicate = self._predicate
        selected = self._enabled and self._rate > 0 and (predicate is None or predicate(method, path))
        with self._lock:
            self._requests += 1
            kind = None
            if selected and self._rng.random() < self._rate:
                kind = self._rng.choice(self._kinds)
                self._faults[kind] += 1
            self._events.append((method, path, kind or "forwarded"))
            return kind

    def _rewrite_location(self, value: str, proxy_host: str) -> str:
        """Point an absolute Location at the upstream back at the proxy the client used."""
        parts = urllib.parse.urlsplit(value)
        if parts.scheme == "http" and parts.netloc.lower() == self.upstream_host.lower():
            self._count("_location_rewrites")
            return urllib.parse.urlunsplit(parts._replace(netloc=proxy_host))
        return value


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its handler threads and sockets, so stop() can end them."""

    daemon_threads = True
    block_on_close = False  # stop() joins the handler threads itself, with a deadline
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], proxy: FaultProxy) -> None:
        self.proxy = proxy
        self._track_lock = threading.Lock()
        self._handler_threads: set[threading.Thread] = set()
        self._sockets: set[socket.socket] = set()  # client connections and upstream connections
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        """As HTTPServer.server_bind without its socket.getfqdn() (a reverse DNS lookup)."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name=f"fault-proxy-{self.server_port}-conn",
            daemon=True,
        )
        with self._track_lock:
            self._handler_threads.add(thread)
            self._sockets.add(request)
        self.proxy._count("_connections")
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        """Serve one client connection. A client or upstream going away is what this proxy is
        for (debug log only); anything else (a bug, a predicate that raised) propagates to
        threading.excepthook, which pytest reports as a warning with the traceback."""
        try:
            self.finish_request(request, client_address)
        except (OSError, _ClientGone, http.client.HTTPException):
            log.debug("fault proxy: connection from %s failed", client_address, exc_info=True)
        finally:
            self.shutdown_request(request)
            with self._track_lock:
                self._sockets.discard(request)
                self._handler_threads.discard(threading.current_thread())

    def track(self, sock: socket.socket | None, add: bool) -> None:
        if sock is None:
            return
        with self._track_lock:
            (self._sockets.add if add else self._sockets.discard)(sock)

    def abort_connections(self) -> None:
        with self._track_lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def join_handlers(self, timeout: float) -> None:
        with self._track_lock:
            threads = list(self._handler_threads)
        for thread in threads:
            thread.join(timeout)


class _Handler(BaseHTTPRequestHandler):
    """One client connection: requests are read, maybe broken, else forwarded one at a time."""

    protocol_version = "HTTP/1.1"  # keep-alive; every response below is framed to allow it
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    server: _Server

    def setup(self) -> None:
        self.timeout = self.server.proxy.timeout
        super().setup()

    def handle(self) -> None:
        """A TLS ClientHello (byte 0x16) on this plain port gets an immediate 400 and close:
        clients that try HTTPS first (skopeo with --tls-verify=false) then fall back to HTTP
        at once, as they do with distribution, instead of waiting for a request line."""
        with contextlib.suppress(OSError, ValueError):
            if self.rfile.peek(1)[:1] == b"\x16":
                self.wfile.write(b"HTTP/1.0 400 Bad Request\r\nConnection: close\r\n\r\nplain HTTP only\n")
                return
        super().handle()

    def handle_expect_100(self) -> bool:
        """Do not promise "100 Continue" before deciding on a fault (see _forward)."""
        return True

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("fault proxy %s: " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._dispatch()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    # -- dispatch -------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        proxy = self.server.proxy
        path = self.path
        if "://" in path:  # absolute-form request target: keep path and query only
            parts = urllib.parse.urlsplit(path)
            path = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        kind = proxy._decide(self.command, path)
        try:
            if kind == "reset":
                self._reset()
            elif kind in STATUS_KINDS:
                self._status_fault(kind)
            else:
                self._forward(path, reset_mid_body=kind == "reset_mid_body")
        except _ClientGone:
            self.close_connection = True

    def _expects_continue(self) -> bool:
        return self.headers.get("Expect", "").lower() == "100-continue"

    def _reset(self) -> None:
        """Close the client socket with SO_LINGER 0: the kernel sends RST, not FIN."""
        self.close_connection = True
        sock = self.connection
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
        with contextlib.suppress(OSError, ValueError):
            self.rfile.close()  # rfile holds a reference: without this close() would not close
        with contextlib.suppress(OSError):
            sock.close()

    def _status_fault(self, kind: str) -> None:
        self._body_framing()  # malformed framing: 400 and close, not the fault
        expect = self._expects_continue()
        drained = True
        if not expect:  # a client waiting for 100 Continue has sent no body: close instead
            drained = self._drain_body()
        body = (
            json.dumps(
                {
                    "errors": [
                        {"code": _ERROR_CODES[kind], "message": f"fault injected by proxy: {kind}", "detail": None}
                    ]
                }
            ).encode()
            + b"\n"
        )
        self.send_response_only(int(kind))
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Fault-Injected", kind)
        if kind == "429":
            self.send_header("Retry-After", "1")
        if expect or not drained or self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self._write(body)

    # -- request body ---------------------------------------------------------------------------

    def _body_framing(self) -> tuple[str, int]:
        """("chunked", 0), ("length", n) or ("none", 0); malformed framing is _ClientGone."""
        encodings = [
            e.strip().lower() for e in ",".join(self.headers.get_all("Transfer-Encoding") or []).split(",") if e.strip()
        ]
        if encodings:
            if encodings[-1] != "chunked":
                self._refuse(501, "unsupported Transfer-Encoding")
            return "chunked", 0
        lengths = self.headers.get_all("Content-Length") or []
        if not lengths:
            return "none", 0
        try:
            values = {int(v) for v in ",".join(lengths).split(",")}
        except ValueError:
            values = set()
        if len(values) != 1 or min(values) < 0:
            self._refuse(400, "bad Content-Length")
        return "length", values.pop()

    def _refuse(self, status: int, message: str) -> None:
        with contextlib.suppress(OSError):
            self.send_error(status, message)
        raise _ClientGone(message)

    def _body_pieces(self) -> Iterator[bytes]:
        """The request body as it arrives, at most CHUNK bytes at a time, de-chunked."""
        framing, length = self._body_framing()
        if framing == "length":
            yield from self._read_exactly(length)
        elif framing == "chunked":
            while True:
                line = self._readline()
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise _ClientGone(f"bad chunk size line {line[:40]!r}") from None
                if size == 0:
                    while self._readline() not in (b"\r\n", b"\n"):  # trailers: dropped
                        pass
                    return
                yield from self._read_exactly(size)
                if self._readline() not in (b"\r\n", b"\n"):
                    raise _ClientGone("chunk not followed by CRLF")

    def _read_exactly(self, length: int) -> Iterator[bytes]:
        remaining = length
        while remaining:
            try:
                data = self.rfile.read1(min(CHUNK, remaining))
            except (OSError, ValueError) as exc:
                raise _ClientGone(str(exc)) from exc
            if not data:
                raise _ClientGone("client closed the connection inside the request body")
            remaining -= len(data)
            yield data

    def _readline(self) -> bytes:
        try:
            line = self.rfile.readline(_MAX_LINE)
        except (OSError, ValueError) as exc:
            raise _ClientGone(str(exc)) from exc
        if not line.endswith(b"\n"):
            raise _ClientGone("truncated or overlong line in chunked body")
        return line

    def _drain_body(self) -> bool:
        """Read and discard the body; False if the client went away or sent garbage."""
        try:
            for _ in self._body_pieces():
                pass
            return True
        except _ClientGone:
            return False

    # -- forwarding -----------------------------------------------------------------------------

    def _upstream_headers(self, framing: str) -> list[tuple[str, str]]:
        proxy = self.server.proxy
        dropped = set(HOP_BY_HOP)
        for value in self.headers.get_all("Connection") or []:
            dropped.update(t.strip().lower() for t in value.split(","))
        headers = []
        for name, value in self.headers.items():
            lname = name.lower()
            if lname in dropped or lname == "host" or (lname == "content-length" and framing == "chunked"):
                continue
            headers.append((name, value))
        client_host = self.headers.get("Host") or self.server.proxy.host
        headers.insert(0, ("Host", client_host if proxy.preserve_host else proxy.upstream_host))
        if framing == "chunked":
            headers.append(("Transfer-Encoding", "chunked"))
        return headers

    def _forward(self, path: str, *, reset_mid_body: bool) -> None:
        proxy = self.server.proxy
        framing, _ = self._body_framing()
        conn = http.client.HTTPConnection(*proxy._upstream_addr, timeout=proxy.timeout)
        try:
            try:
                conn.putrequest(self.command, path, skip_host=True, skip_accept_encoding=True)
                for name, value in self._upstream_headers(framing):
                    conn.putheader(name, value)
                conn.endheaders()
            except (OSError, http.client.HTTPException) as exc:
                self._bad_gateway(f"upstream {proxy.upstream_host} unreachable: {exc}", body_unread=framing != "none")
                return
            self.server.track(conn.sock, True)
            proxy._count("_forwarded")
            if self._expects_continue() and framing != "none":
                self.send_response_only(100)
                self.end_headers()
            body_complete = self._send_body(conn, framing)
            try:
                response = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                self._bad_gateway(
                    f"upstream {proxy.upstream_host} gave no response: {exc}", body_unread=not body_complete
                )
                return
            if not body_complete:  # the upstream answered early; the rest of the body is unread
                self.close_connection = True
            self._relay(response, reset_mid_body=reset_mid_body)
        finally:
            self.server.track(conn.sock, False)
            conn.close()

    def _send_body(self, conn: http.client.HTTPConnection, framing: str) -> bool:
        """Stream the client's body upstream. False if the upstream stopped taking it (it may
        have answered early, e.g. 401 or 400); a client that vanishes is _ClientGone."""
        if framing == "none":
            return True
        pieces = self._body_pieces()
        try:
            for piece in pieces:
                conn.send(b"%x\r\n%b\r\n" % (len(piece), piece) if framing == "chunked" else piece)
            if framing == "chunked":
                conn.send(b"0\r\n\r\n")
        except OSError:
            log.debug("fault proxy: upstream stopped reading the request body", exc_info=True)
            return False
        finally:
            pieces.close()
        return True

    def _bad_gateway(self, message: str, *, body_unread: bool) -> None:
        self.server.proxy._count("_upstream_errors")
        body = (message + "\n").encode()
        self.send_response_only(502)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        if body_unread:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self._write(body)

    def _relay(self, response: http.client.HTTPResponse, *, reset_mid_body: bool) -> None:
        """Status, headers (Location rewritten, hop-by-hop dropped) and the body chunk by chunk;
        the body is re-framed for the client: Content-Length kept, otherwise chunked."""
        proxy = self.server.proxy
        status = response.status
        no_body = self.command == "HEAD" or status in (204, 304) or 100 <= status < 200
        length = None if response.chunked else response.length  # None: unknown until the end
        if reset_mid_body and (no_body or length == 0):
            self._reset()
            return
        dropped = set(HOP_BY_HOP)
        for value in response.msg.get_all("Connection") or []:
            dropped.update(t.strip().lower() for t in value.split(","))
        client_host = self.headers.get("Host") or proxy.host
        self.send_response_only(status, response.reason)
        for name, value in response.msg.items():
            lname = name.lower()
            if lname in dropped or (lname == "content-length" and response.chunked):
                continue
            if lname == "location":
                value = proxy._rewrite_location(value, client_host)
            self.send_header(name, value)
        chunked = not no_body and length is None and self.request_version == "HTTP/1.1"
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif not no_body and length is None:  # HTTP/1.0 client: the end of the body is EOF
            self.close_connection = True
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if no_body:
            return
        budget = length // 2 if reset_mid_body and length is not None else None
        sent = 0
        while True:
            try:
                data = response.read1(CHUNK if budget is None else min(CHUNK, budget - sent))
            except (OSError, http.client.HTTPException):
                log.debug("fault proxy: upstream broke off its response", exc_info=True)
                proxy._count("_upstream_errors")
                self._reset()  # the client must not take a truncated body for a whole one
                return
            if not data:
                if reset_mid_body:
                    break
                if length is not None and sent < length:  # read1 does not raise for this
                    proxy._count("_upstream_errors")
                    break
                if chunked:
                    self._write(b"0\r\n\r\n")
                return
            self._write(b"%x\r\n%b\r\n" % (len(data), data) if chunked else data)
            sent += len(data)
            if reset_mid_body and (budget is None or sent >= budget):
                break
        self._reset()

    def _write(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
        except (OSError, ValueError) as exc:
            raise _ClientGone(str(exc)) from exc
