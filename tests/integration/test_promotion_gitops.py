"""Promotions that land in an environment's Git repository (a real bare repository): the commit
names the digest and is recorded; comments survive; nothing changes, nothing is committed; a
repository that refuses the push fails the promotion and leaves the registry tag unmoved.

Order, as documented in the README: copy by digest, signatures, Git, then the tag.
"""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pipeline import promotion
from pipeline.config import Config, parse_config
from pipeline.store import Database, promotions
from tests.gitrepo import GitRepo
from tests.images import OciLayout, skopeo_push
from tests.seed import succeeded_builds
from tests.services import Registry, skopeo_inspect
from workers.promotion_worker import PromotionWorker

VALUES = """\
# staging values: edited by hand and by the pipeline
image:
  repository: example/app   # set by the pipeline
  digest: ""               # set by the pipeline
replicas: 3
"""
DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  template:
    spec:
      containers:
        - name: app
          image: example/app:old  # the pipeline writes a digest here
        - name: sidecar
          image: busybox:1
"""


@pytest.fixture(scope="module")
def digests(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    layout = OciLayout(tmp_path_factory.mktemp("gitops-oci"))
    for n in range(2):
        layout.tag(f"g{n}", layout.image([30_000], seed=200 + n))
        skopeo_push(layout, f"g{n}", registry, "acme/gitops")
    return [layout.refs["g0"], layout.refs["g1"]]


@pytest.fixture
def deploy(tmp_path: Path) -> GitRepo:
    repo = GitRepo.create(tmp_path / "deploy")
    repo.commit({"staging/values.yaml": VALUES, "prod/deployment.yaml": DEPLOYMENT}, "initial")
    return repo


@pytest.fixture
def config(tmp_path: Path, registry: Registry, deploy: GitRepo) -> Config:
    run = secrets.token_hex(3)
    return parse_config(
        {
            "data_dir": str(tmp_path / "data"),
            "worker": {"lease_seconds": 10, "poll_seconds": 0.05, "max_attempts": 1},
            "registries": {"local": {"url": registry.host, "insecure": True}},
            "projects": {
                "app": {
                    "repo": "https://git.example.com/acme/app.git",
                    "allow_unsigned": True,
                    "image": {"registry": "local", "repository": "acme/gitops"},
                    "environments": [
                        {
                            "name": "staging",
                            "registry": "local",
                            "repository": f"gitops/staging-{run}",
                            "gitops": {"repo": deploy.url, "path": "staging/values.yaml", "key": "image.digest"},
                        },
                        {
                            "name": "prod",
                            "registry": "local",
                            "repository": f"gitops/prod-{run}",
                            "requires": "staging",
                            "gitops": {
                                "repo": deploy.url,
                                "path": "prod/deployment.yaml",
                                "container": "app",
                                "resource_kind": "Deployment",
                                "author_name": "Pipeline Bot",
                                "author_email": "bot@example.com",
                            },
                        },
                    ],
                }
            },
        }
    )


@pytest.fixture
def built(db: Database, config: Config, digests: list[str]) -> list[int]:
    return succeeded_builds(db, config, "app", digests, first=7)


def _promote(db: Database, config: Config, environment: str, build_id: int) -> Any:
    with db.session() as session:
        row = promotion.request_promotion(session, config, "app", environment, build_id=build_id, actor="ops")
    assert PromotionWorker(db, config, name="git-promoter").run_once()
    with db.session() as session:
        return promotions.get_promotion(session, row.id)


def _git(repo: GitRepo, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(repo.bare), *args], capture_output=True, text=True, check=True
    ).stdout


def _repo(config: Config, environment: str) -> str:
    return config.project("app").environment(environment).repository


def test_a_promotion_commits_the_digest_and_records_the_commit(
    db: Database, config: Config, built: list[int], digests: list[str], deploy: GitRepo, registry: Registry
) -> None:
    row = _promote(db, config, "staging", built[0])
    assert row.status == "succeeded", row.error
    assert [s["kind"] for s in row.steps] == ["copy-image", "copy-signatures", "git-push", "move-tag"]
    assert row.gitops_commit == _git(deploy, "rev-parse", "main").strip()
    assert _git(deploy, "show", "main:staging/values.yaml") == VALUES.replace('digest: ""', f'digest: "{digests[0]}"')
    message = _git(deploy, "log", "-1", "--format=%B", "main")
    assert message.startswith(f"promote app to staging: {digests[0]}")
    assert f"promotion: {row.id} (manual, by ops)" in message and "commit: " + "7" * 40 in message

    prod = _promote(db, config, "prod", built[0])
    assert prod.status == "succeeded", prod.error
    written = _git(deploy, "show", "main:prod/deployment.yaml")
    assert f"image: {registry.host}/{_repo(config, 'prod')}:prod@{digests[0]}  # the pipeline writes" in written
    assert "image: busybox:1" in written
    assert _git(deploy, "log", "-1", "--format=%an <%ae>", "main").strip() == "Pipeline Bot <bot@example.com>"


def test_the_same_digest_again_makes_no_commit(db: Database, config: Config, built: list[int], deploy: GitRepo) -> None:
    first = _promote(db, config, "staging", built[0])
    head = _git(deploy, "rev-parse", "main")
    again = _promote(db, config, "staging", built[0])
    assert again.status == "succeeded" and again.gitops_commit is None and first.gitops_commit
    assert "no commit" in again.steps[2]["message"]
    assert _git(deploy, "rev-parse", "main") == head


def test_a_refused_push_fails_the_promotion_and_the_tag_does_not_move(
    db: Database, config: Config, built: list[int], digests: list[str], deploy: GitRepo, registry: Registry
) -> None:
    assert _promote(db, config, "staging", built[0]).status == "succeeded"
    hook = deploy.bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'staging is frozen until Monday' >&2\nexit 1\n")
    hook.chmod(0o755)
    failed = _promote(db, config, "staging", built[1])
    assert failed.status == "failed" and failed.attempts == 1
    assert "refused the push to main" in failed.error and "staging is frozen until Monday" in failed.error
    assert [(s["kind"], s["status"]) for s in failed.steps][-1] == ("git-push", "failed")
    tag = f"{registry.host}/{_repo(config, 'staging')}:staging"
    assert skopeo_inspect(tag, tls_verify=False)["Digest"] == digests[0]  # still the old digest
    with db.session() as session:
        assert promotions.current(session, "app", "staging").digest == digests[0]  # type: ignore[union-attr]
