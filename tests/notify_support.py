"""What the notification tests share: a config with statuses and targets pointed at the
recording stand-in (``tests.git_host_api``), and a delivery worker run until the outbox is done."""

from __future__ import annotations

import time
from typing import Any

from pipeline.config import Config
from pipeline.store import Database, Notification, notifications
from workers.notification_worker import NotificationWorker

TOKEN_ENV, TOKEN = "HOST_TOKEN_FOR_TESTS", "host-token-5ecr3t-value"
SECRET_ENV, SECRET = "HOOK_SECRET_FOR_TESTS", "hook-hmac-5ecr3t-value"
SLACK_ENV, SLACK_PATH = "SLACK_URL_FOR_TESTS", "/services/T0001/B0001/slack5ecr3tpath"
BASE_URL = "https://pipeline.example.com"


def notifications_config(hosts_url: str, **overrides: Any) -> dict[str, Any]:
    """``notifications:`` with a webhook and a Slack target on the stand-in, quick retries."""
    return {
        "base_url": BASE_URL,
        "retry_seconds": 0.01,
        "max_retry_seconds": 0.05,
        "timeout_seconds": 5,
        "max_attempts": 3,
        "targets": [
            {"name": "ops-hook", "kind": "webhook", "url": f"{hosts_url}/hooks/ops", "secret_env": SECRET_ENV},
            {"name": "ops-chat", "kind": "slack", "url_env": SLACK_ENV, "allowed_hosts": ["127.0.0.1"]},
        ],
        **overrides,
    }


def drain(db: Database, config: Config, rounds: int = 400) -> list[Notification]:
    """Deliver until no row is waiting (retries are due after milliseconds); all rows, in order."""
    worker = NotificationWorker(db, config, name="test-notifier")
    for _ in range(rounds):
        if worker.run_once():
            continue
        with db.session() as session:
            waiting = notifications.counts(session)
        if waiting["pending"] == 0 and waiting["running"] == 0:
            break
        time.sleep(0.01)  # a retry not yet due
    return rows(db)


def rows(db: Database) -> list[Notification]:
    with db.session() as session:
        return list(reversed(notifications.list_notifications(session, notifications.NotificationFilter(), limit=1000)))
