"""Retries and a request rate for one registry, as an httpx transport.

Registries fail in the ordinary ways of the internet: a reset connection, a 502 from a load
balancer, a 429 from Docker Hub's rate limit. Retrying below the auth flow means a token
request is retried the same way as a manifest request, and callers never write retry loops.
Only requests whose body can be sent again are retried here; a streamed blob upload is
retried whole by the copy, which re-opens its source.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

import httpx

from pipeline.retry_after import retry_after_seconds as parse_retry_after

__all__ = ["RETRY_STATUSES", "RateLimiter", "RetryTransport", "retry_after_seconds"]

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_MAX_RETRY_AFTER = 30.0

log = logging.getLogger(__name__)


class RateLimiter:
    """A token bucket shared by every client of one registry in this process."""

    def __init__(self, per_second: float, burst: int | None = None) -> None:
        self.per_second = per_second
        self.capacity = float(burst or max(1, int(per_second)))
        self._tokens = self.capacity
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.per_second)
                self._stamp = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                wait = (1 - self._tokens) / self.per_second
            time.sleep(wait)


_limiters: dict[tuple[str, float], RateLimiter] = {}
_limiters_lock = threading.Lock()


def shared_limiter(host: str, per_second: float) -> RateLimiter:
    with _limiters_lock:
        return _limiters.setdefault((host, per_second), RateLimiter(per_second))


def retry_after_seconds(response: httpx.Response) -> float | None:
    """``Retry-After`` as seconds (delta or HTTP date), capped so a hostile value cannot stall us."""
    return parse_retry_after(response.headers.get("retry-after"), _MAX_RETRY_AFTER)


def _replayable(request: httpx.Request) -> bool:
    return isinstance(request.stream, httpx.ByteStream)


class RetryTransport(httpx.BaseTransport):
    """Retry connection errors, 5xx and 429 with jittered exponential backoff; never other 4xx."""

    def __init__(
        self,
        inner: httpx.BaseTransport,
        *,
        attempts: int = 5,
        base: float = 0.2,
        cap: float = 8.0,
        limiter: RateLimiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.inner, self.attempts, self.base, self.cap = inner, attempts, base, cap
        self.limiter, self._sleep = limiter, sleep

    def _backoff(self, attempt: int) -> float:
        return random.uniform(0.5, 1.0) * min(self.cap, self.base * 2.0**attempt)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        replayable = _replayable(request)
        for attempt in range(self.attempts):
            last = attempt == self.attempts - 1 or not replayable
            if self.limiter is not None:
                self.limiter.acquire()
            try:
                response = self.inner.handle_request(request)
            except httpx.TransportError as exc:
                if last:
                    raise
                self._wait(request, attempt, f"{type(exc).__name__}: {exc}", self._backoff(attempt))
                continue
            if response.status_code not in RETRY_STATUSES or last:
                return response
            delay = retry_after_seconds(response)
            response.close()
            self._wait(
                request, attempt, f"HTTP {response.status_code}", delay if delay is not None else self._backoff(attempt)
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, request: httpx.Request, attempt: int, what: str, delay: float) -> None:
        """Say so before sleeping: a registry that is down must not look like a hung promotion
        (the worker's records carry the promotion or build id)."""
        log.warning(
            "registry %s: %s %s failed (%s); retry %d of %d in %.1f s",
            request.url.host,
            request.method,
            request.url.path,
            what,
            attempt + 1,
            self.attempts - 1,
            delay,
        )
        self._sleep(delay)

    def close(self) -> None:
        self.inner.close()
