"""Gitea and Forgejo commit statuses (API v1, self-hosted).

``POST /api/v1/repos/{owner}/{repo}/statuses/{sha}`` {state: pending|success|error|failure|
warning, target_url, description, context}, ``Authorization: token …``, answers 201
(https://gitea.com/api/swagger#/repository/repoCreateStatus; Forgejo keeps the same call,
https://forgejo.org/docs/latest/user/api-usage/). No running state: a running build is
``pending`` saying so.
"""

from __future__ import annotations

from typing import Any

from pipeline.notify._hosts import Host, StatusUpdate
from pipeline.notify._http import Request, segment

__all__ = ["status"]

_STATE = {"pending": "pending", "running": "pending", "success": "success", "failure": "failure", "error": "error"}


def status(host: Host, update: StatusUpdate) -> Request:
    body: dict[str, Any] = {
        "state": _STATE[update.state],
        "context": update.context,
        "description": update.description[:255],
    }
    if update.target_url:
        body["target_url"] = update.target_url
    owner, _, name = host.repository.partition("/")
    url = f"{host.api_url}/api/v1/repos/{segment(owner)}/{segment(name)}/statuses/{segment(update.sha)}"
    headers = {"Authorization": f"token {host.token}"}
    return Request.json("POST", host.api_url, url, body, headers, f"{host.provider.capitalize()} commit status")
