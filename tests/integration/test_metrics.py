"""/metrics on SQLite and PostgreSQL: counts by outcome, duration histograms, queue depth and age,
cache-hit ratio, webhook deliveries; parsed back with prometheus_client's own parser."""

from __future__ import annotations

import datetime as dt

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.config import parse_config
from pipeline.store import Database, Delivery, builds, projects, promotions, utcnow
from tests.conftest import app_client

CONFIG = parse_config(
    {
        "registries": {"local": {"url": "127.0.0.1:5000", "insecure": True}},
        "projects": {
            "demo": {
                "repo": "https://git.example.com/demo.git",
                "allow_unsigned": True,
                "image": {"registry": "local", "repository": "acme/demo"},
                "environments": [{"name": "dev", "registry": "local", "repository": "acme/dev"}],
            }
        },
    }
)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture
def filled(db: Database) -> Database:
    now = utcnow()
    with db.session() as session:
        projects.sync_projects(session, CONFIG.projects)
        for n, (status, seconds, total, cached) in enumerate(
            [("succeeded", 12, 10, 8), ("succeeded", 200, 10, 2), ("failed", 3, None, None)]
        ):
            build_id = builds.queue_build(
                session, project="demo", commit=f"{n}" * 40, ref="refs/heads/main", branch="main", trigger="test"
            )
            builds.record_progress(
                session,
                build_id,
                status=status,
                started_at=now - dt.timedelta(seconds=seconds),
                finished_at=now,
                steps_total=total,
                steps_cached=cached,
                digest="sha256:" + "a" * 64,
            )
        builds.queue_build(
            session, project="demo", commit="9" * 40, ref="refs/heads/main", branch="main", trigger="test"
        )  # waiting
        promotions.add_promotion(
            session,
            project="demo",
            environment="dev",
            digest="sha256:" + "a" * 64,
            build_id=build_id,
            actor="t",
            status="succeeded",
            started_at=now - dt.timedelta(seconds=2),
            finished_at=now,
        )
        promotions.add_promotion(
            session,
            project="demo",
            environment="dev",
            digest="sha256:" + "a" * 64,
            build_id=build_id,
            actor="t",
            status="pending",
            created_at=now - dt.timedelta(seconds=90),
        )
        session.add_all(
            [
                Delivery(provider="github", delivery_id=str(i), event="push", outcome=outcome)
                for i, outcome in enumerate(["queued", "queued", "ignored"])
            ]
        )
    return db


def test_metrics_count_what_the_database_holds(filled: Database) -> None:
    clients = app_client(filled, CONFIG)
    answer = next(clients).get("/metrics")
    clients.close()
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    got = _samples(answer.text)
    assert got[("pipeline_builds_total", (("project", "demo"), ("status", "succeeded")))] == 2
    assert got[("pipeline_builds_total", (("project", "demo"), ("status", "failed")))] == 1
    assert (
        got[("pipeline_promotions_total", (("environment", "dev"), ("project", "demo"), ("status", "succeeded")))] == 1
    )
    assert got[("pipeline_webhook_deliveries_total", (("outcome", "queued"), ("provider", "github")))] == 2
    hist = "pipeline_build_duration_seconds_bucket"
    assert got[(hist, (("le", "15.0"), ("project", "demo")))] == 1  # the 12 s build
    assert got[(hist, (("le", "300.0"), ("project", "demo")))] == 2
    assert got[(hist, (("le", "+Inf"), ("project", "demo")))] == 2
    assert got[("pipeline_build_duration_seconds_count", (("project", "demo"),))] == 2
    assert got[("pipeline_build_duration_seconds_sum", (("project", "demo"),))] == pytest.approx(212, abs=1)
    assert got[("pipeline_queue_depth", (("queue", "builds"),))] == 1
    assert got[("pipeline_queue_depth", (("queue", "promotions"),))] == 1
    assert got[("pipeline_queue_oldest_age_seconds", (("queue", "promotions"),))] >= 90
    assert got[("pipeline_build_cache_hit_ratio", (("project", "demo"),))] == pytest.approx(0.5)
    assert got[("pipeline_build_steps_cached_total", (("project", "demo"),))] == 10
