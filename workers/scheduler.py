"""Periodic duties inside the service's processes (APScheduler), not the build queue itself:
the lease reaper, polling of repositories whose host sends no webhooks, asking whether the
pull requests of promotions in pull-request mode were merged, and retention (``cleanup.schedule``:
the registry cleanup, mirrors' ``git gc``, old build logs, builder caches)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler

from pipeline import notify
from pipeline.cleanup import run_retention
from pipeline.config import Config, LiveConfig
from pipeline.config_reload import CHECK_SECONDS, ReloadFollower
from pipeline.errors import PipelineError
from pipeline.intake import poll_project
from pipeline.promotion import check_pull_requests
from pipeline.store import Database, delivery_log, jobs

__all__ = ["prune_delivery_log", "reap_expired_leases", "start_scheduler"]

log = logging.getLogger(__name__)


def reap_expired_leases(db: Database, config: Config | LiveConfig) -> jobs.Reaped:
    """Give builds, promotions, verifications and deliveries whose worker went quiet back to the queue."""
    current = LiveConfig.of(config).current
    attempts = current.worker.max_attempts
    with db.session(immediate=True) as session:
        reaped = jobs.reap(session, jobs.BUILDS, attempts)
        promotions = jobs.reap(session, jobs.PROMOTIONS, attempts)
        verifications = jobs.reap(session, jobs.VERIFICATIONS, attempts)
        deliveries = jobs.reap(session, jobs.NOTIFICATIONS, current.notifications.max_attempts)
        for build_id in reaped.failed:  # given up: the commit and the team hear of it like any failure
            notify.build_ended(session, current, build_id, failure=False)
        for promotion_id in promotions.failed:
            notify.promotion_ended(session, current, promotion_id)
    results = (
        ("build", reaped),
        ("promotion", promotions),
        ("verification", verifications),
        ("notification", deliveries),
    )
    for kind, result in results:
        if result.requeued:
            log.warning("requeued %s(s) %s: their worker stopped sending heartbeats", kind, result.requeued)
        if result.failed:
            log.error("failed %s(s) %s: too many lost leases", kind, result.failed)
    return reaped


PRUNE_SECONDS = 3600


def prune_delivery_log(db: Database, config: Config | LiveConfig) -> delivery_log.Pruned:
    """Drop stored bodies and old rows of the delivery log (``intake:`` in the config)."""
    intake = LiveConfig.of(config).current.intake
    with db.session() as session:
        pruned = delivery_log.prune(
            session,
            datetime.now(UTC),
            keep_bodies_days=intake.keep_bodies_days,
            keep_deliveries_days=intake.keep_deliveries_days,
        )
    if pruned.bodies or pruned.rows:
        log.info("delivery log: dropped %d stored bodies and %d rows", pruned.bodies, pruned.rows)
    return pruned


def start_scheduler(db: Database, config: Config | LiveConfig) -> BackgroundScheduler:
    """The duties, planned from the config; a reload (``pipeline.config_reload``) re-plans them:
    a project that gained ``poll`` starts being polled, one that lost it stops."""
    live = LiveConfig.of(config)
    scheduler = BackgroundScheduler(daemon=True)
    follower = ReloadFollower(db, live)
    follower.mark_current()
    scheduler.add_job(
        follower.check, "interval", seconds=CHECK_SECONDS, id="follow-config-reloads", max_instances=1, coalesce=True
    )
    _plan(scheduler, db, live)
    live.on_change(lambda _: _plan(scheduler, db, live))
    scheduler.start()
    return scheduler


def _plan(scheduler: BackgroundScheduler, db: Database, live: LiveConfig) -> None:
    """(Re)place every duty that depends on the config; each reads ``live.current`` when it runs."""
    config = live.current
    duties: dict[str, tuple[Callable[[Database, LiveConfig], object], int, list[object]]] = {
        "reap-expired-leases": (reap_expired_leases, config.worker.reap_seconds, [db, live]),
        "prune-delivery-log": (prune_delivery_log, PRUNE_SECONDS, [db, live]),
    }
    if any(env.gitops and env.gitops.pull_request for p in config.projects.values() for env in p.environments):
        duties["check-pull-requests"] = (_check_pull_requests, config.worker.merge_check_seconds, [db, live])
    if config.cleanup.schedule:
        duties["cleanup"] = (_retention, config.cleanup.schedule, [db, live])
    polled = {f"poll-{name}": project.poll for name, project in config.projects.items() if project.poll}
    for job in scheduler.get_jobs():
        if job.id != "follow-config-reloads" and job.id not in duties and job.id not in polled:
            job.remove()
    for job_id, (duty, seconds, args) in duties.items():
        scheduler.add_job(
            duty,
            "interval",
            seconds=seconds,
            args=args,
            id=job_id,
            max_instances=1,
            coalesce=True,
            replace_existing=True,
        )
    for job_id, seconds in polled.items():
        existing = scheduler.get_job(job_id)
        if existing is None or existing.trigger.interval.total_seconds() != seconds:
            scheduler.add_job(
                _poll,
                "interval",
                seconds=seconds,
                args=[db, live, job_id.removeprefix("poll-")],
                id=job_id,
                max_instances=1,
                coalesce=True,
                replace_existing=True,
                next_run_time=datetime.now(UTC),
            )


def _check_pull_requests(db: Database, live: LiveConfig) -> None:
    check_pull_requests(db, live.current)


def _retention(db: Database, live: LiveConfig) -> None:
    """One retention run; a failure is logged and the next run tries again (each project's
    registry failures are already kept in its report, so this catches only the unexpected)."""
    try:
        done = run_retention(db, live.current)
    except PipelineError as exc:
        log.warning("retention failed: %s", exc.message)
        return
    for report in done.projects:
        said = report.refused or "; ".join(report.errors)
        log.info(
            "cleanup of %s: deleted %s images, kept %s builds%s",
            report.project,
            len(report.deleted),
            sum(1 for d in report.decisions if d.action == "keep"),
            f" ({said})" if said else "",
        )


def _poll(db: Database, live: LiveConfig, name: str) -> None:
    if name not in live.current.projects:
        return  # removed by a reload just now
    try:
        poll_project(db, live.current, name)
    except PipelineError as exc:  # an unreachable host must not stop the other duties
        log.warning("project %s: polling failed: %s", name, exc.message)
