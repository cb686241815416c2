"""``verify_after``: after the tag moved, a real worker asks a local HTTP server (the
environment's version endpoint) until it answers the new version; one that answers it after a
delay is verified, one that keeps the old version fails with its last answer and, with
``auto_rollback``, rolls the environment back and holds it with the reason. On SQLite and
PostgreSQL; the promotions copy real images between real registry repositories.

Intervals and timeouts are a fraction of a second (config-driven) so the test stays short.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pipeline import promotion
from pipeline.api import create_app
from pipeline.config import Config, parse_config
from pipeline.store import Database, Verification, notifications, promotions, verifications
from tests.conftest import app_client, token_headers
from tests.images import OciLayout, skopeo_push
from tests.seed import serve_with_promoter, succeeded_builds
from tests.services import Registry
from workers.promotion_worker import PromotionWorker
from workers.verification_worker import VerificationWorker


class VersionServer:
    """Answers ``GET /<environment>/version`` with whatever ``body()`` says at that moment."""

    def __init__(self) -> None:
        self.body: Callable[[], str] = lambda: "nothing deployed"
        self.asked = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.asked += 1
                data = owner.body().encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> VersionServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def version_server() -> Iterator[VersionServer]:
    with VersionServer() as server:
        yield server


@pytest.fixture(scope="module")
def images(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    layout = OciLayout(tmp_path_factory.mktemp("verify-oci"))
    for seed, tag in enumerate(("old", "new"), start=40):
        layout.tag(tag, layout.image([2_000], seed=seed))
        skopeo_push(layout, tag, registry, "acme/verify")
    return [layout.refs["old"], layout.refs["new"]]


def make_config(tmp_path: Path, registry: Registry, server: VersionServer, **verify: Any) -> Config:
    return parse_config(
        {
            "data_dir": str(tmp_path / "data"),
            # the event goes to the outbox (delivering it is the notifications' own tests' job)
            "notifications": {
                "targets": [
                    {
                        "name": "ops",
                        "kind": "webhook",
                        "url": "http://127.0.0.1:9/hook",
                        "events": ["verification.failed"],
                    }
                ]
            },
            "worker": {"lease_seconds": 10, "poll_seconds": 0.05, "max_attempts": 2},
            "registries": {"local": {"url": registry.host, "insecure": True}},
            "projects": {
                "demo": {
                    "repo": "https://git.example.com/acme/demo.git",
                    "image": {"registry": "local", "repository": "acme/verify"},
                    "environments": [
                        {
                            "name": "prod",
                            "registry": "local",
                            "repository": f"acme/verify-prod-{secrets.token_hex(4)}",
                            "verify_after": {
                                "http": server.url + "/{environment}/version",
                                "expect_body_contains": "{short_sha}",
                                "interval": "100ms",
                                **verify,
                            },
                        }
                    ],
                }
            },
        }
    )


def promote(db: Database, config: Config, build_id: int) -> int:
    with db.session() as session:
        row = promotion.request_promotion(session, config, "demo", "prod", build_id=build_id, actor="ops")
        promotion_id = row.id
    worker = PromotionWorker(db, config, name="verify-promoter")
    while worker.run_once():
        pass
    return promotion_id


def verified(db: Database, config: Config, promotion_id: int) -> Verification:
    """Run a verification worker until the promotion's verification ended (bounded)."""
    worker = VerificationWorker(db, config, name="verifier")
    for _ in range(400):
        with db.session() as session:
            row = verifications.of_promotion(session, promotion_id)
        assert row is not None, f"promotion {promotion_id} has no verification"
        if row.status not in ("pending", "running"):
            return row
        if not worker.run_once():
            time.sleep(0.05)
    raise AssertionError(f"verification of promotion {promotion_id} did not end: {row.status}, {row.last_answer}")


def commit(n: int) -> str:
    return f"{n:x}" * 40  # what tests.seed.succeeded_builds gives build n (from 1)


