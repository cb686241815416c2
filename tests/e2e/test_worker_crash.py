"""A worker killed with SIGKILL mid-build loses its lease; another worker process finishes the build."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pipeline.config import load_config
from pipeline.store import Build, builds, open_database, projects
from tests import project
from tests.gitrepo import GitRepo
from tests.services import DockerEngine, Registry, skopeo_inspect


def _worker(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "PIPELINE_CONFIG"}
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "worker", "--config", str(config)],
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )


def _until(what: str, check, timeout: float = 120) -> Build:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (found := check()) is not None:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_killed_worker_build_is_taken_again_by_another_worker(
    tmp_path: Path, engine: DockerEngine, registry: Registry, base_image: str, git_repo: GitRepo
) -> None:
    data = project.config_data(
        data_dir=tmp_path / "data", registry_host=registry.host, engine_host=engine.host, repo_url=git_repo.url
    )
    data["worker"] = {"lease_seconds": 3, "poll_seconds": 0.2, "reap_seconds": 1}
    config_file = project.write_config(tmp_path / "pipeline.yaml", data)
    subprocess.run([sys.executable, "-m", "pipeline", "migrate", "--config", str(config_file)], check=True)
    config = load_config(config_file)
    db = open_database(config.effective_database_url)
    sha = git_repo.commit({"Dockerfile": f"FROM {base_image}\nRUN sleep 6 && echo slow-step-done\n"})
    with db.session() as session:
        projects.sync_projects(session, config.projects)
        build_id = builds.create_build(
            session, project="demo", commit=sha, ref="refs/heads/main", branch="main", trigger="test"
        ).id

    def build() -> Build:
        with db.session() as session:
            return builds.get_build(session, build_id)

    doomed = _worker(config_file, tmp_path / "doomed.log")
    first = _until(
        "the first worker to start building", lambda: b if (b := build()).status == "running" and b.engine else None
    )
    time.sleep(1)
    os.killpg(doomed.pid, signal.SIGKILL)
    doomed.wait()

    rescuer = _worker(config_file, tmp_path / "rescuer.log")
    try:
        done = _until(
            "the build to succeed on the second worker",
            lambda: b if (b := build()).status in ("succeeded", "failed") else None,
            timeout=180,
        )
    finally:
        rescuer.send_signal(signal.SIGTERM)
        rescuer.wait(timeout=30)
    assert done.status == "succeeded", done.error
    assert done.worker != first.worker and done.attempts == 2
    assert not (tmp_path / "data" / "work" / f"build-{build_id}").exists(), "crashed attempt's files remain"
    assert skopeo_inspect(f"{registry.host}/acme/demo@{done.digest}", tls_verify=False)["Digest"] == done.digest
    db.dispose()
