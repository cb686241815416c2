"""Polling with `git ls-remote` against a real repository queues builds as a webhook would."""

from __future__ import annotations

import time

from sqlalchemy import select

from pipeline.config import parse_config
from pipeline.intake import poll_project
from pipeline.store import Build, Database, Delivery, projects
from tests.gitrepo import GitRepo, _git
from workers.scheduler import start_scheduler


def _config(repo: GitRepo, **extra: object):  # type: ignore[no-untyped-def]
    return parse_config(
        {
            "registries": {"r": {"url": "127.0.0.1:5000"}},
            "projects": {
                "polled": {
                    "repo": repo.url,
                    "poll": "10s",
                    "branches": ["main", "release/*"],
                    "git_tags": ["v*"],
                    "image": {"registry": "r", "repository": "a/p"},
                    **extra,
                }
            },
        }
    )


def _builds(db: Database) -> list[tuple[str, str, str]]:
    with db.session() as session:
        return [(b.ref, b.commit, b.status) for b in session.scalars(select(Build).order_by(Build.id))]


def test_new_heads_queue_once_and_filters_apply(db: Database, git_repo: GitRepo) -> None:
    config = _config(git_repo)
    with db.session() as session:
        projects.sync_projects(session, config.projects)
    first = git_repo.commit({"a": "1"})
    git_repo.commit({"a": "x"}, branch="feature/ignored")
    _git("tag", "v1.0", first, cwd=git_repo.work)
    _git("tag", "nightly", first, cwd=git_repo.work)
    _git("push", "--quiet", "origin", "--tags", cwd=git_repo.work)

    assert len(poll_project(db, config, "polled")) == 1, "first poll: branch heads only, old tags recorded"
    assert poll_project(db, config, "polled") == []
    second = git_repo.commit({"a": "2"})
    _git("tag", "v1.1", second, cwd=git_repo.work)
    _git("push", "--quiet", "origin", "v1.1", cwd=git_repo.work)
    assert len(poll_project(db, config, "polled")) == 2
    assert poll_project(db, config, "polled") == []
    assert _builds(db) == [
        ("refs/heads/main", first, "superseded"),
        ("refs/heads/main", second, "queued"),
        ("refs/tags/v1.1", second, "queued"),
    ]
    with db.session() as session:
        assert {d.provider for d in session.scalars(select(Delivery))} == {"poll"}
        assert {(b.trigger, b.actor) for b in session.scalars(select(Build))} == {("poll", "poll")}


def test_scheduler_polls_on_start(db: Database, git_repo: GitRepo) -> None:
    config = _config(git_repo)
    with db.session() as session:
        projects.sync_projects(session, config.projects)
    sha = git_repo.commit({"a": "1"})
    scheduler = start_scheduler(db, config)
    try:
        deadline = time.monotonic() + 20
        while not _builds(db) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        scheduler.shutdown(wait=True)
    assert _builds(db) == [("refs/heads/main", sha, "queued")]
