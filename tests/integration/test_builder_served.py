"""A GitHub push becomes an image through a real `pipeline serve` on each builder kind, and on a
BuildKit daemon an OCI index (amd64 + arm64, with BuildKit's own provenance) that promotion copies
to dev with every child and the attestation: real serve process, buildkitd, dockerd, registry, Git."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipeline.signing import attestation_tag, generate_key_pair, load_public_key, verify_envelope
from tests import project, webhooks
from tests.gitrepo import GitRepo
from tests.integration.conftest import BuilderUnderTest, with_builder
from tests.services import Registry, free_port, skopeo_inspect

INDEX = "application/vnd.oci.image.index.v1+json"


class Served:
    """A `pipeline serve` process on a config file, with its admin token."""

    def __init__(self, tmp_path: Path, data: dict[str, Any]) -> None:
        config = project.write_config(tmp_path / "pipeline.yaml", data)
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log_path = tmp_path / "serve.log"
        env = {**os.environ, project.SECRET_ENV: project.SECRET}
        env.pop("PIPELINE_CONFIG", None)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "serve", "--config", str(config), "--port", self.url.rsplit(":", 1)[1]],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_ready()
        printed = re.search(r"first admin token \(shown once[^)]*\): (pipe_\S+)", self.log_path.read_text())
        assert printed, "pipeline serve did not print the first admin token"
        self.auth = {"Authorization": f"Bearer {printed[1]}"}

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail("pipeline serve did not get ready:\n" + self.log_path.read_text()[-3000:])
            time.sleep(0.2)

    def get(self, path: str, **params: Any) -> Any:
        return httpx.get(f"{self.url}{path}", params=params, headers=self.auth).json()

    def wait(self, what: str, job_id: int, timeout: float = 240) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.get(f"/api/v1/{what}/{job_id}")
            if job["status"] in ("succeeded", "failed", "cancelled", "rejected"):
                return job  # type: ignore[no-any-return]
            time.sleep(0.5)
        pytest.fail(f"{what} {job_id} did not finish in {timeout} s: {job}")

    def push(self, repo: GitRepo, sha: str) -> int:
        body, headers = webhooks.github_delivery(webhooks.github_push("acme/demo", repo.url, after=sha), project.SECRET)
        answer = httpx.post(f"{self.url}/webhooks/github", content=body, headers=headers)
        assert answer.status_code == 202, answer.text
        [build_id] = answer.json()["build_ids"]
        return int(build_id)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._log.close()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    started: list[Served] = []

    def start(data: dict[str, Any]) -> Served:
        started.append(Served(tmp_path, data))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def _dev(tmp_path: Path) -> str:
    """A dev repository of this test only: a tag another test's service moved is not ours to move."""
    return f"acme/dev-{abs(hash(tmp_path.name)) % 10**8}"


def _data(tmp_path: Path, builder: BuilderUnderTest, registry: Registry, repo: GitRepo, **build: Any) -> dict[str, Any]:
    data = project.config_data(
        data_dir=tmp_path / "data", registry_host=registry.host, engine_host="unused", repo_url=repo.url, **build
    )
    data["projects"]["demo"]["environments"] = [
        {"name": "dev", "registry": "local", "repository": _dev(tmp_path), "auto": True}
    ]
    return with_builder(data, builder)


def _manifest(registry: Registry, repository: str, reference: str) -> dict[str, Any]:
    accept = (
        f"{INDEX}, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
    )
    answer = httpx.get(f"{registry.url}/v2/{repository}/manifests/{reference}", headers={"Accept": accept})
    answer.raise_for_status()
    return answer.json()  # type: ignore[no-any-return]


def test_a_push_becomes_an_image_on_each_builder_and_reaches_dev(
    tmp_path: Path, builder: BuilderUnderTest, registry: Registry, base_image: str, git_repo: GitRepo, serve: Any
) -> None:
    served = serve(_data(tmp_path, builder, registry, git_repo))
    ready = httpx.get(f"{served.url}/readyz").json()
    assert [(b["name"], b["kind"], b["healthy"]) for b in ready["builders"]] == [
        (builder.name, "buildkit" if builder.push_direct else "docker", True)
    ]
    sha = git_repo.commit({"Dockerfile": project.dockerfile(base_image), "hello.txt": "hello\n"})
    build = served.wait("builds", served.push(git_repo, sha))
    lines = [x["line"] for x in served.get(f"/api/v1/builds/{build['id']}/logs")["lines"]]
    assert build["status"] == "succeeded", build["error"] + "\n" + "\n".join(lines[-30:])
    assert build["engine"] == builder.name and any("RUN mkdir -p /app" in line for line in lines)
    assert build["builder_mode"] == ("buildx" if builder.push_direct else "buildkit")
    digest = build["digest"]
    for tag in build["tags"]:
        assert skopeo_inspect(f"{registry.host}/acme/demo:{tag}", tls_verify=False)["Digest"] == digest
    [auto] = served.get("/api/v1/promotions", environment="dev")["items"]
    promoted = served.wait("promotions", auto["id"])
    assert promoted["status"] == "succeeded", (promoted["error"], promoted.get("steps"))
    assert skopeo_inspect(f"{registry.host}/{_dev(tmp_path)}:dev", tls_verify=False)["Digest"] == digest


