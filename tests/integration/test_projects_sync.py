"""Projects recorded from the config by every process that starts: processes starting together
must not fail on each other's insert (found by the chaos tests: a worker starting while the
harness synced crashed on the projects' primary key)."""

from __future__ import annotations

import threading

from pipeline.config import parse_config
from pipeline.store import Database, Project, projects


def _config(repo: str):  # type: ignore[no-untyped-def]
    return parse_config(
        {
            "registries": {"r": {"url": "127.0.0.1:5000"}},
            "projects": {
                f"p{i}": {"repo": repo, "image": {"registry": "r", "repository": f"a/p{i}"}} for i in range(20)
            },
        }
    )


def test_many_processes_starting_together_record_each_project_once(db: Database) -> None:
    config = _config("https://git.example.com/a.git")
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def sync() -> None:
        try:
            start.wait()
            with db.session() as session:
                projects.sync_projects(session, config.projects)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=sync) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with db.session() as session:
        rows = session.query(Project).all()
        assert sorted(r.name for r in rows) == sorted(config.projects)


def test_a_moved_repository_is_refreshed_and_history_kept(db: Database) -> None:
    with db.session() as session:
        projects.sync_projects(session, _config("https://git.example.com/a.git").projects)
    with db.session() as session:
        projects.sync_projects(session, _config("https://git.example.com/b.git").projects)
        row = session.get(Project, "p3")
        assert row is not None and row.repo == "https://git.example.com/b.git" and row.updated_at >= row.created_at
