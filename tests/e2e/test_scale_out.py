"""Scale-out on one machine: PostgreSQL, two Docker engines, three `pipeline worker` processes and
`pipeline serve` (API only: no workers of its own). Twenty pushes arrive by signed webhook; every
build runs exactly once, on both engines, and the registry holds every digest."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy import select

from pipeline.store import Build, open_database
from tests import project, webhooks
from tests.gitrepo import GitRepo
from tests.services import DockerEngine, Postgres, Registry, free_port, log_tail, skopeo_inspect

PUSHES = 20
WORKERS = 3


@contextmanager
def _processes(commands: list[list[str]], env: dict[str, str], logs: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs = []
    try:
        for i, command in enumerate(commands):
            out = open(logs / f"proc{i}.log", "wb")  # noqa: SIM115  (kept open for the process's life)
            procs.append(
                subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            )
        yield procs
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def _wait_ready(url: str, logs: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError("pipeline serve did not become ready:\n" + log_tail(logs / "proc0.log"))


def test_three_workers_two_engines_build_every_pushed_commit_exactly_once(
    tmp_path: Path,
    engine: DockerEngine,
    second_engine: DockerEngine,
    registry: Registry,
    base_image: str,
    git_repo: GitRepo,
    postgres: Postgres,
) -> None:
    url = postgres.create_database("scale_out")
    data = project.config_data(
        data_dir=tmp_path / "data", registry_host=registry.host, engine_host=engine.host, repo_url=git_repo.url
    )
    data["docker"]["hosts"] = [engine.host, second_engine.host]
    data["database_url"] = url
    data["projects"]["demo"]["branches"] = ["push-*"]  # one branch per push: nothing supersedes anything
    data["projects"]["demo"]["build"]["insight"] = False
    config_file = project.write_config(tmp_path / "pipeline.yaml", data)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")} | {project.SECRET_ENV: project.SECRET}
    subprocess.run([sys.executable, "-m", "pipeline", "migrate", "--config", str(config_file)], check=True, env=env)
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    serve = [
        sys.executable,
        "-m",
        "pipeline",
        "serve",
        "--config",
        str(config_file),
        "--port",
        str(port),
        "--workers",
        "0",
        "--promotion-workers",
        "0",
    ]
    worker = [sys.executable, "-m", "pipeline", "worker", "--config", str(config_file)]
    db = open_database(url)
    with _processes([serve] + [worker] * WORKERS, env, tmp_path):
        _wait_ready(api, tmp_path)
        ids = []
        for i in range(PUSHES):
            sha = git_repo.commit(
                {"Dockerfile": f"FROM {base_image}\nRUN echo build-{i} > /n\n"}, f"push {i}", branch=f"push-{i}"
            )
            body, headers = webhooks.github_delivery(
                webhooks.github_push("acme/demo", git_repo.url, ref=f"refs/heads/push-{i}", after=sha), project.SECRET
            )
            answer = httpx.post(f"{api}/webhooks/github", content=body, headers=headers, timeout=30)
            assert answer.status_code == 202, answer.text
            ids += answer.json()["build_ids"]
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline:
            with db.session() as session:
                rows = list(session.scalars(select(Build).where(Build.id.in_(ids))))
            if all(b.status not in ("queued", "running") for b in rows):
                break
            time.sleep(0.5)
    assert len(ids) == PUSHES
    assert [b.status for b in rows] == ["succeeded"] * PUSHES, [(b.id, b.error) for b in rows if b.error]
    assert all(b.attempts == 1 for b in rows), "a build was claimed twice"
    assert {b.engine for b in rows} == {engine.host, second_engine.host}
    assert len({b.worker for b in rows}) >= 2  # three processes share the queue
    assert sorted(b.branch or "" for b in rows) == sorted(f"push-{i}" for i in range(PUSHES))
    for build in rows:
        assert skopeo_inspect(f"{registry.host}/acme/demo@{build.digest}", tls_verify=False)["Digest"] == build.digest
    db.dispose()
