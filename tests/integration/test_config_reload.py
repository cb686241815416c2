"""Config reload without a restart: through the API and the CLI in every process, on SIGHUP in
one; a file that does not validate changes nothing; the scheduler and workers follow."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from copy import deepcopy
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient

from pipeline.api import create_app
from pipeline.config import LiveConfig, load_config, parse_config
from pipeline.config_reload import ReloadFollower, reload_config
from pipeline.errors import InvalidRequest
from pipeline.store import Database, Project, projects, reloads
from tests.conftest import token_headers
from tests.services import free_port
from workers.promotion_worker import PromotionWorker
from workers.scheduler import start_scheduler

BASE: dict[str, Any] = {
    "registries": {"r": {"url": "registry.example.com"}},
    "projects": {
        "web": {
            "repo": "https://git.example.com/acme/web.git",
            "image": {"registry": "r", "repository": "acme/web"},
            "environments": [
                {"name": "dev", "registry": "r", "repository": "dev/web"},
                {"name": "prod", "registry": "r", "repository": "prod/web", "requires": "dev"},
            ],
        }
    },
}


def _write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def _grown() -> dict[str, Any]:
    """BASE with a project added, one changed and a worker setting changed."""
    data = deepcopy(BASE)
    data["projects"]["api"] = {
        "repo": "https://git.example.com/acme/api.git",
        "image": {"registry": "r", "repository": "acme/api"},
        "environments": [{"name": "dev", "registry": "r", "repository": "dev/api"}],
    }
    data["projects"]["web"]["environments"][1]["repository"] = "prod/web-v2"
    data["worker"] = {"lease_seconds": 45}
    return data


def _live(path: Path) -> LiveConfig:
    return LiveConfig(load_config(path), path)


@pytest.fixture
def served(db: Database, tmp_path: Path) -> Iterator[tuple[TestClient, Path, LiveConfig]]:
    path = _write(tmp_path / "pipeline.yaml", BASE)
    live = _live(path)
    with db.session() as session:
        projects.sync_projects(session, live.current.projects)
    with TestClient(create_app(live, db), headers=token_headers(db, "ops")) as client:
        yield client, path, live


def _cells(client: TestClient) -> list[str]:
    return [f"{c['project']}/{c['environment']}" for c in client.get("/api/v1/environments").json()["items"]]


def test_a_reload_reaches_the_next_request_the_database_and_the_other_processes(
    served: tuple[TestClient, Path, LiveConfig], db: Database, tmp_path: Path
) -> None:
    client, path, _ = served
    other = _live(_write(tmp_path / "other.yaml", BASE))  # another process, its own copy of the file
    follower = ReloadFollower(db, other)
    follower.mark_current()
    before = client.get("/api/v1/config").json()
    assert before["projects"] == {"web": ["dev", "prod"]} and before["last_reload"] is None
    assert follower.check() is None  # nothing asked yet

    _write(path, _grown())
    _write(tmp_path / "other.yaml", _grown())
    assert _cells(client) == ["web/dev", "web/prod"]  # a changed file alone changes nothing
    answer = client.post("/api/v1/config/reload")
    assert answer.status_code == 200, answer.text
    done = answer.json()
    assert (done["projects_added"], done["projects_changed"], done["projects_removed"]) == (["api"], ["web"], [])
    assert done["sections"] == ["worker"] and done["changed"] and done["previous"] == before["fingerprint"]
    assert sorted(_cells(client)) == ["api/dev", "web/dev", "web/prod"]
    after = client.get("/api/v1/config").json()
    assert after["fingerprint"] == done["fingerprint"] != before["fingerprint"]
    assert after["last_reload"]["actor"] == "ops" and "added api" in after["last_reload"]["summary"]
    with db.session() as session:
        assert session.get(Project, "api") is not None  # builds and promotions can refer to it

    change = follower.check()
    assert change is not None and change.added == ("api",) and other.fingerprint == done["fingerprint"]
    assert other.current.worker.lease_seconds == 45
    assert follower.check() is None  # each reload is taken once


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (
            {
                **BASE,
                "projects": {
                    "web": {
                        **BASE["projects"]["web"],
                        "environments": [{"name": "dev", "registry": "ghcr", "repository": "dev/web"}],
                    }
                },
            },
            "environments.dev.registry: no registry named 'ghcr'",
        ),
        ({**BASE, "colour": "blue"}, "colour: unknown key"),
        ("projects: [unclosed", "not valid YAML"),
        (None, "cannot read the config file"),
    ],
)
def test_a_file_that_does_not_validate_changes_nothing_anywhere(
    served: tuple[TestClient, Path, LiveConfig], db: Database, content: Any, words: str
) -> None:
    client, path, live = served
    before = client.get("/api/v1/config").json()["fingerprint"]
    if content is None:
        path.unlink()
    elif isinstance(content, str):
        path.write_text(content)
    else:
        _write(path, content)
    answer = client.post("/api/v1/config/reload")
    assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"
    assert words in answer.json()["detail"] and "running config is unchanged" in answer.json()["detail"]
    assert client.get("/api/v1/config").json()["fingerprint"] == before == live.fingerprint
    assert _cells(client) == ["web/dev", "web/prod"]
    with db.session() as session:
        assert reloads.latest(session) is None  # no other process is sent to read a bad file


def test_only_admins_reload(served: tuple[TestClient, Path, LiveConfig], db: Database) -> None:
    client, _, _ = served
    for role in ("viewer", "builder", "promoter"):
        for method, path in (("POST", "/api/v1/config/reload"), ("GET", "/api/v1/config")):
            refused = client.request(method, path, headers=token_headers(db, f"{role}-bot", role))
            assert refused.status_code == 403 and "this needs admin" in refused.json()["detail"]


def test_a_config_built_in_code_has_nothing_to_reload(db: Database) -> None:
    with pytest.raises(InvalidRequest, match="not started from a config file"):
        reload_config(db, LiveConfig(parse_config(BASE)), "ops")


def test_a_process_whose_file_lags_reads_it_again_until_it_says_what_was_asked(db: Database, tmp_path: Path) -> None:
    """A ConfigMap's copies change on each pod at its own moment."""
    asking = _live(_write(tmp_path / "a.yaml", BASE))
    lagging = _live(_write(tmp_path / "b.yaml", BASE))
    follower = ReloadFollower(db, lagging)
    follower.mark_current()
    _write(tmp_path / "a.yaml", _grown())
    done = reload_config(db, asking, "ops")
    assert follower.check() is not None and lagging.generation < done.reload_id  # not there yet: asks again
    assert "api" not in lagging.current.projects
    _write(tmp_path / "b.yaml", _grown())
    change = follower.check()
    assert change is not None and change.added == ("api",) and lagging.generation == done.reload_id
    assert lagging.fingerprint == asking.fingerprint and follower.check() is None


