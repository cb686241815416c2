"""`pipeline doctor` in a new shell after the quickstart: the engine it started listens on its
own socket, and without DOCKER_HOST the local engine does not answer; the check says why and
what to run."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from pipeline import doctor
from pipeline.config import BuilderConfig


def test_without_docker_host_the_check_names_the_quickstart_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    listening = tmp_path / "docker.sock"
    monkeypatch.setattr(doctor, "QUICKSTART_ENGINE", f"unix://{listening}")
    default = BuilderConfig(name="default", docker="default")
    assert doctor._engine_hint(default) == "; DOCKER_HOST is not set"  # no quickstart engine here
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(listening))
        hint = doctor._engine_hint(default)
    assert f"export DOCKER_HOST=unix://{listening}" in hint and "source .pipeline-data/quickstart.env" in hint

    monkeypatch.setenv("DOCKER_HOST", "unix:///elsewhere.sock")  # the user chose an engine: no hint
    assert doctor._engine_hint(default) == ""
    assert doctor._engine_hint(BuilderConfig(name="farm", docker="tcp://10.0.0.5:2376")) == ""
