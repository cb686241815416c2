"""crane (go-containerregistry, an independent client) reads what every promotion recorded.

A single-platform image and a two-platform index move dev (plain HTTP) → staging (TLS + basic
auth) → prod (token auth), on distribution 2.8 and 3; for every promoted reference
``crane digest`` equals the digest the promotion recorded and ``crane manifest`` prints the
source's exact manifest bytes (an index's children too).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pipeline.config import Config, parse_config
from pipeline.store import Database, migrate, open_database
from tests.conftest import REGISTRY_PASSWORD, REGISTRY_USER, TOKEN_USERS, RegistryPool, app_client
from tests.images import OciLayout, skopeo_push
from tests.seed import succeeded_builds
from tests.services import Registry
from tests.token_server import TokenServer
from tests.tools import tool
from workers.promotion_worker import PromotionWorker

pytestmark = pytest.mark.both_registries  # distribution 2.8 and 3

SOURCE = "acme/crane-src"


@pytest.fixture(scope="module")
def pushed(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> tuple[OciLayout, dict[str, str]]:
    layout = OciLayout(tmp_path_factory.mktemp("crane-oci"))
    layout.tag("single", layout.image([20_000, 1_000], seed=91))
    layout.tag(
        "multi",
        layout.index(
            [
                layout.image([9_000], seed=92, platform="linux/amd64"),
                layout.image([8_000], seed=93, platform="linux/arm64"),
            ]
        ),
    )
    for tag in ("single", "multi"):
        skopeo_push(layout, tag, registry, SOURCE)
    return layout, dict(layout.refs)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """SQLite only: what is under test is the registries, not the store (test_promotion runs both)."""
    database = open_database(f"sqlite:///{tmp_path / 'pipeline.db'}")
    migrate(database)
    yield database
    database.dispose()


@pytest.fixture(scope="session")
def localhost_token_registry(registry_pool: RegistryPool, registry_impl: str, token_server: TokenServer) -> Registry:
    """Token auth whose realm names the token server ``localhost``, not 127.0.0.1: crane refuses
    a realm that is a loopback or private IP literal."""
    auth = token_server.registry_auth()
    auth["realm"] = auth["realm"].replace("//127.0.0.1:", "//localhost:")
    return registry_pool.get("crane-token-registry", registry_impl, token_auth=auth)


@pytest.fixture
def config(
    tmp_path: Path,
    registry: Registry,
    secure_registry: Registry,
    localhost_token_registry: Registry,
    monkeypatch: pytest.MonkeyPatch,
) -> Config:
    for name, value in {
        "PRIV_USER": REGISTRY_USER,
        "PRIV_PASSWORD": REGISTRY_PASSWORD,
        "PUB_USER": "alice",
        "PUB_PASSWORD": TOKEN_USERS["alice"],
    }.items():
        monkeypatch.setenv(name, value)
    run = secrets.token_hex(4)
    return parse_config(
        {
            "data_dir": str(tmp_path / "data"),
            "worker": {"lease_seconds": 10, "poll_seconds": 0.05, "max_attempts": 2},
            "registries": {
                "local": {"url": registry.host, "insecure": True},
                "private": {
                    "url": secure_registry.url,
                    "ca_file": str(secure_registry.ca_file),
                    "username_env": "PRIV_USER",
                    "password_env": "PRIV_PASSWORD",
                },
                "public": {
                    "url": localhost_token_registry.host,
                    "insecure": True,
                    "username_env": "PUB_USER",
                    "password_env": "PUB_PASSWORD",
                },
            },
            "projects": {
                "demo": {
                    "repo": "https://git.example.com/acme/demo.git",
                    "allow_unsigned": True,
                    "image": {"registry": "local", "repository": SOURCE},
                    "environments": [
                        {"name": "dev", "registry": "local", "repository": f"acme/crane-dev-{run}"},
                        {
                            "name": "staging",
                            "registry": "private",
                            "repository": f"team/crane-staging-{run}",
                            "requires": "dev",
                        },
                        {
                            "name": "prod",
                            "registry": "public",
                            "repository": f"team/crane-prod-{run}",
                            "requires": "staging",
                        },
                    ],
                }
            },
        }
    )


@pytest.fixture
def api(db: Database, config: Config) -> Iterator[TestClient]:
    yield from app_client(db, config)


class Crane:
    """crane with its own DOCKER_CONFIG holding every test registry's credentials; trusts their CAs."""

    def __init__(self, home: Path, registries: list[Registry]) -> None:
        home.mkdir(parents=True, exist_ok=True)
        bundle = home / "ca.pem"
        bundle.write_bytes(b"".join(r.ca_file.read_bytes() for r in registries if r.ca_file))
        auths = {
            r.host: {"auth": base64.b64encode(creds.encode()).decode()}
            for r, creds in ((r, self._creds(r)) for r in registries)
            if creds
        }
        (home / "config.json").write_text(json.dumps({"auths": auths}))
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(home),
            "DOCKER_CONFIG": str(home),
            "SSL_CERT_FILE": str(bundle),
        }
        self.insecure = {r.host for r in registries if r.ca_file is None}

    @staticmethod
    def _creds(registry: Registry) -> str | None:
        if registry.users:
            return registry.creds()
        if registry.token_auth:
            return f"alice:{TOKEN_USERS['alice']}"
        return None

    def __call__(self, *args: str) -> bytes:
        ref = args[-1]
        insecure = ["--insecure"] if ref.split("/", 1)[0] in self.insecure else []
        done = subprocess.run(
            [tool("crane"), *args[:-1], *insecure, ref], env=self.env, capture_output=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr.decode()
        return done.stdout


def test_crane_sees_the_recorded_digest_and_the_exact_bytes_of_every_promoted_reference(
    db: Database,
    config: Config,
    api: TestClient,
    pushed: tuple[OciLayout, dict[str, str]],
    tmp_path: Path,
    registry: Registry,
    secure_registry: Registry,
    localhost_token_registry: Registry,
) -> None:
    layout, digests = pushed
    crane = Crane(tmp_path / "crane", [registry, secure_registry, localhost_token_registry])
    builds = dict(zip(digests, succeeded_builds(db, config, "demo", list(digests.values())), strict=True))
    checked: list[str] = []
    for environment in ("dev", "staging", "prod"):
        for name, build_id in builds.items():
            answer = api.post(
                "/api/v1/promotions", json={"project": "demo", "environment": environment, "build_id": build_id}
            )
            assert answer.status_code == 202, answer.text
            assert PromotionWorker(db, config).run_once()
            row: dict[str, Any] = api.get(f"/api/v1/promotions/{answer.json()['id']}").json()
            assert row["status"] == "succeeded", row["error"]
            assert row["digest"] == digests[name]
            tagged, _, recorded = str(row["target_ref"]).partition("@")
            assert recorded == digests[name]
            for ref in (tagged, f"{tagged.rsplit(':', 1)[0]}@{recorded}"):
                assert crane("digest", ref).decode().strip() == recorded
                assert crane("manifest", ref) == layout.read(recorded)
                checked.append(ref)
            if name == "multi":  # every platform image of the index, by digest, byte for byte
                repository = tagged.rsplit(":", 1)[0]
                for child in json.loads(layout.read(recorded))["manifests"]:
                    assert crane("manifest", f"{repository}@{child['digest']}") == layout.read(child["digest"])
                platforms = crane("manifest", "--platform", "linux/arm64", tagged)
                assert platforms == layout.read(json.loads(layout.read(recorded))["manifests"][1]["digest"])
    assert len(checked) == 12
