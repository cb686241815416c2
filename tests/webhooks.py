"""Push webhooks built field for field as each Git host sends them (shared/WEBHOOKS.md)."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any
from urllib.parse import urlencode

ZERO = "0" * 40


def github_push(
    full_name: str,
    clone_url: str,
    *,
    ref: str = "refs/heads/main",
    before: str = ZERO,
    after: str,
    message: str = "change",
    host: str = "github.com",
) -> dict[str, Any]:
    owner, name = full_name.split("/", 1)
    deleted = after == ZERO
    head = (
        None
        if deleted
        else {
            "id": after,
            "tree_id": "b" * 40,
            "distinct": True,
            "message": message,
            "timestamp": "2026-11-28T02:00:00Z",
            "url": f"https://{host}/{full_name}/commit/{after}",
            "author": {"name": "Dev", "email": "dev@example.com", "username": "dev"},
            "committer": {"name": "Dev", "email": "dev@example.com", "username": "dev"},
            "added": ["Dockerfile"],
            "removed": [],
            "modified": [],
        }
    )
    return {
        "ref": ref,
        "before": before,
        "after": after,
        "repository": {
            "id": 1296269,
            "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5",
            "name": name,
            "full_name": full_name,
            "private": True,
            "owner": {"name": owner, "login": owner},
            "html_url": f"https://{host}/{full_name}",
            "url": f"https://{host}/{full_name}",
            "clone_url": clone_url,
            "ssh_url": f"git@{host}:{full_name}.git",
            "git_url": f"git://{host}/{full_name}.git",
            "default_branch": "main",
            "created_at": 1700000000,
            "pushed_at": 1764295200,
        },
        "pusher": {"name": "dev", "email": "dev@example.com"},
        "sender": {"login": "dev", "id": 1, "type": "User"},
        "created": before == ZERO,
        "deleted": deleted,
        "forced": False,
        "base_ref": None,
        "compare": f"https://{host}/{full_name}/compare/{before[:12]}...{after[:12]}",
        "commits": [] if head is None else [head],
        "head_commit": head,
    }


def github_ping(full_name: str, clone_url: str) -> dict[str, Any]:
    return {
        "zen": "Keep it logically awesome.",
        "hook_id": 42,
        "hook": {
            "type": "Repository",
            "id": 42,
            "active": True,
            "events": ["push"],
            "config": {"content_type": "json", "insecure_ssl": "0", "url": "https://ci.example.com/webhooks/github"},
        },
        "repository": github_push(full_name, clone_url, after="a" * 40)["repository"],
        "sender": {"login": "dev", "id": 1, "type": "User"},
    }


def github_delivery(
    payload: dict[str, Any],
    secret: str | None,
    *,
    event: str = "push",
    form: bool = False,
    delivery_id: str | None = None,
    signature: str | None = None,
) -> tuple[bytes, dict[str, str]]:
    """Body and headers of one delivery; the HMAC covers the raw body exactly as sent."""
    raw = json.dumps(payload).encode()
    body = urlencode({"payload": raw.decode()}).encode() if form else raw
    headers = {
        "Content-Type": "application/x-www-form-urlencoded" if form else "application/json",
        "User-Agent": "GitHub-Hookshot/abc1234",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery_id or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "42",
        "X-GitHub-Hook-Installation-Target-Type": "repository",
        "X-GitHub-Hook-Installation-Target-ID": "1296269",
    }
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    elif secret is not None:
        headers["X-Hub-Signature-256"] = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return body, headers


def _hmac(secret: str, data: bytes) -> str:
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


def gitlab_push(
    path: str,
    http_url: str,
    *,
    ref: str = "refs/heads/main",
    before: str = ZERO,
    after: str,
    message: str = "change",
    files: list[str] | None = None,
    total: int | None = None,
    host: str = "gitlab.example.com",
) -> dict[str, Any]:
    """GitLab's Push Hook (or Tag Push Hook when ref is a tag): no head_commit, at most 20 commits."""
    deleted = after == ZERO
    commits = (
        []
        if deleted
        else [
            {
                "id": after,
                "message": message,
                "title": message.splitlines()[0] if message else "",
                "timestamp": "2026-11-28T02:00:00+00:00",
                "url": f"https://{host}/{path}/-/commit/{after}",
                "author": {"name": "Dev", "email": "dev@example.com"},
                "added": files or ["Dockerfile"],
                "modified": [],
                "removed": [],
            }
        ]
    )
    project = {
        "id": 15,
        "name": path.rsplit("/", 1)[-1],
        "web_url": f"https://{host}/{path}",
        "git_ssh_url": f"git@{host}:{path}.git",
        "git_http_url": http_url,
        "namespace": path.split("/")[0],
        "visibility_level": 0,
        "path_with_namespace": path,
        "default_branch": "main",
        "homepage": f"https://{host}/{path}",
        "url": f"git@{host}:{path}.git",
        "ssh_url": f"git@{host}:{path}.git",
        "http_url": http_url,
    }
    return {
        "object_kind": "tag_push" if ref.startswith("refs/tags/") else "push",
        "event_name": "tag_push" if ref.startswith("refs/tags/") else "push",
        "before": before,
        "after": after,
        "ref": ref,
        "ref_protected": True,
        "checkout_sha": None if deleted else after,
        "message": None,
        "user_id": 4,
        "user_name": "Dev",
        "user_username": "dev",
        "user_email": "",
        "user_avatar": None,
        "project_id": 15,
        "project": project,
        "commits": commits,
        "total_commits_count": len(commits) if total is None else total,
        "push_options": {},
        "repository": {
            "name": project["name"],
            "url": project["url"],
            "homepage": project["homepage"],
            "git_http_url": http_url,
            "git_ssh_url": project["git_ssh_url"],
            "visibility_level": 0,
        },
    }


