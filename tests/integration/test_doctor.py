"""`pipeline doctor` through the real CLI: every component named, failures make exit code 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests import project
from tests.gitrepo import GitRepo
from tests.services import DockerEngine, Registry


def _doctor(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipeline", "doctor", "--config", str(config)],
                          capture_output=True, text=True, timeout=120, check=False)


def test_doctor_passes_on_a_working_setup_and_names_what_is_broken(
    tmp_path: Path, engine: DockerEngine, registry: Registry, git_repo: GitRepo
) -> None:
    git_repo.commit({"a": "b"})
    data = project.config_data(data_dir=tmp_path / "data", registry_host=registry.host,
                               engine_host=engine.host, repo_url=git_repo.url)
    config = project.write_config(tmp_path / "ok.yaml", data)
    subprocess.run([sys.executable, "-m", "pipeline", "migrate", "--config", str(config)], check=True,
                   capture_output=True)
    good = _doctor(config)
    assert good.returncode == 0, good.stdout + good.stderr
    for component in ("database", "git", f"engine {engine.host}", "registry local", "repo of demo"):
        assert any(line.startswith("ok") and component in line for line in good.stdout.splitlines()), good.stdout
    assert "builds with buildkit" in good.stdout

    data["registries"]["local"]["url"] = "127.0.0.1:9"
    data["docker"]["hosts"] = ["unix:///nonexistent/docker.sock"]
    data["projects"]["demo"]["repo"] = f"file://{tmp_path}/missing.git"
    bad = _doctor(project.write_config(tmp_path / "bad.yaml", data))
    assert bad.returncode == 1
    failed = [line for line in bad.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 3, bad.stdout
    assert "cannot reach registry 127.0.0.1:9" in bad.stdout
    assert "no Docker engine answers" in bad.stdout and "missing.git" in bad.stdout
    assert "3 of 5 checks failed" in bad.stderr
