"""A demo project for builder and end-to-end tests: its Dockerfile and a config pointing at it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

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


def config_data(*, data_dir: Path, registry_host: str, engine_host: str, repo_url: str,
                **build: Any) -> dict[str, Any]:
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
