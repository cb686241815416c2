"""The registry client's wire (``pipeline.registry._wire``) against a real HTTP/1.1 server.

Blob bodies take the ``http.client`` path; they must arrive whole and in order, in pieces far
larger than httpcore's, over kept-alive connections, and every failure must be the httpx
exception httpx's own transport raises, so that retries and messages above cannot tell the
two paths apart. The server is a socket server written here so that it can misbehave on cue
(hang up mid-body, stay silent, close idle connections).
"""

from __future__ import annotations

import hashlib
import os
import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from pipeline.registry._wire import BULK, READ_SIZE, WireTransport

BODY = os.urandom(3 << 20)


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        self.server.connections += 1
        try:
            self._serve()
        finally:
            self.server.dropped.set()

    def _serve(self) -> None:
        while True:
            line = self.rfile.readline()
            if not line:
                return
            method, path, _ = line.decode().split(" ", 2)
            headers = {}
            while (header := self.rfile.readline()) not in (b"\r\n", b""):
                name, _, value = header.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            received = self._body(headers)
            self.server.requests.append((method, path, headers, received))
            if not self._answer(path, received):
                return

    def _body(self, headers: dict[str, str]) -> bytes:
        if "content-length" in headers:
            return self.rfile.read(int(headers["content-length"]))
        if headers.get("transfer-encoding") == "chunked":
            out = bytearray()
            while size := int(self.rfile.readline(), 16):
                out += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
            return bytes(out)
        return b""

    def _answer(self, path: str, received: bytes) -> bool:
        """Answer one request; False ends the connection."""
        if path == "/silent":
            time.sleep(1)
            return False
        if path == "/hang-up":
            self.wfile.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Path: /hang-up\r\n\r\n" % len(BODY) + BODY[:100_000]
            )
            return False
        if path == "/close":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            return False
        body = BODY if path in ("/blob", "/drop-after") else hashlib.sha256(received).hexdigest().encode()
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Path: %s\r\n\r\n" % (len(body), path.encode()))
        self.wfile.write(body)
        self.wfile.flush()
        return path != "/drop-after"


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.connections = 0
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.dropped = threading.Event()  # a connection ended on the server's side

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def client(server: _Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, transport=WireTransport(False), timeout=httpx.Timeout(5)) as c:
        yield c


def _download(client: httpx.Client, path: str = "/blob") -> list[bytes]:
    with client.stream("GET", path, extensions=BULK) as response:
        assert response.status_code == 200
        assert response.headers["x-path"] == path
        return list(response.iter_raw())


def test_a_bulk_body_arrives_whole_in_large_pieces_over_one_kept_alive_connection(
    client: httpx.Client, server: _Server
) -> None:
    first = _download(client)
    second = _download(client)
    assert b"".join(first) == BODY and b"".join(second) == BODY
    assert max(map(len, first)) == READ_SIZE > 65536  # httpcore's own reads are 64 KiB
    assert server.connections == 1  # the second download reused the first one's connection


def test_streamed_uploads_arrive_exactly_with_a_length_and_chunked(client: httpx.Client, server: _Server) -> None:
    pieces = [BODY[i : i + 300_000] for i in range(0, len(BODY), 300_000)]
    sized = client.put("/up", content=iter(pieces), headers={"Content-Length": str(len(BODY))}, extensions=BULK)
    chunked = client.put("/up", content=iter(pieces), extensions=BULK)  # no length: httpx frames it chunked
    expected = hashlib.sha256(BODY).hexdigest()
    assert sized.text == expected and chunked.text == expected
    assert server.requests[1][2]["transfer-encoding"] == "chunked"
    assert server.connections == 1


def test_a_server_that_hangs_up_mid_body_is_a_transport_error_and_its_connection_is_not_reused(
    client: httpx.Client, server: _Server
) -> None:
    with pytest.raises(httpx.TransportError, match="body still to come"):
        _download(client, "/hang-up")
    assert b"".join(_download(client)) == BODY
    assert server.connections == 2


def test_a_silent_server_is_a_read_timeout(server: _Server) -> None:
    with (
        httpx.Client(base_url=server.url, transport=WireTransport(False), timeout=httpx.Timeout(0.2)) as client,
        pytest.raises(httpx.ReadTimeout),
    ):
        client.get("/silent", extensions=BULK)


def test_connections_the_server_closed_are_not_reused(client: httpx.Client, server: _Server) -> None:
    with client.stream("GET", "/close", extensions=BULK) as response:
        assert response.read() == b"ok"
    assert b"".join(_download(client)) == BODY
    assert server.connections == 2


def test_an_idle_connection_the_server_dropped_is_replaced(client: httpx.Client, server: _Server) -> None:
    """A registry's idle timeout closes kept-alive connections without a word; the next blob
    must go over a new connection instead of failing on the dead one."""
    assert b"".join(_download(client, "/drop-after")) == BODY
    assert server.dropped.wait(5)
    assert b"".join(_download(client)) == BODY
    assert server.connections == 2


def test_a_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with (
        httpx.Client(transport=WireTransport(False), timeout=httpx.Timeout(2)) as client,
        pytest.raises(httpx.ConnectError),
    ):
        client.get(f"http://127.0.0.1:{port}/blob", extensions=BULK)


def test_small_requests_take_httpx_own_transport(client: httpx.Client, server: _Server) -> None:
    assert client.get("/manifest").headers["x-path"] == "/manifest"
    assert client.post("/up", content=b"abc").text == hashlib.sha256(b"abc").hexdigest()
