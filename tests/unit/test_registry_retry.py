"""Retries below the auth flow, driven through httpx.MockTransport for exact failure sequences.

The same client also survives a real registry behind a fault-injecting proxy
(tests/integration/test_promotion_faults.py); these tests pin down the rules themselves.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import httpx
import pytest

from pipeline.registry import RateLimiter, RetryTransport, retry_after_seconds


def _client(answers: list[int | type[Exception]], slept: list[float], **headers: str) -> tuple[httpx.Client, list]:  # type: ignore[type-arg]
    seen: list[httpx.Request] = []
    queue = iter(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        request.read()
        seen.append(request)
        answer = next(queue)
        if isinstance(answer, type):
            raise answer("boom", request=request)  # type: ignore[call-arg]
        return httpx.Response(answer, headers=headers if answer == 429 else {})

    transport = RetryTransport(httpx.MockTransport(handler), attempts=4, sleep=slept.append)
    return httpx.Client(transport=transport, base_url="http://registry.test"), seen


def test_5xx_429_and_connection_errors_are_retried_then_succeed(caplog: pytest.LogCaptureFixture) -> None:
    slept: list[float] = []
    client, seen = _client([httpx.ConnectError, 502, 429, 200], slept, **{"Retry-After": "2"})
    with caplog.at_level(logging.WARNING, logger="pipeline.registry._retry"):
        assert client.get("/v2/").status_code == 200
    assert len(seen) == 4
    assert slept[2] == 2.0  # Retry-After honoured for the 429
    assert all(0 < s <= 8 for s in slept)
    # each retry is logged as it happens, saying what failed and how long the wait is
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 3, said
    assert said[0].startswith("registry registry.test: GET /v2/ failed (ConnectError: boom); retry 1 of 3 in ")
    assert "(HTTP 502); retry 2 of 3" in said[1] and said[2].endswith("(HTTP 429); retry 3 of 3 in 2.0 s")


def test_other_4xx_are_final_at_once() -> None:
    slept: list[float] = []
    client, seen = _client([404, 200], slept)
    assert client.get("/v2/x/manifests/y").status_code == 404
    assert (len(seen), slept) == (1, [])


def test_the_last_answer_is_returned_when_every_attempt_fails() -> None:
    slept: list[float] = []
    client, seen = _client([503, 503, 503, 503], slept)
    assert client.get("/v2/").status_code == 503
    assert len(seen) == 4 and len(slept) == 3


def test_a_streamed_body_is_never_sent_twice() -> None:
    """A generator body is gone once sent; the copy retries the whole blob instead."""
    slept: list[float] = []
    client, seen = _client([500, 201], slept)

    def body() -> Iterator[bytes]:
        yield b"layer bytes"

    assert client.put("/v2/x/blobs/uploads/1", content=body()).status_code == 500
    assert len(seen) == 1
    assert client.put("/v2/x/manifests/t", content=b"{}").status_code == 201  # bytes: replayable


@pytest.mark.parametrize(
    ("value", "expected"), [("3", 3.0), ("0", 0.0), ("-5", 0.0), ("99999", 30.0), ("soon", None), ("", None)]
)
def test_retry_after_is_read_as_seconds_and_capped(value: str, expected: float | None) -> None:
    response = httpx.Response(429, headers={"Retry-After": value} if value else {})
    assert retry_after_seconds(response) == expected


def test_retry_after_as_an_http_date() -> None:
    when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 5))
    seconds = retry_after_seconds(httpx.Response(429, headers={"Retry-After": when}))
    assert seconds is not None and 3 <= seconds <= 5


def test_the_rate_limiter_spaces_requests_after_the_burst() -> None:
    limiter = RateLimiter(per_second=50, burst=2)
    started = time.monotonic()
    for _ in range(7):
        limiter.acquire()
    assert time.monotonic() - started >= 0.09  # 5 requests beyond the burst at 50/s
