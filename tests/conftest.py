"""Shared fixtures: real PostgreSQL, Docker engine, registry and Git, started once per session.

Services come from ``tests/services.py``; each starts on first use and stops when the session
ends, so a run of only the unit tests starts nothing.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.store import Database, migrate, open_database
from tests.gitrepo import GitRepo
from tests.services import DockerEngine, Postgres, Registry

_counter = itertools.count()


def _need(binary: str) -> None:
    if not shutil.which(binary) and not Path(binary).exists():
        pytest.fail(f"{binary} is missing: run `bash scripts/install-test-deps.sh` (as root) first")


@pytest.fixture(scope="session")
def service_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def postgres(service_root: Path) -> Iterator[Postgres]:
    server = Postgres(service_root / "pg")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_template(postgres: Postgres) -> str:
    """A database at the latest migration, copied for each test that wants PostgreSQL."""
    postgres.create_database("pipeline_template")
    db = open_database(postgres.url_for("pipeline_template"))
    migrate(db)
    db.dispose()
    return "pipeline_template"


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """The same test on the embedded SQLite database and on a fresh PostgreSQL copy."""
    if request.param == "sqlite":
        database = open_database(f"sqlite:///{tmp_path / 'pipeline.db'}")
        migrate(database)
        yield database
        database.dispose()
        return
    postgres: Postgres = request.getfixturevalue("postgres")
    template = request.getfixturevalue("pg_template")
    name = f"t{os.getpid()}_{next(_counter)}"
    database = open_database(postgres.create_database(name, template=template))
    yield database
    database.dispose()
    postgres.drop_database(name)


@pytest.fixture(scope="session")
def engine(service_root: Path) -> Iterator[DockerEngine]:
    _need("dockerd")
    server = DockerEngine(service_root / "engine")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def second_engine(service_root: Path) -> Iterator[DockerEngine]:
    """Another builder node with an empty cache, as a fresh machine in the pool would be."""
    _need("dockerd")
    server = DockerEngine(service_root / "engine2")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def registry(service_root: Path) -> Iterator[Registry]:
    _need("/usr/bin/docker-registry")
    server = Registry(service_root / "registry")
    server.start()
    yield server
    server.stop()


REGISTRY_USER, REGISTRY_PASSWORD = "builder", "pa55-w0rd-for-tests"


@pytest.fixture(scope="session")
def secure_registry(service_root: Path) -> Iterator[Registry]:
    """What a private registry looks like: TLS with its own CA, and basic auth."""
    _need("/usr/bin/docker-registry")
    server = Registry(service_root / "secure-registry", tls=True,
                      htpasswd_users={REGISTRY_USER: REGISTRY_PASSWORD})
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def base_image(engine: DockerEngine, registry: Registry) -> str:
    """A busybox base image in the test registry, so Dockerfiles can say FROM it offline."""
    ref = f"{registry.host}/busybox:1"
    engine.import_busybox(ref)
    engine.push(ref)
    return ref


@pytest.fixture
def git_repo(tmp_path: Path) -> GitRepo:
    return GitRepo.create(tmp_path / "git")
