"""Who asked for every build, recorded on it and shown: the token's name for API requests and
rebuilds, the provider and delivery id for pushes, on both databases and both intake paths."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pipeline.config import Config, parse_config
from pipeline.store import Database, Delivery, builds, projects
from tests.conftest import app_client
from tests.gitrepo import GitRepo
from tests.integration.test_providers import SECRET, SENDERS, _builds, _post, client, config  # noqa: F401


@pytest.mark.parametrize("provider", list(SENDERS))
def test_a_pushed_build_names_its_provider_and_delivery(client: TestClient, db: Database, provider: str) -> None:
    answer = _post(client, provider, *SENDERS[provider](SECRET, "3" * 40, "refs/heads/main"))
    assert answer.status_code == 202, answer.text
    [build] = _builds(db)
    with db.session() as session:
        delivery = session.get(Delivery, build.delivery_id)
        assert delivery is not None
        assert build.actor == f"{provider} delivery {delivery.delivery_id}"
    assert build.trigger == "webhook"
    shown = client.get(f"/api/v1/builds/{build.id}").json()
    assert (shown["actor"], shown["trigger"]) == (build.actor, "webhook")


@pytest.fixture
def repo_config(tmp_path: Path) -> tuple[GitRepo, Config]:
    repo = GitRepo.create(tmp_path / "git")
    repo.commit({"a": "1"})
    return repo, parse_config(
        {
            "registries": {"r": {"url": "127.0.0.1:5000"}},
            "projects": {"app": {"repo": repo.url, "image": {"registry": "r", "repository": "a/b"}}},
        }
    )


def test_an_api_build_and_its_rebuild_name_the_token(db: Database, repo_config: tuple[GitRepo, Config]) -> None:
    repo, config = repo_config
    sha = repo.commit({"a": "2"})
    for api in app_client(db, config, actor="release-bot"):
        asked = api.post("/api/v1/builds", json={"project": "app", "ref": "main"}).json()
        assert (asked["commit"], asked["trigger"], asked["actor"]) == (sha, "api", "release-bot")
        again = api.post(f"/api/v1/builds/{asked['id']}/rebuild")
        assert again.status_code == 202, again.text
        rebuilt = again.json()
        assert rebuilt["id"] != asked["id"]
        assert (rebuilt["commit"], rebuilt["ref"], rebuilt["branch"]) == (sha, "refs/heads/main", "main")
        assert (rebuilt["trigger"], rebuilt["actor"]) == ("rebuild", f"rebuild of {asked['id']} by release-bot")
        missing = api.post("/api/v1/builds/999999/rebuild")
        assert missing.status_code == 404 and "no build with id 999999" in missing.json()["detail"]
        listed = api.get("/api/v1/builds", params={"project": "app"}).json()["items"]
        assert [b["actor"] for b in listed] == [rebuilt["actor"], "release-bot"]


def test_a_rebuild_of_a_project_that_left_the_config_is_refused(
    db: Database, repo_config: tuple[GitRepo, Config]
) -> None:
    _, config = repo_config
    with db.session() as session:
        projects.sync_projects(session, config.projects)
        old = builds.create_build(
            session, project="app", commit="c" * 40, ref="refs/heads/main", branch="main", trigger="test"
        ).id
    others = parse_config(
        {
            "registries": {"r": {"url": "127.0.0.1:5000"}},
            "projects": {"web": {"repo": "file:///web", "image": {"registry": "r", "repository": "a/w"}}},
        }
    )
    for api in app_client(db, others):
        answer = api.post(f"/api/v1/builds/{old}/rebuild")
        assert answer.status_code == 404 and "app" in answer.json()["detail"], answer.text
    with db.session() as session:
        assert [b.id for b in builds.list_builds(session, builds.BuildFilter(), limit=10)] == [old]
