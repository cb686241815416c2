"""Talking to a running service from the command line: one HTTP client, one error mapping.

Scripts rely on the exit codes, so every way a call can end has exactly one::

    0  done
    1  the operation itself ended badly (a build or promotion failed or was rejected)
    2  the request was invalid (422, 400) or the command was used wrongly
    3  the service could not be reached, or answered 5xx
    4  not found (404)
    5  refused in the current state (409: policy, nothing to roll back, already finished)
    6  not allowed (401, 403)
"""

from __future__ import annotations

import os
from typing import Any

import httpx

from pipeline import __version__
from pipeline.cli._credentials import explain_unauthenticated

__all__ = ["EXIT", "RemoteError", "ServiceClient"]

EXIT = {"done": 0, "outcome": 1, "invalid": 2, "unreachable": 3, "not_found": 4, "conflict": 5, "denied": 6}
_BY_STATUS = {
    400: "invalid",
    401: "denied",
    403: "denied",
    404: "not_found",
    409: "conflict",
    413: "invalid",
    415: "invalid",
    422: "invalid",
}


class RemoteError(Exception):
    """A call that did not succeed, with the service's own explanation and the exit code for it."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.message, self.exit_code = message, EXIT[kind]


def _problem(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])
    return str(body)[:500]


class ServiceClient:
    """The REST API at ``url``; ``token`` (else ``PIPELINE_TOKEN``, if set) goes along as a
    Bearer token."""

    def __init__(self, url: str, *, token: str | None = None, actor: str | None = None, timeout: float = 30) -> None:
        headers = {"User-Agent": f"pipeline-cli/{__version__}"}
        token = token if token is not None else os.environ.get("PIPELINE_TOKEN")
        self.token = token or None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        actor = actor or os.environ.get("PIPELINE_ACTOR") or os.environ.get("USER")
        if actor:
            headers["X-Pipeline-Actor"] = actor
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise RemoteError(
                f"cannot reach the service at {self.url}: {exc}; is `pipeline serve` running "
                "(or pass --url / set PIPELINE_URL)?",
                "unreachable",
            ) from None
        if response.status_code >= 500:
            raise RemoteError(f"the service failed ({response.status_code}): {_problem(response)}", "unreachable")
        if response.status_code >= 400:
            raise self._refusal(response)
        return response.json()

    def _refusal(self, response: httpx.Response) -> RemoteError:
        detail = _problem(response)
        if response.status_code == 401:
            detail = explain_unauthenticated(detail, self.token)
        return RemoteError(detail, _BY_STATUS.get(response.status_code, "invalid"))

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.request("POST", path, json=body or {})

    def stream_lines(self, path: str, **params: Any) -> Any:
        """NDJSON lines as the service writes them (a followed build log)."""
        try:
            with self._http.stream("GET", path, params=params, timeout=None) as response:
                if response.status_code >= 400:
                    response.read()
                    raise self._refusal(response)
                yield from response.iter_lines()
        except httpx.TransportError as exc:
            raise RemoteError(f"lost the service at {self.url}: {exc}", "unreachable") from None
