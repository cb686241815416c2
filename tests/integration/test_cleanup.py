"""The registry cleanup against a real registry with deletes enabled and a real Git repository,
on SQLite and PostgreSQL; what depends on the registry (tag deletes, 405) on distribution 2.8
and 3, the races (database locks) on 2.8.

Build rows are written straight into the database for tiny images pushed by the registry
client: what is under test starts after the build. One history covers every rule: old commits
of a branch, a Git tag, a branch deleted in Git (old and recent builds), promotions that keep
what runs and what ran, signatures and referrers that go with a deleted image.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline import cleanup, promotion
from pipeline.api import create_app
from pipeline.config import Config, parse_config
from pipeline.registry import RegistryClient
from pipeline.store import Database, Promotion, migrate, open_database, projects, promotions, retention
from tests.conftest import DEFAULT_REGISTRY, RegistryPool, app_client, token_headers
from tests.gitrepo import GitRepo
from tests.seed import push_image, push_signatures, record_build, serve_with_promoter
from tests.services import Registry

OLD, RECENT = dt.timedelta(days=30), dt.timedelta(hours=3)


def make_config(tmp_path: Path, registry: Registry, repo: GitRepo, run: str) -> Config:
    data: dict[str, Any] = {
        "data_dir": str(tmp_path / "data"),
        "worker": {"lease_seconds": 5},
        "registries": {"local": {"url": registry.host, "insecure": True}},
        "projects": {
            "demo": {
                "repo": repo.url,
                "allow_unsigned": True,
                "image": {"registry": "local", "repository": f"cleanup/{run}"},
                "environments": [{"name": "dev", "registry": "local", "repository": f"cleanup/dev-{run}"}],
                "cleanup": {"keep_commits": 3, "keep_days": 7, "keep_promotions": 1},
            }
        },
    }
    return parse_config(data)


class History:
    """The seeded project: name -> (build id, digest), and the client to look with."""

    def __init__(self, db: Database, config: Config, client: RegistryClient) -> None:
        self.db, self.config, self.client = db, config, client
        self.repository = config.projects["demo"].image.repository
        self.builds: dict[str, tuple[int, str]] = {}
        with db.session() as session:
            projects.sync_projects(session, config.projects)

    def build(self, name: str, commit: str, branch: str | None, age: dt.timedelta) -> str:
        tags = [f"{branch}-{commit[:7]}", str(branch)]
        digest = push_image(self.client, self.repository, f"{self.repository}-{name}", tags)
        self.builds[name] = (record_build(self.db, "demo", commit, branch, digest, tags=tags, age=age), digest)
        return digest

    def promote(self, name: str) -> None:
        build_id, digest = self.builds[name]
        with self.db.session() as session:
            promotions.add_promotion(
                session,
                project="demo",
                environment="dev",
                digest=digest,
                build_id=build_id,
                actor="test",
                status="succeeded",
                finished_at=dt.datetime.now(dt.UTC),
            )

    def present(self, name: str) -> bool:
        return self.client.find_manifest(self.repository, self.builds[name][1]) is not None


def seed(db: Database, config: Config, client: RegistryClient, repo: GitRepo) -> History:
    """main m1..m5 (m1 tagged v1), feature f1 (old) f2 (recent) then deleted, branch old o1 o2
    promoted to dev (o2 last, so o1 fell out of the last promotion kept) then deleted."""
    history = History(db, config, client)
    main = [repo.commit({"main.txt": str(n)}, f"main {n}") for n in range(1, 6)]
    repo.tag("v1", main[0])
    for n, commit in enumerate(main, start=1):
        history.build(f"m{n}", commit, "main", OLD)
    f1 = repo.commit({"feature.txt": "1"}, "feature 1", branch="feature")
    f2 = repo.commit({"feature.txt": "2"}, "feature 2", branch="feature")
    history.build("f1", f1, "feature", OLD)
    history.build("f2", f2, "feature", RECENT)
    o1 = repo.commit({"old.txt": "1"}, "old 1", branch="old")
    o2 = repo.commit({"old.txt": "2"}, "old 2", branch="old")
    history.build("o1", o1, "old", OLD)
    history.build("o2", o2, "old", OLD)
    history.promote("o1")
    history.promote("o2")
    repo.delete_branch("feature")
    repo.delete_branch("old")
    return history


@pytest.fixture
def setup(db: Database, registry: Registry, registry_impl: str, git_repo: GitRepo, tmp_path: Path) -> Any:
    if registry_impl != DEFAULT_REGISTRY and db.dialect == "postgresql":
        pytest.skip("distribution 3's answers are checked on SQLite; both databases run on 2.8")
    config = make_config(tmp_path, registry, git_repo, secrets.token_hex(4))
    with RegistryClient(config.registries["local"]) as client:
        yield seed(db, config, client, git_repo)


EXPECTED_DELETED = {"m2", "f1", "o1"}


def cli(url: str, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PIPELINE_URL": url, "PIPELINE_TOKEN": token, "COLUMNS": "250"}
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.mark.both_registries  # 2.8 deletes tags only with their manifest, 3 deletes them alone
def test_cleanup_deletes_what_no_rule_keeps_and_the_dry_run_said_so(setup: History) -> None:
    history, db, config = setup, setup.db, setup.config
    m2_digest = history.builds["m2"][1]
    signatures = push_signatures(history.client, history.repository, m2_digest)

    dry = cleanup.clean_project(db, config, "demo", dry_run=True)
    by_name = {name: d for d in dry.decisions for name, (bid, _) in history.builds.items() if d.build_id == bid}
    assert {n for n, d in by_name.items() if d.action == "delete"} == EXPECTED_DELETED
    assert "Git tag v1" in by_name["m1"].reason
    assert "last 3 commits of branch main" in by_name["m3"].reason
    assert "within the 7 days" in by_name["f2"].reason
    assert "runs in dev" in by_name["o2"].reason
    assert "branch feature was deleted" in by_name["f1"].reason
    assert "not among the last 3 commits" in by_name["m2"].reason
    clients = app_client(db, config)
    api = next(clients)
    answer = api.post("/api/v1/cleanup", json={"project": "demo", "dry_run": True})
    assert answer.status_code == 200, answer.text
    assert answer.json()["projects"][0]["decisions"] == [d.to_dict() for d in dry.decisions]
    viewer = api.post("/api/v1/cleanup", json={"dry_run": True}, headers=token_headers(db, "dashboard", "viewer"))
    assert viewer.status_code == 403, "cleaning registries needs an admin"
    assert api.post("/api/v1/cleanup", json={"project": "helo"}).status_code == 404
    clients.close()
    assert all(history.present(n) for n in history.builds), "a dry run deletes nothing"

    demo = config.projects["demo"]  # dev promoted into the build repository itself: what ran there stays
    dev = demo.environments[0].model_copy(update={"repository": history.repository})
    shared = config.model_copy(update={"projects": {"demo": demo.model_copy(update={"environments": [dev]})}})
    o1 = next(
        d
        for d in cleanup.clean_project(db, shared, "demo", dry_run=True).decisions
        if d.build_id == history.builds["o1"][0]
    )
    assert (o1.action, o1.reason) == ("keep", "ran in dev, whose repository is the build repository (not cleaned)")

    real = cleanup.clean_project(db, config, "demo", dry_run=False)
    assert [(d.build_id, d.action, d.reason) for d in real.decisions] == [
        (d.build_id, d.action, d.reason) for d in dry.decisions
    ]
    assert real.refused is None and real.errors == []
    assert {n for n in history.builds if not history.present(n)} == EXPECTED_DELETED
    assert {d.digest for d in real.deleted} == {history.builds[n][1] for n in EXPECTED_DELETED}
    client, repository = history.client, history.repository
    m2 = next(d for d in real.deleted if d.digest == m2_digest)
    assert client.find_manifest(repository, m2.tags[0]) is None, "its tags went with it"
    hex_tag = m2_digest.replace(":", "-", 1)
    for tag in (f"{hex_tag}.sig", f"{hex_tag}.att", hex_tag):
        assert client.find_manifest(repository, tag) is None, f"{tag} went with the image"
    assert client.find_manifest(repository, signatures["referrer"]) is None
    assert client.find_manifest(repository, "main") is not None, "m5's moving tag stays"

    with db.session() as session:
        rows = {b.id: b for b in retention.images_of_digest(session, "demo", m2_digest)}
    assert rows[history.builds["m2"][0]].image_deleted_at is not None, "the build row stays and says so"

    again = cleanup.clean_project(db, config, "demo", dry_run=True)
    assert {d.build_id for d in again.decisions} == {
        bid for n, (bid, _) in history.builds.items() if n not in EXPECTED_DELETED
    }, "a deleted image is not planned again"

    with db.session() as session:
        refused = promotion.request_promotion(session, config, "demo", "dev", digest=m2_digest, actor="alice")
        assert refused.status == "rejected"
        assert "deleted from the build registry by the cleanup" in (refused.error or "")


def test_a_promotion_asked_for_after_the_plan_keeps_its_digest(setup: History, monkeypatch: pytest.MonkeyPatch) -> None:
    """The race: the plan says delete f1, then a promotion of f1 is queued before the delete;
    the check under the promoter's locks right before the delete finds it and keeps f1."""
    history, db, config = setup, setup.db, setup.config
    real_plan = cleanup._execute.plan_project
    queued: list[int] = []

    def plan_then_promote(db: Database, config: Config, project: str) -> cleanup.Plan:
        planned = real_plan(db, config, project)
        with db.session() as session:
            queued.append(
                promotion.request_promotion(
                    session, config, "demo", "dev", build_id=history.builds["f1"][0], actor="alice"
                ).id
            )
        return planned

    monkeypatch.setattr(cleanup._execute, "plan_project", plan_then_promote)
    report = cleanup.clean_project(db, config, "demo", dry_run=False)
    f1 = next(d for d in report.decisions if d.build_id == history.builds["f1"][0])
    assert f1.action == "keep"
    assert f1.reason == f"checked again: promotion {queued[0]} to dev is pending"
    assert history.present("f1")
    assert not history.present("m2") and not history.present("o1"), "the others went"


