"""Polling for hosts that send no webhooks: ``git ls-remote``, then the webhook's own path.

A head is new when this project never built that commit for that ref. Each head is recorded as
a delivery keyed by project, ref and SHA, so two schedulers polling at once queue it only once.
The first poll of a project builds its branch heads but only records the tags that already
exist: a repository with years of release tags must not queue a build for each.
"""

from __future__ import annotations

import hashlib
import logging

from pipeline import source
from pipeline.config import Config
from pipeline.intake._accept import accept_pushes
from pipeline.intake._event import ZERO_SHA, PushEvent
from pipeline.intake._filters import skip_reason
from pipeline.store import Database, builds, deliveries

__all__ = ["poll_project"]

log = logging.getLogger(__name__)


def poll_project(db: Database, config: Config, name: str) -> list[int]:
    """Queue builds for new heads of the project's branches and tags; returns the build ids."""
    project = config.projects[name]
    refs = source.remote_refs(project)
    with db.session() as session:
        first_poll = not deliveries.has_any(session, "poll", name)
    queued: list[int] = []
    for ref, sha in sorted(refs.items()):
        push = PushEvent(ref=ref, before=ZERO_SHA, after=sha)
        if skip_reason(project, push) is not None:
            continue
        key = hashlib.sha256(f"{ref}\0{sha}".encode()).hexdigest()
        with db.session() as session:
            if builds.ref_was_built(session, name, ref, sha):
                continue
            # a tag that predates polling is only recorded: the push list is empty for it
            old_tag = first_poll and push.tag is not None
            accepted = accept_pushes(
                session,
                name,
                project,
                [] if old_tag else [push],
                trigger="poll",
                provider="poll",
                delivery_id=key,
                hook_id=name,
                event="poll",
                repository=source.public_url(project.repo)[:500],
                reason="the tag existed before polling started" if old_tag else "",
            )
        queued.extend(accepted.build_ids)  # a duplicate: another scheduler queued it a moment ago
    if queued:
        log.info("project %s: polling queued builds %s", name, queued)
    return queued
