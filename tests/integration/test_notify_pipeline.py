"""Statuses and notifications from a real build (real engine, registry, Git) and from real
promotions (registry copies by real workers), on SQLite and PostgreSQL; the outbox as the
REST API and the ``pipeline notifications`` command show it.

GitHub, its Deployments API and the receivers are the recording stand-in of
``tests.git_host_api`` (they cannot be reached from here; its docstring cites the APIs).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline import promotion
from pipeline.api import create_app
from pipeline.config import Config, parse_config
from pipeline.store import Database, notifications
from tests import project
from tests.conftest import app_client, token_headers
from tests.git_host_api import FakeHosts
from tests.gitrepo import GitRepo
from tests.images import OciLayout, skopeo_push
from tests.notify_support import BASE_URL, SECRET, SECRET_ENV, SLACK_ENV, SLACK_PATH, TOKEN, TOKEN_ENV, drain
from tests.notify_support import notifications_config as notify_data
from tests.seed import serve_with_promoter, succeeded_builds
from tests.services import DockerEngine, Registry
from workers.promotion_worker import PromotionWorker


@pytest.fixture
def hosts(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHosts]:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    monkeypatch.setenv(SECRET_ENV, SECRET)
    with FakeHosts(TOKEN) as fake:
        monkeypatch.setenv(SLACK_ENV, fake.url + SLACK_PATH)
        yield fake


def _status(hosts: FakeHosts) -> dict[str, Any]:
    return {"provider": "github", "api_url": hosts.url, "token_env": TOKEN_ENV, "repository": "acme/demo"}


def _calls(hosts: FakeHosts, prefix: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [(c.method, c.path, c.json) for c in hosts.accepted if c.path.startswith(prefix)]


def test_a_real_build_reports_pending_running_then_success_and_a_broken_one_failure(
    db: Database,
    tmp_path: Path,
    engine: DockerEngine,
    registry: Registry,
    base_image: str,
    git_repo: GitRepo,
    hosts: FakeHosts,
) -> None:
    good = git_repo.commit({"Dockerfile": project.dockerfile(base_image), "hello.txt": "hello\n"}, "good")
    data = project.config_data(
        data_dir=tmp_path / "data", registry_host=registry.host, engine_host=engine.host, repo_url=git_repo.url
    )
    data["projects"]["demo"]["status"] = _status(hosts)
    data["notifications"] = notify_data(hosts.url)
    config = parse_config(data)
    built = project.run_build(db, config, good)
    broken = git_repo.commit({"Dockerfile": f"FROM {base_image}\nRUN echo breaking && exit 3\n"}, "broken")
    failed = project.run_build(db, config, broken)
    assert (built.status, failed.status) == ("succeeded", "failed")  # neither slowed nor failed by reporting
    drain(db, config)
    statuses = _calls(hosts, "/repos/")
    for sha, build, end in ((good, built, "success"), (broken, failed, "failure")):
        mine = [body for _, path, body in statuses if path == f"/repos/acme/demo/statuses/{sha}"]
        assert [(b["state"], b["description"].split(" ")[0]) for b in mine] == [
            ("pending", "queued"),
            ("pending", "building"),
            (end, "built" if end == "success" else "failed:"),
        ]
        assert {b["context"] for b in mine} == {"pipeline/build"}
        assert {b["target_url"] for b in mine} == {f"{BASE_URL}/api/v1/builds/{build.id}"}
    assert built.digest is not None and built.digest in statuses[2][2]["description"]
    assert all(c.headers["authorization"] == f"Bearer {TOKEN}" for c in hosts.accepted if c.path.startswith("/repos/"))
    events = [c.json for c in hosts.accepted if c.path == "/hooks/ops"]
    assert [(e["type"], e["data"]["build"]["id"]) for e in events] == [
        ("dev.pipeline.build.succeeded", built.id),
        ("dev.pipeline.build.failed", failed.id),
    ]
    assert events[0]["data"]["build"]["digest"] == built.digest
    print("build sequence:", json.dumps([(m, p, b) for m, p, b in statuses if good in p], indent=1))


@pytest.fixture(scope="module")
def digests(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    layout = OciLayout(tmp_path_factory.mktemp("notify-oci"))
    for n in range(2):
        layout.tag(f"n{n}", layout.image([10_000], seed=500 + n))
        skopeo_push(layout, f"n{n}", registry, "acme/notify")
    return [layout.refs["n0"], layout.refs["n1"]]


@pytest.fixture
def promoting(tmp_path: Path, registry: Registry, hosts: FakeHosts) -> Config:
    run = secrets.token_hex(3)
    return parse_config(
        {
            "data_dir": str(tmp_path / "data"),
            "worker": {"lease_seconds": 10, "poll_seconds": 0.05, "max_attempts": 1},
            "registries": {"local": {"url": registry.host, "insecure": True}},
            "projects": {
                "demo": {
                    "repo": "https://github.example.com/acme/demo.git",
                    "allow_unsigned": True,
                    "image": {"registry": "local", "repository": "acme/notify"},
                    "status": _status(hosts),
                    "environments": [
                        {"name": "dev", "registry": "local", "repository": f"notify/dev-{run}"},
                        {"name": "prod", "registry": "local", "repository": f"notify/prod-{run}", "requires": "dev"},
                    ],
                }
            },
            "notifications": notify_data(hosts.url),
        }
    )


def _work(db: Database, config: Config) -> None:
    worker = PromotionWorker(db, config, name="test-promoter")
    while worker.run_once():
        pass


def test_promotions_are_github_deployments_and_rollbacks_holds_releases_are_notified(
    db: Database, promoting: Config, digests: list[str], hosts: FakeHosts
) -> None:
    config = promoting
    first, second = succeeded_builds(db, config, "demo", digests)
    for build_id in (first, second):
        with db.session() as session:
            promotion.request_promotion(session, config, "demo", "dev", build_id=build_id, actor="ops")
        _work(db, config)
    with db.session() as session:
        rollback = promotion.request_rollback(session, config, "demo", "dev", actor="ops", reason="second is bad")
    _work(db, config)
    with db.session() as session:
        promotion.release_environment(session, config, "demo", "dev", actor="ops")
        promotion.reject_digest(session, digests[1], actor="ops", reason="second is bad")
        refused = promotion.request_promotion(session, config, "demo", "prod", build_id=second, actor="ops")
    assert refused.status == "rejected"
    rows = drain(db, config)
    assert {r.status for r in rows} == {"delivered"}
    deployments = _calls(hosts, "/repos/acme/demo/deployments")
    assert [(path, body.get("state"), body["environment"]) for _, path, body in deployments] == [
        ("/repos/acme/demo/deployments", None, "dev"),
        ("/repos/acme/demo/deployments/1/statuses", "in_progress", "dev"),
        ("/repos/acme/demo/deployments/1/statuses", "success", "dev"),
        ("/repos/acme/demo/deployments", None, "dev"),
        ("/repos/acme/demo/deployments/2/statuses", "in_progress", "dev"),
        ("/repos/acme/demo/deployments/2/statuses", "success", "dev"),
        ("/repos/acme/demo/deployments", None, "dev"),
        ("/repos/acme/demo/deployments/3/statuses", "in_progress", "dev"),
        ("/repos/acme/demo/deployments/3/statuses", "success", "dev"),
    ]
    created = deployments[0][2]
    assert (created["ref"], created["auto_merge"], created["required_contexts"]) == ("1" * 40, False, [])
    assert created["payload"]["digest"] == digests[0]
    assert deployments[6][2]["ref"] == "1" * 40  # the rollback deploys the first commit again
    assert deployments[2][2]["log_url"].startswith(f"{BASE_URL}/api/v1/promotions/")
    types = [c.json["type"].removeprefix("dev.pipeline.") for c in hosts.accepted if c.path == "/hooks/ops"]
    assert types == [
        "promotion.succeeded",
        "promotion.succeeded",
        "rollback",
        "hold",
        "promotion.succeeded",
        "release",
        "promotion.rejected",
    ]
    hooks = [c.json for c in hosts.accepted if c.path == "/hooks/ops"]
    assert hooks[2]["data"]["promotion"]["id"] == rollback.id and hooks[2]["data"]["promotion"]["trigger"] == "rollback"
    print("promotion sequence:", json.dumps(deployments[:3], indent=1))


def test_the_outbox_in_the_api_and_the_cli(
    tmp_path: Path, promoting: Config, digests: list[str], hosts: FakeHosts, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.store import migrate, open_database

    db = open_database(f"sqlite:///{tmp_path / 'cli.db'}")
    migrate(db)
    monkeypatch.setenv(TOKEN_ENV, "wrong-token")  # the host refuses: dead letters to show
    [build_id] = succeeded_builds(db, promoting, "demo", digests[:1])
    with db.session() as session:
        promotion.request_promotion(session, promoting, "demo", "dev", build_id=build_id, actor="ops")
    _work(db, promoting)
    drain(db, promoting)
    client_gen = app_client(db, promoting)
    api = next(client_gen)
    page = api.get("/api/v1/notifications", params={"kind": "deployment"}).json()
    assert [n["status"] for n in page["items"]] == ["dead", "dead"]
    assert "refused it with 401: Bad credentials" in page["items"][0]["error"]
    assert page["counts"] == {"pending": 0, "running": 0, "delivered": 2, "dead": 2}  # the webhook and Slack got theirs
    assert api.get("/api/v1/notifications", params={"status": "bogus"}).status_code == 422
    with db.session() as session:
        assert notifications.counts(session)["dead"] == 2
    token = token_headers(db, "cli-user", "viewer")["Authorization"].removeprefix("Bearer ")
    with serve_with_promoter(create_app(promoting, db), db, promoting, "cli-promoter") as url:
        env = {**os.environ, "PIPELINE_URL": url, "PIPELINE_TOKEN": token, "COLUMNS": "200"}
        run = [sys.executable, "-m", "pipeline", "notifications"]
        listed = subprocess.run([*run, "--status", "dead", "--output", "json"], capture_output=True, text=True, env=env)
        table = subprocess.run(run, capture_output=True, text=True, env=env)
    assert listed.returncode == 0, listed.stderr
    assert [n["kind"] for n in json.loads(listed.stdout)["items"]] == ["deployment", "deployment"]
    assert table.returncode == 0 and "dead" in table.stdout and "deploy.success" in table.stdout
    assert "wrong-token" not in listed.stdout + table.stdout
    db.dispose()
