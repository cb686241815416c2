"""GitHub push and ping deliveries built field for field as GitHub sends them (WEBHOOKS.md)."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any
from urllib.parse import urlencode

ZERO = "0" * 40


def push_payload(full_name: str, clone_url: str, *, ref: str = "refs/heads/main", before: str = ZERO,
                 after: str, message: str = "change", host: str = "github.com") -> dict[str, Any]:
    owner, name = full_name.split("/", 1)
    deleted = after == ZERO
    head = None if deleted else {
        "id": after, "tree_id": "b" * 40, "distinct": True, "message": message,
        "timestamp": "2026-11-28T02:00:00Z", "url": f"https://{host}/{full_name}/commit/{after}",
        "author": {"name": "Dev", "email": "dev@example.com", "username": "dev"},
        "committer": {"name": "Dev", "email": "dev@example.com", "username": "dev"},
        "added": ["Dockerfile"], "removed": [], "modified": [],
    }
    return {
        "ref": ref, "before": before, "after": after,
        "repository": {
            "id": 1296269, "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5", "name": name, "full_name": full_name,
            "private": True, "owner": {"name": owner, "login": owner},
            "html_url": f"https://{host}/{full_name}", "url": f"https://{host}/{full_name}",
            "clone_url": clone_url, "ssh_url": f"git@{host}:{full_name}.git",
            "git_url": f"git://{host}/{full_name}.git", "default_branch": "main",
            "created_at": 1700000000, "pushed_at": 1764295200,
        },
        "pusher": {"name": "dev", "email": "dev@example.com"},
        "sender": {"login": "dev", "id": 1, "type": "User"},
        "created": before == ZERO, "deleted": deleted, "forced": False, "base_ref": None,
        "compare": f"https://{host}/{full_name}/compare/{before[:12]}...{after[:12]}",
        "commits": [] if head is None else [head], "head_commit": head,
    }


def ping_payload(full_name: str, clone_url: str) -> dict[str, Any]:
    return {
        "zen": "Keep it logically awesome.", "hook_id": 42,
        "hook": {"type": "Repository", "id": 42, "active": True, "events": ["push"],
                 "config": {"content_type": "json", "insecure_ssl": "0", "url": "https://ci.example.com/webhooks/github"}},
        "repository": push_payload(full_name, clone_url, after="a" * 40)["repository"],
        "sender": {"login": "dev", "id": 1, "type": "User"},
    }


def delivery(payload: dict[str, Any], secret: str | None, *, event: str = "push", form: bool = False,
             delivery_id: str | None = None, signature: str | None = None) -> tuple[bytes, dict[str, str]]:
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
