"""Write-back in pull-request mode: the edit goes to a branch of its own in a real bare repository
and a pull request is opened (GitHub's API stood in for by tests/github_api.py, since GitHub
cannot be reached here); the promotion waits ``awaiting_merge`` holding its environment, and
resumes (tag moved last) once merged, or fails once closed."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline import promotion
from pipeline.config import Config, parse_config
from pipeline.store import Database, promotions
from tests.github_api import FakeGitHub
from tests.gitrepo import GitRepo
from tests.images import OciLayout, skopeo_push
from tests.seed import succeeded_builds
from tests.services import Registry, skopeo_inspect
from workers.promotion_worker import PromotionWorker

VALUES = "image:\n  digest: none  # the pipeline writes here\n"


@pytest.fixture(scope="module")
def digests(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    layout = OciLayout(tmp_path_factory.mktemp("pr-oci"))
    for n in range(2):
        layout.tag(f"p{n}", layout.image([20_000], seed=300 + n))
        skopeo_push(layout, f"p{n}", registry, "acme/pr")
    return [layout.refs["p0"], layout.refs["p1"]]


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitHub]:
    monkeypatch.setenv("GITHUB_TOKEN_FOR_TESTS", "ghp-test-token")
    with FakeGitHub("acme/deploy", "ghp-test-token") as fake:
        yield fake


@pytest.fixture
def deploy(tmp_path: Path) -> GitRepo:
    repo = GitRepo.create(tmp_path / "deploy")
    repo.commit({"prod/values.yaml": VALUES}, "initial")
    return repo


@pytest.fixture
def config(tmp_path: Path, registry: Registry, deploy: GitRepo, github: FakeGitHub) -> Config:
    return parse_config(
        {
            "data_dir": str(tmp_path / "data"),
            "worker": {"lease_seconds": 10, "poll_seconds": 0.05, "max_attempts": 1},
            "registries": {"local": {"url": registry.host, "insecure": True}},
            "projects": {
                "app": {
                    "repo": "https://git.example.com/acme/app.git",
                    "allow_unsigned": True,
                    "image": {"registry": "local", "repository": "acme/pr"},
                    "environments": [
                        {
                            "name": "prod",
                            "registry": "local",
                            "repository": f"pr/prod-{secrets.token_hex(3)}",
                            "gitops": {
                                "repo": deploy.url,
                                "path": "prod/values.yaml",
                                "key": "image.digest",
                                "pull_request": {
                                    "repository": "acme/deploy",
                                    "api_url": github.url,
                                    "token_env": "GITHUB_TOKEN_FOR_TESTS",
                                },
                            },
                            # queued when the promotion ends; no verification worker runs here
                            "verify_after": {"http": "http://127.0.0.1:9/{environment}/version"},
                        }
                    ],
                }
            },
        }
    )


@pytest.fixture
def built(db: Database, config: Config, digests: list[str]) -> list[int]:
    return succeeded_builds(db, config, "app", digests, first=3)


def _ask(db: Database, config: Config, build_id: int) -> int:
    with db.session() as session:
        return promotion.request_promotion(session, config, "app", "prod", build_id=build_id, actor="ops").id


def _row(db: Database, promotion_id: int) -> Any:
    with db.session() as session:
        return promotions.get_promotion(session, promotion_id)


def _git(repo: GitRepo, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(repo.bare), *args], capture_output=True, text=True, check=True
    ).stdout


def _tag(registry: Registry, config: Config) -> str | None:
    ref = f"{registry.host}/{config.project('app').environment('prod').repository}:prod"
    try:
        return str(skopeo_inspect(ref, tls_verify=False)["Digest"])
    except RuntimeError:
        return None


def test_the_edit_waits_in_a_pull_request_and_the_tag_moves_after_the_merge(
    db: Database,
    config: Config,
    built: list[int],
    digests: list[str],
    deploy: GitRepo,
    github: FakeGitHub,
    registry: Registry,
) -> None:
    worker = PromotionWorker(db, config, name="pr-promoter")
    first, second = _ask(db, config, built[0]), _ask(db, config, built[1])
    assert worker.run_once()
    waiting = _row(db, first)
    assert waiting.status == "awaiting_merge" and waiting.gitops_pull_request.endswith("/pull/1")
    assert [(s["kind"], s["status"]) for s in waiting.steps][-1] == ("git-push", "awaiting_merge")
    head = f"pipeline/app/prod/promotion-{first}"
    assert digests[0] in _git(deploy, "show", f"{head}:prod/values.yaml")
    assert "none  # the pipeline writes here" in _git(deploy, "show", "main:prod/values.yaml")  # main untouched
    [pull] = github.pulls.values()
    assert (pull["head"]["ref"], pull["base"]["ref"]) == (head, "main")
    assert pull["title"] == f"promote app to prod: {digests[0]}"
    assert _tag(registry, config) is None  # the tag waits for the merge
    assert waiting.verification is None  # and so does the verification after promotion
    assert not worker.run_once()  # the later promotion waits behind the open pull request
    assert _row(db, second).status == "pending"

    assert promotion.check_pull_requests(db, config) == {first: "open"}
    github.merge(1)
    _git(deploy, "update-ref", "refs/heads/main", _git(deploy, "rev-parse", head).strip())  # as the merge would
    assert promotion.check_pull_requests(db, config) == {first: "merged"}
    assert worker.run_once()
    done = _row(db, first)
    assert done.status == "succeeded", done.error
    assert [(s["kind"], s["status"]) for s in done.steps] == [
        ("copy-image", "succeeded"),
        ("copy-signatures", "succeeded"),
        ("git-push", "merged"),
        ("move-tag", "succeeded"),
    ]
    assert done.copy_report is not None and done.gitops_commit
    assert _tag(registry, config) == digests[0]
    assert done.verification is not None and done.verification.status == "pending"  # asked after the merge
    with db.session() as session:
        assert promotions.current(session, "app", "prod").id == first  # type: ignore[union-attr]

    assert worker.run_once()  # now the second one opens its own pull request
    assert _row(db, second).status == "awaiting_merge" and len(github.pulls) == 2


def test_a_closed_pull_request_fails_the_promotion_and_frees_the_environment(
    db: Database, config: Config, built: list[int], github: FakeGitHub, registry: Registry
) -> None:
    worker = PromotionWorker(db, config, name="pr-promoter")
    first = _ask(db, config, built[0])
    assert worker.run_once() and _row(db, first).status == "awaiting_merge"
    github.close(1)
    assert promotion.check_pull_requests(db, config) == {first: "closed"}
    failed = _row(db, first)
    assert failed.status == "failed" and "closed without merging" in failed.error
    assert _tag(registry, config) is None
    second = _ask(db, config, built[1])
    assert worker.run_once() and _row(db, second).status == "awaiting_merge"


def test_a_bad_host_token_fails_the_promotion_clearly(
    db: Database, config: Config, built: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN_FOR_TESTS", "wrong")
    first = _ask(db, config, built[0])
    assert PromotionWorker(db, config, name="pr-promoter").run_once()
    failed = _row(db, first)
    assert failed.status == "failed" and "GitHub refused POST pulls for acme/deploy (401)" in failed.error
    assert "wrong" not in failed.error
