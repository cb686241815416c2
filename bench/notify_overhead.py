"""Benchmark: what commit statuses and notifications cost a build (issue 19).

Two figures on SQLite, each against a baseline measured in the same run (goals in brackets):

a. The transaction that records a finished build (``jobs.finish`` of a claimed build row),
   with the outbox rows written in it (a GitHub status and two notification targets), divided
   by the same transaction without any (no ``status:``, no targets); median of ``--repeat``
   each, interleaved                                                               [<= 1.5]
   The receivers are down during (a): the build's transaction never talks to them.
b. Delivery: rows per second the delivery worker sends to a local receiver
   (``tests.git_host_api``) answering at once, and with one request in five failing with 503
   + ``Retry-After: 0`` (all delivered in the end, none twice); the ratio is failing / healthy
   throughput                                                                      [>= 0.5]

    cd /work/main && uv run python bench/notify_overhead.py [--repeat 200] [--rows 200] [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import Stopwatch, code_version, machine_load, median, ratio_line, table, time_limit

from pipeline import notify
from pipeline.config import Config, parse_config
from pipeline.store import Database, builds, jobs, migrate, notifications, open_database, projects
from tests.git_host_api import FakeHosts
from tests.services import free_port
from workers.notification_worker import NotificationWorker

SHA = "ab" * 20


def _config(root: Path, url: str, *, reporting: bool) -> Config:
    project: dict[str, Any] = {"repo": "https://github.com/acme/app.git", "image": {"registry": "r", "repository": "a"}}
    data: dict[str, Any] = {
        "data_dir": str(root),
        "registries": {"r": {"url": "r.example"}},
        "projects": {"app": project},
    }
    if reporting:
        project["status"] = {"provider": "github", "api_url": url, "token_env": "BENCH_TOKEN"}
        data["notifications"] = {
            "base_url": "https://pipeline.example.com",
            "retry_seconds": 0.001,
            "max_retry_seconds": 0.01,
            "max_attempts": 10,
            "targets": [
                {"name": "hook", "kind": "webhook", "url": f"{url}/hooks/a", "secret_env": "BENCH_SECRET"},
                {"name": "hook2", "kind": "webhook", "url": f"{url}/hooks/b"},
            ],
        }
    return parse_config(data)


def _record(db: Database, config: Config) -> float:
    """Queue, claim and finish one build; the seconds of the finishing transaction."""
    with db.session() as session:
        build_id = builds.queue_build(
            session, project="app", commit=SHA, ref="refs/heads/main", branch="main", trigger="bench"
        )
    with db.session(immediate=True) as session:
        job = jobs.claim(session, jobs.BUILDS, "bench", dt.timedelta(seconds=60))
    assert job is not None and job.id == build_id
    with Stopwatch() as sw, db.session() as session:
        jobs.finish(session, job, status="succeeded", digest="sha256:" + "cd" * 32)
        notify.build_ended(session, config, build_id)
    return sw.seconds


def _deliver(db: Database, config: Config) -> float:
    worker = NotificationWorker(db, config, name="bench-notifier")
    with Stopwatch() as sw:
        while True:
            if worker.run_once():
                continue
            with db.session() as session:
                left = notifications.counts(session)
            if left["pending"] == 0 and left["running"] == 0:
                break
    return sw.seconds


def _fresh(root: Path, name: str, config: Config) -> Database:
    db = open_database(f"sqlite:///{root / name}.db")
    migrate(db)
    with db.session() as session:
        projects.sync_projects(session, config.projects)
    return db


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    repeat, rows = (30, 40) if args.quick else (args.repeat, args.rows)
    os.environ.update(BENCH_TOKEN="bench-token", BENCH_SECRET="bench-secret")
    print(code_version())
    print(machine_load())
    with time_limit(900), tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        down = f"http://127.0.0.1:{free_port()}"
        plain, reporting = _config(root, down, reporting=False), _config(root, down, reporting=True)
        db_plain, db_reporting = _fresh(root, "plain", plain), _fresh(root, "reporting", reporting)
        base, outbox = [], []
        for _ in range(repeat):
            base.append(_record(db_plain, plain))
            outbox.append(_record(db_reporting, reporting))
        with db_reporting.session() as session:
            queued = notifications.counts(session)["pending"]
        a = median(outbox) / median(base)

        speeds = {}
        for label, fail_every in (("healthy", 0), ("20% failing", 5)):
            with FakeHosts("bench-token") as hosts:
                hosts.fail_every = fail_every
                config = _config(root, hosts.url, reporting=True)
                db = _fresh(root, label.replace(" ", "-").replace("%", ""), config)
                with db.session() as session:
                    for n in range(rows):
                        builds.record_progress(
                            session,
                            builds.queue_build(
                                session, project="app", commit=SHA, ref="refs/heads/main", branch="main", trigger="b"
                            ),
                            status="failed",
                            error=f"run {n}",
                        )
                    ids = [b.id for b in builds.list_builds(session, builds.BuildFilter(), limit=rows)]
                    for build_id in ids:
                        notify.build_ended(session, config, build_id)
                seconds = _deliver(db, config)
                sent = len(hosts.accepted)
                unique = len({(c.path, c.body) for c in hosts.accepted})
                with db.session() as session:
                    dead = notifications.counts(session)["dead"]
                speeds[label] = (sent / seconds, len(hosts.calls), sent, unique, dead)
        print(
            table(
                ["figure", "median ms", "rows"],
                [
                    ["finish a build, no reporting", median(base) * 1000, 0],
                    ["finish a build + status + 2 targets", median(outbox) * 1000, queued // repeat],
                ],
            )
        )
        print(
            table(
                ["delivery", "rows/s", "requests", "taken", "distinct", "dead"],
                [[k, *v] for k, v in speeds.items()],
            )
        )
        b = speeds["20% failing"][0] / speeds["healthy"][0]
        print(ratio_line("outbox transaction / plain transaction", a, "<= 1.5", a <= 1.5))
        print(ratio_line("delivery rate, 20% failing / healthy", b, ">= 0.5", b >= 0.5))
    print(machine_load())
    return 0


if __name__ == "__main__":
    sys.exit(main())
