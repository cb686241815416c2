"""/healthz and /readyz: ready needs the database at the current schema and, in a process that
builds, an engine that answers (a real dockerd, and one that is not there)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from pipeline.api import create_app
from pipeline.config import Config, parse_config
from pipeline.store import Database
from tests.services import DockerEngine


def _config(host: str) -> Config:
    return parse_config({"docker": {"hosts": [host]}})


def test_ready_needs_an_engine_only_where_builds_run(db: Database, engine: DockerEngine) -> None:
    with TestClient(create_app(_config(engine.host), db, needs_engine=True)) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["engine"] == engine.host
        [shown] = ready.json()["builders"]
        assert (shown["kind"], shown["healthy"], shown["platforms"]) == ("docker", True, ["linux/amd64"])
        assert shown["version"].startswith("Docker Engine 20.10")
    missing = _config("unix:///nonexistent/docker.sock")
    with TestClient(create_app(missing, db, needs_engine=True)) as client:
        refused = client.get("/readyz")
        assert refused.status_code == 503 and "no builder answers" in refused.json()["detail"]
        assert "the engine does not answer" in refused.json()["builders"][0]["detail"]
        assert client.get("/healthz").status_code == 200  # alive all the same
    with TestClient(create_app(missing, db)) as client:
        api_only = client.get("/readyz")  # `pipeline api` builds nothing: no engine needed
        assert api_only.status_code == 200 and "engine" not in api_only.json()
