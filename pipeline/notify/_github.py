"""GitHub (and GitHub Enterprise Server) commit statuses and deployments, REST API 2022-11-28.

- ``POST /repos/{owner}/{repo}/statuses/{sha}`` {state: pending|success|failure|error,
  target_url, description, context} -> 201
  (https://docs.github.com/en/rest/commits/statuses#create-a-commit-status). GitHub has no
  running state: a running build is ``pending`` saying so.
- ``POST /repos/{owner}/{repo}/deployments`` {ref, environment, description, auto_merge,
  required_contexts, payload} -> 201 with ``id``
  (https://docs.github.com/en/rest/deployments/deployments#create-a-deployment).
- ``POST /repos/{owner}/{repo}/deployments/{id}/statuses`` {state: in_progress|success|
  failure|error, description, log_url, environment} -> 201
  (https://docs.github.com/en/rest/deployments/statuses#create-a-deployment-status).
"""

from __future__ import annotations

from typing import Any

from pipeline.notify._hosts import Host, State, StatusUpdate
from pipeline.notify._http import Request, segment

__all__ = ["create_deployment", "deployment_status", "status"]

_STATE = {"pending": "pending", "running": "pending", "success": "success", "failure": "failure", "error": "error"}
_DEPLOY_STATE = {
    "pending": "queued",
    "running": "in_progress",
    "success": "success",
    "failure": "failure",
    "error": "error",
}


def _headers(host: Host) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {host.token}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
    }


def _repo(host: Host) -> str:
    owner, _, name = host.repository.partition("/")
    return f"{host.api_url}/repos/{segment(owner)}/{segment(name)}"


def status(host: Host, update: StatusUpdate) -> Request:
    body: dict[str, Any] = {
        "state": _STATE[update.state],
        "context": update.context,
        "description": update.description[:140],
    }
    if update.target_url:
        body["target_url"] = update.target_url
    url = f"{_repo(host)}/statuses/{segment(update.sha)}"
    return Request.json("POST", host.api_url, url, body, _headers(host), "GitHub commit status")


def create_deployment(host: Host, sha: str, environment: str, description: str, payload: dict[str, Any]) -> Request:
    """A deployment of exactly this commit: no merge of the default branch, no required contexts
    (the promotion moves a built digest; GitHub must not refuse it for a pending check)."""
    body = {
        "ref": sha,
        "environment": environment,
        "description": description[:140],
        "auto_merge": False,
        "required_contexts": [],
        "payload": payload,
    }
    return Request.json("POST", host.api_url, f"{_repo(host)}/deployments", body, _headers(host), "GitHub deployment")


def deployment_status(
    host: Host, deployment_id: int, state: State, environment: str, description: str, log_url: str | None
) -> Request:
    body: dict[str, Any] = {
        "state": _DEPLOY_STATE[state],
        "environment": environment,
        "description": description[:140],
    }
    if log_url:
        body["log_url"] = log_url
    url = f"{_repo(host)}/deployments/{int(deployment_id)}/statuses"
    return Request.json("POST", host.api_url, url, body, _headers(host), "GitHub deployment status")