def test_a_version_that_arrives_after_a_delay_is_verified(
    db: Database, tmp_path: Path, registry: Registry, images: list[str], version_server: VersionServer
) -> None:
    config = make_config(tmp_path, registry, version_server, timeout="20s")
    (build,) = succeeded_builds(db, config, "demo", images[:1])
    # the deployment rolls out a moment after the tag moved: two checks see the old version
    version_server.body = lambda: commit(1)[:7] if version_server.asked > 2 else "deadbee (the old one)"

    promotion_id = promote(db, config, build)
    row = verified(db, config, promotion_id)
    assert row.status == "verified", row.error
    assert row.checks == 3 == version_server.asked  # it asked again until the answer came, then stopped
    assert row.last_answer is not None and row.last_answer["body"] == commit(1)[:7]
    assert row.url == f"{version_server.url}/prod/version" and row.expect_body == commit(1)[:7]
    assert row.attempts <= 1 and row.finished_at is not None  # a miss uses up no try
    with db.session() as session:
        assert promotions.get_promotion(session, promotion_id).verification.status == "verified"  # type: ignore[union-attr]
        assert promotions.active_hold(session, "demo", "prod") is None
    for api in app_client(db, config):  # the API shows it with the promotion, and in the listing
        shown = api.get(f"/api/v1/promotions/{promotion_id}").json()["verification"]
        assert (shown["status"], shown["checks"], shown["last_answer"]["body"]) == ("verified", 3, commit(1)[:7])
        listed = api.get("/api/v1/promotions", params={"environment": "prod"}).json()["items"]
        assert listed[0]["verification"]["url"] == f"{version_server.url}/prod/version"
        timeline = api.get("/ui/fragments/timeline", params={"project": "demo"}).text
        assert 'data-verification="verified"' in timeline and "status-verified" in timeline
        page = api.get(f"/ui/fragments/promotion/{promotion_id}").text
        assert 'id="verification-facts" data-verification="verified"' in page and "after 3 checks" in page


def test_an_environment_that_keeps_the_old_version_fails_and_rolls_back(
    db: Database, tmp_path: Path, registry: Registry, images: list[str], version_server: VersionServer
) -> None:
    config = make_config(tmp_path, registry, version_server, timeout="1s", auto_rollback=True)
    old, new = succeeded_builds(db, config, "demo", images)
    version_server.body = lambda: f"version {commit(1)[:7]}"  # the old build, whatever is promoted
    first = promote(db, config, old)
    assert verified(db, config, first).status == "verified"

    second = promote(db, config, new)
    row = verified(db, config, second)
    assert row.status == "verification_failed"
    assert row.last_answer is not None and row.last_answer["body"] == f"version {commit(1)[:7]}"
    assert f"did not answer 200 with {commit(2)[:7]!r} in the body" in (row.error or "")
    assert f"answered 200: 'version {commit(1)[:7]}'" in (row.error or "")
    assert row.rollback_id is not None
    with db.session() as session:
        rollback = promotions.get_promotion(session, row.rollback_id)
        assert (rollback.trigger, rollback.digest, rollback.actor) == ("rollback", images[0], "verification")
        assert f"verification of promotion {second} failed" in rollback.reason
        hold = promotions.active_hold(session, "demo", "prod")
        assert hold is not None and f"verification of promotion {second} failed" in hold.reason
        assert hold.promotion_id == rollback.id
        (told,) = notifications.list_notifications(
            session, notifications.NotificationFilter(target="ops"), limit=10
        )  # only the failure: the target subscribed to nothing else
        assert (told.event, told.promotion_id) == ("verification.failed", second)
        assert f"rolled back by promotion {rollback.id}" in json.dumps(told.payload)

    promote(db, config, old)  # a held environment refuses new automatic or manual promotions ...
    with db.session() as session:
        assert promotions.get_promotion(session, rollback.id).status == "succeeded"  # ... but runs its rollback
        assert promotions.current(session, "demo", "prod").digest == images[0]  # type: ignore[union-attr]
    assert verified(db, config, rollback.id).status == "verified"  # and checks it too

    token = token_headers(db, "cli-viewer", "viewer")["Authorization"].removeprefix("Bearer ")
    with serve_with_promoter(create_app(config, db), db, config, "cli-promoter") as url:
        env = {**os.environ, "PIPELINE_URL": url, "PIPELINE_TOKEN": token, "COLUMNS": "250"}
        shown = subprocess.run(
            [sys.executable, "-m", "pipeline", "promotions", "show", str(second)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
    assert shown.returncode == 0, shown.stderr
    assert "verification_failed after" in shown.stdout and f"promotion {rollback.id}" in shown.stdout
    assert f"version {commit(1)[:7]}" in shown.stdout  # the last answer


def test_a_promotion_replaced_before_its_check_is_not_judged(
    db: Database, tmp_path: Path, registry: Registry, images: list[str], version_server: VersionServer
) -> None:
    config = make_config(tmp_path, registry, version_server, timeout="5s", auto_rollback=True)
    old, new = succeeded_builds(db, config, "demo", images)
    first, second = promote(db, config, old), promote(db, config, new)
    version_server.body = lambda: commit(2)[:7]
    row = verified(db, config, first)
    assert row.status == "superseded" and f"promotion {second} does" in (row.error or "")
    assert row.rollback_id is None
    assert verified(db, config, second).status == "verified"
