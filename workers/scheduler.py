"""Periodic duties inside the service's processes (APScheduler), not the build queue itself:
the lease reaper, polling of repositories whose host sends no webhooks, and asking whether the
pull requests of promotions in pull-request mode were merged."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler

from pipeline.config import Config
from pipeline.errors import PipelineError
from pipeline.intake import poll_project
from pipeline.promotion import check_pull_requests
from pipeline.store import Database, jobs

__all__ = ["reap_expired_leases", "start_scheduler"]

log = logging.getLogger(__name__)


def reap_expired_leases(db: Database, config: Config) -> jobs.Reaped:
    """Give builds and promotions whose worker went quiet back to the queue."""
    with db.session(immediate=True) as session:
        reaped = jobs.reap(session, jobs.BUILDS, config.worker.max_attempts)
        promotions = jobs.reap(session, jobs.PROMOTIONS, config.worker.max_attempts)
    for kind, result in (("build", reaped), ("promotion", promotions)):
        if result.requeued:
            log.warning("requeued %s(s) %s: their worker stopped sending heartbeats", kind, result.requeued)
        if result.failed:
            log.error("failed %s(s) %s: too many lost leases", kind, result.failed)
    return reaped


def start_scheduler(db: Database, config: Config) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(daemon=True)
    scheduler.add_job(
        reap_expired_leases, "interval", seconds=config.worker.reap_seconds, args=[db, config],
        id="reap-expired-leases", max_instances=1, coalesce=True,
    )
    if any(env.gitops and env.gitops.pull_request for p in config.projects.values() for env in p.environments):
        scheduler.add_job(
            check_pull_requests, "interval", seconds=config.worker.merge_check_seconds, args=[db, config],
            id="check-pull-requests", max_instances=1, coalesce=True,
        )
    for name, project in config.projects.items():
        if project.poll:
            scheduler.add_job(
                _poll, "interval", seconds=project.poll, args=[db, config, name], id=f"poll-{name}",
                max_instances=1, coalesce=True, next_run_time=datetime.now(UTC),
            )
    scheduler.start()
    return scheduler


def _poll(db: Database, config: Config, name: str) -> None:
    try:
        poll_project(db, config, name)
    except PipelineError as exc:  # an unreachable host must not stop the other duties
        log.warning("project %s: polling failed: %s", name, exc.message)
