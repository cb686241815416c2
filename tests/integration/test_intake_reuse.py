"""Push A, force-push back to X, push A again (the same bytes, a new delivery id), through the
real app, a real worker, a real Docker engine and registry: the third push is not dropped and not
rebuilt; A's image gets the branch tag again by a manifest PUT by digest, recorded as a succeeded
build with ``reused_from``. An annotated tag of A is built (here: reused) at the commit, and the
image's ``org.opencontainers.image.revision`` label is the commit, not the tag object."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from pipeline.config import parse_config
from pipeline.store import Build, Database, builds, migrate, open_database
from tests import project, webhooks
from tests.conftest import app_client
from tests.gitrepo import GitRepo, _git
from tests.services import DockerEngine, Registry, skopeo_config, skopeo_inspect
from workers.build_worker import BuildWorker


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Database:
    database = open_database(f"sqlite:///{tmp_path / 'p.db'}")
    migrate(database)
    return database


def test_a_commit_pushed_again_is_retagged_not_rebuilt(
    tmp_path: Path,
    sqlite_db: Database,
    engine: DockerEngine,
    registry: Registry,
    base_image: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(project.SECRET_ENV, project.SECRET)
    repo = GitRepo.create(tmp_path / "git")
    x = repo.commit({"Dockerfile": project.dockerfile(base_image), "hello.txt": "X\n"}, "X")
    a = repo.commit({"hello.txt": "A\n"}, "A")
    _git("tag", "-a", "v1.0", "-m", "release 1.0", a, cwd=repo.work)
    _git("push", "--quiet", "origin", "v1.0", cwd=repo.work)
    tag_object = _git("rev-parse", "v1.0", cwd=repo.work)
    data = project.config_data(
        data_dir=tmp_path / "data", registry_host=registry.host, engine_host=engine.host, repo_url=repo.url
    )
    data["projects"]["demo"].update({"tags": ["{branch}", "{sha}"], "git_tags": ["v*"]})
    config = parse_config(data)
    image = f"{registry.host}/acme/demo"
    worker = BuildWorker(sqlite_db, config, name="reuse-worker")

    def push(before: str, after: str, delivery_id: str, *, ref: str = "refs/heads/main") -> Build:
        payload = webhooks.github_push("acme/demo", repo.url, ref=ref, before=before, after=after)
        if ref.startswith("refs/tags/"):
            payload["head_commit"]["id"] = a  # after is the tag object
        body, headers = webhooks.github_delivery(payload, project.SECRET, delivery_id=delivery_id)
        answer = client.post("/webhooks/github", content=body, headers=headers)
        assert answer.status_code == 202, answer.text
        assert worker.run_once()
        with sqlite_db.session() as session:
            return builds.get_build(session, answer.json()["build_ids"][0])

    for client in app_client(sqlite_db, config):
        first = push(x, a, "push-1")
        _git("push", "--quiet", "--force", "origin", f"{x}:refs/heads/main", cwd=repo.work)
        back = push(a, x, "push-2")
        _git("push", "--quiet", "--force", "origin", f"{a}:refs/heads/main", cwd=repo.work)
        assert (first.status, back.status) == ("succeeded", "succeeded") and first.digest != back.digest
        assert skopeo_inspect(f"{image}:main", tls_verify=False)["Digest"] == back.digest
        again = push(x, a, "push-3")
        assert (again.status, again.digest, again.reused_from) == ("succeeded", first.digest, first.id)
        assert skopeo_inspect(f"{image}:main", tls_verify=False)["Digest"] == first.digest
        log = project.build_log(sqlite_db, again.id)
        assert f"was built with the same inputs by build {first.id}" in log and "checking out" not in log
        tagged = push("0" * 40, tag_object, "push-4", ref="refs/tags/v1.0")
        assert (tagged.commit, tagged.tag_object, tagged.digest) == (a, tag_object, first.digest)
        labels = skopeo_config(f"{image}:{a}", tls_verify=False)["config"]["Labels"]
        assert labels["org.opencontainers.image.revision"] == a
        rebuilt = client.post(f"/api/v1/builds/{first.id}/rebuild")
        assert rebuilt.status_code == 202, rebuilt.text
        assert worker.run_once()
        with sqlite_db.session() as session:
            fresh = session.scalars(select(Build).where(Build.id == rebuilt.json()["id"])).one()
        assert fresh.status == "succeeded" and fresh.reused_from is None  # a rebuild always builds