def test_multi_platform_index_with_provenance_is_built_and_promoted_whole(
    tmp_path: Path,
    uses_buildkit: BuilderUnderTest,
    registry: Registry,
    base_image: str,
    git_repo: GitRepo,
    serve: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """BuildKit's provenance inside the index, the service's signed SLSA attestation beside it
    (``sha256-<index>.att``), both carried to dev with the index and every child."""
    monkeypatch.setenv("COSIGN_PASSWORD", "served-index")
    key_file, pub_file = generate_key_pair(tmp_path / "keys", b"served-index")
    dockerfile = (
        f"FROM --platform=$BUILDPLATFORM {base_image} AS build\nARG TARGETARCH\n"
        'RUN echo "for $TARGETARCH" > /arch\nFROM scratch\nCOPY --from=build /arch /arch\n'
    )
    data = _data(tmp_path, uses_buildkit, registry, git_repo, platforms=["linux/amd64", "linux/arm64"], provenance=True)
    data["builders"][0]["platforms"] = ["linux/amd64", "linux/arm64"]  # no emulation needed: declared
    data["signing"] = {"key_file": str(key_file)}
    served = serve(data)
    sha = git_repo.commit({"Dockerfile": dockerfile})
    build = served.wait("builds", served.push(git_repo, sha))
    assert build["status"] == "succeeded", build["error"]
    index = _manifest(registry, "acme/demo", build["digest"])
    assert index["mediaType"] == INDEX, "the recorded digest is the index's"
    deadline = time.monotonic() + 60  # insight reads the amd64 image back after the digest is recorded
    while not served.get(f"/api/v1/builds/{build['id']}").get("insight") and time.monotonic() < deadline:
        time.sleep(0.5)
    shown = served.get(f"/api/v1/builds/{build['id']}")["insight"]
    assert shown and shown["layer_count"] == 1, shown
    platforms = {(m["platform"]["os"], m["platform"]["architecture"]) for m in index["manifests"]}
    assert {("linux", "amd64"), ("linux", "arm64")} <= platforms
    attestations = [
        m
        for m in index["manifests"]
        if m.get("annotations", {}).get("vnd.docker.reference.type") == "attestation-manifest"
    ]
    assert len(attestations) == 2, "BuildKit's provenance, one per platform, is part of the index"
    [auto] = served.get("/api/v1/promotions", environment="dev")["items"]
    assert served.wait("promotions", auto["id"])["status"] == "succeeded"
    dev = _dev(tmp_path)
    moved = httpx.head(f"{registry.url}/v2/{dev}/manifests/dev", headers={"Accept": INDEX})
    assert moved.headers["docker-content-digest"] == build["digest"], "the index arrives byte for byte"
    assert skopeo_inspect(f"{registry.host}/{dev}:dev", tls_verify=False, raw=True) == index
    for child in index["manifests"]:  # with every child: images and attestations
        assert _manifest(registry, dev, child["digest"])["layers"]
    for repository in ("acme/demo", dev):  # the service's own attestation of the index, at both
        signed = _manifest(registry, repository, attestation_tag(build["digest"]))
        [layer] = signed["layers"]
        envelope = httpx.get(f"{registry.url}/v2/{repository}/blobs/{layer['digest']}", follow_redirects=True)
        statement = verify_envelope(envelope.content, [load_public_key(pub_file)])
        assert statement is not None and statement["subject"][0]["digest"] == {"sha256": build["digest"][7:]}
        assert statement["predicate"]["buildDefinition"]["externalParameters"]["platforms"] == [
            "linux/amd64",
            "linux/arm64",
        ]


def test_doctor_reports_each_builder_with_kind_version_and_platforms(
    tmp_path: Path, uses_buildkit: BuilderUnderTest, registry: Registry, git_repo: GitRepo
) -> None:
    git_repo.commit({"a": "b"})
    data = _data(tmp_path, uses_buildkit, registry, git_repo)
    data["builders"].append({"name": "gone", "buildkit": "tcp://127.0.0.1:1"})
    config = project.write_config(tmp_path / "doctor.yaml", data)
    subprocess.run(
        [sys.executable, "-m", "pipeline", "migrate", "--config", str(config)], check=True, capture_output=True
    )
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "doctor", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = done.stdout.splitlines()
    [ok] = [line for line in lines if "builder buildkitd" in line]
    assert ok.startswith("ok") and "BuildKit v" in ok and "linux/amd64" in ok and "remote driver" in ok, ok
    [bad] = [line for line in lines if "builder gone" in line]
    assert bad.startswith("FAIL") and "buildkit tcp://127.0.0.1:1" in bad and "Connection refused" in bad, bad
    assert done.returncode == 1
