"""Commit statuses on every Git host's API and the delivery faults, on SQLite and PostgreSQL.

The hosts cannot be reached from here: ``tests.git_host_api`` answers as each API documents
(its docstring cites them) and records every request, so these tests check method, path, auth
header, body and the order pending -> running -> success/failure. Builds are rows (as the
promotion tests seed them); the real build is in ``test_notify_pipeline``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from pipeline import notify
from pipeline.build import cancel
from pipeline.config import Config, parse_config
from pipeline.store import (
    Database,
    Delivery,
    Promotion,
    builds,
    jobs,
    migrate,
    notifications,
    open_database,
    projects,
    promotions,
)
from tests.git_host_api import FakeHosts
from tests.notify_support import (
    BASE_URL,
    SECRET,
    SECRET_ENV,
    SLACK_ENV,
    SLACK_PATH,
    TOKEN,
    TOKEN_ENV,
    drain,
    notifications_config,
    rows,
)
from tests.services import free_port
from workers.scheduler import reap_expired_leases

SHA = "c0ffee" + "0" * 34


@pytest.fixture
def hosts(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHosts]:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    monkeypatch.setenv(SECRET_ENV, SECRET)
    with FakeHosts(TOKEN) as fake:
        monkeypatch.setenv(SLACK_ENV, fake.url + SLACK_PATH)
        yield fake


def _config(tmp_path: Path, status: dict[str, Any] | None, **notify_overrides: Any) -> Config:
    return parse_config(
        {
            "data_dir": str(tmp_path / "data"),
            "registries": {"local": {"url": "127.0.0.1:5000", "insecure": True}},
            "projects": {
                "app": {
                    "repo": "https://git.example.com/acme/app.git",
                    "image": {"registry": "local", "repository": "acme/app"},
                    **({"status": status} if status else {}),
                }
            },
            "notifications": notify_overrides.pop("notifications", None)
            or notifications_config(notify_overrides.pop("hosts_url", "http://127.0.0.1:1"), **notify_overrides),
        }
    )


def _build(db: Database, config: Config, status: str = "succeeded", error: str | None = None) -> int:
    """A build row taken through queued, running and its end, with the hooks the workers call."""
    with db.session() as session:
        projects.sync_projects(session, config.projects)
        build_id = builds.queue_build(
            session, project="app", commit=SHA, ref="refs/heads/main", branch="main", trigger="test"
        )
        notify.build_queued(session, config, build_id)
    with db.session() as session:
        builds.record_progress(session, build_id, status="running", attempts=1)
        notify.build_started(session, config, build_id)
    with db.session() as session:
        digest = "sha256:" + "ab" * 32 if status == "succeeded" else None
        builds.record_progress(session, build_id, status=status, digest=digest, error=error)
        notify.build_ended(session, config, build_id, failure=True)
    return build_id


# provider -> (api_url suffix, the path the status goes to, the auth header, the states in order)
HOSTS: dict[str, tuple[str, str, tuple[str, str], list[str]]] = {
    "github": ("", f"/repos/acme/app/statuses/{SHA}", ("authorization", f"Bearer {TOKEN}"), ["pending"] * 2),
    "github-enterprise": (
        "/api/v3",
        f"/api/v3/repos/acme/app/statuses/{SHA}",
        ("authorization", f"Bearer {TOKEN}"),
        ["pending"] * 2,
    ),
    "gitlab": ("", f"/api/v4/projects/acme%2Fapp/statuses/{SHA}", ("private-token", TOKEN), ["pending", "running"]),
    "gitea": ("", f"/api/v1/repos/acme/app/statuses/{SHA}", ("authorization", f"token {TOKEN}"), ["pending"] * 2),
    "forgejo": ("", f"/api/v1/repos/acme/app/statuses/{SHA}", ("authorization", f"token {TOKEN}"), ["pending"] * 2),
    "bitbucket": (
        "",
        f"/2.0/repositories/acme/app/commit/{SHA}/statuses/build",
        ("authorization", f"Bearer {TOKEN}"),
        ["INPROGRESS"] * 2,
    ),
    "bitbucket-dc": (
        "",
        f"/rest/build-status/1.0/commits/{SHA}",
        ("authorization", f"Bearer {TOKEN}"),
        ["INPROGRESS"] * 2,
    ),
}
FAILED = {"gitlab": "failed", "bitbucket": "FAILED", "bitbucket-dc": "FAILED"}


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    """The request shapes do not depend on the database; the queue tests below run on both."""
    database = open_database(f"sqlite:///{tmp_path / 'p.db'}")
    migrate(database)
    yield database
    database.dispose()


@pytest.mark.parametrize("host", list(HOSTS))
def test_each_host_gets_pending_running_then_the_end_in_its_own_shape(
    sqlite_db: Database, tmp_path: Path, hosts: FakeHosts, host: str
) -> None:
    db = sqlite_db
    suffix, path, (header, value), early = HOSTS[host]
    provider = host.removesuffix("-enterprise")
    config = _config(
        tmp_path, {"provider": provider, "api_url": hosts.url + suffix, "token_env": TOKEN_ENV}, hosts_url=hosts.url
    )
    ok, bad = _build(db, config), _build(db, config, "failed", "step 3/5 RUN make: exit code 2")
    drain(db, config)
    statuses = [c for c in hosts.accepted if "/hooks/" not in c.path and "/services/" not in c.path]
    assert [(c.method, c.path) for c in statuses] == [("POST", path)] * 6
    assert all(c.headers[header] == value for c in statuses)
    assert all(c.headers["content-type"] == "application/json" for c in statuses)
    bodies = [c.json for c in statuses]
    key = "state"
    states = [b[key] for b in bodies]
    success = {"gitlab": "success", "bitbucket": "SUCCESSFUL", "bitbucket-dc": "SUCCESSFUL"}.get(provider, "success")
    failure = FAILED.get(provider, "failure")
    assert states == [*early, success, *early, failure]  # build ok first, then the failed one
    name = "name" if provider == "gitlab" else ("key" if provider.startswith("bitbucket") else "context")
    assert {b[name] for b in bodies} == {"pipeline/build"}
    link = "url" if provider.startswith("bitbucket") else "target_url"
    assert [b[link] for b in bodies] == [f"{BASE_URL}/api/v1/builds/{ok}"] * 3 + [f"{BASE_URL}/api/v1/builds/{bad}"] * 3
    assert "sha256:" + "ab" * 32 in bodies[2]["description"]
    assert "step 3/5 RUN make" in bodies[5]["description"]
    assert [b["description"] for b in bodies[:2]] == ["queued", "building (attempt 1)"]


def test_webhook_is_a_signed_cloud_event_and_slack_gets_blocks(db: Database, tmp_path: Path, hosts: FakeHosts) -> None:
    config = _config(tmp_path, None, hosts_url=hosts.url)
    build_id = _build(db, config, "failed", "the Dockerfile failed at <!channel> step")
    drain(db, config)
    hook = next(c for c in hosts.accepted if c.path == "/hooks/ops")
    assert hook.headers["content-type"].startswith("application/cloudevents+json")
    assert hook.headers["x-pipeline-signature"] == notify.signature(SECRET.encode(), hook.body)
    event = hook.json
    assert {k: event[k] for k in ("specversion", "type", "subject", "source", "datacontenttype")} == {
        "specversion": "1.0",
        "type": "dev.pipeline.build.failed",
        "subject": f"build:{build_id}",
        "source": BASE_URL,
        "datacontenttype": "application/json",
    }
    assert event["id"].startswith("notification-") and event["time"].endswith("Z")
    assert event["data"]["build"]["commit"] == SHA and event["data"]["build"]["status"] == "failed"
    slack = next(c for c in hosts.accepted if c.path == SLACK_PATH).json
    assert [b["type"] for b in slack["blocks"]] == ["header", "section", "context", "actions"]
    assert "&lt;!channel&gt;" in slack["blocks"][1]["text"]["text"]  # no mention smuggled in by an error text
    assert "<!channel>" not in json.dumps(slack)
    assert slack["blocks"][3]["elements"][0]["url"] == f"{BASE_URL}/api/v1/builds/{build_id}"


def test_filters_pick_events_projects_and_environments(db: Database, tmp_path: Path, hosts: FakeHosts) -> None:
    targets = [
        {"name": "fails-only", "kind": "webhook", "url": f"{hosts.url}/hooks/a", "events": ["build.failed"]},
        {"name": "other-project", "kind": "webhook", "url": f"{hosts.url}/hooks/b", "projects": ["web-*"]},
        {"name": "prod-only", "kind": "webhook", "url": f"{hosts.url}/hooks/c", "environments": ["prod"]},
        {"name": "everything", "kind": "webhook", "url": f"{hosts.url}/hooks/d"},
    ]
    config = _config(tmp_path, None, notifications={"targets": targets, "retry_seconds": 0.01})
    _build(db, config)
    _build(db, config, "failed", "boom")
    drain(db, config)
    got = sorted((c.path, c.json["type"]) for c in hosts.accepted)
    assert got == [
        ("/hooks/a", "dev.pipeline.build.failed"),
        ("/hooks/d", "dev.pipeline.build.failed"),
        ("/hooks/d", "dev.pipeline.build.succeeded"),
    ]


def test_a_target_that_is_down_is_retried_then_dead_lettered(db: Database, tmp_path: Path, hosts: FakeHosts) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    config = _config(
        tmp_path,
        None,
        notifications={
            "targets": [{"name": "gone", "kind": "webhook", "url": f"{down}/hook"}],
            "max_attempts": 3,
            "retry_seconds": 0.01,
            "max_retry_seconds": 0.02,
        },
    )
    build_id = _build(db, config)
    [row] = drain(db, config)
    assert (row.status, row.attempts) == ("dead", 3)
    assert row.error == f"webhook target gone at {down}/hook: cannot connect (ConnectError)"
    with db.session() as session:
        assert builds.get_build(session, build_id).status == "succeeded"


def test_401_from_the_host_is_a_clear_dead_letter_and_the_build_is_untouched(
    db: Database, tmp_path: Path, hosts: FakeHosts, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(TOKEN_ENV, "revoked-t0ken-value")
    config = _config(
        tmp_path, {"provider": "github", "api_url": hosts.url, "token_env": TOKEN_ENV}, hosts_url=hosts.url
    )
    caplog.set_level(logging.DEBUG)
    build_id = _build(db, config)
    found = [r for r in drain(db, config) if r.kind == "status"]
    assert [(r.status, r.attempts) for r in found] == [("dead", 1)] * 3  # refused: not retried
    assert found[0].error == (
        f"GitHub commit status at {hosts.url} refused it with 401: Bad credentials (check the token and its permissions)"
    )
    with db.session() as session:
        assert builds.get_build(session, build_id).status == "succeeded"
    stored = json.dumps([[r.payload, r.error, r.result] for r in rows(db)])
    for secret in ("revoked-t0ken-value", SECRET, SLACK_PATH.rsplit("/", 1)[1]):
        assert secret not in stored and secret not in caplog.text


def test_a_slow_target_times_out_and_is_delivered_on_the_retry(db: Database, tmp_path: Path, hosts: FakeHosts) -> None:
    hosts.delay, hosts.slow_requests = 1.5, 1
    targets = [{"name": "slow", "kind": "webhook", "url": f"{hosts.url}/hooks/slow"}]
    config = _config(tmp_path, None, notifications={"targets": targets, "timeout_seconds": 0.3, "retry_seconds": 0.01})
    _build(db, config)
    [row] = drain(db, config)
    assert (row.status, row.attempts, row.response_code, row.error) == ("delivered", 2, 204, None)
    assert len(hosts.calls) == 2  # the slow one may still arrive late: the event id tells the receiver it is one
    assert hosts.calls[0].json["id"] == hosts.calls[1].json["id"] == f"notification-{row.id}"


def test_a_target_failing_one_request_in_five_gets_every_event_once(
    db: Database, tmp_path: Path, hosts: FakeHosts
) -> None:
    hosts.fail_every = 5  # 20 %: answered 503 with Retry-After: 0, before it is taken
    targets = [{"name": "flaky", "kind": "webhook", "url": f"{hosts.url}/hooks/flaky"}]
    config = _config(tmp_path, None, notifications={"targets": targets, "retry_seconds": 0.01, "max_attempts": 5})
    for n in range(10):
        _build(db, config, "succeeded" if n % 2 else "failed", "boom")
    delivered = drain(db, config)
    assert [r.status for r in delivered] == ["delivered"] * 10
    ids = [c.json["id"] for c in hosts.accepted]
    assert sorted(ids) == sorted(f"notification-{r.id}" for r in delivered)  # every one, none twice
    # 10 taken, and the 5th and 10th requests refused: each refusal cost one more try
    assert len(hosts.calls) == 12 and sum(r.attempts for r in delivered) == 12
    assert sum(r.attempts > 1 for r in delivered) == 2


def test_no_payload_value_moves_a_delivery_to_another_host(
    db: Database, tmp_path: Path, hosts: FakeHosts, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(
        tmp_path, {"provider": "github", "api_url": hosts.url, "token_env": TOKEN_ENV}, hosts_url=hosts.url
    )
    with db.session() as session:
        projects.sync_projects(session, config.projects)
        notifications.add_notification(
            session,
            kind="status",
            target="status:app",
            subject="build:1",
            event="build.pending",
            project="app",
            payload={"provider": "github", "sha": "../../../../hooks/evil", "state": "pending", "context": "x"},
        )
    monkeypatch.setenv(SLACK_ENV, "https://attacker.example/services/T/B/C")  # not an allowed host
    _build(db, config)
    found = drain(db, config)
    assert all(c.path != "/hooks/evil" for c in hosts.calls)
    assert found[0].status == "dead" and "404" in (found[0].error or "")
    slack = next(r for r in found if r.kind == "slack")
    assert slack.status == "dead" and slack.attempts == 1
    assert "points at host 'attacker.example', which is not in allowed_hosts ['127.0.0.1']" in (slack.error or "")
    assert "services/T/B/C" not in (slack.error or "")


def test_gitlab_answering_that_the_state_is_already_set_counts_as_delivered(
    db: Database, tmp_path: Path, hosts: FakeHosts
) -> None:
    config = _config(
        tmp_path, {"provider": "gitlab", "api_url": hosts.url, "token_env": TOKEN_ENV}, notifications={"targets": []}
    )
    with db.session() as session:
        projects.sync_projects(session, config.projects)
        build_id = builds.queue_build(
            session, project="app", commit=SHA, ref="refs/heads/main", branch="main", trigger="test"
        )
        notify.build_queued(session, config, build_id)
        notify.build_queued(session, config, build_id)  # as a retried request GitLab took the first time
    found = drain(db, config)
    assert [(r.status, r.response_code) for r in found] == [("delivered", 201), ("delivered", 400)]


def test_the_provider_defaults_to_the_webhooks_and_promotions_elsewhere_are_deploy_statuses(
    db: Database, tmp_path: Path, hosts: FakeHosts
) -> None:
    config = _config(tmp_path, {"api_url": hosts.url, "token_env": TOKEN_ENV}, notifications={"targets": []})
    with db.session() as session:
        projects.sync_projects(session, config.projects)
        hook = Delivery(provider="gitlab", delivery_id="d-1", event="Push Hook", project="app", outcome="queued")
        poll = Delivery(
            provider="poll", delivery_id="p-1", hook_id="app", event="poll", project="app", outcome="queued"
        )
        session.add_all([hook, poll])
        session.flush()
        delivery, polled = hook.id, poll.id
        assert delivery is not None and polled is not None
        build_id = builds.queue_build(  # found by the poller: the host is the one whose webhook came before
            session,
            project="app",
            commit=SHA,
            ref="refs/heads/main",
            branch="main",
            trigger="poll",
            delivery_id=polled,
        )
        builds.record_progress(session, build_id, status="succeeded", digest="sha256:" + "cd" * 32)
        row = promotions.add_promotion(
            session,
            project="app",
            environment="prod",
            digest="sha256:" + "cd" * 32,
            build_id=build_id,
            actor="ops",
            status="running",
        )
        notify.promotion_started(session, config, row.id)
    with db.session() as session:
        session.execute(update(Promotion).where(Promotion.id == row.id).values(status="failed", error="copy failed"))
        notify.promotion_ended(session, config, row.id)
    drain(db, config)
    assert [(c.path, c.json["name"], c.json["state"]) for c in hosts.accepted] == [
        (f"/api/v4/projects/acme%2Fapp/statuses/{SHA}", "pipeline/deploy/prod", "running"),
        (f"/api/v4/projects/acme%2Fapp/statuses/{SHA}", "pipeline/deploy/prod", "failed"),
    ]
    assert hosts.accepted[1].json["description"] == "failed: copy failed"


def test_a_cancelled_build_ends_its_pending_status_as_an_error(db: Database, tmp_path: Path, hosts: FakeHosts) -> None:
    config = _config(
        tmp_path, {"provider": "github", "api_url": hosts.url, "token_env": TOKEN_ENV}, hosts_url=hosts.url
    )
    with db.session() as session:
        projects.sync_projects(session, config.projects)
        build_id = builds.queue_build(
            session, project="app", commit=SHA, ref="refs/heads/main", branch="main", trigger="test"
        )
        notify.build_queued(session, config, build_id)
    with db.session() as session:
        assert cancel(session, config, build_id).status == "cancelled"
    drain(db, config)
    assert [(c.json["state"], c.json["description"]) for c in hosts.accepted] == [
        ("pending", "queued"),
        ("error", "cancelled: cancelled through the API"),
    ]  # and no build.failed to the team: someone asked for it


def test_a_build_the_reaper_gives_up_on_ends_its_status_as_an_error(
    db: Database, tmp_path: Path, hosts: FakeHosts
) -> None:
    config = _config(
        tmp_path, {"provider": "github", "api_url": hosts.url, "token_env": TOKEN_ENV}, hosts_url=hosts.url
    )
    config = config.model_copy(update={"worker": config.worker.model_copy(update={"max_attempts": 1})})
    with db.session() as session:
        projects.sync_projects(session, config.projects)
        build_id = builds.queue_build(
            session, project="app", commit=SHA, ref="refs/heads/main", branch="main", trigger="test"
        )
        notify.build_queued(session, config, build_id)
    with db.session(immediate=True) as session:  # a worker that claimed it and went quiet
        assert jobs.claim(session, jobs.BUILDS, "gone", dt.timedelta(seconds=-1)) is not None
    assert reap_expired_leases(db, config).failed == [build_id]
    drain(db, config)
    statuses = [c.json for c in hosts.accepted if c.path.startswith("/repos/")]
    assert [s["state"] for s in statuses] == ["pending", "error"]
    assert "the worker stopped sending heartbeats" in statuses[1]["description"]
    assert [c.json["type"] for c in hosts.accepted if c.path == "/hooks/ops"] == ["dev.pipeline.build.failed"]
