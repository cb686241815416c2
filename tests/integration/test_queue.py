"""The work queue on SQLite and PostgreSQL: atomic claims, leases, heartbeats, the reaper."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter

import pytest
from sqlalchemy import update

from pipeline.config import parse_config
from pipeline.errors import LeaseLost
from pipeline.store import Build, Database, builds, jobs, projects
from workers.scheduler import reap_expired_leases

LEASE = dt.timedelta(seconds=30)
CONFIG = parse_config(
    {
        "registries": {"r": {"url": "127.0.0.1:5000"}},
        "projects": {
            name: {"repo": f"file:///{name}", "image": {"registry": "r", "repository": f"a/{name}"}}
            for name in ("app", "web")
        },
        "worker": {"max_attempts": 2},
    }
)


def _queue(db: Database, count: int) -> list[int]:
    with db.session() as session:
        projects.sync_projects(session, CONFIG.projects)
        return [
            builds.create_build(
                session, project="app", commit=f"{i:040x}", ref="refs/heads/main", branch="main", trigger="test"
            ).id
            for i in range(count)
        ]


_HELD: dict[str, jobs.Job] = {}  # each worker's last claim, for its heartbeats and outcome


def _claim(db: Database, worker: str, lease: dt.timedelta = LEASE) -> int | None:
    with db.session(immediate=True) as session:
        job = jobs.claim(session, jobs.BUILDS, worker, lease)
    if job is None:
        return None
    _HELD[worker] = job
    return job.id


def _id(job: jobs.Job | None) -> int | None:
    return None if job is None else job.id


def _expire(db: Database, build_id: int) -> None:
    with db.session() as session:
        past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        session.execute(update(Build).where(Build.id == build_id).values(lease_expires_at=past))


def test_claims_oldest_first_and_each_row_once(db: Database) -> None:
    ids = _queue(db, 2)
    assert _claim(db, "w1") == ids[0]
    assert _claim(db, "w2") == ids[1]
    assert _claim(db, "w3") is None
    with db.session() as session:
        first = builds.get_build(session, ids[0])
        assert (first.status, first.worker, first.attempts) == ("running", "w1", 1)
        assert first.lease_expires_at > dt.datetime.now(dt.UTC)


def test_concurrent_workers_never_share_a_build(db: Database) -> None:
    ids = _queue(db, 40)
    claimed: Counter[int] = Counter()
    lock = threading.Lock()

    def work(name: str) -> None:
        while (build_id := _claim(db, name)) is not None:
            with lock:
                claimed[build_id] += 1

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == ids
    assert set(claimed.values()) == {1}


def test_heartbeat_extends_the_lease_and_finish_records(db: Database) -> None:
    [build_id] = _queue(db, 1)
    _claim(db, "w1", dt.timedelta(seconds=5))
    with db.session() as session:
        jobs.heartbeat(session, _HELD["w1"], dt.timedelta(minutes=10))
    with db.session() as session:
        assert builds.get_build(session, build_id).lease_expires_at > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=9)
        jobs.finish(session, _HELD["w1"], status="succeeded", digest="sha256:" + "a" * 64)
    with db.session() as session:
        done = builds.get_build(session, build_id)
        assert (done.status, done.lease_expires_at) == ("succeeded", None) and done.finished_at is not None


def test_expired_lease_is_taken_again_by_another_worker(db: Database) -> None:
    [build_id] = _queue(db, 1)
    assert _claim(db, "crashed") == build_id
    _expire(db, build_id)
    reaped = reap_expired_leases(db, CONFIG)
    assert reaped.requeued == [build_id]
    assert _claim(db, "rescuer") == build_id
    with pytest.raises(LeaseLost):
        with db.session() as session:
            jobs.heartbeat(session, _HELD["crashed"], LEASE)
    with pytest.raises(LeaseLost):
        with db.session() as session:
            jobs.finish(session, _HELD["crashed"], status="failed", error="late")
    with db.session() as session:
        build = builds.get_build(session, build_id)
        assert (build.status, build.worker, build.attempts, build.error) == ("running", "rescuer", 2, None)


def test_live_lease_is_not_reaped_and_repeated_loss_fails(db: Database) -> None:
    [build_id] = _queue(db, 1)
    _claim(db, "w1")
    assert reap_expired_leases(db, CONFIG).requeued == []
    _expire(db, build_id)
    reap_expired_leases(db, CONFIG)
    _claim(db, "w2")
    _expire(db, build_id)
    reaped = reap_expired_leases(db, CONFIG)
    assert reaped.failed == [build_id]
    with db.session() as session:
        build = builds.get_build(session, build_id)
        assert build.status == "failed" and "heartbeats" in (build.error or "")


def test_a_released_build_waits_for_its_backoff(db: Database) -> None:
    [build_id] = _queue(db, 1)
    _claim(db, "w1")
    with db.session() as session:
        jobs.release(session, _HELD["w1"], "will retry: registry 503", dt.timedelta(minutes=5))
    assert _claim(db, "w2") is None, "claimed before its backoff ended"
    with db.session() as session:
        session.execute(
            update(Build)
            .where(Build.id == build_id)
            .values(not_before=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
    assert _claim(db, "w2") == build_id


def test_project_concurrency_limit_holds_back_its_builds_only(db: Database) -> None:
    first, second = _queue(db, 2)
    with db.session() as session:
        other = builds.create_build(
            session, project="web", commit="f" * 40, ref="refs/heads/main", branch="main", trigger="test"
        ).id
    limits = {"app": 1}
    with db.session(immediate=True) as session:
        assert _id(held := jobs.claim(session, jobs.BUILDS, "w1", LEASE, limits)) == first
    with db.session(immediate=True) as session:
        assert _id(jobs.claim(session, jobs.BUILDS, "w2", LEASE, limits)) == other, "another project is not held"
    with db.session(immediate=True) as session:
        assert jobs.claim(session, jobs.BUILDS, "w3", LEASE, limits) is None
    with db.session() as session:
        jobs.finish(session, held, status="succeeded")  # type: ignore[arg-type]
    with db.session(immediate=True) as session:
        assert _id(jobs.claim(session, jobs.BUILDS, "w3", LEASE, limits)) == second
