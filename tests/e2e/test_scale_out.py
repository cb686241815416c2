"""Two `pipeline worker` processes and two engines drain one PostgreSQL queue: every build once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from pipeline.config import load_config
from pipeline.store import Build, open_database
from tests import project
from tests.gitrepo import GitRepo
from tests.services import DockerEngine, Postgres, Registry, skopeo_inspect

BUILDS = 20


def test_two_workers_two_engines_build_each_commit_exactly_once(
    tmp_path: Path, engine: DockerEngine, second_engine: DockerEngine, registry: Registry, base_image: str,
    git_repo: GitRepo, postgres: Postgres,
) -> None:
    url = postgres.create_database("scale_out")
    data = project.config_data(data_dir=tmp_path / "data", registry_host=registry.host,
                               engine_host=engine.host, repo_url=git_repo.url)
    data["docker"]["hosts"] = [engine.host, second_engine.host]
    data["database_url"] = url
    data["projects"]["demo"]["build"]["insight"] = False
    config_file = project.write_config(tmp_path / "pipeline.yaml", data)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")}
    subprocess.run([sys.executable, "-m", "pipeline", "migrate", "--config", str(config_file)], check=True, env=env)
    config = load_config(config_file)
    db = open_database(url)
    shas = [git_repo.commit({"Dockerfile": f"FROM {base_image}\nRUN echo build-{i} > /n\n"}, f"commit {i}")
            for i in range(BUILDS)]
    ids = [project.queue_build(db, config, sha) for sha in shas]

    workers = [subprocess.Popen([sys.executable, "-m", "pipeline", "worker", "--config", str(config_file)],
                                env=env, stdout=open(tmp_path / f"worker{i}.log", "wb"), stderr=subprocess.STDOUT,
                                start_new_session=True) for i in range(2)]
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            with db.session() as session:
                rows = list(session.scalars(select(Build).where(Build.id.in_(ids))))
            if all(b.status not in ("queued", "running") for b in rows):
                break
            time.sleep(0.5)
    finally:
        for proc in workers:
            proc.send_signal(signal.SIGTERM)
        for proc in workers:
            proc.wait(timeout=60)
    assert [b.status for b in rows] == ["succeeded"] * BUILDS, [(b.id, b.error) for b in rows if b.error]
    assert all(b.attempts == 1 for b in rows), "a build was claimed twice"
    assert {b.engine for b in rows} == {engine.host, second_engine.host}
    assert len({b.worker for b in rows}) == 2
    assert sorted(b.commit for b in rows) == sorted(shas)
    for build in rows:
        assert skopeo_inspect(f"{registry.host}/acme/demo@{build.digest}", tls_verify=False)["Digest"] == build.digest
    db.dispose()
