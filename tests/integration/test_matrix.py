"""The environments matrix over many cells: the same answer as asking cell by cell, in a fixed
number of statements however many projects there are (at 1M/5M it was 22 statements for one
project and 480 for twenty; see bench/history_queries.py)."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from pipeline.config import Config, parse_config
from pipeline.promotion import environment_matrix
from pipeline.store import Database, builds, projects, promotions

ENVS = ("dev", "staging", "prod")
PROJECTS = ("alpha", "beta", "gamma", "delta")


def _config() -> Config:
    return parse_config(
        {
            "registries": {"r": {"url": "registry.example.com"}},
            "projects": {
                name: {
                    "repo": f"https://git.example.com/acme/{name}.git",
                    "image": {"registry": "r", "repository": f"acme/{name}"},
                    "environments": [{"name": env, "registry": "r", "repository": f"{env}/{name}"} for env in ENVS],
                }
                for name in PROJECTS
            },
        }
    )


def _seed(db: Database, config: Config) -> None:
    """A history where each cell differs: some never promoted, failures after the current one,
    rollbacks, unfinished promotions, holds placed and released."""
    rng = random.Random(3)
    now = dt.datetime.now(dt.UTC)
    statuses = ("succeeded", "succeeded", "failed", "rejected", "pending", "running", "awaiting_merge")
    with db.session() as session:
        projects.sync_projects(session, config.projects)
        for n in range(160):
            project, env = rng.choice(PROJECTS), rng.choice(ENVS)
            if (project, env) == ("delta", "prod"):
                continue  # a cell nothing ever reached
            pushed = now - dt.timedelta(days=rng.choice((1, 2, 45)), seconds=rng.randint(10, 900))
            build_id = builds.queue_build(
                session, project=project, commit=f"{n:040x}", ref="refs/heads/main", branch="main", trigger="test"
            )
            builds.record_progress(session, build_id, status="succeeded", digest=f"sha256:{n:064x}", created_at=pushed)
            status = rng.choice(statuses)
            finished = pushed + dt.timedelta(seconds=rng.randint(5, 3000)) if status in statuses[:4] else None
            promotions.add_promotion(
                session,
                project=project,
                environment=env,
                digest=f"sha256:{n:064x}",
                build_id=build_id,
                actor=f"user{n % 5}",
                status=status,
                trigger=rng.choice(("manual", "auto", "rollback")),
                created_at=pushed,
                finished_at=finished,
                rollback_to_id=None if n < 5 else rng.randint(1, n),
            )
        for project, env in (("alpha", "prod"), ("beta", "dev"), ("gamma", "staging")):
            promotions.place_hold(session, project, env, actor="ops", reason="bad release", promotion_id=None)
        promotions.release_hold(session, "beta", "dev", actor="ops")


@contextmanager
def _statements(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(*args: Any) -> None:
        if not args[2].startswith("BEGIN"):  # SQLite's own, for the session
            seen.append(args[2])

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def test_the_matrix_answers_as_cell_by_cell_in_seven_statements(db: Database) -> None:
    config = _config()
    _seed(db, config)
    with db.session() as session:
        with _statements(db) as one:
            single = environment_matrix(session, config, "alpha")
        with _statements(db) as every:
            states = environment_matrix(session, config)
        with _statements(db) as again:
            assert environment_matrix(session, config) == states
        assert len(one) == len(every) == 7, every
        assert len(again) == 6, again  # no new arrival anywhere: every lead time was kept
        assert [s.environment for s in single] == list(ENVS)
        assert [(s.project, s.environment) for s in states] == [(p, e) for p in PROJECTS for e in ENVS]
        since = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
        for state in states:
            current = promotions.current(session, state.project, state.environment)
            assert (state.current.id if state.current else None) == (current.id if current else None)
            assert (state.build.id if state.build else None) == (current.build_id if current else None)
            assert (state.previous.id if state.previous else None) == (current.rollback_to_id if current else None)
            hold = promotions.active_hold(session, state.project, state.environment)
            assert (state.hold.id if state.hold else None) == (hold.id if hold else None)
            rows = promotions.list_promotions(
                session, promotions.PromotionFilter(project=state.project, environment=state.environment), limit=1000
            )
            assert state.waiting == sum(r.status in ("pending", "running", "awaiting_merge") for r in rows)
            arrivals = [
                r
                for r in rows
                if r.status == "succeeded"
                and r.trigger != "rollback"
                and r.finished_at is not None
                and r.finished_at >= since
            ]
            assert (state.lead_time.samples if state.lead_time else 0) == len(arrivals)
            if arrivals:
                delays = sorted(
                    (r.finished_at - builds.get_build(session, r.build_id).created_at).total_seconds() for r in arrivals
                )
                assert state.lead_time.median_seconds == (delays[(len(delays) - 1) // 2] + delays[len(delays) // 2]) / 2
    held = {(s.project, s.environment) for s in states if s.hold}
    assert held == {("alpha", "prod"), ("gamma", "staging")}
    assert next(s for s in states if (s.project, s.environment) == ("delta", "prod")).current is None
    assert sum(s.lead_time is not None for s in states) >= 6 and sum(s.waiting for s in states) > 0


def test_a_new_arrival_renews_only_its_cells_lead_time(db: Database) -> None:
    config = _config()
    _seed(db, config)
    cell = ("beta", "staging")
    with db.session() as session:
        before = {(s.project, s.environment): s.lead_time for s in environment_matrix(session, config)}
        now = dt.datetime.now(dt.UTC)
        build_id = builds.queue_build(
            session, project=cell[0], commit="e" * 40, ref="refs/heads/main", branch="main", trigger="test"
        )
        builds.record_progress(
            session, build_id, status="succeeded", digest="sha256:" + "e" * 64, created_at=now - dt.timedelta(hours=3)
        )
        promotions.add_promotion(
            session,
            project=cell[0],
            environment=cell[1],
            digest="sha256:" + "e" * 64,
            build_id=build_id,
            actor="ops",
            status="succeeded",
            trigger="manual",
            created_at=now - dt.timedelta(hours=3),
            finished_at=now - dt.timedelta(hours=2),
        )
    with db.session() as session:
        after = {(s.project, s.environment): s.lead_time for s in environment_matrix(session, config)}
    samples = before[cell].samples if before[cell] else 0
    assert after[cell] is not None and after[cell].samples == samples + 1
    assert {c: v for c, v in after.items() if c != cell} == {c: v for c, v in before.items() if c != cell}
