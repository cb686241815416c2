"""Text PostgreSQL cannot store (NUL characters) is the request's fault: a 422 naming it, on both
databases, never a 500, and nothing is recorded (found by schemathesis in a rejection reason)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from pipeline.config import parse_config
from pipeline.store import Database, promotions
from tests.conftest import app_client

DIGEST = "sha256:" + "b" * 64
CONFIG = parse_config(
    {
        "registries": {"r": {"url": "127.0.0.1:5000"}},
        "projects": {
            "app": {
                "repo": "file:///app",
                "image": {"registry": "r", "repository": "a/app"},
                "environments": [{"name": "dev", "registry": "r", "repository": "a/dev"}],
            }
        },
    }
)


@pytest.fixture
def client(db: Database) -> Iterator[TestClient]:
    yield from app_client(db, CONFIG)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (f"/api/v1/images/{DIGEST}/reject", {"reason": "broken\x00"}),
        ("/api/v1/promotions", {"project": "app", "environment": "dev", "digest": DIGEST, "reason": "a\x00b"}),
        ("/api/v1/builds", {"project": "app\x00", "ref": "main"}),
        ("/api/v1/tokens", {"name": "bot", "role": "promoter", "environments": ["dev\x00"]}),
    ],
)
def test_nul_in_a_body_is_refused_by_name(client: TestClient, db: Database, path: str, body: dict[str, str]) -> None:
    answer = client.post(path, json=body)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert "must not contain NUL" in answer.json()["detail"]
    with db.session() as session:
        assert promotions.rejection(session, DIGEST) is None


def test_nul_in_a_query_is_never_a_server_error(client: TestClient, db: Database) -> None:
    answer = client.get("/api/v1/builds", params={"project": "app\x00"})
    if db.dialect == "postgresql":
        assert answer.status_code == 422 and "NUL" in answer.json()["detail"], answer.text
    else:  # SQLite stores and compares it: no such project, an empty page
        assert answer.status_code == 200 and answer.json()["items"] == [], answer.text
