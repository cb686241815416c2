"""API tokens and roles. The first test walks the OpenAPI document, so an endpoint added later
without an access check fails here: every /api/v1 request needs a token, and every mutating
one is refused to a viewer."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import select

from pipeline.api import create_app
from pipeline.config import Config, parse_config
from pipeline.store import ApiToken, Database, projects
from tests.conftest import token_headers

DATA = {
    "registries": {"local": {"url": "127.0.0.1:5000", "insecure": True}},
    "projects": {
        "demo": {
            "repo": "https://git.example.com/demo.git",
            "allow_unsigned": True,
            "image": {"registry": "local", "repository": "acme/demo"},
            "environments": [
                {"name": "dev", "registry": "local", "repository": "acme/dev"},
                {"name": "staging", "registry": "local", "repository": "acme/st", "requires": "dev"},
            ],
        }
    },
}
PUBLIC = {"/healthz", "/readyz", "/metrics"}
SAMPLE = {
    "build_id": "1",
    "promotion_id": "1",
    "project": "demo",
    "environment": "dev",
    "digest": "sha256:" + "0" * 64,
    "token_id": "1",
    "delivery_id": "1",
}
# the least role each mutating endpoint needs
NEEDS = {
    "/api/v1/builds": "builder",
    "/api/v1/builds/{build_id}/cancel": "builder",
    "/api/v1/builds/{build_id}/rebuild": "builder",
    "/api/v1/promotions": "promoter",
    "/api/v1/environments/{project}/{environment}/rollback": "promoter",
    "/api/v1/environments/{project}/{environment}/release": "promoter",
    "/api/v1/images/{digest}/reject": "promoter",
    "/api/v1/tokens": "admin",
    "/api/v1/tokens/{token_id}/revoke": "admin",
    "/api/v1/config/reload": "admin",
    "/api/v1/deliveries/{delivery_id}/redeliver": "builder",
    "/api/v1/cleanup": "admin",
}
READ_NEEDS = {"/api/v1/tokens": "admin", "/api/v1/config": "admin"}  # reads that need more than a viewer
ROLES = ("viewer", "builder", "promoter", "admin")


def _client(db: Database, config: Config) -> Iterator[TestClient]:
    with db.session() as session:
        projects.sync_projects(session, config.projects)
    with TestClient(create_app(config, db)) as client:
        yield client


@pytest.fixture
def api(db: Database, tmp_path: Path) -> Iterator[TestClient]:
    # its own data directory: the walk's admin call to /api/v1/cleanup reads the project's mirror
    yield from _client(db, parse_config({**DATA, "data_dir": str(tmp_path / "data")}))


def _operations(api: TestClient) -> list[tuple[str, str, str]]:
    """(method, template, concrete path) of every API operation in the OpenAPI document."""
    found = []
    for template, methods in api.app.openapi()["paths"].items():  # type: ignore[attr-defined]
        if template in PUBLIC or template.startswith("/webhooks/"):
            continue
        path = template
        for name, value in SAMPLE.items():
            path = path.replace("{" + name + "}", value)
        assert "{" not in path, f"add a sample value for {template} to SAMPLE"
        found += [(method.upper(), template, path) for method in methods]
    return found


def test_every_endpoint_needs_a_token_and_every_change_more_than_a_viewer(api: TestClient, db: Database) -> None:
    operations = _operations(api)
    assert len(operations) >= 15
    token_headers(db, "revoked-on-the-way", "viewer")  # token 1, which the walk's revoke call (SAMPLE) revokes
    viewer = token_headers(db, "viewer-bot", "viewer")
    for method, template, path in operations:
        anonymous = api.request(method, path, json={})
        assert anonymous.status_code == 401, (method, template, anonymous.text)
        assert anonymous.headers["content-type"] == "application/problem+json"
        needs = READ_NEEDS.get(template, "viewer") if method == "GET" else NEEDS.get(template)
        assert needs, f"{method} {template}: say which role it needs in NEEDS"
        if needs != "viewer":
            refused = api.request(method, path, json={}, headers=viewer)
            assert refused.status_code == 403, (method, template, refused.text)
            assert f"this needs {needs}" in refused.json()["detail"]
        for role in ROLES[ROLES.index(needs) :]:
            allowed = api.request(method, path, json={}, headers=token_headers(db, f"{role}-bot", role))
            assert allowed.status_code not in (401, 403), (method, template, role, allowed.text)


def test_a_promoter_can_be_limited_to_environments(api: TestClient, db: Database) -> None:
    limited = token_headers(db, "staging-only", "promoter", ["staging"])
    body = {"project": "demo", "build_id": 1}
    dev = api.post("/api/v1/promotions", json={**body, "environment": "dev"}, headers=limited)
    assert dev.status_code == 403 and "only to staging, not to dev" in dev.json()["detail"]
    assert api.post("/api/v1/promotions", json={**body, "environment": "staging"}, headers=limited).status_code == 404
    assert api.post("/api/v1/environments/demo/dev/rollback", headers=limited).status_code == 403
    assert api.post("/api/v1/environments/demo/staging/rollback", headers=limited).status_code == 409
    reject = api.post(f"/api/v1/images/sha256:{'1' * 64}/reject", json={"reason": "x"}, headers=limited)
    assert reject.status_code == 403 and "unlimited promoter" in reject.json()["detail"]


def test_tokens_are_made_listed_and_revoked_by_admins_and_stored_hashed(api: TestClient, db: Database) -> None:
    admin = token_headers(db, "root", "admin")
    made = api.post("/api/v1/tokens", json={"name": "ci-bot", "role": "builder"}, headers=admin)
    assert made.status_code == 201, made.text
    secret = made.json()["token"]
    assert secret.startswith("pipe_") and made.json()["created_by"] == "root"
    bot = {"Authorization": f"Bearer {secret}"}
    assert api.get("/api/v1/builds", headers=bot).status_code == 200
    listed = api.get("/api/v1/tokens", headers=admin).json()
    assert secret not in str(listed) and [t["name"] for t in listed] == ["root", "ci-bot"]
    with db.session() as session:
        rows = list(session.scalars(select(ApiToken)))
        assert all(secret not in str(vars(row)) for row in rows)
    assert api.post(f"/api/v1/tokens/{made.json()['id']}/revoke", headers=admin).json()["revoked_at"]
    revoked = api.get("/api/v1/builds", headers=bot)
    assert revoked.status_code == 401 and "unknown or revoked" in revoked.json()["detail"]
    for bad in (
        {"name": "x", "role": "god"},
        {"name": "x", "role": "viewer", "environments": ["dev"]},
        {"name": "<script>", "role": "viewer"},
    ):
        assert api.post("/api/v1/tokens", json=bad, headers=admin).status_code == 422, bad


@pytest.mark.parametrize("header", ["Basic YWRtaW46YWRtaW4=", "Bearer", "Bearer pipe_not-a-real-token", "token"])
def test_bad_authorization_headers_are_401_with_advice(api: TestClient, header: str) -> None:
    answer = api.get("/api/v1/builds", headers={"Authorization": header})
    assert answer.status_code == 401
    assert "Bearer" in answer.json()["detail"] or "unknown or revoked" in answer.json()["detail"]


def test_anonymous_read_opens_reads_only_and_auth_off_makes_everyone_admin(db: Database) -> None:
    for client in _client(db, parse_config({**DATA, "api": {"anonymous_read": True}})):
        assert client.get("/api/v1/environments").status_code == 200
        assert client.post("/api/v1/builds/1/cancel").status_code == 401
    for client in _client(db, parse_config({**DATA, "api": {"auth": False}})):
        answer = client.post(
            "/api/v1/tokens", json={"name": "x", "role": "viewer"}, headers={"X-Pipeline-Actor": "laptop-user"}
        )
        assert answer.status_code == 201 and answer.json()["created_by"] == "laptop-user"


def test_the_cli_makes_the_first_token_straight_in_the_database(tmp_path: Path, db: Database) -> None:
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump({**DATA, "database_url": db.url, "data_dir": str(tmp_path / "data")}))
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "tokens",
            "create",
            "--config",
            str(config),
            "--name",
            "release-team",
            "--role",
            "promoter",
            "--env",
            "staging",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("pipe_") and "shown once" in made.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "pipeline", "tokens", "ls", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "release-team" in listed.stdout and "staging" in listed.stdout and secret not in listed.stdout
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "tokens",
            "create",
            "--config",
            str(config),
            "--name",
            "x",
            "--role",
            "viewer",
            "--env",
            "dev",
        ],
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 2 and "only a promoter token can be limited" in refused.stderr
