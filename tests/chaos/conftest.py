"""Fixtures of the chaos tests: a fresh PostgreSQL database per test (the workers are separate
processes that reach it over TCP, as on separate machines) and a seed printed for replays."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from pipeline.store import Database, open_database
from tests.chaos import harness
from tests.services import Postgres


@dataclass(frozen=True)
class PgDatabase:
    db: Database
    url: str


@pytest.fixture
def pg_database(postgres: Postgres, pg_template: str, request: pytest.FixtureRequest) -> Iterator[PgDatabase]:
    """A copy of the migrated template; dropped (with the workers' connections) afterwards."""
    name = f"chaos_{os.getpid()}_{request.node.name[:30].lower()}".replace("[", "_").replace("]", "")
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    url = postgres.create_database(name, template=pg_template)
    database = open_database(url)
    yield PgDatabase(database, url)
    database.dispose()
    postgres.drop_database(name)


@pytest.fixture(scope="session", autouse=True)
def git_hosts() -> Iterator[None]:
    """The deploy repositories' Git hosts, stopped when the chaos tests are done."""
    yield
    harness.stop_git_hosts()


@pytest.fixture
def chaos_seed() -> int:
    """``CHAOS_SEED`` replays a run; otherwise a fresh seed, printed so a failure can be replayed."""
    seed = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(1 << 31))
    print(f"chaos seed {seed} (replay with CHAOS_SEED={seed})")
    return seed
