"""Builder faults as a worker meets them, on real builders: a builder that is down, a BuildKit
daemon that dies mid-build, a wrong client certificate, a platform no builder has, an unknown
buildx builder. Each ends with a clear error on the build row (retried later only when a builder
may come back), the build moved to another builder when its own builder failed, and nothing
left running: no build row `running`, no buildx process."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import Config, parse_config
from pipeline.store import Database, builds, migrate, open_database
from tests import project
from tests.buildkit_service import BuildkitDaemon, CertificateAuthority
from tests.gitrepo import GitRepo
from tests.integration.conftest import BuilderUnderTest, buildkit_entry, start_buildkitd, with_builder
from tests.services import Registry
from workers.build_worker import BuildWorker


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Database:
    database = open_database(f"sqlite:///{tmp_path / 'p.db'}")
    migrate(database)
    return database


def _config(tmp_path: Path, registry: Registry, repo: GitRepo, builders: list[dict[str, Any]], **build: Any) -> Config:
    data = project.config_data(
        data_dir=tmp_path / "data", registry_host=registry.host, engine_host="unused", repo_url=repo.url, **build
    )
    first = BuilderUnderTest("buildkit", builders[0])
    return parse_config(with_builder(data, first, *builders[1:]))


def _buildx_processes(marker: str) -> list[str]:
    """Command lines of buildx processes still alive whose arguments mention ``marker``."""
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    return [line for line in ps.splitlines() if "buildx" in line and marker in line]


def test_the_only_builder_down_is_retried_later_and_says_why(
    tmp_path: Path,
    uses_buildkit: BuilderUnderTest,
    registry: Registry,
    base_image: str,
    git_repo: GitRepo,
    sqlite_db: Database,
) -> None:
    sha = git_repo.commit({"Dockerfile": project.dockerfile(base_image), "hello.txt": "x\n"})
    config = _config(tmp_path, registry, git_repo, [{"name": "gone", "buildkit": "tcp://127.0.0.1:1"}])
    build = project.run_build(sqlite_db, config, sha)
    assert build.status == "queued" and build.attempts == 1, build.error
    assert build.error.startswith(
        "will retry: no builder can take this build: builder gone: "
        "the BuildKit daemon does not answer at 127.0.0.1:1: Connection refused"
    )


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "ghost", "buildx": "no-such-builder"}, "builder ghost: no buildx builder by that name"),
        ({"name": "farm", "platforms": ["linux/amd64"]}, "builder farm: lacks platform linux/arm64"),
        ({"name": "impostor"}, "builder impostor: the daemon refused our client certificate"),
    ],
)
def test_builder_problems_a_human_must_fix_fail_at_once_naming_the_builder(
    tmp_path: Path,
    uses_buildkit: BuilderUnderTest,
    buildkitd: BuildkitDaemon,
    registry: Registry,
    git_repo: GitRepo,
    sqlite_db: Database,
    entry: dict[str, Any],
    message: str,
) -> None:
    if "buildx" not in entry:
        entry = buildkit_entry(entry["name"], buildkitd, **{k: v for k, v in entry.items() if k != "name"})
    if entry["name"] == "impostor":
        intruder = CertificateAuthority(tmp_path / "other-ca").issue("impostor", server=False)
        entry |= {"cert_file": str(intruder.cert_file), "key_file": str(intruder.key_file)}
    sha = git_repo.commit({"Dockerfile": "FROM scratch\nCOPY a /a\n", "a": "a\n"})
    config = _config(tmp_path, registry, git_repo, [entry], platforms=["linux/amd64", "linux/arm64"])
    build = project.run_build(sqlite_db, config, sha)
    assert build.status == "failed" and build.attempts == 1, build.error
    assert message in build.error
    assert f"error: no builder can take this build: {message}" in project.build_log(sqlite_db, build.id)


def test_a_daemon_dying_mid_build_moves_the_build_and_leaves_nothing_running(
    tmp_path: Path,
    uses_buildkit: BuilderUnderTest,
    buildkitd: BuildkitDaemon,
    registry: Registry,
    base_image: str,
    git_repo: GitRepo,
    sqlite_db: Database,
) -> None:
    dying = start_buildkitd(tmp_path / "dying", [], None)
    marker = f"started-{tmp_path.name}"
    sha = git_repo.commit({"Dockerfile": f"FROM {base_image}\nRUN echo {marker} && sleep 6\n"})
    # the rotation starts at the build id: build 1 of two builders tries the second one first
    config = _config(
        tmp_path,
        registry,
        git_repo,
        [buildkit_entry("steady", buildkitd), {"name": "dying", "buildkit": dying.address}],
    )
    build_id = project.queue_build(sqlite_db, config, sha)
    assert build_id % 2 == 1
    output = re.compile(rf"^#\d+ \d+\.\d+ {marker}$")

    def kill_when_the_step_runs() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if any(output.match(line) for line in project.build_log(sqlite_db, build_id).splitlines()):
                dying.kill()
                return
            time.sleep(0.1)

    killer = threading.Thread(target=kill_when_the_step_runs)
    killer.start()
    try:
        assert BuildWorker(sqlite_db, config, name="w").run_once()
    finally:
        killer.join()
        dying.stop()
    with sqlite_db.session() as session:
        build = builds.get_build(session, build_id)
    log = project.build_log(sqlite_db, build_id)
    assert build.status == "succeeded" and build.engine == "steady", (build.error, log[-2000:])
    assert "builder dying failed; trying the next builder: builder dying" in log
    assert not _buildx_processes("pipeline-dying-"), "the buildx client of the dead daemon is gone"