@pytest.mark.both_registries
def test_a_registry_that_refuses_deletes_is_said_once(
    registry_pool: RegistryPool, registry_impl: str, git_repo: GitRepo, tmp_path: Path
) -> None:
    """The registry's answer is under test, so one database (SQLite) is enough."""
    db = open_database(f"sqlite:///{tmp_path / 'p.db'}")
    migrate(db)
    locked = registry_pool.get("registry-no-delete", registry_impl, delete=False)
    config = make_config(tmp_path, locked, git_repo, secrets.token_hex(4))
    with RegistryClient(config.registries["local"]) as client:
        history = seed(db, config, client, git_repo)
        report = cleanup.clean_project(db, config, "demo", dry_run=False)
        assert all(history.present(n) for n in history.builds)
        token = token_headers(db, "ops", "admin")["Authorization"].removeprefix("Bearer ")
        with serve_with_promoter(create_app(config, db), db, config, "cleanup-cli") as url:
            dry = cli(url, token, "cleanup", "--dry-run", "--output", "json")
            real = cli(url, token, "cleanup", "--project", "demo")
        assert all(history.present(n) for n in history.builds)
    assert dry.returncode == 0, dry.stderr
    planned = json.loads(dry.stdout)["projects"][0]
    assert planned["dry_run"] and planned["deleted"] == len(EXPECTED_DELETED) and planned["refused"] is None
    assert real.returncode == 1, "a registry refusing deletes is the operation ending badly"
    assert f"demo: registry {locked.host} refuses deletes" in " ".join(real.stderr.split())
    said = " ".join(real.stdout.split())
    assert f"demo: deleted 0, kept {len(history.builds)}" in said, "every image is listed as kept"
    assert report.refused is not None
    assert f"registry {locked.host} refuses deletes" in report.refused
    assert "storage.delete.enabled: true" in report.refused
    assert report.deleted == [] and report.errors == []
    not_deleted = [d for d in report.decisions if d.reason.startswith("not deleted: ")]
    assert len(not_deleted) == len(EXPECTED_DELETED)
    with db.session() as session:
        assert len(retention.live_images(session, "demo")) == len(history.builds), "no row marked"


