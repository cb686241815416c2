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
from typing import Any, TypeVar

import pytest
from fastapi.testclient import TestClient

from pipeline.api import create_app
from pipeline.config import Config
from pipeline.store import Database, migrate, open_database, projects, tokens
from tests.gitrepo import GitRepo
from tests.services import DOCKER_REGISTRY, REGISTRY3, DockerEngine, Postgres, Registry, Registry3, Service
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


# The registry implementations a test marked ``both_registries`` runs against, by test id.
REGISTRY_IMPLEMENTATIONS: dict[str, type[Registry]] = {"distribution2": Registry, "distribution3": Registry3}
DEFAULT_REGISTRY = "distribution2"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "both_registries: run the test with every registry fixture on distribution 2.8 and on distribution 3"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test (or module) marked ``both_registries`` runs once per registry implementation: the
    registry fixtures below all follow ``registry_impl``. Session scope lets pytest group the
    tests by implementation; the servers themselves live in ``registry_pool`` all session."""
    if "registry_impl" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_registries"):
        metafunc.parametrize("registry_impl", list(REGISTRY_IMPLEMENTATIONS), indirect=True, scope="session")


@pytest.fixture(scope="session")
def registry_impl(request: pytest.FixtureRequest) -> str:
    """Which registry implementation the registry fixtures give: distribution 2.8 unless the test
    is marked ``both_registries``."""
    return str(getattr(request, "param", DEFAULT_REGISTRY))


class RegistryPool:
    """Every registry server of the session, started on first use and stopped at its end.

    The fixtures that hand them out are re-made whenever pytest switches implementation; the
    servers (ports, data) stay, so a test sees the same registry whichever order ran before."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.running: dict[tuple[str, str], Registry] = {}
        self.base_images: dict[str, str] = {}

    def get(self, name: str, implementation: str, **options: Any) -> Registry:
        key = (name, implementation)
        if key not in self.running:
            kind = REGISTRY_IMPLEMENTATIONS[implementation]
            if kind is Registry3 and not os.access(REGISTRY3, os.X_OK):
                pytest.fail(f"{REGISTRY3} is missing: run `bash scripts/install-go-tools.sh registry3` first")
            _need(DOCKER_REGISTRY)
            suffix = "" if implementation == DEFAULT_REGISTRY else f"-{implementation}"
            server = kind(self.root / f"{name}{suffix}", **options)
            server.start()
            self.running[key] = server
        return self.running[key]

    def stop(self) -> None:
        for server in self.running.values():
            server.stop()


@pytest.fixture(scope="session")
def registry_pool(service_root: Path) -> Iterator[RegistryPool]:
    pool = RegistryPool(service_root)
    yield pool
    pool.stop()


@pytest.fixture(scope="session")
def registry(registry_pool: RegistryPool, registry_impl: str) -> Registry:
    """Plain HTTP on loopback."""
    return registry_pool.get("registry", registry_impl)


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
def token_registry(registry_pool: RegistryPool, registry_impl: str, token_server: TokenServer) -> Registry:
    """A TLS registry behind the Bearer-token challenge flow of public registries."""
    return registry_pool.get("token-registry", registry_impl, tls=True, token_auth=token_server.registry_auth())


@pytest.fixture(scope="session")
def http_token_registry(registry_pool: RegistryPool, registry_impl: str, token_server: TokenServer) -> Registry:
    """The same token flow without TLS (the same token server: its tokens are good for both)."""
    return registry_pool.get("token-registry-http", registry_impl, token_auth=token_server.registry_auth())


@pytest.fixture(scope="session")
def secure_registry(registry_pool: RegistryPool, registry_impl: str) -> Registry:
    """What a private registry looks like: TLS with its own CA, and basic auth."""
    return registry_pool.get(
        "secure-registry", registry_impl, tls=True, htpasswd_users={REGISTRY_USER: REGISTRY_PASSWORD}
    )


def token_headers(
    db: Database, name: str = "admin", role: str = "admin", environments: list[str] | None = None
) -> dict[str, str]:
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
def base_image(engine: DockerEngine, registry: Registry, registry_pool: RegistryPool) -> str:
    """A busybox base image in the test registry, so Dockerfiles can say FROM it offline
    (pushed once per registry server)."""
    ref = f"{registry.host}/busybox:1"
    if registry.host not in registry_pool.base_images:
        engine.import_busybox(ref)
        engine.push(ref)
        registry_pool.base_images[registry.host] = ref
    return ref


@pytest.fixture
def git_repo(tmp_path: Path) -> GitRepo:
    return GitRepo.create(tmp_path / "git")