def gitlab_delivery(
    payload: dict[str, Any],
    token: str | None,
    *,
    event: str | None = None,
    uuid_: str | None = None,
    idempotency_key: str | None = None,
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    kind = event or ("Tag Push Hook" if payload.get("object_kind") == "tag_push" else "Push Hook")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitLab/17.6.0",
        "X-Gitlab-Event": kind,
        "X-Gitlab-Instance": "https://gitlab.example.com",
        "X-Gitlab-Event-UUID": uuid_ or str(uuid.uuid4()),
        "X-Gitlab-Webhook-UUID": str(uuid.uuid4()),
    }
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    if token is not None:
        headers["X-Gitlab-Token"] = token
    return body, headers


def gitea_push(
    full_name: str,
    clone_url: str,
    *,
    ref: str = "refs/heads/main",
    before: str = ZERO,
    after: str,
    message: str = "change",
    files: list[str] | None = None,
    host: str = "gitea.example.com",
) -> dict[str, Any]:
    """Gitea/Forgejo push: GitHub-like, 2-space indented when sent, no created/deleted flags."""
    owner, name = full_name.split("/", 1)
    commit = {
        "id": after,
        "message": message + "\n",
        "url": f"https://{host}/{full_name}/commit/{after}",
        "author": {"name": "Dev", "email": "dev@example.com", "username": "dev"},
        "committer": {"name": "Dev", "email": "dev@example.com", "username": "dev"},
        "verification": None,
        "timestamp": "2026-11-28T02:00:00Z",
        "added": files or ["Dockerfile"],
        "removed": [],
        "modified": [],
    }
    commits = [] if after == ZERO else [commit]
    return {
        "ref": ref,
        "before": before,
        "after": after,
        "compare_url": f"https://{host}/{full_name}/compare/{before}...{after}",
        "commits": commits,
        "total_commits": len(commits),
        "head_commit": commits[0] if commits else None,
        "repository": {
            "id": 1,
            "owner": {"id": 1, "login": owner, "username": owner},
            "name": name,
            "full_name": full_name,
            "private": True,
            "html_url": f"https://{host}/{full_name}",
            "ssh_url": f"git@{host}:{full_name}.git",
            "clone_url": clone_url,
            "default_branch": "main",
        },
        "pusher": {"id": 1, "login": "dev", "username": "dev"},
        "sender": {"id": 1, "login": "dev", "username": "dev"},
    }


def gitea_delivery(
    payload: dict[str, Any],
    secret: str | None,
    *,
    event: str = "push",
    form: bool = False,
    delivery_id: str | None = None,
    forgejo: bool = False,
) -> tuple[bytes, dict[str, str]]:
    """In form mode Gitea signs the inner JSON, not the form bytes (the opposite of GitHub)."""
    raw = json.dumps(payload, indent=2).encode()
    body = urlencode({"payload": raw.decode()}).encode() if form else raw
    guid = delivery_id or str(uuid.uuid4())
    headers = {
        "Content-Type": "application/x-www-form-urlencoded" if form else "application/json",
        "User-Agent": "Go-http-client/1.1",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": guid,
        "X-Gogs-Event": event,
        "X-Gogs-Delivery": guid,
        "X-Gitea-Event": event,
        "X-Gitea-Delivery": guid,
        "X-Gitea-Event-Type": event,
        "X-Gogs-Event-Type": event,
        "X-GitHub-Event-Type": event,
    }
    if forgejo:
        headers.update({"X-Forgejo-Event": event, "X-Forgejo-Delivery": guid, "X-Forgejo-Event-Type": event})
    if secret is not None:
        sig = _hmac(secret, raw)
        headers.update({"X-Gitea-Signature": sig, "X-Gogs-Signature": sig, "X-Hub-Signature-256": "sha256=" + sig})
        if forgejo:
            headers["X-Forgejo-Signature"] = sig
    return body, headers


