"""Turning verified pushes into queued builds: shared by webhooks and the poller."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy.orm import Session

from pipeline.config import ProjectConfig
from pipeline.intake._event import PushEvent
from pipeline.intake._filters import needs_path_check, skip_reason
from pipeline.store import Delivery, builds, deliveries

__all__ = ["accept_pushes"]

log = logging.getLogger(__name__)


def accept_pushes(session: Session, name: str, project: ProjectConfig, pushes: Sequence[PushEvent],
                  record: Delivery, trigger: str) -> Delivery:
    """Queue a build for every push that passes the filters and record why the others did not.

    The delivery row and its builds are written in the caller's transaction, so a push is
    either fully accepted (recorded and queued) or not at all.
    """
    first = pushes[0] if pushes else None
    if first is not None:
        record.ref, record.before, record.after = first.ref, first.before, first.after
    deliveries.record_delivery(session, record)
    queued: list[int] = []
    reasons: list[str] = []
    for push in pushes:
        if reason := skip_reason(project, push):
            reasons.append(reason)
            continue
        build = builds.create_build(
            session, project=name, commit=push.after, ref=push.ref, branch=push.branch,
            trigger=trigger, delivery_id=record.id, before_commit=push.before,
            check_paths=needs_path_check(project, push),
        )
        queued.append(build.id)
        if superseded := builds.supersede_older(session, build, running=project.supersede_running):
            log.info("project %s: builds %s superseded by %s", name, superseded, build.id)
    record.build_ids = queued
    record.outcome = "queued" if queued else "ignored"
    record.reason = "; ".join(reasons) if reasons else ("" if queued else "no ref updates in the push")
    return record
