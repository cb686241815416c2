"""One HTTP request to a receiver, and what its answer means for the delivery.

Every host client and target kind builds a ``Request``; ``send`` checks that its URL stays on
the origin the config named (a path can never carry it elsewhere: no SSRF through payload
values), sends it with the configured timeout and no redirects, and turns the answer into a
``DeliveryError`` that says whether to retry and when (``Retry-After``). Messages name the
receiver by its origin only: a Slack URL is a secret, and no header is ever quoted. For the
same reason requests go straight to the transport: ``httpx.Client`` logs every URL at INFO.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from pipeline.errors import DeliveryError
from pipeline.retry_after import retry_after_seconds as parse_retry_after

__all__ = ["USER_AGENT", "Answer", "Request", "Sender", "retry_after_seconds", "segment", "send"]

USER_AGENT = "pipeline-notify/1"
_RETRY = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Request:
    """What to send: ``origin`` is the configured base the URL must stay on."""

    method: str
    origin: str
    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    what: str = "request"  # for messages: "GitHub commit status", "slack target ops"

    @classmethod
    def json(cls, method: str, origin: str, url: str, body: Any, headers: dict[str, str], what: str) -> Request:
        data = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
        return cls(method, origin, url, data, {"Content-Type": "application/json", **headers}, what)


@dataclass(frozen=True)
class Answer:
    code: int
    data: Any


def segment(value: str) -> str:
    """One path segment, percent-encoded (a ``/`` inside it too)."""
    return quote(value, safe="")


def _same_origin(url: str, origin: str) -> bool:
    a, b = urlsplit(url), urlsplit(origin)
    if (a.scheme, a.hostname, a.port) != (b.scheme, b.hostname, b.port):
        return False
    return a.path.startswith(b.path.rstrip("/") + "/") or a.path == b.path


def retry_after_seconds(response: httpx.Response, cap: float) -> float | None:
    """``Retry-After`` as seconds (a delta or an HTTP date), at most ``cap``."""
    return parse_retry_after(response.headers.get("retry-after"), cap)


def _reason(response: httpx.Response) -> str:
    """The receiver's own explanation, short: GitHub's ``message``, Slack's plain text."""
    try:
        data = response.json()
    except ValueError:
        return response.text.strip()[:200]
    if isinstance(data, dict):
        for key in ("message", "error", "errors"):
            if key in data:
                return str(data[key])[:200]
    return str(data)[:200]


_shared: httpx.HTTPTransport | None = None
_shared_lock = threading.Lock()


def _transport() -> httpx.HTTPTransport:
    """One pool for the process: making a transport loads the CA bundle, half a second here."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = httpx.HTTPTransport()
        return _shared


class Sender:
    """One delivery's timeout over the process's connection pool (no redirects: a transport
    never follows one)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._transport = _transport()

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def send(self, request: Request, *, max_retry_after: float) -> Answer:
        return send(self, request, max_retry_after=max_retry_after)

    def exchange(self, request: Request) -> httpx.Response:
        outgoing = httpx.Request(
            request.method,
            request.url,
            content=request.body,
            headers={"User-Agent": USER_AGENT, **request.headers},
            extensions={"timeout": httpx.Timeout(self.timeout).as_dict()},
        )
        response = self._transport.handle_request(outgoing)
        try:
            response.read()
        finally:
            response.close()
        return response


def send(sender: Sender, request: Request, *, max_retry_after: float) -> Answer:
    """Send ``request``; its answer when 2xx, else a ``DeliveryError`` saying what to do."""
    if not _same_origin(request.url, request.origin):
        raise DeliveryError(f"{request.what}: refusing a URL outside {request.origin}", retryable=False)
    where = f"{request.what} at {request.origin}"
    try:
        response = sender.exchange(request)
    except httpx.TimeoutException:
        raise DeliveryError(f"{where}: no answer within {sender.timeout} s") from None
    except httpx.TransportError as exc:
        raise DeliveryError(f"{where}: cannot connect ({type(exc).__name__})") from None
    if 200 <= response.status_code < 300:
        try:
            data = response.json() if response.content else None
        except ValueError:
            data = response.text[:200]
        return Answer(response.status_code, data)
    reason = _reason(response)
    if response.status_code in _RETRY:
        raise DeliveryError(
            f"{where} answered {response.status_code}: {reason}",
            retry_after=retry_after_seconds(response, max_retry_after),
        )
    hint = " (check the token and its permissions)" if response.status_code in (401, 403) else ""
    raise DeliveryError(f"{where} refused it with {response.status_code}: {reason}{hint}", retryable=False)
