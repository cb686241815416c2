"""The wire under the registry client: blob bodies over the standard library's HTTP/1.1.

A blob copy moves hundreds of megabytes through one Python loop (receive from the source,
hash, send to the target). Through httpx's own transport every received piece is copied four
times on its way up (h11's receive buffer, two slices, httpcore's ``bytes``), and a 210 MB
copy spent ~0.2 s of CPU receiving alone, against ~0.05 s for ``http.client``, whose buffered
reader reads a large request straight into the returned bytes. On two cores shared with both
registries that CPU is wall time: it made our copy slower than ``crane copy`` on
distribution 2.8.

``WireTransport`` is an ``httpx.BaseTransport`` (public API): requests marked :data:`BULK` (a
blob's GET or its streamed upload) go over pooled ``http.client`` connections, everything else
(manifests, token requests, pings: small bodies, where h11's strictness is worth more than
its copies) over httpx's own transport. Above it, auth flows, redirects, retries and rate
limits are httpx's and ours as before; below it, errors are httpx's exceptions, so callers
cannot tell the two paths apart except by their CPU.

Memory stays bounded: a bulk response is read :data:`READ_SIZE` bytes at a time, and the
caller hashes and forwards each piece before reading much more.
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
import threading
from collections.abc import Iterator

import httpx

__all__ = ["BULK", "READ_SIZE", "WireTransport"]

READ_SIZE = 256 << 10
"""Bytes read per piece of a bulk body. Per piece the loop above costs the same whatever its
size (httpx's stream wrappers, a queue handoff, a GIL switch); 256 KiB makes that a small
share, while four layers copied at once with two pieces read ahead stay under 10 MB."""

BULK = {"pipeline.bulk": True}
"""``extensions=`` of a request whose body is a blob: it takes the ``http.client`` path."""

_Key = tuple[str, str, int]
_MAX_IDLE = 8  # per host; a copy keeps at most ``parallel`` (4) blob streams open at once


class WireTransport(httpx.BaseTransport):
    """httpx's transport for small requests, pooled ``http.client`` connections for bulk ones."""

    def __init__(self, verify: ssl.SSLContext | bool) -> None:
        self._small = httpx.HTTPTransport(verify=verify)
        self._ssl = httpx.create_ssl_context(verify=verify)
        self._idle: dict[_Key, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not request.extensions.get("pipeline.bulk"):
            return self._small.handle_request(request)
        return self._bulk(request)

    def close(self) -> None:
        self._small.close()
        with self._lock:
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()

    # -- the bulk path ----------------------------------------------------------------------

    def _bulk(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        key = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        connection = self._checkout(key, timeouts.get("connect"))
        try:
            response = _exchange(connection, request, timeouts)
        except BaseException:
            connection.close()
            raise
        return httpx.Response(
            response.status,
            headers=response.getheaders(),
            stream=_Body(self, key, connection, response),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": response.reason.encode("latin-1")},
        )

    def _checkout(self, key: _Key, connect_timeout: float | None) -> http.client.HTTPConnection:
        with self._lock:
            idle = self._idle.get(key, [])
            while idle:
                connection = idle.pop()
                if connection.sock is not None and not _dropped(connection.sock):
                    return connection
                connection.close()  # the server closed it while it was idle
        scheme, host, port = key
        if scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=connect_timeout, context=self._ssl)
        return http.client.HTTPConnection(host, port, timeout=connect_timeout)

    def checkin(self, key: _Key, connection: http.client.HTTPConnection) -> None:
        """A connection whose response was read to its end, for the next bulk request."""
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < _MAX_IDLE:
                idle.append(connection)
                return
        connection.close()


def _exchange(
    connection: http.client.HTTPConnection, request: httpx.Request, timeouts: dict[str, float | None]
) -> http.client.HTTPResponse:
    """Send the request as httpx prepared it (headers, framing) and read the response's head."""
    phase: type[httpx.NetworkError] = httpx.ConnectError
    try:
        if connection.sock is None:
            connection.connect()
        assert connection.sock is not None
        phase = httpx.WriteError
        connection.sock.settimeout(timeouts.get("write"))
        target = request.url.raw_path.decode("ascii")
        connection.putrequest(request.method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in request.headers.raw:
            connection.putheader(name, value)
        connection.endheaders()
        _send_body(connection, request)
        phase = httpx.ReadError
        connection.sock.settimeout(timeouts.get("read"))
        return connection.getresponse()
    except (OSError, http.client.HTTPException) as exc:
        raise _mapped(exc, phase, request) from exc


def _send_body(connection: http.client.HTTPConnection, request: httpx.Request) -> None:
    chunked = request.headers.get("transfer-encoding", "").lower() == "chunked"
    for chunk in request.stream:  # type: ignore[union-attr]  # a sync client's request streams are iterable
        if not chunk:
            continue
        if chunked:
            connection.send(b"%x\r\n" % len(chunk))
        connection.send(chunk)  # sendall of the bytes themselves: nothing copied
        if chunked:
            connection.send(b"\r\n")
    if chunked:
        connection.send(b"0\r\n\r\n")


class _Body(httpx.SyncByteStream):
    """A bulk response's body, read in large pieces; the connection goes back to the pool only
    when the body was read to its end (anything else leaves it in an unknown state)."""

    def __init__(
        self,
        owner: WireTransport,
        key: _Key,
        connection: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
    ) -> None:
        self._owner, self._key, self._connection, self._response = owner, key, connection, response
        self._complete = False

    def __iter__(self) -> Iterator[bytes]:
        response = self._response
        try:
            while chunk := response.read(READ_SIZE):
                yield chunk
        except (OSError, http.client.HTTPException) as exc:
            raise _mapped(exc, httpx.ReadError, None) from exc
        if response.length:  # http.client ends a short body quietly, "for compatibility"
            raise _mapped(http.client.IncompleteRead(b"", response.length), httpx.ReadError, None)
        self._complete = True

    def close(self) -> None:
        reusable = self._complete and not self._response.will_close and self._connection.sock is not None
        self._response.close()
        if reusable:
            self._owner.checkin(self._key, self._connection)
        else:
            self._connection.close()


_TIMEOUT_OF: dict[type[httpx.NetworkError], type[httpx.TimeoutException]] = {
    httpx.ConnectError: httpx.ConnectTimeout,
    httpx.WriteError: httpx.WriteTimeout,
    httpx.ReadError: httpx.ReadTimeout,
}


def _mapped(exc: BaseException, phase: type[httpx.NetworkError], request: httpx.Request | None) -> Exception:
    """The httpx exception its own transport raises for the same failure, so that retries and
    messages above treat both paths alike."""
    kind: type[httpx.TransportError] = phase
    if isinstance(exc, TimeoutError):
        kind = _TIMEOUT_OF[phase]
    elif isinstance(exc, http.client.HTTPException):  # a bad status line, a hang-up, a short body: as h11 says
        kind = httpx.RemoteProtocolError
    text = str(exc) or type(exc).__name__
    if isinstance(exc, http.client.IncompleteRead):
        text = f"the server closed the connection with {exc.expected} bytes of the body still to come"
    return kind(text, request=request) if request is not None else kind(text)


def _dropped(sock: socket.socket) -> bool:
    """What a pool asks before reusing a kept-alive connection: readable means the server
    closed it (or sent something unasked). Polled, so the socket's timeout is left alone."""
    fd = sock.fileno()
    if fd == -1:
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))
