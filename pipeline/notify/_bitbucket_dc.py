"""Bitbucket Data Center (and Server) build statuses, Build Status REST API 1.0.

``POST /rest/build-status/1.0/commits/{commitId}`` {state: INPROGRESS|SUCCESSFUL|FAILED, key,
name, url, description}, answers 204 No Content; an HTTP access token in
``Authorization: Bearer`` (https://developer.atlassian.com/server/bitbucket/rest/v906/api-group-build-status/
and the 1.0 resource documented at
https://docs.atlassian.com/bitbucket-server/rest/7.21.0/bitbucket-build-rest.html). The commit
alone names it: the server finds the repositories that contain it.
"""

from __future__ import annotations

from pipeline.notify._bitbucket import body
from pipeline.notify._hosts import Host, StatusUpdate
from pipeline.notify._http import Request, segment

__all__ = ["status"]


def status(host: Host, update: StatusUpdate) -> Request:
    what = "Bitbucket Data Center build status"
    url = f"{host.api_url}/rest/build-status/1.0/commits/{segment(update.sha)}"
    return Request.json("POST", host.api_url, url, body(update, what), {"Authorization": f"Bearer {host.token}"}, what)
