"""Pull requests on the Git host, behind one small interface; GitHub is the implementation.

Write-back in pull-request mode pushes the edit to a branch of its own and asks the host to
open a pull request; later the promotion asks whether it was merged. Only those two calls
differ between hosts, so a GitLab or Gitea host is one more class with ``open`` and ``state``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import httpx

from pipeline.config import PullRequestConfig
from pipeline.errors import GitError, GitPushRefused

__all__ = ["GitHubPulls", "PullRequest", "PullRequestHost", "pull_request_host"]

State = Literal["open", "merged", "closed"]


@dataclass(frozen=True)
class PullRequest:
    number: int
    url: str


class PullRequestHost(Protocol):
    def open(self, *, head: str, base: str, title: str, body: str) -> PullRequest: ...

    def state(self, number: int) -> State: ...

    def close(self) -> None: ...


class GitHubPulls:
    """GitHub's REST API (``POST /repos/{owner}/{repo}/pulls``, ``GET …/pulls/{number}``)."""

    def __init__(self, config: PullRequestConfig, *, timeout: float = 30) -> None:
        self.repository = config.repository
        self._http = httpx.Client(
            base_url=config.api_url.rstrip("/"),
            timeout=timeout,
            headers={
                "Authorization": f"Bearer {config.token()}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
                "User-Agent": "pipeline/0.1",
            },
        )

    def _call(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        try:
            response = self._http.request(method, f"/repos/{self.repository}{path}", **kwargs)  # type: ignore[arg-type]
        except httpx.TransportError as exc:
            raise GitError(f"cannot reach the GitHub API for {self.repository}: {exc}") from None
        if response.status_code in (401, 403, 404):
            raise GitPushRefused(
                f"GitHub refused {method} pulls for {self.repository} ({response.status_code}): "
                f"{_message(response)}; check gitops.pull_request.token_env and repository"
            )
        if response.status_code >= 500:
            raise GitError(f"GitHub answered {response.status_code} for {self.repository}: {_message(response)}")
        return response

    def open(self, *, head: str, base: str, title: str, body: str) -> PullRequest:
        """Open the pull request, or find the one already open for ``head`` (a retried promotion)."""
        response = self._call("POST", "/pulls", json={"title": title, "head": head, "base": base, "body": body})
        if response.status_code == 422 and "already exists" in response.text:
            owner = self.repository.split("/")[0]
            found = self._call("GET", "/pulls", params={"head": f"{owner}:{head}", "state": "open"}).json()
            if found:
                return PullRequest(int(found[0]["number"]), str(found[0]["html_url"]))
        if response.status_code != 201:
            raise GitPushRefused(
                f"GitHub did not open the pull request from {head} to {base} "
                f"({response.status_code}): {_message(response)}"
            )
        data = response.json()
        return PullRequest(int(data["number"]), str(data["html_url"]))

    def close(self) -> None:
        self._http.close()

    def state(self, number: int) -> State:
        data = self._call("GET", f"/pulls/{number}").json()
        if data.get("merged"):
            return "merged"
        return "closed" if data.get("state") == "closed" else "open"


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message", ""))[:300]
    except ValueError:
        return response.text[:300]


def pull_request_host(config: PullRequestConfig) -> PullRequestHost:
    return GitHubPulls(config)
