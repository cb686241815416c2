"""Builds on both real builders (Debian's 20.10 engine, a buildkitd v0.32 daemon over mTLS) and a
real registry, run by an in-process worker: failures, paths, secrets, registry credentials."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import Config, parse_config
from pipeline.store import Database, builds, migrate, open_database, projects
from tests import project
from tests.conftest import REGISTRY_PASSWORD, REGISTRY_USER
from tests.gitrepo import GitRepo
from tests.integration.conftest import BuilderUnderTest, pull, with_builder
from tests.services import DockerEngine, Registry, skopeo_inspect
from workers.build_worker import BuildWorker

pytestmark = pytest.mark.both_registries  # distribution 2.8 and 3


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Database:
    database = open_database(f"sqlite:///{tmp_path / 'p.db'}")
    migrate(database)
    return database


def _config(tmp_path: Path, builder: BuilderUnderTest, registry: Registry, repo: GitRepo, **build: object) -> Config:
    data = project.config_data(
        data_dir=tmp_path / "data", registry_host=registry.host, engine_host="unused", repo_url=repo.url, **build
    )
    return parse_config(with_builder(data, builder))


_build = project.run_build
_log = project.build_log


def test_failing_dockerfile_fails_once_with_the_step_and_its_output(
    tmp_path: Path,
    builder: BuilderUnderTest,
    registry: Registry,
    base_image: str,
    git_repo: GitRepo,
    sqlite_db: Database,
) -> None:
    sha = git_repo.commit({"Dockerfile": f"FROM {base_image}\nRUN echo about-to-fail && exit 3\n"})
    build = _build(sqlite_db, _config(tmp_path, builder, registry, git_repo), sha)
    assert build.status == "failed" and build.attempts == 1 and build.digest is None
    assert "RUN echo about-to-fail && exit 3" in build.error
    assert "exit code: 3" in build.error or "exit status 3" in build.error
    assert "about-to-fail" in _log(sqlite_db, build.id)


@pytest.mark.parametrize(
    ("files", "build_options", "message"),
    [
        ({"app/x": "x"}, {"dockerfile": "Dockerfile"}, "dockerfile 'Dockerfile' does not exist in the commit"),
        ({"app/x": "x"}, {"context": "missing"}, "build context 'missing' does not exist"),
    ],
)
def test_paths_that_do_not_exist_are_clear_errors(
    tmp_path: Path,
    builder: BuilderUnderTest,
    registry: Registry,
    git_repo: GitRepo,
    sqlite_db: Database,
    files: dict[str, str],
    build_options: dict[str, str],
    message: str,
) -> None:
    sha = git_repo.commit(files)
    build = _build(sqlite_db, _config(tmp_path, builder, registry, git_repo, **build_options), sha)
    assert build.status == "failed" and message in build.error


def test_symlinked_dockerfile_escaping_the_checkout_is_refused(
    tmp_path: Path, builder: BuilderUnderTest, registry: Registry, git_repo: GitRepo, sqlite_db: Database
) -> None:
    outside = tmp_path / "outside-Dockerfile"
    outside.write_text("FROM scratch\n")
    git_repo.commit({"readme": "x"})
    (git_repo.work / "Dockerfile").symlink_to(outside)
    sha = git_repo.commit({})
    build = _build(sqlite_db, _config(tmp_path, builder, registry, git_repo), sha)
    assert build.status == "failed"
    assert "dockerfile 'Dockerfile' points outside the repository checkout" in build.error


def test_build_secret_reaches_run_but_not_the_image_or_logs(
    tmp_path: Path,
    builder: BuilderUnderTest,
    engine: DockerEngine,
    registry: Registry,
    base_image: str,
    git_repo: GitRepo,
    sqlite_db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEMO_NPM_TOKEN", "tok-9f8e7d6c5b")
    dockerfile = (
        f"FROM {base_image}\n"
        "RUN --mount=type=secret,id=npm cat /run/secrets/npm && wc -c /run/secrets/npm > /size"
        f" && echo for-{registry.host}\n"  # a step of its own per registry: never a cache hit
    )
    sha = git_repo.commit({"Dockerfile": dockerfile})
    config = _config(tmp_path, builder, registry, git_repo, secrets=[{"id": "npm", "env": "DEMO_NPM_TOKEN"}])
    build = _build(sqlite_db, config, sha)
    log = _log(sqlite_db, build.id)
    assert build.status == "succeeded", build.error
    assert "tok-9f8e7d6c5b" not in log and "***" in log
    history = engine.docker("history", "--no-trunc", pull(engine, f"{registry.host}/acme/demo:{sha}")).stdout.decode()
    assert "tok-9f8e7d6c5b" not in history
    size = engine.docker("run", "--rm", "--network", "host", f"{registry.host}/acme/demo:{sha}", "cat", "/size")
    assert size.stdout.decode().split()[0] == "14"
    assert skopeo_inspect(f"{registry.host}/acme/demo@{build.digest}", tls_verify=False)["Digest"] == build.digest


def _secure_config(
    tmp_path: Path,
    builder: BuilderUnderTest,
    secure_registry: Registry,
    git_repo: GitRepo,
    monkeypatch: pytest.MonkeyPatch,
    password: str,
) -> Config:
    """The demo project pushing to the TLS + basic-auth registry, credentials from the environment."""
    monkeypatch.setenv("SECURE_USER", REGISTRY_USER)
    monkeypatch.setenv("SECURE_PASSWORD", password)
    data = with_builder(
        project.config_data(
            data_dir=tmp_path / "data", registry_host=secure_registry.host, engine_host="unused", repo_url=git_repo.url
        ),
        builder,
    )
    data["registries"]["local"] = {
        "url": secure_registry.url,
        "ca_file": str(secure_registry.ca_file),
        "username_env": "SECURE_USER",
        "password_env": "SECURE_PASSWORD",
    }
    return parse_config(data)


def test_push_to_a_tls_registry_with_basic_auth(
    tmp_path: Path,
    builder: BuilderUnderTest,
    secure_registry: Registry,
    base_image: str,
    git_repo: GitRepo,
    sqlite_db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = _secure_config(tmp_path, builder, secure_registry, git_repo, monkeypatch, REGISTRY_PASSWORD)
    sha = git_repo.commit({"Dockerfile": project.dockerfile(base_image), "hello.txt": "hi\n"})
    build = _build(sqlite_db, config, sha)
    assert build.status == "succeeded", build.error
    stored = skopeo_inspect(
        f"{secure_registry.host}/acme/demo:{sha}",
        tls_verify=True,
        cert_dir=secure_registry.cert_dir,
        creds=secure_registry.creds(),
    )
    assert stored["Digest"] == build.digest
    assert REGISTRY_PASSWORD not in _log(sqlite_db, build.id)


def test_wrong_registry_password_fails_with_a_clear_error(
    tmp_path: Path,
    builder: BuilderUnderTest,
    secure_registry: Registry,
    base_image: str,
    git_repo: GitRepo,
    sqlite_db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = _secure_config(tmp_path, builder, secure_registry, git_repo, monkeypatch, "wrong-password")
    sha = git_repo.commit({"Dockerfile": project.dockerfile(base_image), "hello.txt": "hi\n"})
    build = _build(sqlite_db, config, sha)
    assert build.status == "failed"
    assert f"login to {secure_registry.host} as {REGISTRY_USER} failed" in build.error
    assert "wrong-password" not in build.error and "wrong-password" not in _log(sqlite_db, build.id)


def test_path_filter_checked_by_diff_when_the_host_sent_no_file_list(
    tmp_path: Path,
    builder: BuilderUnderTest,
    registry: Registry,
    base_image: str,
    git_repo: GitRepo,
    sqlite_db: Database,
) -> None:
    before = git_repo.commit({"Dockerfile": project.dockerfile(base_image), "hello.txt": "hi\n"})
    after = git_repo.commit({"docs/notes.md": "only docs\n"})
    config = parse_config(
        with_builder(
            project.config_data(
                data_dir=tmp_path / "data", registry_host=registry.host, engine_host="unused", repo_url=git_repo.url
            ),
            builder,
        )
    )
    data = config.model_dump(mode="json")
    data["projects"]["demo"]["paths"] = {"include": ["Dockerfile", "hello.txt", "src/**"]}
    config = parse_config(data)
    with sqlite_db.session() as session:
        projects.sync_projects(session, config.projects)
        build_id = builds.create_build(
            session,
            project="demo",
            commit=after,
            ref="refs/heads/main",
            branch="main",
            trigger="test",
            before_commit=before,
            check_paths=True,
        ).id
    assert BuildWorker(sqlite_db, config, name="w").run_once()
    with sqlite_db.session() as session:
        build = builds.get_build(session, build_id)
    assert build.status == "skipped" and build.digest is None
    assert "none of the 1 changed files matches" in build.error
