"""GET /api/v1/builds: filters, opaque cursors stable under inserts, clear errors."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from pipeline.api import create_app
from pipeline.config import parse_config
from pipeline.store import Database, builds, jobs, projects

CONFIG = parse_config({
    "registries": {"r": {"url": "127.0.0.1:5000"}},
    "projects": {name: {"repo": f"file:///{name}", "image": {"registry": "r", "repository": f"a/{name}"}}
                 for name in ("api", "web")},
})


def _add(db: Database, project: str, branch: str, n: int) -> int:
    with db.session() as session:
        return builds.create_build(session, project=project, commit=f"{n:x}".rjust(40, "c"),
                                   ref=f"refs/heads/{branch}", branch=branch, trigger="test").id


@pytest.fixture
def client(db: Database) -> Iterator[TestClient]:
    with db.session() as session:
        projects.sync_projects(session, CONFIG.projects)
    with TestClient(create_app(CONFIG, db)) as test_client:
        yield test_client


def test_filters(client: TestClient, db: Database) -> None:
    a = _add(db, "api", "main", 1)
    b = _add(db, "web", "main", 2)
    c = _add(db, "api", "dev", 3)
    with db.session() as session:
        jobs.claim(session, jobs.BUILDS, "w", dt.timedelta(seconds=30))
    ids = lambda **q: [x["id"] for x in client.get("/api/v1/builds", params=q).json()["items"]]  # noqa: E731
    assert ids() == [c, b, a]
    assert ids(project="api") == [c, a]
    assert ids(project="api", branch="main") == [a]
    assert ids(status="running") == [a]
    assert ids(commit="c" * 39 + "2") == [b]
    assert ids(commit="CCCC") == [c, b, a]


def test_cursor_pages_are_stable_while_builds_arrive(client: TestClient, db: Database) -> None:
    made = [_add(db, "api", "main", n) for n in range(7)]
    first = client.get("/api/v1/builds", params={"limit": 3}).json()
    assert [x["id"] for x in first["items"]] == made[::-1][:3]
    _add(db, "api", "main", 99)  # a new build must not shift the next page
    second = client.get("/api/v1/builds", params={"limit": 3, "cursor": first["next_cursor"]}).json()
    third = client.get("/api/v1/builds", params={"limit": 3, "cursor": second["next_cursor"]}).json()
    assert [x["id"] for x in second["items"]] == made[::-1][3:6]
    assert [x["id"] for x in third["items"]] == made[:1] and third["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"cursor": "not-a-cursor"}, "cursor is not one this API returned"),
        ({"status": "exploded"}, "query.status"),
        ({"limit": 0}, "query.limit"),
        ({"commit": "xyz!"}, "query.commit"),
        ({"digest": "md5:abc"}, "query.digest"),
    ],
)
def test_bad_queries_are_problems(client: TestClient, params: dict, words: str) -> None:
    answer = client.get("/api/v1/builds", params=params)
    assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"
    assert words in answer.json()["detail"]


def test_missing_build_is_404(client: TestClient) -> None:
    for path in ("/api/v1/builds/999", "/api/v1/builds/999/logs"):
        answer = client.get(path)
        assert answer.status_code == 404 and "no build with id 999" in answer.json()["detail"]
