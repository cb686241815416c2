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
from typing import TypeVar

import pytest
from fastapi.testclient import TestClient

from pipeline.api import create_app
from pipeline.config import Config
from pipeline.store import Database, migrate, open_database, projects, tokens
from tests.gitrepo import GitRepo
from tests.services import DOCKER_REGISTRY, DockerEngine, Postgres, Registry, Service
from tests.token_server import TokenServer

_counter = itertools.count()


def _need(binary: str) -> None:
    if not shutil.which(binary) and not Path(binary).exists():
        pytest.fail(f"{binary} is missing: run `bash scripts/install-test-deps.sh` (as root) first")


@pytest.fixture(scope="session")
def service_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def postgres(service_root: Path) -> Iterator[Postgres]:
    yield from _running(Postgres(service_root / "pg"), "/usr/lib/postgresql/15/bin/pg_ctl")


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


S = TypeVar("S", bound=Service)


def _running(service: S, binary: str) -> Iterator[S]:
    """Start a service for the whole session and stop it at the end."""
    _need(binary)
    service.start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def engine(service_root: Path) -> Iterator[DockerEngine]:
    yield from _running(DockerEngine(service_root / "engine"), "dockerd")


@pytest.fixture(scope="session")
def second_engine(service_root: Path) -> Iterator[DockerEngine]:
    """Another builder node with an empty cache, as a fresh machine in the pool would be."""
    yield from _running(DockerEngine(service_root / "engine2"), "dockerd")


@pytest.fixture(scope="session")
def registry(service_root: Path) -> Iterator[Registry]:
    yield from _running(Registry(service_root / "registry"), "/usr/bin/docker-registry")


REGISTRY_USER, REGISTRY_PASSWORD = "builder", "pa55-w0rd-for-tests"


TOKEN_USERS = {"alice": "alice-secret", "bob": "bob-secret"}
TOKEN_GRANTS = {"bob": {"team/*": ["pull"]}}  # alice has no entry: pull and push everywhere


@pytest.fixture(scope="session")
def token_server(service_root: Path) -> Iterator[TokenServer]:
    """A token service as Docker Hub, GHCR and Quay run one (ES256 JWTs, scoped grants)."""
    server = TokenServer(service_root / "token-server", users=TOKEN_USERS, grants=TOKEN_GRANTS)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def token_registry(service_root: Path, token_server: TokenServer) -> Iterator[Registry]:
    """A TLS registry behind the Bearer-token challenge flow of public registries."""
    server = Registry(service_root / "token-registry", tls=True, token_auth=token_server.registry_auth())
    yield from _running(server, DOCKER_REGISTRY)


@pytest.fixture(scope="session")
def http_token_registry(service_root: Path, token_server: TokenServer) -> Iterator[Registry]:
    """The same token flow without TLS (the same token server: its tokens are good for both)."""
    server = Registry(service_root / "token-registry-http", token_auth=token_server.registry_auth())
    yield from _running(server, DOCKER_REGISTRY)


@pytest.fixture(scope="session")
def secure_registry(service_root: Path) -> Iterator[Registry]:
    """What a private registry looks like: TLS with its own CA, and basic auth."""
    server = Registry(service_root / "secure-registry", tls=True, htpasswd_users={REGISTRY_USER: REGISTRY_PASSWORD})
    yield from _running(server, "/usr/bin/docker-registry")


def token_headers(db: Database, name: str = "admin", role: str = "admin",
                  environments: list[str] | None = None) -> dict[str, str]:
    """An API token made in ``db``, as request headers; its name is the actor it records."""
    with db.session() as session:
        _, secret = tokens.create_token(session, name=name, role=role, environments=environments, created_by="tests")
    return {"Authorization": f"Bearer {secret}"}


def app_client(db: Database, config: Config, *, actor: str = "admin") -> Iterator[TestClient]:
    """A test client of the real app on ``db``, with the config's projects recorded, sending an
    admin token named ``actor``."""
    with db.session() as session:
        projects.sync_projects(session, config.projects)
    with TestClient(create_app(config, db), headers=token_headers(db, actor)) as client:
        yield client


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
