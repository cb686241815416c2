"""`pipeline doctor` through the real CLI: every component named, failures make exit code 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config import parse_config
from pipeline.doctor import run_checks
from pipeline.signing import generate_key_pair
from pipeline.store import migrate, open_database
from tests import project
from tests.gitrepo import GitRepo
from tests.services import DockerEngine, Registry


def _doctor(config: Path, *, secret: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != project.SECRET_ENV}
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "doctor", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env | ({project.SECRET_ENV: project.SECRET} if secret else {}),
    )


def test_doctor_passes_on_a_working_setup_and_names_what_is_broken(
    tmp_path: Path, engine: DockerEngine, registry: Registry, git_repo: GitRepo
) -> None:
    git_repo.commit({"a": "b"})
    data = project.config_data(
        data_dir=tmp_path / "data", registry_host=registry.host, engine_host=engine.host, repo_url=git_repo.url
    )
    config = project.write_config(tmp_path / "ok.yaml", data)
    subprocess.run(
        [sys.executable, "-m", "pipeline", "migrate", "--config", str(config)], check=True, capture_output=True
    )
    good = _doctor(config)
    assert good.returncode == 0, good.stdout + good.stderr
    for component in ("database", "git", f"builder {engine.host}", "registry local", "repo of demo"):
        assert any(line.startswith("ok") and component in line for line in good.stdout.splitlines()), good.stdout
    assert "Docker Engine 20.10" in good.stdout and "linux/amd64" in good.stdout and "built-in BuildKit" in good.stdout
    unset = _doctor(config, secret=False)  # every push would be refused with 401: said at once
    assert unset.returncode == 1 and f"environment variable {project.SECRET_ENV}" in unset.stdout, unset.stdout

    data["registries"]["local"]["url"] = "127.0.0.1:9"
    data["docker"]["hosts"] = ["unix:///nonexistent/docker.sock"]
    data["projects"]["demo"]["repo"] = f"file://{tmp_path}/missing.git"
    bad = _doctor(project.write_config(tmp_path / "bad.yaml", data))
    assert bad.returncode == 1
    failed = [line for line in bad.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 3, bad.stdout
    assert "cannot reach registry 127.0.0.1:9" in bad.stdout
    assert "the engine does not answer" in bad.stdout and "missing.git" in bad.stdout
    assert "3 of 6 checks failed" in bad.stderr


def test_doctor_checks_the_signing_key_verify_keys_and_environment_repositories(
    tmp_path: Path, engine: DockerEngine, registry: Registry, git_repo: GitRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    git_repo.commit({"values.yaml": "image: {digest: x}\n"})
    key, public = generate_key_pair(tmp_path, b"right")
    data = project.config_data(
        data_dir=tmp_path / "data", registry_host=registry.host, engine_host=engine.host, repo_url=git_repo.url
    )
    data["signing"] = {"key_file": str(key), "password_env": "DOCTOR_COSIGN_PASSWORD"}
    data["projects"]["demo"]["environments"] = [
        {
            "name": "dev",
            "registry": "local",
            "repository": "acme/dev",
            "sign": True,
            "verify": [str(public)],
            "gitops": {"repo": git_repo.url, "path": "values.yaml", "key": "image.digest"},
        },
        {
            "name": "prod",
            "registry": "local",
            "repository": "acme/prod",
            "gitops": {
                "repo": git_repo.url,
                "branch": "release",
                "path": "values.yaml",
                "key": "image.digest",
                "pull_request": {"repository": "acme/deploy", "token_env": "DOCTOR_GITHUB_TOKEN"},
            },
        },
    ]
    db = open_database(f"sqlite:///{tmp_path / 'doctor.db'}")
    migrate(db)
    monkeypatch.setenv("DOCTOR_COSIGN_PASSWORD", "right")
    found = {c.component: c for c in run_checks(parse_config(data), db)}
    assert found["signing key"].ok and found["verify key of demo/dev"].ok and found["gitops of demo/dev"].ok
    assert not found["gitops of demo/prod"].ok and "no branch 'release'" in found["gitops of demo/prod"].detail
    monkeypatch.setenv("DOCTOR_COSIGN_PASSWORD", "wrong")
    again = {c.component: c for c in run_checks(parse_config(data), db)}
    assert not again["signing key"].ok and "wrong password" in again["signing key"].detail.lower()
    db.dispose()
