"""What a change says, and to whom: the outbox rows for each event of a build or promotion.

The hooks (``build_queued``, ``build_started``, ``build_ended``, ``promotion_started``,
``promotion_ended``, ``promotion_requested``, ``environment_released``, ``report_event``) are
called in the transaction that records the change, so a status or notification exists exactly
when the change does. They only add rows (no I/O), each inside a savepoint: a bug here is
logged and rolled back alone, and never fails or slows the build or promotion it reports.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from pipeline.config import Config, ProjectConfig
from pipeline.store import Build, EnvironmentHold, Promotion, builds, notifications

__all__ = [
    "build_ended",
    "build_queued",
    "build_started",
    "environment_released",
    "promotion_ended",
    "promotion_requested",
    "promotion_started",
    "report_event",
]

log = logging.getLogger(__name__)

_PUBLIC_HOSTS = {"github.com": "github", "gitlab.com": "gitlab", "bitbucket.org": "bitbucket"}


@contextmanager
def _outbox(session: Session, what: str) -> Iterator[None]:
    """A savepoint around the rows of one event: on any error only they are undone."""
    try:
        with session.begin_nested():
            yield
    except Exception:
        log.exception("notifications for %s not queued (the change itself is recorded)", what)


def _link(config: Config, kind: str, row_id: int) -> str | None:
    base = config.notifications.base_url
    return f"{base}/api/v1/{kind}/{row_id}" if base else None


def _provider(session: Session, name: str, project: ProjectConfig, delivery_id: int | None) -> str | None:
    """The configured provider, else the webhook's, else the public host the repo is on."""
    assert project.status is not None
    if project.status.provider:
        return project.status.provider
    if found := notifications.webhook_provider(session, name, delivery_id):
        return found
    host = urlsplit(project.repo).hostname if "://" in project.repo else project.repo.partition("@")[2].split(":")[0]
    return _PUBLIC_HOSTS.get(host or "")


def _status(session: Session, config: Config, build: Build, state: str, description: str) -> None:
    project = config.projects.get(build.project)
    if project is None or project.status is None:
        return
    provider = _provider(session, build.project, project, build.delivery_id)
    if provider is None:
        log.warning("project %s: no commit status sent: set projects.%s.status.provider", build.project, build.project)
        return
    notifications.add_notification(
        session,
        kind="status",
        target=f"status:{build.project}",
        subject=f"build:{build.id}",
        event=f"build.{state}",
        project=build.project,
        build_id=build.id,
        payload={
            "provider": provider,
            "sha": build.commit,
            "state": state,
            "context": project.status.context,
            "description": description[:255],
            "target_url": _link(config, "builds", build.id),
        },
    )


def _notify(
    session: Session,
    config: Config,
    event: str,
    *,
    project: str,
    environment: str | None,
    subject: str,
    data: dict[str, Any],
    title: str,
    link: str | None,
    build_id: int | None = None,
    promotion_id: int | None = None,
) -> None:
    for target in config.notifications.targets:
        if not target.wants(event, project, environment):
            continue
        notifications.add_notification(
            session,
            kind=target.kind,
            target=target.name,
            subject=subject,
            event=event,
            project=project,
            environment=environment,
            build_id=build_id,
            promotion_id=promotion_id,
            payload={"title": title, "link": link, "data": data},
        )


def build_queued(session: Session, config: Config, build_id: int) -> None:
    """``pending`` on the commit, as soon as the build is queued."""
    with _outbox(session, f"build {build_id}"):
        _status(session, config, builds.get_build(session, build_id), "pending", "queued")


def build_started(session: Session, config: Config, build_id: int) -> None:
    """``running``, when a worker takes the build. A build the webhook or the poller queued has
    its ``pending`` written here, first: the intake records a push in one statement (its hot
    path), which has no room for the outbox row."""
    with _outbox(session, f"build {build_id}"):
        build = builds.get_build(session, build_id)
        if not notifications.has_rows(session, f"status:{build.project}", f"build:{build.id}"):
            _status(session, config, build, "pending", "queued")
        _status(session, config, build, "running", f"building (attempt {build.attempts})")


def _build_data(build: Build) -> dict[str, Any]:
    return {
        "build": {
            "id": build.id,
            "project": build.project,
            "commit": build.commit,
            "branch": build.branch,
            "ref": build.ref,
            "status": build.status,
            "digest": build.digest,
            "image": build.image,
            "error": build.error,
        }
    }


def build_ended(session: Session, config: Config, build_id: int, *, failure: bool = True) -> None:
    """The build's end as the row now says (succeeded, skipped, failed): a final status and
    ``build.succeeded`` / ``build.failed``. ``failure``: the build itself failed (the
    Dockerfile), not the service (an engine or registry that stayed down: ``error``)."""
    with _outbox(session, f"build {build_id}"):
        build = session.get(Build, build_id, populate_existing=True)  # the row as just finished
        if build is None:
            return
        if build.status == "succeeded":
            state, description, event = "success", f"built {build.digest}", "build.succeeded"
        elif build.status == "skipped":
            state, description, event = "success", f"skipped: {build.error or ''}", None
        else:  # failed; cancelled (someone asked): no build.failed for that
            state = "failure" if failure else "error"
            description = f"{build.status}: {build.error}"
            event = "build.failed" if build.status == "failed" else None
        _status(session, config, build, state, description)
        if event is not None:
            _notify(
                session,
                config,
                event,
                project=build.project,
                environment=None,
                subject=f"build:{build.id}",
                data=_build_data(build),
                title=f"{build.project}: build {build.id} of {build.branch or build.ref} {build.status}",
                link=_link(config, "builds", build.id),
                build_id=build.id,
            )


