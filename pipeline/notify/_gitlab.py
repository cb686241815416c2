"""GitLab (gitlab.com or self-managed) commit statuses, REST API v4.

``POST /api/v4/projects/{id}/statuses/{sha}`` with ``state`` (pending, running, success,
failed, canceled), ``name``, ``target_url``, ``description``; the id is the numeric id or the
URL-encoded ``namespace/project`` path; token in ``PRIVATE-TOKEN``; answers 201
(https://docs.gitlab.com/api/commits/#set-the-pipeline-status-of-a-commit). Posting the state a
status already has answers 400 "Cannot transition status": our retry of a request GitLab did
take, so it counts as delivered (``already_there``).
"""

from __future__ import annotations

from typing import Any

from pipeline.notify._hosts import Host, StatusUpdate
from pipeline.notify._http import Request, segment

__all__ = ["already_there", "status"]

_STATE = {"pending": "pending", "running": "running", "success": "success", "failure": "failed", "error": "failed"}


def status(host: Host, update: StatusUpdate) -> Request:
    body: dict[str, Any] = {
        "state": _STATE[update.state],
        "name": update.context,
        "description": update.description[:255],
    }
    if update.target_url:
        body["target_url"] = update.target_url
    url = f"{host.api_url}/api/v4/projects/{segment(host.repository)}/statuses/{segment(update.sha)}"
    return Request.json("POST", host.api_url, url, body, {"PRIVATE-TOKEN": host.token}, "GitLab commit status")


def already_there(message: str) -> bool:
    return "refused it with 400" in message and "Cannot transition status" in message