def test_the_scheduler_replans_and_workers_take_the_new_config_at_their_next_job(db: Database, tmp_path: Path) -> None:
    path = _write(tmp_path / "pipeline.yaml", BASE)
    live = _live(path)
    worker = PromotionWorker(db, live)
    scheduler = start_scheduler(db, live)
    try:
        assert {job.id for job in scheduler.get_jobs()} == {
            "reap-expired-leases",
            "follow-config-reloads",
            "prune-delivery-log",
        }
        polled = deepcopy(BASE)
        polled["projects"]["web"]["poll"] = "45s"
        _write(path, polled)
        live.reload()
        job = scheduler.get_job("poll-web")
        assert job is not None and job.trigger.interval.total_seconds() == 45
        _write(path, _grown())
        live.reload()
        assert scheduler.get_job("poll-web") is None
        assert worker.config.worker.lease_seconds == 45 and worker.lease.total_seconds() == 45
    finally:
        scheduler.shutdown(wait=False)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[tuple[str, Path, dict[str, str], Path, int]]:
    """``pipeline serve`` in its own process, on SQLite, without build workers."""
    path = _write(tmp_path / "pipeline.yaml", {**BASE, "data_dir": str(tmp_path / "data")})
    port, log_path = free_port(), tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if k not in ("PIPELINE_CONFIG", "PIPELINE_DATABASE_URL")}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "serve", "--config", str(path), "--port", str(port), "--workers", "0"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _until(lambda: httpx.get(f"{url}/readyz").status_code == 200, log_path)
            token = re.search(r"first admin token \(shown once[^)]*\): (pipe_\S+)", log_path.read_text())
            assert token, log_path.read_text()
            yield url, path, {**env, "PIPELINE_TOKEN": token[1], "PIPELINE_URL": url}, log_path, proc.pid
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


def _until(ready: Any, log_path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ready():
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:  # a wait with a bound, not a speed check
            pytest.fail(f"not ready in {timeout:.0f} s:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.1)


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_serve_reloads_through_the_cli_and_on_sighup(serve: tuple[str, Path, dict[str, str], Path, int]) -> None:
    url, path, env, log_path, pid = serve
    data = {**_grown(), "data_dir": str(path.parent / "data")}
    _write(path, data)
    done = _cli(env, "config", "reload", "--output", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["projects_added"] == ["api"]
    shown = _cli(env, "config", "show")
    assert shown.returncode == 0 and "project api" in shown.stdout and "by admin" in shown.stdout, shown.stdout

    _write(path, {**data, "worker": {"lease_seconds": 1}})  # below the minimum of 2
    refused = _cli(env, "config", "reload")
    assert refused.returncode == 2 and "worker.lease_seconds" in refused.stderr, refused.stderr

    data["projects"]["late"] = {**data["projects"]["api"], "repo": "https://git.example.com/acme/late.git"}
    _write(path, data)
    headers = {"Authorization": f"Bearer {env['PIPELINE_TOKEN']}"}
    os.kill(pid, signal.SIGHUP)
    _until(lambda: "late" in httpx.get(f"{url}/api/v1/config", headers=headers).json()["projects"], log_path)
    assert "config reloaded from" in log_path.read_text()
    assert httpx.get(f"{url}/api/v1/config", headers=headers).json()["last_reload"]["summary"].startswith("added api")
