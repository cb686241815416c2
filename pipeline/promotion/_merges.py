"""Promotions waiting on a pull request: resumed once it is merged, failed if it was closed.

A scheduler duty (``workers.scheduler``) calls ``check_pull_requests`` every so often; the
host is asked, not Git, because a squash or rebase merge leaves no commit of ours to find.
"""

from __future__ import annotations

import logging

from pipeline.config import Config
from pipeline.errors import PipelineError
from pipeline.gitops import pull_request_host
from pipeline.promotion.steps import pull_request_number
from pipeline.store import Database, promotions

__all__ = ["check_pull_requests"]

log = logging.getLogger(__name__)


def check_pull_requests(db: Database, config: Config) -> dict[int, str]:
    """Promotion id -> what its pull request is now (``open``, ``merged``, ``closed``)."""
    with db.session() as session:
        waiting = promotions.awaiting_merge(session)
    found: dict[int, str] = {}
    for row in waiting:
        project = config.projects.get(row.project)
        gitops = next((e.gitops for e in project.environments if e.name == row.environment), None) if project else None
        if gitops is None or gitops.pull_request is None or not row.gitops_pull_request:
            continue
        number = pull_request_number(row.gitops_pull_request)
        host = pull_request_host(gitops.pull_request)
        try:
            found[row.id] = state = host.state(number)
        except PipelineError as exc:  # the host may be away: ask again next time
            log.warning("promotion %s: cannot ask about pull request %s: %s", row.id, number, exc.message)
            continue
        finally:
            host.close()
        with db.session(immediate=True) as session:
            if state == "merged":
                steps = [
                    dict(s, status="merged", message=f"{s['message']}; merged")
                    if s["status"] == "awaiting_merge"
                    else s
                    for s in row.steps
                ]
                promotions.resume(session, row.id, steps)
            elif state == "closed":
                promotions.abandon(
                    session,
                    row.id,
                    f"pull request {row.gitops_pull_request} was closed without "
                    "merging; the environment keeps what it had",
                )
        if state != "open":
            log.info("promotion %s: pull request %s %s", row.id, number, state)
    return found
