"""A demo project for builder and end-to-end tests: its Dockerfile and a config pointing at it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pipeline.config import Config
from pipeline.store import Build, Database, builds, projects
from workers.build_worker import BuildWorker

SECRET_ENV = "DEMO_WEBHOOK_SECRET"
SECRET = "e2e-webhook-secret"


def dockerfile(base_image: str) -> str:
    return f"""FROM {base_image}
ARG GREETING=unset
LABEL org.example.greeting=$GREETING
RUN mkdir -p /app && echo "built with $GREETING" > /app/greeting.txt
COPY hello.txt /app/hello.txt
CMD ["cat", "/app/greeting.txt"]
"""


def config_data(*, data_dir: Path, registry_host: str, engine_host: str, repo_url: str, **build: Any) -> dict[str, Any]:
    return {
        "data_dir": str(data_dir),
        "docker": {"hosts": [engine_host]},
        "worker": {"lease_seconds": 10, "poll_seconds": 0.2, "reap_seconds": 2},
        "registries": {"local": {"url": registry_host, "insecure": True}},
        "projects": {
            "demo": {
                "repo": repo_url,
                "webhook_secret_env": SECRET_ENV,
                "branches": ["main"],
                "build": {"args": {"GREETING": "hello-from-args"}, "network": "host", **build},
                "image": {"registry": "local", "repository": "acme/demo"},
                "tags": ["{branch}-{short_sha}", "{sha}"],
            }
        },
    }


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def queue_build(db: Database, config: Config, sha: str, *, ref: str = "refs/heads/main", project: str = "demo") -> int:
    branch = ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else None
    with db.session() as session:
        projects.sync_projects(session, config.projects)
        return builds.create_build(session, project=project, commit=sha, ref=ref, branch=branch, trigger="test").id


def run_build(db: Database, config: Config, sha: str, **kwargs: Any) -> Build:
    """Queue one build and work it with an in-process worker; returns the finished row."""
    build_id = queue_build(db, config, sha, **kwargs)
    assert BuildWorker(db, config, name="test-worker").run_once()
    with db.session() as session:
        return builds.get_build(session, build_id)


def build_log(db: Database, build_id: int) -> str:
    with db.session() as session:
        return "\n".join(x.line for x in builds.read_logs(session, build_id))
