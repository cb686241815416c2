"""GET /api/v1/builds: filters, opaque cursors stable under inserts, clear errors."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from pipeline.api import create_app
from pipeline.config import parse_config
from pipeline.store import Build, Database, builds, jobs, projects
from tests.conftest import token_headers

CONFIG = parse_config(
    {
        "registries": {"r": {"url": "127.0.0.1:5000"}},
        "projects": {
            name: {"repo": f"file:///{name}", "image": {"registry": "r", "repository": f"a/{name}"}}
            for name in ("api", "web")
        },
    }
)


def _add(db: Database, project: str, branch: str, n: int) -> int:
    with db.session() as session:
        return builds.create_build(
            session,
            project=project,
            commit=f"{n:x}".rjust(40, "c"),
            ref=f"refs/heads/{branch}",
            branch=branch,
            trigger="test",
        ).id


@pytest.fixture
def client(db: Database) -> Iterator[TestClient]:
    with db.session() as session:
        projects.sync_projects(session, CONFIG.projects)
    with TestClient(create_app(CONFIG, db), headers=token_headers(db)) as test_client:
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


def _at(db: Database, build_id: int, when: dt.datetime) -> None:
    with db.session() as session:
        session.execute(update(Build).where(Build.id == build_id).values(created_at=when))


def test_a_time_range_pages_by_time_through_ties_while_builds_arrive(client: TestClient, db: Database) -> None:
    """With since/until the order is (created_at, id): ties within one instant and a build whose
    id is higher but whose time is older (clocks of two API hosts) each appear exactly once."""
    t0 = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
    made = [_add(db, "api", "main", n) for n in range(9)]
    times = [
        t0,
        t0 + dt.timedelta(seconds=1),
        t0 + dt.timedelta(seconds=1),
        t0 + dt.timedelta(seconds=1),
        t0 + dt.timedelta(seconds=2),
        t0 - dt.timedelta(days=1),
        t0 + dt.timedelta(seconds=3),
        t0 + dt.timedelta(seconds=0.5),
        t0 + dt.timedelta(days=9),
    ]
    for build_id, when in zip(made, times, strict=True):
        _at(db, build_id, when)
    window = {"since": (t0 - dt.timedelta(hours=1)).isoformat(), "until": (t0 + dt.timedelta(days=1)).isoformat()}
    expected = [made[6], made[4], made[3], made[2], made[1], made[7], made[0]]  # newest time first, then id
    seen, cursor = [], None
    while True:
        answer = client.get("/api/v1/builds", params={**window, "limit": 2, **({"cursor": cursor} if cursor else {})})
        assert answer.status_code == 200, answer.text
        seen += [x["id"] for x in answer.json()["items"]]
        _at(db, _add(db, "api", "main", 100 + len(seen)), t0 + dt.timedelta(hours=2))  # arrives at the top
        if not (cursor := answer.json()["next_cursor"]):
            break
    assert seen == expected
    only_since = client.get("/api/v1/builds", params={"since": (t0 + dt.timedelta(days=8)).isoformat()}).json()
    assert [x["id"] for x in only_since["items"]] == [made[8]]


def test_a_cursor_continues_only_the_kind_of_listing_it_came_from(client: TestClient, db: Database) -> None:
    for n in range(3):
        _add(db, "api", "main", n)
    by_id = client.get("/api/v1/builds", params={"limit": 1}).json()["next_cursor"]
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()
    answer = client.get("/api/v1/builds", params={"since": since, "cursor": by_id})
    assert answer.status_code == 422 and "without since/until" in answer.json()["detail"], answer.text
    by_time = client.get("/api/v1/builds", params={"since": since, "limit": 1}).json()["next_cursor"]
    assert [x["id"] for x in client.get("/api/v1/builds", params={"cursor": by_time, "limit": 5}).json()["items"]] == [
        x["id"] for x in client.get("/api/v1/builds").json()["items"]
    ][1:]  # a time cursor's id still places it
    forged = base64.urlsafe_b64encode(json.dumps({"before": 5, "at": "yesterday"}).encode()).decode()
    naive = base64.urlsafe_b64encode(json.dumps({"before": 5, "at": "2026-01-01T00:00:00"}).encode()).decode()
    for cursor in (forged, naive):
        answer = client.get("/api/v1/builds", params={"since": since, "cursor": cursor})
        assert answer.status_code == 422 and "not one this API returned" in answer.json()["detail"]


def test_commit_prefixes_ending_in_f_match_exactly(client: TestClient, db: Database) -> None:
    """The prefix is a range for the index (last non-f digit plus one): check the carries."""
    for sha in ("abff" + "0" * 36, "abfff" + "1" * 35, "ac" + "0" * 38, "abe" + "e" * 37, "f" * 40, "fe" + "0" * 38):
        with db.session() as session:
            builds.create_build(
                session, project="api", commit=sha, ref="refs/heads/main", branch="main", trigger="test"
            )
    found = lambda prefix: {  # noqa: E731
        x["commit"] for x in client.get("/api/v1/builds", params={"commit": prefix}).json()["items"]
    }
    assert found("abff") == {"abff" + "0" * 36, "abfff" + "1" * 35}
    assert found("abfff") == {"abfff" + "1" * 35}
    assert found("ffff") == {"f" * 40}
    assert found("ABEE") == {"abe" + "e" * 37}
    assert found("acff") == set()


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


def test_request_a_build_by_ref_or_commit(db: Database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.gitrepo import GitRepo

    repo = GitRepo.create(tmp_path / "git")
    sha = repo.commit({"a": "1"})
    other = repo.commit({"a": "2"}, branch="release/1")
    config = parse_config(
        {
            "registries": {"r": {"url": "127.0.0.1:5000"}},
            "projects": {"app": {"repo": repo.url, "image": {"registry": "r", "repository": "a/b"}}},
        }
    )
    with db.session() as session:
        projects.sync_projects(session, config.projects)
    with TestClient(create_app(config, db), headers=token_headers(db)) as client:
        by_ref = client.post("/api/v1/builds", json={"project": "app", "ref": "release/1"})
        assert by_ref.status_code == 202, by_ref.text
        assert (by_ref.json()["commit"], by_ref.json()["ref"], by_ref.json()["trigger"]) == (
            other,
            "refs/heads/release/1",
            "api",
        )
        by_commit = client.post("/api/v1/builds", json={"project": "app", "commit": sha})
        assert by_commit.json()["branch"] == "main" and by_commit.json()["commit"] == sha
        for body, status, words in [
            ({"project": "app", "ref": "nope"}, 404, "no branch or tag 'nope'"),
            ({"project": "ghost", "ref": "main"}, 404, "no project named 'ghost'"),
            ({"project": "app"}, 422, "give a ref"),
            ({"project": "app", "commit": "abc"}, 422, "body.commit"),
            ({"project": "app", "ref": "main", "evil": 1}, 422, "body.evil"),
        ]:
            answer = client.post("/api/v1/builds", json=body)
            assert answer.status_code == status and words in answer.json()["detail"], answer.text
        build_id = by_ref.json()["id"]
        with db.session() as session:
            builds.append_logs(session, build_id, ["one", "two"])
        assert client.post(f"/api/v1/builds/{build_id}/cancel").json()["status"] == "cancelled"
        followed = client.get(f"/api/v1/builds/{build_id}/logs", params={"follow": "true"})
        lines = [json.loads(x) for x in followed.text.splitlines()]
        assert followed.headers["content-type"] == "application/x-ndjson"
        assert [x.get("line") for x in lines[:2]] == ["one", "two"] and lines[-1] == {
            "status": "cancelled",
            "end": True,
        }