def bitbucket_push(
    full_name: str, changes: list[tuple[str, str, str | None, str | None]], message: str = "change"
) -> dict[str, Any]:
    """Bitbucket Cloud repo:push; each change is (type, name, old_hash, new_hash); no clone URL."""

    def side(kind: str, name: str, sha: str | None) -> dict[str, Any] | None:
        if sha is None:
            return None
        return {
            "type": kind,
            "name": name,
            "target": {"type": "commit", "hash": sha, "message": message + "\n", "date": "2026-11-28T02:00:00+00:00"},
            "links": {"html": {"href": f"https://bitbucket.org/{full_name}/branch/{name}"}},
        }

    return {
        "actor": {"display_name": "Dev", "type": "user"},
        "repository": {
            "type": "repository",
            "full_name": full_name,
            "name": full_name.split("/")[1],
            "uuid": "{d5bd1b0d-1cbb-4b3a-a2b2-57e0c8a9e3a4}",
            "is_private": True,
            "links": {"html": {"href": f"https://bitbucket.org/{full_name}"}},
        },
        "push": {
            "changes": [
                {
                    "new": side(k, n, new),
                    "old": side(k, n, old),
                    "created": old is None,
                    "closed": new is None,
                    "forced": False,
                    "truncated": False,
                    "commits": [],
                }
                for k, n, old, new in changes
            ]
        },
    }


def bitbucket_delivery(
    payload: dict[str, Any], secret: str | None, *, event: str = "repo:push", request_id: str | None = None
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Bitbucket-Webhooks/2.0",
        "X-Event-Key": event,
        "X-Request-UUID": request_id or str(uuid.uuid4()),
        "X-Attempt-Number": "1",
        "X-Hook-UUID": "{f4b2c7e0-0000-4000-8000-000000000001}",
    }
    if secret is not None:
        headers["X-Hub-Signature"] = "sha256=" + _hmac(secret, body)
    return body, headers


def generic_delivery(
    payload: dict[str, Any], secret: str | None, *, delivery_id: str | None = None
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if delivery_id:
        headers["X-Pipeline-Delivery"] = delivery_id
    if secret is not None:
        headers["X-Pipeline-Signature"] = "sha256=" + _hmac(secret, body)
    return body, headers


def bitbucket_server_push(
    project_key: str, slug: str, host: str, changes: list[tuple[str, str, str]]
) -> dict[str, Any]:
    """Bitbucket Data Center / Server ``repo:refs_changed``, as in Atlassian's "Event payload" page
    (and a 6.6.2 server's captured delivery): each change is (ref id, fromHash, toHash)."""

    def change(ref: str, before: str, after: str) -> dict[str, Any]:
        kind = "TAG" if ref.startswith("refs/tags/") else "BRANCH"
        return {
            "ref": {"id": ref, "displayId": ref.split("/", 2)[2], "type": kind},
            "refId": ref,
            "fromHash": before,
            "toHash": after,
            "type": "ADD" if before == ZERO else ("DELETE" if after == ZERO else "UPDATE"),
        }

    return {
        "eventKey": "repo:refs_changed",
        "date": "2026-11-28T02:00:00+0000",
        "actor": {
            "name": "dev",
            "emailAddress": "dev@example.com",
            "id": 1,
            "displayName": "Dev",
            "active": True,
            "slug": "dev",
            "type": "NORMAL",
        },
        "repository": {
            "slug": slug,
            "id": 84,
            "name": slug,
            "scmId": "git",
            "state": "AVAILABLE",
            "statusMessage": "Available",
            "forkable": True,
            "project": {"key": project_key, "id": 84, "name": project_key, "public": False, "type": "NORMAL"},
            "public": False,
            "links": {
                "clone": [
                    {"href": f"ssh://git@{host}:7999/{project_key.lower()}/{slug}.git", "name": "ssh"},
                    {"href": f"https://{host}/scm/{project_key.lower()}/{slug}.git", "name": "http"},
                ],
                "self": [{"href": f"https://{host}/projects/{project_key}/repos/{slug}/browse"}],
            },
        },
        "changes": [change(*c) for c in changes],
    }


def bitbucket_server_delivery(
    payload: dict[str, Any], secret: str | None, *, event: str = "repo:refs_changed", request_id: str | None = None
) -> tuple[bytes, dict[str, str]]:
    """Headers as Bitbucket Data Center sends them: X-Event-Key, X-Request-Id, X-Hub-Signature."""
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Atlassian HttpClient 4.2.0 / Bitbucket-8.9.0 (8009000) / Default",
        "X-Event-Key": event,
        "X-Request-Id": request_id or str(uuid.uuid4()),
    }
    if secret is not None:
        headers["X-Hub-Signature"] = "sha256=" + _hmac(secret, body)
    return body, headers


def github_org_ping(kind: str = "Organization") -> dict[str, Any]:
    """An organisation's (or a GitHub App's) ping: no repository in it."""
    return {
        "zen": "Design for failure.",
        "hook_id": 77,
        "hook": {"type": kind, "id": 77, "active": True, "events": ["push"], "config": {"content_type": "json"}},
        "organization": {"login": "acme", "id": 9},
        "sender": {"login": "dev", "id": 1, "type": "User"},
    }


def gitlab_system_push(payload: dict[str, Any], token: str | None, *, uuid_: str) -> tuple[bytes, dict[str, str]]:
    """The same push through a system hook: GitLab sends the project hook's bytes with
    ``X-Gitlab-Event: System Hook`` (``event_name`` says it is a push) and the event's UUID."""
    body, headers = gitlab_delivery(payload, token, event="System Hook", uuid_=uuid_)
    return body, headers
