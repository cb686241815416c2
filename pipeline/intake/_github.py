"""GitHub push and ping webhooks: https://docs.github.com/webhooks (see shared/WEBHOOKS.md)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from pipeline.errors import BadPayload, BadSignature, UnsupportedMediaType
from pipeline.intake._event import PushEvent, validate_ref, validate_sha

__all__ = ["GitHubDelivery", "parse", "verify"]


class GitHubDelivery:
    """The parts of one delivery the receiver needs before it trusts anything."""

    def __init__(self, event: str, delivery_id: str, hook_id: str, payload: dict[str, Any]) -> None:
        self.event = event
        self.delivery_id = delivery_id
        self.hook_id = hook_id
        self.payload = payload

    @property
    def repository(self) -> dict[str, Any]:
        repo = self.payload.get("repository")
        return repo if isinstance(repo, dict) else {}

    def repository_urls(self) -> tuple[str, ...]:
        repo = self.repository
        keys = ("clone_url", "ssh_url", "html_url", "git_url", "url")
        return tuple(v for k in keys if isinstance(v := repo.get(k), str))

    def full_name(self) -> str | None:
        name = self.repository.get("full_name")
        return name if isinstance(name, str) else None

    def push(self) -> PushEvent:
        p = self.payload
        try:
            head = p.get("head_commit") or {}
            return PushEvent(
                repository_urls=self.repository_urls(),
                full_name=self.full_name(),
                ref=validate_ref(p.get("ref")),
                before=validate_sha(p.get("before"), "before"),
                after=validate_sha(p.get("after"), "after"),
                head_message=str(head.get("message") or "") if isinstance(head, dict) else "",
            )
        except ValueError as exc:
            raise BadPayload(f"push payload: {exc}") from None


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name.lower())
    if not value:
        raise BadPayload(f"missing header {name}: is this a GitHub webhook?")
    return value


def parse(headers: Mapping[str, str], body: bytes) -> GitHubDelivery:
    """Decode JSON or form-encoded (``payload=``) bodies; ``headers`` keys are lower case."""
    event = _header(headers, "X-GitHub-Event")
    delivery_id = _header(headers, "X-GitHub-Delivery")
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        raw = body
    elif content_type == "application/x-www-form-urlencoded":
        fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        if "payload" not in fields:
            raise BadPayload("form-encoded GitHub webhook without a 'payload' field")
        raw = fields["payload"][0].encode()
    else:
        raise UnsupportedMediaType(
            f"content type {content_type or '(none)'!r}: send application/json or "
            "application/x-www-form-urlencoded"
        )
    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadPayload(f"body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise BadPayload("body must be a JSON object")
    return GitHubDelivery(event, delivery_id, headers.get("x-github-hook-id", ""), payload)


def verify(headers: Mapping[str, str], body: bytes, secret: bytes) -> None:
    """HMAC-SHA256 of the raw body, compared in constant time (form bodies included as sent)."""
    given = headers.get("x-hub-signature-256")
    if not given:
        raise BadSignature("missing X-Hub-Signature-256 header: set a secret on the GitHub webhook")
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise BadSignature("X-Hub-Signature-256 does not match the body signed with the project's secret")
