"""The copy's read-ahead (``pipeline.registry._copy._read_ahead``): the source is read by a
thread of its own while the target is sent to, and either side's failure ends both."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from pipeline.errors import RegistryError
from pipeline.registry._copy import _read_ahead


def _numbered(count: int, taken: list[int]) -> Iterator[bytes]:
    for i in range(count):
        taken.append(i)
        yield str(i).encode()


def test_every_chunk_arrives_in_order_from_another_thread() -> None:
    taken: list[int] = []
    readers: set[str] = set()

    def source() -> Iterator[bytes]:
        for chunk in _numbered(500, taken):
            readers.add(threading.current_thread().name)
            yield chunk

    with _read_ahead(source()) as ahead:
        assert list(ahead) == [str(i).encode() for i in range(500)]
    assert readers and threading.current_thread().name not in readers


def test_a_source_failure_is_raised_where_the_missing_chunk_was_expected() -> None:
    def source() -> Iterator[bytes]:
        yield b"a"
        yield b"b"
        raise RegistryError("cannot reach registry src: connection reset")

    got = []
    with pytest.raises(RegistryError, match="connection reset"), _read_ahead(source()) as ahead:
        for chunk in ahead:
            got.append(chunk)
    assert got == [b"a", b"b"]


def test_a_consumer_that_stops_stops_the_reader_without_reading_the_rest() -> None:
    """The target refused after three chunks: the source must not be read to its end, and no
    reader thread may be left behind (it would keep a connection busy)."""
    taken: list[int] = []
    before = threading.active_count()
    with pytest.raises(RuntimeError), _read_ahead(_numbered(10_000, taken), depth=2) as ahead:
        for n, _chunk in enumerate(ahead):
            if n == 2:
                raise RuntimeError("the target refused")
    assert threading.active_count() == before
    assert len(taken) <= 3 + 2 + 2  # the consumed, the queue's depth, one in the reader's hand and its next