def test_a_promotion_asked_for_during_the_delete_waits_and_is_refused(
    setup: History, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other order: the delete of m2 is under way (manifest gone, transaction open) when a
    promotion of m2 is asked for, as the API asks (a writer transaction). It waits for the
    cleanup's transaction (the build rows' lock on PostgreSQL, the writer lock on SQLite) and
    is then refused with the reason, instead of queueing a copy of nothing."""
    history, db, config = setup, setup.db, setup.config
    real_delete = cleanup._execute.delete_manifest
    answers: list[Promotion] = []
    started = threading.Event()

    def request() -> None:
        started.set()
        with db.session(immediate=True) as session:
            row = promotion.request_promotion(
                session, config, "demo", "dev", build_id=history.builds["m2"][0], actor="bob"
            )
            answers.append(row)

    asker = threading.Thread(target=request)

    def delete_then_let_a_promotion_ask(client: RegistryClient, repository: str, digest: str) -> bool:
        deleted = real_delete(client, repository, digest)
        if digest == history.builds["m2"][1]:
            asker.start()
            started.wait(10)
            time.sleep(0.5)  # orders the events only: the asker is inside its transaction by now
        return deleted

    monkeypatch.setattr(cleanup._execute, "delete_manifest", delete_then_let_a_promotion_ask)
    report = cleanup.clean_project(db, config, "demo", dry_run=False)
    asker.join(30)
    assert history.builds["m2"][1] in {d.digest for d in report.deleted}
    assert len(answers) == 1 and answers[0].status == "rejected"
    assert "deleted from the build registry by the cleanup" in (answers[0].error or "")
