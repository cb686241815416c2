"""The webhook route's asynchronous path on PostgreSQL (``pipeline.intake._async``): the same
answers and rows as the session path, the same dedupe under a burst, and its connection pool."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from pipeline.config import Config, parse_config
from pipeline.intake import _async
from pipeline.store import Build, Database, Delivery, open_database, projects
from tests import webhooks
from tests.conftest import app_client
from tests.services import Postgres

SECRET = "async-intake-secret"
REPO = "https://github.com/acme/app.git"


@pytest.fixture
def config(monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("ASYNC_HOOK_SECRET", SECRET)
    return parse_config(
        {
            "registries": {"local": {"url": "127.0.0.1:5000"}},
            "projects": {
                "app": {
                    "repo": REPO,
                    "webhook_secret_env": "ASYNC_HOOK_SECRET",
                    "branches": ["main"],
                    "image": {"registry": "local", "repository": "acme/app"},
                }
            },
        }
    )


@pytest.fixture
def pg(postgres: Postgres, pg_template: str) -> Iterator[Database]:
    """PostgreSQL only: the asynchronous path is PostgreSQL's; SQLite keeps the synchronous one."""
    name = f"intake_async_{secrets.token_hex(4)}"
    database = open_database(postgres.create_database(name, template=pg_template))
    yield database
    database.dispose()
    postgres.drop_database(name)


@pytest.fixture
def client(pg: Database, config: Config, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    def no_sync_path(*_: object) -> None:
        raise AssertionError("the synchronous path ran for a delivery the async path handles")

    monkeypatch.setattr(_async, "record", no_sync_path)
    yield from app_client(pg, config)


def _push(after: str, ref: str = "refs/heads/main", delivery_id: str | None = None) -> tuple[bytes, dict[str, str]]:
    return webhooks.github_delivery(
        webhooks.github_push("acme/app", REPO, ref=ref, after=after), SECRET, delivery_id=delivery_id
    )


def _count(db: Database, table: type) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def test_the_route_records_without_the_session_path(client: TestClient, pg: Database) -> None:
    assert client.app.state.intake_pool is not None  # type: ignore[attr-defined]
    queued = client.post("/webhooks/github", content=(b := _push("1" * 40))[0], headers=b[1])
    assert queued.status_code == 202 and len(queued.json()["build_ids"]) == 1
    again = client.post("/webhooks/github", content=b[0], headers=b[1])
    assert again.status_code == 200 and again.json()["outcome"] == "duplicate"
    ignored = client.post("/webhooks/github", content=(i := _push("2" * 40, "refs/heads/feature"))[0], headers=i[1])
    assert ignored.status_code == 200 and ignored.json()["outcome"] == "ignored"
    replay = client.post("/webhooks/github", content=i[0], headers=i[1])
    assert replay.json()["outcome"] == "duplicate"
    newer = client.post("/webhooks/github", content=(n := _push("3" * 40))[0], headers=n[1])
    assert newer.status_code == 202
    with pg.session() as session:
        logged = session.scalars(select(Delivery).order_by(Delivery.id)).all()
        rows = {d.after: (d.outcome, d.ref, d.reason) for d in logged if d.outcome != "duplicate"}
        builds = {b.commit[0]: (b.status, b.error) for b in session.scalars(select(Build))}
    assert rows["2" * 40][:2] == ("ignored", "refs/heads/feature") and "does not match" in rows["2" * 40][2]
    assert rows["1" * 40] == ("queued", "refs/heads/main", "")
    assert [d.outcome for d in logged].count("duplicate") == 2
    assert builds == {"1": ("superseded", f"superseded by build {newer.json()['build_ids'][0]}"), "3": ("queued", None)}


def test_a_concurrent_burst_of_one_delivery_queues_one_build(pg: Database, config: Config) -> None:
    with pg.session() as session:
        projects.sync_projects(session, config.projects)
    body, headers = _push("4" * 40)
    headers = {k.lower(): v for k, v in headers.items()}

    async def burst() -> list[str]:
        pool = _async.open_pool(pg, size=4)
        try:
            results = await asyncio.gather(
                *(_async.receive_async(pool, pg, config, "github", headers, body) for _ in range(12))
            )
        finally:
            await pool.close()
        return sorted(r.outcome for r in results)

    assert asyncio.run(burst()) == ["duplicate"] * 11 + ["queued"]
    assert _count(pg, Build) == 1 and _count(pg, Delivery) == 12  # the duplicates are logged too


def test_the_pool_recovers_when_its_connections_are_killed(pg: Database, config: Config) -> None:
    with pg.session() as session:
        projects.sync_projects(session, config.projects)
    deliveries = [_push(f"{n:040x}") for n in range(1, 5)]

    async def run() -> list[int]:
        pool = _async.open_pool(pg, size=2)
        try:
            body, headers = deliveries[0]
            first = await _async.receive_async(pool, pg, config, "github", headers, body)
            with psycopg.connect(_async.conninfo(pg), autocommit=True, application_name="test-admin") as admin:
                killed = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND application_name = %s",
                    (_async.APPLICATION_NAME,),
                ).fetchone()
            assert killed is not None and killed[0] >= 1
            rest = [await _async.receive_async(pool, pg, config, "github", h, b) for b, h in deliveries[1:]]
        finally:
            await pool.close()
        return [r.status_code for r in (first, *rest)]

    assert asyncio.run(run()) == [202] * 4
    assert _count(pg, Build) == 4


def test_more_deliveries_than_connections_wait_for_one(pg: Database, config: Config) -> None:
    with pg.session() as session:
        projects.sync_projects(session, config.projects)

    async def run() -> list[int]:
        pool = _async.open_pool(pg, size=2)
        sent = [_push(f"{n:040x}") for n in range(1, 21)]
        try:
            results = await asyncio.gather(
                *(_async.receive_async(pool, pg, config, "github", headers, body) for body, headers in sent)
            )
            assert pool._count <= 2
        finally:
            await pool.close()
        return [r.status_code for r in results]

    assert asyncio.run(run()) == [202] * 20
    with pg.session() as session:
        statuses = sorted(session.scalars(select(Build.status)))
    assert statuses.count("queued") >= 1 and len(statuses) == 20
