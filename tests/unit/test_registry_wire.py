"""The registry client's sockets (``pipeline.registry._wire``) over a real socket pair.

httpcore asks for 64 KiB per read; a blob copy wants far more per turn of its loop, and must
still see every byte in order, time out like httpcore's own streams and notice a peer that
hung up before a kept-alive connection is reused.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator

import httpcore
import pytest

from pipeline.registry._wire import READ_SIZE, WideBackend, _WideStream


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    try:
        yield ours, theirs
    finally:
        ours.close()
        theirs.close()


def test_a_read_takes_more_than_httpcore_asks_for(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    data = os.urandom(200_000)
    theirs.sendall(data)  # fits the peer's buffer, so it is all there before we read
    stream = _WideStream(ours, READ_SIZE)
    got = stream.read(65536, timeout=5)
    assert len(got) > 65536
    rest = b""
    while len(got) + len(rest) < len(data):
        rest += stream.read(65536, timeout=5)
    assert got + rest == data


def test_a_write_larger_than_the_socket_buffer_arrives_whole_and_in_order(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    data = os.urandom(8 << 20)  # far more than a socket buffer: sendall goes in many pieces
    received = bytearray()

    def drain() -> None:
        while len(received) < len(data):
            received.extend(theirs.recv(1 << 16))

    reader = threading.Thread(target=drain)
    reader.start()
    _WideStream(ours, READ_SIZE).write(data, timeout=5)
    reader.join(30)
    assert bytes(received) == data


def test_a_silent_peer_is_a_read_timeout_and_a_closed_socket_a_write_error(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    stream = _WideStream(ours, READ_SIZE)
    with pytest.raises(httpcore.ReadTimeout):
        stream.read(65536, timeout=0.05)
    theirs.close()
    with pytest.raises(httpcore.WriteError):
        for _ in range(64):  # the first writes may still be buffered
            stream.write(b"x" * 65536, timeout=1)


def test_a_peer_that_hung_up_makes_the_connection_readable(pair: tuple[socket.socket, socket.socket]) -> None:
    """httpcore asks ``is_readable`` before reusing an idle connection; readable means the
    server closed it, so the pool must not send the next request down it."""
    ours, theirs = pair
    stream = _WideStream(ours, READ_SIZE)
    assert stream.get_extra_info("is_readable") is False
    theirs.close()
    assert stream.get_extra_info("is_readable") is True


def test_the_backend_connects_tcp_with_wide_streams() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    try:
        port = server.getsockname()[1]
        stream = WideBackend(read_size=1 << 20).connect_tcp("127.0.0.1", port, timeout=5)
        peer, _ = server.accept()
        try:
            peer.sendall(b"hello")
            assert isinstance(stream, _WideStream)
            assert stream.read(65536, timeout=5) == b"hello"
            assert stream.get_extra_info("server_addr") == ("127.0.0.1", port)
        finally:
            peer.close()
            stream.close()
    finally:
        server.close()
