"""A GitHub push becomes an image in the registry, promoted by itself to dev and on request to
staging, by digest: real `pipeline serve`, dockerd, registry, Git."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import project, webhooks
from tests.gitrepo import GitRepo
from tests.services import DockerEngine, Registry, skopeo_config, skopeo_inspect


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served(
    tmp_path: Path, engine: DockerEngine, registry: Registry, base_image: str, git_repo: GitRepo
) -> Iterator[tuple[str, GitRepo, dict[str, str]]]:
    data = project.config_data(
        data_dir=tmp_path / "data", registry_host=registry.host, engine_host=engine.host, repo_url=git_repo.url
    )
    data["projects"]["demo"]["environments"] = [
        {"name": "dev", "registry": "local", "repository": "acme/demo-dev", "auto": True},
        {
            "name": "staging",
            "registry": "local",
            "repository": "acme/demo-staging",
            "requires": "dev",
            "tag": "staging-{short_sha}",
        },
    ]
    config = project.write_config(tmp_path / "pipeline.yaml", data)
    port = _free_port()
    env = {**os.environ, project.SECRET_ENV: project.SECRET}
    env.pop("PIPELINE_CONFIG", None)
    with open(tmp_path / "serve.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "serve", "--config", str(config), "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("pipeline serve did not start:\n" + (tmp_path / "serve.log").read_text()[-3000:])
            time.sleep(0.2)
        printed = re.search(r"first admin token \(shown once[^)]*\): (pipe_\S+)", (tmp_path / "serve.log").read_text())
        assert printed, "pipeline serve did not print the first admin token"
        yield url, git_repo, {"Authorization": f"Bearer {printed[1]}"}
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _wait_for(url: str, job_id: int, headers: dict[str, str], timeout: float = 240, what: str = "builds") -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = httpx.get(f"{url}/api/v1/{what}/{job_id}", headers=headers).json()
        if job["status"] in ("succeeded", "failed", "cancelled", "rejected"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"{what} {job_id} did not finish in {timeout} s: {job}")


def test_signed_push_builds_and_pushes_the_recorded_digest(
    served: tuple[str, GitRepo, dict[str, str]], registry: Registry, base_image: str
) -> None:
    url, repo, auth = served
    sha = repo.commit({"Dockerfile": project.dockerfile(base_image), "hello.txt": "hello\n"}, "add app")
    body, headers = webhooks.github_delivery(
        webhooks.github_push("acme/demo", repo.url, after=sha, message="add app"), project.SECRET
    )
    answer = httpx.post(f"{url}/webhooks/github", content=body, headers=headers)
    assert answer.status_code == 202, answer.text
    [build_id] = answer.json()["build_ids"]

    assert httpx.get(f"{url}/api/v1/builds/{build_id}").status_code == 401  # the API needs a token
    build = _wait_for(url, build_id, auth)
    logs = httpx.get(f"{url}/api/v1/builds/{build_id}/logs", headers=auth).json()["lines"]
    assert build["status"] == "succeeded", build["error"] + "\n" + "\n".join(x["line"] for x in logs[-30:])
    digest = build["digest"]
    assert digest.startswith("sha256:") and build["image"] == f"{registry.host}/acme/demo@{digest}"
    assert build["builder_mode"] == "buildkit" and build["commit"] == sha
    assert build["build_args"] == {"GREETING": "hello-from-args"}
    assert build["tags"] == [f"main-{sha[:7]}", sha]

    stored = skopeo_inspect(f"{registry.host}/acme/demo@{digest}", tls_verify=False)
    assert stored["Digest"] == digest
    for tag in build["tags"]:
        assert skopeo_inspect(f"{registry.host}/acme/demo:{tag}", tls_verify=False)["Digest"] == digest
    labels = skopeo_config(f"{registry.host}/acme/demo@{digest}", tls_verify=False)["config"]["Labels"]
    assert labels["org.example.greeting"] == "hello-from-args"
    assert labels["org.opencontainers.image.revision"] == sha
    assert labels["org.opencontainers.image.source"] == repo.url
    assert "org.opencontainers.image.created" in labels

    lines = [x["line"] for x in logs]
    assert any("RUN mkdir -p /app" in line for line in lines)
    assert any(f"digest: {digest}" in line for line in lines)
    listed = httpx.get(f"{url}/api/v1/builds", params={"project": "demo", "status": "succeeded"}, headers=auth).json()
    assert [b["id"] for b in listed["items"]] == [build_id]

    # the build went on to dev by itself; staging takes it on request, by digest
    [auto] = httpx.get(f"{url}/api/v1/promotions", params={"environment": "dev"}, headers=auth).json()["items"]
    assert (auto["digest"], auto["trigger"], auto["build_id"]) == (digest, "auto", build_id)
    assert _wait_for(url, auto["id"], auth, what="promotions")["status"] == "succeeded"
    asked = httpx.post(
        f"{url}/api/v1/promotions", json={"project": "demo", "environment": "staging", "digest": digest}, headers=auth
    )
    assert asked.status_code == 202, asked.text
    assert _wait_for(url, asked.json()["id"], auth, what="promotions")["status"] == "succeeded"
    for ref in ("acme/demo-dev:dev", f"acme/demo-staging:staging-{sha[:7]}"):
        assert skopeo_inspect(f"{registry.host}/{ref}", tls_verify=False)["Digest"] == digest
    matrix = {e["environment"]: e for e in httpx.get(f"{url}/api/v1/environments", headers=auth).json()["items"]}
    assert matrix["staging"]["current"]["commit"] == sha and matrix["staging"]["current"]["actor"] == "admin"
