"""Telling the Git host and the team: commit statuses, deployments and notifications.

Two halves joined by the outbox (``store.notifications``): ``_events`` adds rows in the
transaction of the change they report (the hooks the build, the promotion and the intake
call), and ``deliver`` sends one row, claimed by ``workers.notification_worker``. One module
per host API (``_github``, ``_gitlab``, ``_gitea``, ``_bitbucket``, ``_bitbucket_dc``) and per
target kind (``_webhook``, ``_slack``); ``_http`` is the one place a request is sent.
"""

from pipeline.notify._deliver import STATUS_CLIENTS, Delivered, deliver
from pipeline.notify._events import (
    build_ended,
    build_queued,
    build_started,
    environment_released,
    promotion_ended,
    promotion_requested,
    promotion_started,
    report_event,
)
from pipeline.notify._webhook import signature

__all__ = [
    "STATUS_CLIENTS",
    "Delivered",
    "build_ended",
    "build_queued",
    "build_started",
    "deliver",
    "environment_released",
    "promotion_ended",
    "promotion_requested",
    "promotion_started",
    "report_event",
    "signature",
]
