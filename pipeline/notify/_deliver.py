"""Delivering one outbox row: find its receiver in the config as it is now, build the request
with that receiver's module, send it.

The row says what to say; where it goes is read from the config at delivery time (a status to
its project's ``status.api_url``, a notification to its target), so a payload value can never
choose a host. A row whose project or target left the config is a dead letter, saying so.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeline.config import Config, ProjectConfig
from pipeline.errors import ConfigError, DeliveryError
from pipeline.notify import _bitbucket, _bitbucket_dc, _gitea, _github, _gitlab, _slack, _webhook
from pipeline.notify._hosts import DEFAULT_API, Host, StatusUpdate, repository_path
from pipeline.notify._http import Answer, Request, Sender, send
from pipeline.store import Notification

__all__ = ["Delivered", "deliver"]

STATUS_CLIENTS: dict[str, Callable[[Host, StatusUpdate], Request]] = {
    "github": _github.status,
    "gitlab": _gitlab.status,
    "gitea": _gitea.status,
    "forgejo": _gitea.status,
    "bitbucket": _bitbucket.status,
    "bitbucket-dc": _bitbucket_dc.status,
}


@dataclass(frozen=True)
class Delivered:
    code: int
    result: dict[str, Any] | None = None  # what later rows of the subject need (a deployment id)


def _host(config: Config, row: Notification) -> Host:
    project: ProjectConfig | None = config.projects.get(row.project)
    where = f"projects.{row.project}"
    if project is None or project.status is None:
        raise DeliveryError(f"{where}.status is no longer in the config", retryable=False)
    status = project.status
    provider = status.provider or str(row.payload.get("provider", ""))
    api_url = status.api_url or DEFAULT_API.get(provider)
    if api_url is None:
        raise DeliveryError(f"{where}.status.api_url: {provider} is self-hosted; say where its API is", retryable=False)
    repository = status.repository or repository_path(project.repo)
    if provider != "bitbucket-dc" and not repository:
        raise DeliveryError(f"{where}.status.repository: cannot tell it from repo {project.repo!r}", retryable=False)
    try:
        token = status.token(where)
    except ConfigError as exc:
        raise DeliveryError(exc.message, retryable=False) from None
    return Host(provider, api_url, repository or "", token)


def _update(row: Notification) -> StatusUpdate:
    p = row.payload
    return StatusUpdate(
        str(p["sha"]), p["state"], str(p["context"]), str(p.get("description", "")), p.get("target_url")
    )


def _status(client: Sender, config: Config, row: Notification, cap: float) -> Delivered:
    host = _host(config, row)
    build = STATUS_CLIENTS.get(host.provider)
    if build is None:
        raise DeliveryError(f"projects.{row.project}.status.provider: no client for {host.provider}", retryable=False)
    try:
        answer = send(client, build(host, _update(row)), max_retry_after=cap)
    except DeliveryError as exc:
        if host.provider == "gitlab" and _gitlab.already_there(exc.message):
            return Delivered(400, {"already": True})
        raise
    return Delivered(answer.code)


def _deployment(client: Sender, config: Config, row: Notification, deployment_id: int | None, cap: float) -> Delivered:
    """GitHub: create the deployment once (the first row of the promotion that gets through),
    then post this row's state to it."""
    host, p = _host(config, row), row.payload
    created: Answer | None = None
    if deployment_id is None:
        request = _github.create_deployment(
            host,
            str(p["sha"]),
            str(p["environment"]),
            str(p.get("description", "")),
            {"promotion_id": p.get("promotion_id"), "digest": p.get("digest")},
        )
        created = send(client, request, max_retry_after=cap)
        if not isinstance(created.data, dict) or not isinstance(created.data.get("id"), int):
            raise DeliveryError("GitHub deployment: the answer carries no deployment id", retryable=False)
        deployment_id = int(created.data["id"])
    request = _github.deployment_status(
        host, deployment_id, p["state"], str(p["environment"]), str(p.get("description", "")), p.get("target_url")
    )
    answer = send(client, request, max_retry_after=cap)
    return Delivered(answer.code, {"deployment_id": deployment_id})


def _notification(client: Sender, config: Config, row: Notification, cap: float) -> Delivered:
    target = config.notifications.target(row.target)
    if target is None or target.kind != row.kind:
        raise DeliveryError(f"notifications.targets: {row.target} is no longer in the config", retryable=False)
    p = row.payload
    data: dict[str, Any] = p.get("data", {})
    try:
        if target.kind == "webhook":
            source = config.notifications.base_url or "urn:pipeline"
            created = row.created_at or dt.datetime.now(dt.UTC)
            request = _webhook.request(
                target, _webhook.cloud_event(row.id, row.event, row.subject, created, data, source)
            )
        else:
            facts = {k: str(v) for k, v in _facts(data).items() if v is not None}
            request = _slack.request(
                target, _slack.message(row.event, str(p.get("title", row.event)), facts, p.get("link"))
            )
    except ConfigError as exc:
        raise DeliveryError(exc.message, retryable=False) from None
    return Delivered(send(client, request, max_retry_after=cap).code)


def _facts(data: dict[str, Any]) -> dict[str, Any]:
    """The lines a person reads in a chat message."""
    subject: Any = next(iter(data.values()), {}) if data else {}
    if not isinstance(subject, dict):
        return {}
    keys = ("project", "environment", "branch", "commit", "digest", "status", "actor", "error", "reason")
    return {k: subject[k] for k in keys if subject.get(k) is not None}


def deliver(config: Config, row: Notification, *, deployment_id: int | None = None) -> Delivered:
    """Send ``row`` once; raises ``DeliveryError`` (retryable or not) when it did not arrive.
    ``deployment_id``: the GitHub deployment an earlier row of the promotion created."""
    settings = config.notifications
    cap = settings.max_retry_seconds
    with Sender(settings.timeout_seconds) as client:
        if row.kind == "status":
            return _status(client, config, row, cap)
        if row.kind == "deployment":
            return _deployment(client, config, row, deployment_id, cap)
        return _notification(client, config, row, cap)
