"""Bitbucket Cloud build statuses, REST API 2.0.

``POST /2.0/repositories/{workspace}/{repo_slug}/commit/{commit}/statuses/build`` {key,
state: INPROGRESS|SUCCESSFUL|FAILED|STOPPED, name, url, description}; ``url`` is required;
posting the same ``key`` again updates that status; answers 201 (200 on an update)
(https://developer.atlassian.com/cloud/bitbucket/rest/api-group-commit-statuses/#api-repositories-workspace-repo-slug-commit-commit-statuses-build-post).
A repository or workspace access token goes in ``Authorization: Bearer``.
"""

from __future__ import annotations

from pipeline.errors import DeliveryError
from pipeline.notify._hosts import Host, StatusUpdate
from pipeline.notify._http import Request, segment

__all__ = ["STATE", "status"]

STATE = {
    "pending": "INPROGRESS",
    "running": "INPROGRESS",
    "success": "SUCCESSFUL",
    "failure": "FAILED",
    "error": "FAILED",
}


def body(update: StatusUpdate, what: str) -> dict[str, str]:
    """Bitbucket's build status body, shared with Data Center (the same fields)."""
    if not update.target_url:
        raise DeliveryError(f"{what}: Bitbucket requires a link; set notifications.base_url", retryable=False)
    return {
        "key": update.context[:40],
        "state": STATE[update.state],
        "name": update.context,
        "url": update.target_url,
        "description": update.description[:255],
    }


def status(host: Host, update: StatusUpdate) -> Request:
    workspace, _, slug = host.repository.partition("/")
    url = (
        f"{host.api_url}/2.0/repositories/{segment(workspace)}/{segment(slug)}"
        f"/commit/{segment(update.sha)}/statuses/build"
    )
    what = "Bitbucket build status"
    return Request.json("POST", host.api_url, url, body(update, what), {"Authorization": f"Bearer {host.token}"}, what)