def _promotion_data(promotion: Promotion, build: Build | None) -> dict[str, Any]:
    return {
        "promotion": {
            "id": promotion.id,
            "project": promotion.project,
            "environment": promotion.environment,
            "digest": promotion.digest,
            "status": promotion.status,
            "trigger": promotion.trigger,
            "actor": promotion.actor,
            "error": promotion.error,
            "build_id": promotion.build_id,
            "commit": build.commit if build else None,
        }
    }


def _deployment(session: Session, config: Config, promotion: Promotion, state: str, description: str) -> None:
    """The promotion as the host shows deployments: GitHub's Deployments API, or a commit
    status ``pipeline/deploy/{environment}`` elsewhere."""
    project = config.projects.get(promotion.project)
    if project is None or project.status is None or not project.status.deployments or promotion.build_id is None:
        return
    build = builds.get_build(session, promotion.build_id)
    provider = _provider(session, promotion.project, project, build.delivery_id)
    if provider is None:
        return
    github = provider == "github"
    notifications.add_notification(
        session,
        kind="deployment" if github else "status",
        target=f"status:{promotion.project}",
        subject=f"promotion:{promotion.id}",
        event=f"deploy.{state}",
        project=promotion.project,
        environment=promotion.environment,
        build_id=build.id,
        promotion_id=promotion.id,
        payload={
            "provider": provider,
            "sha": build.commit,
            "state": state,
            "context": f"pipeline/deploy/{promotion.environment}",
            "environment": promotion.environment,
            "description": description[:255],
            "target_url": _link(config, "promotions", promotion.id),
            "digest": promotion.digest,
            "promotion_id": promotion.id,
        },
    )


def promotion_started(session: Session, config: Config, promotion_id: int) -> None:
    with _outbox(session, f"promotion {promotion_id}"):
        promotion = session.get(Promotion, promotion_id)
        if promotion is not None:
            _deployment(session, config, promotion, "running", f"promoting {promotion.digest}")


def promotion_ended(session: Session, config: Config, promotion_id: int) -> None:
    """succeeded, failed or rejected (refused when the worker looked), as the row now says."""
    with _outbox(session, f"promotion {promotion_id}"):
        promotion = session.get(Promotion, promotion_id, populate_existing=True)
        if promotion is None or promotion.status not in ("succeeded", "failed", "rejected"):
            return
        state = {"succeeded": "success", "failed": "failure", "rejected": "error"}[promotion.status]
        said = promotion.digest if promotion.status == "succeeded" else promotion.error or ""
        _deployment(session, config, promotion, state, f"{promotion.status}: {said}")
        _promotion_event(session, config, promotion, f"promotion.{promotion.status}")


def _promotion_event(session: Session, config: Config, promotion: Promotion, event: str) -> None:
    build = builds.get_build(session, promotion.build_id) if promotion.build_id else None
    _notify(
        session,
        config,
        event,
        project=promotion.project,
        environment=promotion.environment,
        subject=f"promotion:{promotion.id}",
        data=_promotion_data(promotion, build),
        title=f"{promotion.project}/{promotion.environment}: {event} (promotion {promotion.id})",
        link=_link(config, "promotions", promotion.id),
        build_id=promotion.build_id,
        promotion_id=promotion.id,
    )


def promotion_requested(session: Session, config: Config, promotion: Promotion) -> None:
    """A request refused at once (``promotion.rejected``); a rollback (``rollback``, and the
    ``hold`` it places)."""
    with _outbox(session, f"promotion {promotion.id}"):
        if promotion.status == "rejected":
            _promotion_event(session, config, promotion, "promotion.rejected")
        elif promotion.trigger == "rollback":
            _promotion_event(session, config, promotion, "rollback")
            _promotion_event(session, config, promotion, "hold")


def environment_released(session: Session, config: Config, hold: EnvironmentHold) -> None:
    with _outbox(session, f"hold {hold.id}"):
        _notify(
            session,
            config,
            "release",
            project=hold.project,
            environment=hold.environment,
            subject=f"hold:{hold.id}",
            data={"hold": {"id": hold.id, "reason": hold.reason, "released_by": hold.released_by}},
            title=f"{hold.project}/{hold.environment}: auto-promotion released by {hold.released_by}",
            link=None,
        )


def report_event(
    session: Session,
    config: Config,
    event: str,
    *,
    project: str,
    environment: str | None,
    subject: str,
    data: dict[str, Any],
    title: str,
    promotion_id: int | None = None,
) -> None:
    """Any other event the targets may subscribe to (``verification.failed``, issue 21)."""
    with _outbox(session, subject):
        _notify(
            session,
            config,
            event,
            project=project,
            environment=environment,
            subject=subject,
            data=data,
            title=title,
            link=_link(config, "promotions", promotion_id) if promotion_id else None,
            promotion_id=promotion_id,
        )
